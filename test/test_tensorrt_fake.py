"""The TensorRT backend driven through the contract fake (test/fakes/tensorrt.py).

Build, cache, load, infer, release and re-configure, and one test per defect of issue 10
(each failed on the code before the fix). The fake's behaviours are cited from TensorRT's
binding sources in its docstring.
"""

import json
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest

from fakes.tensorrt import DYNAMIC_NO_PROFILE, install, make_tensorrt
from tiny_models import logits_model

from segformer_ros.backends import trt_compat
from segformer_ros.backends.engine_cache import make_key, read_sidecar, write_engine
from segformer_ros.backends.tensorrt_backend import TensorRTBackend
from segformer_ros.errors import BackendError

REPO = Path(__file__).resolve().parents[1]


def ort_reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def read_notes(engine: Path) -> dict:
    """Return the ``note_*`` fields of an engine's JSON sidecar."""
    meta = json.loads(Path(engine).with_suffix('.json').read_text())
    return {k[5:]: v for k, v in meta.items() if k.startswith('note_')}


def backend(model: Path, tmp_path: Path, logs: List[str], **options) -> TensorRTBackend:
    options.setdefault('engine_cache_dir', str(tmp_path / 'cache'))
    return TensorRTBackend(str(model), logger=logs.append, **options)


# ----------------------------------------------------------------- the fake's contract
def test_fake_build_returns_none_and_logs_without_profile(tmp_path):
    trt = make_tensorrt('10.3.0.30')
    model = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(model))
    assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert logger.messages[-1][1] == DYNAMIC_NO_PROFILE
    assert not hasattr(make_tensorrt('11.1.0').BuilderFlag, 'FP16')
    assert hasattr(trt.BuilderFlag, 'FP16')
    runtime = trt.Runtime(logger)
    assert runtime.engine_host_code_allowed is False
    assert runtime.deserialize_cuda_engine(b'not an engine') is None


# ----------------------------------------------------------------- the whole life cycle
def test_build_cache_load_infer_release_reconfigure(tmp_path, monkeypatch):
    trt, cuda = install(monkeypatch)
    model = logits_model(tmp_path / 'm.onnx', input_hw=(64, 96))
    logs: List[str] = []
    be = backend(model, tmp_path, logs, precision='fp32')
    info = be.configure()
    assert info.input_shape == (1, 3, 64, 96) and info.num_classes == 19
    assert be.built_now and trt.fake_state.builds == 1 and be.item_agreement == [1.0]
    x = np.random.default_rng(3).normal(size=(1, 3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(be.infer(x), ort_reference(model, x), rtol=1e-5, atol=1e-5)
    engine_file = be.engine_path
    assert read_sidecar(engine_file) is not None and read_notes(engine_file)['precision'] == 'fp32'
    be.release()
    assert not [a for a in cuda.live.values() if a.kind in ('device', 'host')]
    be.configure()                      # re-configure: served from the cache
    assert trt.fake_state.builds == 1 and be.engine_path == engine_file
    np.testing.assert_allclose(be.infer(x), ort_reference(model, x), rtol=1e-5, atol=1e-5)
    be.release()


def test_idmap_model_and_engine_file(tmp_path, monkeypatch):
    install(monkeypatch)
    model = logits_model(tmp_path / 'ids.onnx', argmax=True)
    be = backend(model, tmp_path, [], precision='fp32')
    assert be.configure().output_kind.value == 'class_ids'
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(be.infer(x), ort_reference(model, x))
    engine = be.engine_path
    be.release()
    from_file = backend(engine, tmp_path, [])
    assert from_file.configure().output_kind.value == 'class_ids'
    from_file.release()


# ----------------------------------------------------------------- defect 1: batch > 1
def test_batch2_engine_with_wrong_items_is_refused_and_dropped(tmp_path, monkeypatch):
    install(monkeypatch, batch_bug=True)
    model = logits_model(tmp_path / 'b2.onnx', batch=2)
    be = backend(model, tmp_path, [], precision='fp32')
    with pytest.raises(BackendError, match='batch 2 gives wrong results.*4853'):
        be.configure()
    assert not list((tmp_path / 'cache').glob('*.engine'))   # not served next time
    be.release()


def test_batch2_fp16_engine_checked_per_item(tmp_path, monkeypatch):
    install(monkeypatch, batch_bug=False)
    model = logits_model(tmp_path / 'b2.onnx', batch=2)
    be = backend(model, tmp_path, [], precision='fp16')
    assert be.configure().input_shape[0] == 2       # was ValueError (batch-1 check input)
    assert len(be.item_agreement) == 2 and min(be.item_agreement) > 0.98
    be.release()


def test_dynamic_batch_builds_batch1(tmp_path, monkeypatch):
    install(monkeypatch)
    model = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    be = backend(model, tmp_path, [], precision='fp32', input_hw=(32, 64))
    assert be.configure().input_shape == (1, 3, 32, 64)
    be.release()


# ----------------------------------------------------------------- defect 2: device_id
def test_device_id_1_every_thread_and_allocation(tmp_path, monkeypatch):
    trt, cuda = install(monkeypatch, gpus=2)
    model = logits_model(tmp_path / 'm.onnx')
    be = backend(model, tmp_path, [], precision='fp32', device_id=1)
    be.configure()
    assert trt.fake_state.build_devices == [1]          # the tensorrt-build thread
    assert trt.fake_state.build_threads == ['tensorrt-build']
    assert {a.device for a in cuda.history} == {1}
    x = np.zeros((1, 3, 64, 64), np.float32)
    errors: List[BaseException] = []

    def worker(bind: bool) -> None:
        try:
            if bind:
                be.bind_thread()
            be.infer(x)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    for bind in (False, True):
        t = threading.Thread(target=worker, args=(bind,))
        t.start()
        t.join()
    # A fresh thread's current device is 0: without bind_thread TensorRT fails there.
    assert len(errors) == 1 and 'execute_async_v3 returned False' in str(errors[0])
    assert trt.fake_state.engines[-1].contexts[-1].executions[-1] == (1, 1)
    be.release()


def test_select_pipeline_uses_backend_device(tmp_path, monkeypatch):
    install(monkeypatch, gpus=2)
    from segformer_ros import gpu_segmentation
    from segformer_ros.config import PipelineConfig
    from segformer_ros.cuda import gpu_pipeline
    seen = []

    class Recorder:
        batch = 1

        def __init__(self, config, engine, device=0, depth=1):
            seen.append(device)

    monkeypatch.setattr(gpu_pipeline, 'GpuPipeline', Recorder)
    model = logits_model(tmp_path / 'm.onnx')
    be = backend(model, tmp_path, [], precision='fp32', device_id=1)
    be.configure()
    config = PipelineConfig(input_size=(64, 64))
    gpu_segmentation.select_pipeline('gpu', be, config, 'cpu', print)
    assert seen == [1]
    be.release()


def test_frame_path_threads_bind_their_device():
    """Every frame-path thread (intake, submit, finish) makes the backend's GPU current."""
    from segformer_ros.frame_path import FramePath
    calls = []
    lock = threading.Lock()

    def bind():
        with lock:
            calls.append(threading.current_thread().name)
    path = FramePath(take=lambda wait_turn: None, submit=lambda item, around: None,
                     finish=lambda item, pending: None, on_error=lambda *a: None,
                     prefetch=True, bind_thread=bind, name='segformer')
    path.start()
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert path.stop(timeout_s=5)
    assert sorted(calls) == ['segformer_finish', 'segformer_intake', 'segformer_submit']


# ----------------------------------------------------------------- defect 3: CLI
def test_cli_creates_dirs_and_keeps_the_plan(tmp_path, monkeypatch, capsys):
    install(monkeypatch)
    from segformer_ros.tools.build_engine import main
    model = logits_model(tmp_path / 'm.onnx')
    out = tmp_path / 'new' / 'dir' / 'm.engine'
    timing = tmp_path / 'cache' / 'missing' / 'timing.cache'
    rc = main(['--onnx', str(model), '--output', str(out), '--fp32', '--timing-cache',
               str(timing)])
    assert rc == 0, capsys.readouterr().err
    assert out.is_file() and timing.is_file()
    assert read_notes(out)['checked'] is True


def test_cli_unwritable_output_saves_plan_elsewhere(tmp_path, monkeypatch, capsys):
    install(monkeypatch)
    from segformer_ros.tools.build_engine import main
    model = logits_model(tmp_path / 'm.onnx')
    blocker = tmp_path / 'file'
    blocker.write_text('x')            # a file where a directory should be
    monkeypatch.chdir(tmp_path)
    rc = main(['--onnx', str(model), '--output', str(tmp_path / 'out.engine'), '--fp32',
               '--timing-cache', str(blocker / 'timing.cache')])
    err = capsys.readouterr().err
    assert rc == 1 and 'file' in err   # the timing-cache dir cannot be made: said before building
    rc = main(['--onnx', str(model), '--output', str(tmp_path / 'out.engine'), '--fp32'])
    assert rc == 0 and (tmp_path / 'out.engine').is_file()


def test_cli_refuses_wrong_batch2_engine(tmp_path, monkeypatch, capsys):
    install(monkeypatch, batch_bug=True)
    from segformer_ros.tools.build_engine import main
    model = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    out = tmp_path / 'b2.engine'
    rc = main(['--onnx', str(model), '--output', str(out), '--fp32', '--shapes',
               'input:2x3x64x64'])
    assert rc == 1 and '4853' in capsys.readouterr().err and not out.exists()


# ----------------------------------------------------------------- defect 4: no onnx package
def test_dynamic_onnx_without_onnx_package(tmp_path, monkeypatch):
    install(monkeypatch)
    model = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    monkeypatch.setitem(__import__('sys').modules, 'onnx', None)   # a robot without onnx
    be = backend(model, tmp_path, [], precision='fp32', input_hw=(64, 128))
    assert be.configure().input_shape == (1, 3, 64, 128)
    assert read_sidecar(be.engine_path).profile == 'input:1x3x64x128/1x3x64x128/1x3x64x128'
    be.release()
    other = backend(model, tmp_path, [], precision='fp32', input_hw=(32, 32))
    other.configure()
    assert other.engine_path != be.engine_path      # the input size is in the key
    other.release()
    nohw = backend(model, tmp_path, [], precision='fp32')
    with pytest.raises(BackendError, match='dynamic H/W; set input_height'):
        nohw.configure()


# ----------------------------------------------------------------- defect 5: TensorRT 11
def test_trt11_fp16_on_fp32_onnx_reports_fp32(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch, version='11.1.0.5')
    model = logits_model(tmp_path / 'm.onnx')
    logs: List[str] = []
    be = backend(model, tmp_path, logs, precision='fp16')
    be.configure()
    assert be.effective_precision == 'fp32'
    assert 'tensorrt fp32 (requested fp16)' in be.describe()
    assert any('runs fp32' in m and 'convert_float_to_float16' in m for m in logs)
    assert read_notes(be.engine_path)['precision'] == 'fp32'
    assert trt.fake_state.built_flags == [set()]
    be.release()


def test_trt11_fp16_onnx_check_feeds_half(tmp_path, monkeypatch):
    install(monkeypatch, version='11.1.0.5')
    model = logits_model(tmp_path / 'h.onnx', half_input=True)
    be = backend(model, tmp_path, [], precision='fp16')
    info = be.configure()               # the check used to feed float32 to ORT (raises)
    assert info.input_dtype == 'float16' and be.effective_precision == 'fp16'
    be.release()


def test_trt10_16_fp16_onnx_goes_strongly_typed(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch, version='10.16.0.1')
    be = backend(logits_model(tmp_path / 'h.onnx', half_input=True), tmp_path, [],
                 precision='fp16')
    be.configure()
    assert trt.fake_state.built_flags == [set()] and be.effective_precision == 'fp16'
    be.release()
    trt3, _ = install(monkeypatch, version='10.3.0.30')
    be = backend(logits_model(tmp_path / 'f.onnx'), tmp_path, [], precision='fp16')
    be.configure()
    assert trt3.fake_state.built_flags == [{'FP16'}] and be.effective_precision == 'fp16'
    be.release()


# ----------------------------------------------------------------- defect 6: reset per configure
def test_reconfigure_from_cache_does_not_rerun_check(tmp_path, monkeypatch):
    install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp16')
    be.configure()
    assert be.built_now and be.fp16_agreement is not None
    be.release()
    be.configure()
    assert be.built_now is False and be.fp16_agreement is None
    be.release()


def test_stale_cached_engine_rebuilt_on_reconfigure(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    logs: List[str] = []
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, logs, precision='fp32',
                 rebuild_stale_engine=True)
    be.configure()
    cached = be.engine_path
    be.release()
    # Intact on disk (the sidecar records these bytes) but refused by TensorRT: stale.
    stale = b'engine of a TensorRT update'
    write_engine(cached, stale, read_sidecar(cached), {'precision': 'fp32'})
    be.configure()
    assert trt.fake_state.builds == 2 and be.built_now
    assert any('stale (TensorRT: ' in m and 'rebuilding' in m for m in logs)
    be.release()
    strict = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    write_engine(cached, stale, read_sidecar(cached), {'precision': 'fp32'})
    with pytest.raises(BackendError, match='cached engine .* could not be deserialized '
                       r'\(TensorRT: .*Magic tag does not match'):
        strict.configure()


# ----------------------------------------------------------------- defect 7
def test_plugins_initialized_before_deserializing(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch, plan_plugins=True)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    assert trt.fake_state.plugins_initialized
    be.release()


def test_raising_progress_callback_does_not_cancel(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    logs: List[str] = []

    def progress(phase: str, fraction: float) -> None:
        raise RuntimeError('diagnostics publisher gone')

    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, logs, precision='fp32',
                 progress=progress)
    be.configure()
    assert trt.fake_state.builds == 1
    assert sum('progress callback raised RuntimeError' in m for m in logs) == 1
    be.release()


def test_bf16_refused_clearly():
    trt = make_tensorrt('10.3.0.30')
    with pytest.raises(BackendError, match='BF16 is not supported.*numpy has no bfloat16'):
        trt_compat.numpy_dtype_name(trt, trt.DataType.BF16)


def test_cache_key_tells_orin_modules_apart(tmp_path):
    model = logits_model(tmp_path / 'm.onnx')
    nx8 = make_key(str(model), '10.3.0.30', 'Orin', (8, 7), 'fp16', (), 4, 8 << 30)
    nx16 = make_key(str(model), '10.3.0.30', 'Orin', (8, 7), 'fp16', (), 8, 16 << 30)
    assert nx8.digest() != nx16.digest() and set(nx8.mismatch(nx16)) == {'sm_count',
                                                                         'total_memory'}


def test_cache_key_hashes_external_data(tmp_path):
    import onnx
    model = logits_model(tmp_path / 'm.onnx')
    from onnx import numpy_helper
    proto = onnx.load(str(model))
    raw = [numpy_helper.from_array(numpy_helper.to_array(t), t.name)   # raw_data tensors
           for t in proto.graph.initializer]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(raw)
    onnx.save(proto, str(tmp_path / 'ext.onnx'), save_as_external_data=True,
              all_tensors_to_one_file=True, location='ext.onnx.data', size_threshold=0)
    key1 = make_key(str(tmp_path / 'ext.onnx'), '10.3', 'Orin', (8, 7), 'fp16', ())
    data = tmp_path / 'ext.onnx.data'
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    key2 = make_key(str(tmp_path / 'ext.onnx'), '10.3', 'Orin', (8, 7), 'fp16', ())
    assert key1.onnx_sha256 != key2.onnx_sha256


def test_unreadable_timing_cache_is_replaced(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    logs: List[str] = []
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, logs, precision='fp32')
    cache_dir = tmp_path / 'cache'
    cache_dir.mkdir(mode=0o700)
    from segformer_ros.backends.engine_cache import EngineCache
    timing = EngineCache(str(cache_dir)).timing_cache_path('10.3.0.30', 'Orin', (8, 7), 16)
    timing.write_bytes(b'garbage from a crash')     # create_timing_cache gives None
    be.configure()
    assert any('timing cache rejected' in m for m in logs)
    assert timing.read_bytes().startswith(b'FAKETC')
    be.release()


def test_infer_copies_through_pinned_memory(tmp_path, monkeypatch):
    _, cuda = install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    cuda.copies.clear()
    be.infer(np.zeros((1, 3, 64, 64), np.float32))
    h2d, d2h = cuda.copies
    assert cuda.is_pinned(h2d[1], h2d[2]) and cuda.is_pinned(d2h[0], d2h[2])
    be.release()


def test_host_code_engine_refused_unless_allowed(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    model = logits_model(tmp_path / 'm.onnx')
    logger = trt.Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    trt.OnnxParser(network, logger).parse_from_file(str(model))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    engine = tmp_path / 'vc.engine'
    engine.write_bytes(builder.build_serialized_network(network, config))
    with pytest.raises(BackendError, match='allow_engine_host_code: true'):
        backend(engine, tmp_path, []).configure()
    ok = backend(engine, tmp_path, [], allow_engine_host_code=True)
    ok.configure()
    ok.release()
    (tmp_path / 'foreign.engine').write_bytes(b'\x00' * 64)
    with pytest.raises(BackendError, match='could not deserialize the engine file'):
        backend(tmp_path / 'foreign.engine', tmp_path, []).configure()


# ----------------------------------------------------------------- docs (defects 7, 8)
def test_jetson_docs_pins_and_citations():
    text = (REPO / 'docs' / 'jetson.md').read_text()
    assert 'cuda-python>=12.6,<13' not in text      # resolves to 12.9.x (newer runtime)
    assert 'cuda-python==12.6.*' in text and '#4723' not in text and '#4853' in text
    assert 'make test-tensorrt' in text and 'segformer-ros-selfcheck' in text


def test_sidecar_is_json_with_notes(tmp_path, monkeypatch):
    install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    meta = json.loads(be.engine_path.with_suffix('.json').read_text())
    assert meta['sm_count'] == 16 and meta['note_precision'] == 'fp32'
    be.release()


# ----------------------------------------------------------------- the acceptance suite itself
def test_acceptance_suite_runs_on_the_fake(tmp_path):
    """Run `make test-tensorrt`'s suite on the fake: each GPU-free case passes and is reported.

    The robot runs the same file on real TensorRT.
    """
    import os
    import subprocess
    import sys
    report = tmp_path / 'report.json'
    env = dict(os.environ, TRT_ACCEPTANCE_ON_FAKE='1', TRT_ACCEPTANCE_REPORT=str(report))
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           '-m', 'tensorrt', str(REPO / 'test' / 'test_tensorrt_acceptance.py')],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = json.loads(report.read_text())
    statuses = {c['case']: c['status'] for c in data['cases']}
    assert len(statuses) >= 17 and set(statuses.values()) == {'passed'}
    for robot_case in ('uint8 id-map engine', 'batch 2 engine without onnxruntime',
                       'engine file truncated on disk'):     # issue 23's robot cases
        assert any(name.startswith(robot_case) for name in statuses), robot_case
    assert data['environment']['on_fake'] is True
