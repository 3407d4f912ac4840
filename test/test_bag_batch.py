"""Many recordings at once (issue 24 item 4): the local process pool and a Ray cluster.

Two recordings (mcap and sqlite3, different frames and cameras) segmented one by one are the
reference; ``--workers 2`` and ``--ray ADDRESS`` (a local Ray head this test starts, one task
per recording) must give byte-equal masks with the same headers.
"""

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from bag_helpers import CameraSpec, clip_frames, read_topic, write_bag
from shared_assets import REPO
from segformer_ros import bag_messages as bm
from segformer_ros.bag_batch import wants_gpu
from segformer_ros.tools.bag import main

PRESET = 'deeplab_mobilenet_cityscapes'
TOPICS = ['/front/image_raw', '/rear/image_raw/compressed']
# Skip reason where the opt-in ray extra is absent (counted by conftest's skip account).
MISSING_EXTRA = 'missing opt-in extra'
COMMON = ['--params', PRESET, '--set', 'warmup_iterations=0', '--set', 'num_threads=1',
          '--image-topics', *TOPICS, '--outputs', 'mask', 'summary', '--quiet']


def _masks(bag: Path) -> Dict[str, Dict[int, bytes]]:
    out: Dict[str, Dict[int, bytes]] = {}
    for ns in ('front', 'rear'):
        for _t, msg in read_topic(bag, f'/{ns}/segmentation/mask'):
            out.setdefault(ns, {})[bm.stamp_ns(msg.header)] = \
                bm.mask_from_image(msg).tobytes() + msg.header.frame_id.encode()
    return out


@pytest.fixture(scope='module')
def recordings(tmp_path_factory) -> Dict[str, Any]:
    tmp = tmp_path_factory.mktemp('many')
    frames = clip_frames(6, step=15)
    bags = {'drive_a': tmp / 'drive_a', 'drive_b': tmp / 'drive_b'}
    write_bag(bags['drive_a'], 'mcap', [CameraSpec(TOPICS[0], 'front_a', 'rgb8'),
                                        CameraSpec(TOPICS[1], 'rear_a', 'jpeg')], frames[:3])
    write_bag(bags['drive_b'], 'sqlite3', [CameraSpec(TOPICS[0], 'front_b', 'bgr8'),
                                           CameraSpec(TOPICS[1], 'rear_b', 'png')], frames[3:])
    reference = {}
    for name, bag in bags.items():
        assert main(['run', str(bag), str(tmp / f'ref_{name}'), *COMMON]) == 0
        reference[name] = _masks(tmp / f'ref_{name}')
        assert sum(len(v) for v in reference[name].values()) == 6
    assert reference['drive_a'] != reference['drive_b']
    return {'tmp': tmp, 'bags': bags, 'reference': reference}


def _check(out_dir: Path, recordings: Dict[str, Any], report: Path, executor: str) -> None:
    summary = json.loads(report.read_text())
    assert summary['executor'] == executor
    assert [Path(r['input']).name for r in summary['runs']] == ['drive_a', 'drive_b']
    for name in ('drive_a', 'drive_b'):
        assert _masks(out_dir / f'{name}_segmented') == recordings['reference'][name]


def test_local_process_pool(recordings, tmp_path):
    bags, out, report = recordings['bags'], tmp_path / 'pool', tmp_path / 'pool.json'
    assert main(['run', str(bags['drive_a']), str(bags['drive_b']), str(out), *COMMON,
                 '--workers', '2', '--json', str(report)]) == 0
    _check(out, recordings, report, '2 processes')
    assert os.getpid() not in [r['worker_pid'] for r in json.loads(report.read_text())['runs']]


def test_one_bad_recording_does_not_lose_the_others(recordings, tmp_path, capsys):
    bad = tmp_path / 'broken'
    bad.mkdir()
    (bad / 'metadata.yaml').write_text('not: a rosbag2 metadata file\n')
    out, report = tmp_path / 'out', tmp_path / 'r.json'
    assert main(['run', str(recordings['bags']['drive_a']), str(bad), str(out), *COMMON,
                 '--json', str(report)]) == 2
    runs = json.loads(report.read_text())['runs']
    assert runs[0]['frames_segmented'] == 6 and 'cannot read bag' in runs[1]['error']
    assert 'broken: error: cannot read bag' in capsys.readouterr().out


def test_an_unexpected_failure_is_that_recordings_error(recordings, tmp_path):
    """Not only SegformerRosError: any failure of one recording is its report's error."""
    from segformer_ros.bag_batch import run_local
    from segformer_ros.bag_run import BagJob

    # Parameters without 'backend': the pipeline build raises KeyError in that task.
    job = BagJob(input=str(recordings['bags']['drive_a']), output=str(tmp_path / 'o'),
                 params={}, image_topics=TOPICS)
    done = []
    assert run_local([job], 1, done.append) == done
    assert done[0]['error'] == "KeyError: 'backend'" and done[0]['input'] == job.input


def test_ctrl_c_stops_every_worker_with_valid_bags(tmp_path):
    """SIGINT to the tool (only): each worker stops after its batch and closes its bag."""
    frames = clip_frames(30, step=5)
    bags = [tmp_path / 'long_a', tmp_path / 'long_b']
    for bag in bags:
        write_bag(bag, 'mcap', [CameraSpec('/cam/image_raw', 'cam', 'bgr8', False)], frames)
    out, report = tmp_path / 'out', tmp_path / 'r.json'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'segformer_ros.tools.bag', 'run', *map(str, bags), str(out),
         '--params', PRESET, '--image-topics', '/cam/image_raw', '--outputs', 'mask',
         '--json', str(report), '--workers', '2', '--set', 'warmup_iterations=0',
         '--set', 'num_threads=1'],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not all((out / f'{b.name}_segmented').exists() for b in bags):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, 'the workers did not start in 60 s'
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert 'stopping after the current batch' in stderr and 'Traceback' not in stderr
    runs = json.loads(report.read_text())['runs']
    for bag, run in zip(bags, runs):
        assert run['interrupted'] and run['frames_segmented'] < 30, stdout
        masks = read_topic(out / f'{bag.name}_segmented', '/cam/segmentation/mask')
        assert len(masks) == run['frames_segmented']   # a readable, closed bag


def test_ray_tasks_ask_for_a_gpu_only_where_the_params_use_one():
    from segformer_ros.parameters import defaults
    from segformer_ros.presets import load_params_file, resolve_params_file

    cpu = {**defaults(), **load_params_file(resolve_params_file(PRESET))}
    assert cpu['backend'] == 'onnxruntime' and not wants_gpu(cpu, cluster_has_gpu=True)
    auto = defaults()   # auto = TensorRT where there is a GPU
    assert auto['backend'] == 'auto' and not wants_gpu(auto)
    assert wants_gpu(auto, cluster_has_gpu=True)
    for name, value in (('backend', 'tensorrt'), ('onnxruntime_provider', 'cuda'),
                        ('onnxruntime_provider', 'tensorrt'), ('pipeline', 'gpu')):
        assert wants_gpu({**cpu, name: value}), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ray_requested() -> bool:
    """Return True when this venv was set up with RAY=1 (tools/setup.sh stamps ' ray=').

    The stamp, not the RAY variable: CI exports RAY=1 for its whole run, while the
    Python-version legs build their venvs with RAY=0.
    """
    stamp = Path(sys.prefix) / '.segformer_ros-setup-stamp'
    return stamp.is_file() and ' ray=' in stamp.read_text()


def _require_ray() -> None:
    """Skip (with the reason) where ray was not asked for; fail where it was but is missing."""
    if importlib.util.find_spec('ray') is not None:
        return
    if _ray_requested():
        pytest.fail(f'this venv was set up with RAY=1 ({sys.prefix}) but ray is not '
                    'importable: see tools/requirements-ray.txt')
    pytest.skip(f'{MISSING_EXTRA}: ray (make setup RAY=1; CI sets it)')


@pytest.fixture(scope='module')
def ray_head(tmp_path_factory) -> Iterator[str]:
    """Start a small local Ray head (2 CPUs, 100 MB object store); yield its address.

    Token authentication with a token of this test's own (not ~/.ray/auth_token), so the
    cluster admits only this test's processes; --block ties Ray's processes to this one
    (terminating it stops them: no ``ray stop``, which would end every cluster of the user).
    """
    _require_ray()
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix='ray', dir='/tmp')   # short: Ray's unix sockets
    token = Path(temp_dir) / 'auth_token'
    token.write_text(secrets.token_hex(32))
    log = tmp_path_factory.mktemp('ray') / 'ray_head.log'
    with pytest.MonkeyPatch.context() as env:
        for name, value in (('RAY_AUTH_MODE', 'token'), ('RAY_AUTH_TOKEN_PATH', str(token)),
                            ('RAY_USAGE_STATS_ENABLED', '0')):
            env.setenv(name, value)
        env.delenv('RAY_AUTH_TOKEN', raising=False)
        with log.open('w') as out:
            head = subprocess.Popen(
                [str(Path(sys.executable).with_name('ray')), 'start', '--head', '--block',
                 f'--port={port}', '--node-ip-address=127.0.0.1', '--num-cpus=2',
                 '--num-gpus=0', f'--object-store-memory={100 * 2**20}',
                 f'--memory={2 * 2**30}', '--include-dashboard=false', '--disable-usage-stats',
                 f'--temp-dir={temp_dir}'],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while 'Ray runtime started' not in log.read_text():
                assert head.poll() is None, f'ray start exited: {log.read_text()[-3000:]}'
                assert time.monotonic() < deadline, \
                    f'no Ray head in 60 s: {log.read_text()[-3000:]}'
                time.sleep(0.2)
            yield f'127.0.0.1:{port}'
        finally:
            head.terminate()
            try:
                head.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait()
            shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_cluster_one_task_per_recording(ray_head, recordings, tmp_path):
    bags, out, report = recordings['bags'], tmp_path / 'ray', tmp_path / 'ray.json'
    assert main(['run', str(bags['drive_a']), str(bags['drive_b']), str(out), *COMMON,
                 '--ray', ray_head, '--json', str(report)]) == 0
    _check(out, recordings, report, f'ray {ray_head}')
    # Each recording ran as a task in a Ray worker process, not in this driver.
    pids = [run['worker_pid'] for run in json.loads(report.read_text())['runs']]
    assert len(pids) == 2 and os.getpid() not in pids


def test_ray_ctrl_c_leaves_valid_bags(ray_head, tmp_path):
    """SIGINT to the driver cancels the tasks; each task's bag is closed and readable."""
    frames = clip_frames(30, step=5)
    bags = [tmp_path / 'long_a', tmp_path / 'long_b']
    stamps = {}
    for bag in bags:
        stamps[bag.name] = write_bag(bag, 'mcap', [CameraSpec('/cam/image_raw', 'cam', 'bgr8',
                                                              False)], frames)['/cam/image_raw']
    out, report = tmp_path / 'out', tmp_path / 'r.json'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'segformer_ros.tools.bag', 'run', *map(str, bags), str(out),
         '--params', PRESET, '--image-topics', '/cam/image_raw', '--outputs', 'mask',
         '--json', str(report), '--ray', ray_head, '--set', 'warmup_iterations=0',
         '--set', 'num_threads=1'],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not all((out / f'{b.name}_segmented').exists() for b in bags):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, 'the Ray tasks did not start in 60 s'
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    runs = json.loads(report.read_text())['runs']
    assert 'stopping after the current batch' in stderr and 'Traceback' not in stderr
    assert all(run['interrupted'] for run in runs), stdout
    for bag, run in zip(bags, runs):
        masks = read_topic(out / f'{bag.name}_segmented', '/cam/segmentation/mask')
        assert len(masks) < 30, stdout   # stopped early, and a readable, closed bag
        # The task's own report where it came back (it does when the bag was closed).
        assert run.get('frames_segmented', len(masks)) == len(masks), stdout
        assert [bm.stamp_ns(m.header) for _t, m in masks] == stamps[bag.name][:len(masks)]
