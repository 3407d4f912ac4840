"""Security: message content is only data, nothing is unpickled, engines stay private.

And TensorRT engines with host code need an explicit opt-in.

The node runs in its own process under a Python audit hook (PEP 578) that records every
file the interpreter opens and every unpickling of a global; a named pipe stands in for a
sensitive file, because merely opening a FIFO for reading is visible to the test (a
non-blocking open for writing succeeds only while a reader has it open), even when the
open happens in native code.
"""

import ast
import errno
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'segformer_ros'

# Runs segformer_ros.node_main with an audit hook; argv[1] is the audit log.
_AUDITED_NODE = r'''
import runpy, sys, time
log = open(sys.argv[1], 'a', buffering=1)
def hook(event, args):
    if event == 'open' or event in ('os.listdir', 'os.scandir'):
        path = args[0]
        if isinstance(path, bytes):
            path = path.decode(errors='replace')
        log.write(f'{event}\t{time.time():.3f}\t{path}\n')
    elif event.startswith('pickle.') or event in ('marshal.loads', 'marshal.load'):
        log.write(f'{event}\t{time.time():.3f}\t{args!r}\n')
    elif event in ('subprocess.Popen', 'os.system', 'os.exec', 'os.posix_spawn'):
        log.write(f'{event}\t{time.time():.3f}\t{args!r}\n')
sys.addaudithook(hook)
sys.argv = [sys.argv[0]] + sys.argv[2:]
runpy.run_module('segformer_ros.node_main', run_name='__main__', alter_sys=True)
'''


def _fifo_has_reader(path: Path) -> bool:
    """Tell whether some process has the FIFO open for reading (or is blocked opening it)."""
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise
    os.close(fd)
    return True


@pytest.mark.ros
def test_message_strings_are_data_and_nothing_is_opened(tmp_path, ros_domain,
                                                        deeplab_model) -> None:
    pytest.importorskip('rclpy')
    pytest.importorskip('segformer_ros.msg', reason='generated messages missing')
    import sys

    from ros_helpers import (PRESET, NodeClient, error_lines, fd_targets, image_msg,
                             ros_context, wait_until)
    from benchmarks.processes import RosProcess, loopback_env, node_command, params_file

    secret = tmp_path / 'secret_model.onnx'
    os.mkfifo(secret)
    audit = tmp_path / 'audit.log'
    overrides = params_file({'model_path': str(deeplab_model), 'warmup_iterations': 0,
                             'autostart': True}, str(tmp_path))
    cmd = [sys.executable, '-c', _AUDITED_NODE, str(audit)] + \
        node_command([str(PRESET), overrides])[3:]
    env = loopback_env(ros_domain)
    home = tmp_path / 'home'   # where ONNX Runtime would put its telemetry database
    home.mkdir()
    env['HOME'] = str(home)
    env.pop('ORT_DISABLE_TELEMETRY', None)
    proc = RosProcess(cmd, env, tmp_path / 'node.log')
    hostile = [str(secret), '../../../../../../etc/passwd', f'file://{secret}',
               '$(touch /tmp/pwned)', '%s%s%n', '32FC1' + 'x' * 5000]
    reader_seen: List[bool] = []
    stop = threading.Event()

    def watch_fifo() -> None:
        while not stop.is_set():
            reader_seen.append(_fifo_has_reader(secret))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_fifo, daemon=True)
    try:
        assert proc.wait_for_log('configured:', 60.0), proc.log()[-3000:]
        with ros_context(ros_domain) as context, NodeClient(context) as client:
            try:
                assert wait_until(lambda: client.state() == 'active', 30.0)
                assert client.wait_for_camera_match()
                started = time.time()
                watcher.start()
                frame = np.full((48, 64, 3), 90, np.uint8)
                for i, text in enumerate(hostile):
                    # As frame_id of a good frame: carried through untouched.
                    stamp = (100 + i) * 10**9
                    mask = client.send_until_mask(
                        lambda: image_msg(frame, 'rgb8', stamp, frame_id=text), stamp)
                    assert mask is not None, proc.log()[-3000:]
                    assert mask.header.frame_id == text
                # As the encoding: refused and quoted in the log, never used as a path.
                wanted = f"unknown or unsupported image encoding '{secret}'"
                deadline = time.monotonic() + 10.0
                while not any(wanted in x for x in error_lines(proc.log())):
                    assert time.monotonic() < deadline, proc.log()[-3000:]
                    client.camera.publish(image_msg(frame, str(secret), 1))
                    time.sleep(0.2)
                for text in hostile[1:]:   # same kind of error: rate-limited, counted
                    for _ in range(3):
                        client.camera.publish(image_msg(frame, text, 2))
                        time.sleep(0.01)
                assert client.send_until_mask(lambda: image_msg(frame, 'rgb8', 3), 3)
                open_now = fd_targets(proc.pid)
            finally:
                stop.set()
    finally:
        code = proc.stop()
    assert code == 0, proc.log()[-3000:]
    assert reader_seen and not any(reader_seen), 'the node opened the FIFO named in a message'
    assert not _fifo_has_reader(secret)
    assert not Path('/tmp/pwned').exists()
    for target in open_now.values():
        assert 'passwd' not in target and str(secret) not in target, target
    log = proc.log_path.read_text()
    assert 'Traceback' not in log
    # Error lines stay short whatever the publisher puts in its strings.
    assert any("'32FC1xxxx" in x and 'more chars)' in x for x in error_lines(log)), log[-3000:]
    assert max(len(x) for x in error_lines(log)) < 1300

    events = [line.split('\t', 2) for line in audit.read_text().splitlines()]
    assert events, 'the audit hook recorded nothing'
    # Nothing unpickled during start, model load, configure and the frames.
    assert [e for e in events if e[0].startswith('pickle.')] == []
    after = [e for e in events if float(e[1]) >= started]
    spawned = [e for e in events if e[0] in ('subprocess.Popen', 'os.system', 'os.exec',
                                             'os.posix_spawn')]
    # At start-up ctypes.util.find_library runs `ldconfig -p` (segformer_ros.memory looks up
    # libc); nothing else is spawned, and nothing at all once frames flow.
    assert [e for e in spawned if 'ldconfig' not in e[2]] == [], spawned
    assert [e for e in after if e in spawned] == [], spawned
    for _, _, path in after:
        assert 'passwd' not in path and 'secret_model' not in path and 'pwned' not in path, \
            path
    # Model files: only the configured one is ever opened from Python.
    model_like = {e[2] for e in events if e[0] == 'open' and isinstance(e[2], str)
                  and Path(e[2]).suffix.lower() in ('.onnx', '.engine', '.plan', '.trt')}
    assert model_like <= {str(deeplab_model)}, model_like
    assert not (home / '.cache' / 'Microsoft').exists(), 'ONNX Runtime telemetry was recorded'
    print(f'audit: {len(events)} events ({len(after)} while frames flowed), model files '
          f'opened from Python: {sorted(model_like)}, FIFO polled {len(reader_seen)} times')


# ------------------------------------------------------------ static source scan
_PICKLE_MODULES = {'pickle', 'cPickle', '_pickle', 'cloudpickle', 'dill', 'joblib', 'shelve',
                   'marshal', 'pandas'}


def _python_sources() -> List[Path]:
    files = sorted(PACKAGE.rglob('*.py'))
    files += sorted((REPO / 'launch').glob('*.py')) + sorted((REPO / 'tools').glob('*.py'))
    files += sorted((REPO / 'benchmarks').glob('*.py'))
    return [f for f in files if '__pycache__' not in f.parts]


def _kw(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _const(node: Any) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def test_package_never_unpickles() -> None:
    problems: List[str] = []
    for path in _python_sources():
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split('.')[0] in _PICKLE_MODULES:
                        problems.append(f'{rel}:{node.lineno}: import {alias.name}')
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split('.')[0] in _PICKLE_MODULES:
                    problems.append(f'{rel}:{node.lineno}: from {node.module} import')
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                attr = node.func.attr
                owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ''
                if attr == 'load' and owner in ('np', 'numpy') \
                        and _const(_kw(node, 'allow_pickle')) is not False \
                        and _kw(node, 'allow_pickle') is not None:
                    problems.append(f'{rel}:{node.lineno}: np.load(allow_pickle=...)')
                if attr == 'load' and owner == 'torch' \
                        and _const(_kw(node, 'weights_only')) is not True:
                    problems.append(f'{rel}:{node.lineno}: torch.load without weights_only')
                if owner == 'yaml' and attr in ('load', 'load_all', 'unsafe_load',
                                                'full_load', 'unsafe_load_all'):
                    loader = _kw(node, 'Loader')
                    safe = isinstance(loader, ast.Attribute) and loader.attr in (
                        'SafeLoader', 'CSafeLoader')
                    if not safe:
                        problems.append(f'{rel}:{node.lineno}: yaml.{attr} without SafeLoader')
                if attr in ('read_pickle', 'from_pickle'):
                    problems.append(f'{rel}:{node.lineno}: {attr}')
    assert problems == [], '\n'.join(problems)


def test_model_loading_reads_no_pickles(deeplab_model, tmp_path) -> None:
    """Load and run the model through the backend under an audit hook (own process)."""
    import subprocess
    import sys

    code = r'''
import sys
events = []
sys.addaudithook(lambda e, a: events.append(e) if e.startswith('pickle.') else None)
import numpy as np
from segformer_ros.backends.factory import create_backend
backend = create_backend('onnxruntime', sys.argv[1])
backend.configure()
out = backend.infer(np.zeros((1, 3, 513, 513), np.float32))
backend.release()
print('pickle events:', len(events), 'output', out.shape)
'''
    result = subprocess.run([sys.executable, '-c', code, str(deeplab_model)],
                            capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'pickle events: 0 output (1, 513, 513)' in result.stdout, result.stdout


def test_onnxruntime_telemetry_is_off(deeplab_model, tmp_path) -> None:
    """ONNX Runtime 1.31 records (and tries to upload) 1DS telemetry unless told not to."""
    import subprocess
    import sys

    def run(code: str, home: Path) -> None:
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k != 'ORT_DISABLE_TELEMETRY'}
        env['HOME'] = str(home)
        result = subprocess.run([sys.executable, '-c', code, str(deeplab_model)], env=env,
                                capture_output=True, text=True, timeout=120, cwd=str(REPO))
        assert result.returncode == 0, result.stderr[-2000:]

    ours, bare = tmp_path / 'ours', tmp_path / 'bare'
    run('import sys; from segformer_ros.backends.factory import create_backend; '
        'create_backend("onnxruntime", sys.argv[1]).configure()', ours)
    assert not (ours / '.cache' / 'Microsoft').exists()
    # Control: the same ONNX Runtime loaded bare does write its telemetry database.
    run('import sys, onnxruntime as ort; ort.InferenceSession(sys.argv[1], '
        'providers=["CPUExecutionProvider"])', bare)
    if not (bare / '.cache' / 'Microsoft').exists():
        pytest.skip('this onnxruntime build records no telemetry: nothing to switch off')


# ---------------------------------------------------------------- engine cache
def test_engine_cache_directory_is_owner_only(tmp_path) -> None:
    from segformer_ros.backends.engine_cache import EngineCache, EngineKey
    from segformer_ros.errors import BackendError

    old = os.umask(0)   # the most permissive umask: the mode must not depend on it
    try:
        cache = EngineCache(str(tmp_path / 'deep' / 'engines'))
        directory = cache.ensure_dir()
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        key = EngineKey('0' * 64, '10.3.0', 'Orin', (8, 7), 'fp16', '')
        engine = cache.store(key, b'plan bytes', stem='../../../etc/passwd')
        assert stat.S_IMODE(engine.stat().st_mode) == 0o600
        assert stat.S_IMODE(cache.sidecar(engine).stat().st_mode) == 0o600
        # A model name full of path syntax still lands inside the cache directory.
        assert engine.parent == directory and '/' not in engine.name
        # A world-writable cache directory (someone else could plant an engine) is refused.
        shared = tmp_path / 'shared'
        shared.mkdir(mode=0o777)
        os.chmod(shared, 0o777)
        with pytest.raises(BackendError, match='world-writable'):
            EngineCache(str(shared)).ensure_dir()
    finally:
        os.umask(old)


# ------------------------------------------------------- TensorRT host code
def test_engine_host_code_is_opt_in() -> None:
    """The parameter defaults to off and reaches the backend; the runtime gets the flag.

    TensorRT does not run on this machine, so the last step drives the backend's
    deserialization with a minimal stand-in for the tensorrt module (the attribute TensorRT
    10 reads is ``IRuntime.engine_host_code_allowed``).
    """
    from segformer_ros.parameters import spec

    assert spec('allow_engine_host_code').default is False
    trt_backend = pytest.importorskip('segformer_ros.backends.tensorrt_backend')

    class _Runtime:
        def __init__(self, logger: Any) -> None:
            self.engine_host_code_allowed = True   # TensorRT's own default is irrelevant
            self.seen: List[bool] = []

        def deserialize_cuda_engine(self, plan: bytes) -> Any:
            self.seen.append(self.engine_host_code_allowed)
            return None

    class _Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class _Trt:
        Runtime = _Runtime
        Logger = _Logger

    for options, expected in (({}, False), ({'allow_engine_host_code': False}, False),
                              ({'allow_engine_host_code': True}, True)):
        backend = trt_backend.TensorRTBackend('model.engine', **options)
        assert backend.allow_host_code is expected
        backend._deserialize(_Trt, b'plan')
        assert backend._runtime.seen == [expected]
