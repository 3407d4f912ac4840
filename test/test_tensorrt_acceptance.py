"""Real-TensorRT acceptance suite for the first robot: ``make test-tensorrt``.

Skipped (with the reason) without a real TensorRT >= 10, cuda-python and a GPU: CI and
this project's machines have none. On a Jetson it builds tiny generated ONNX models
(fixed and dynamic H/W, batch 1 and 2, a logits and an id-map model) into fp32 and fp16
engines through the backend and through segformer-ros-build-engine, compares them with
ONNX Runtime on the CPU, and checks cache reuse, rebuild on a changed key, stale-engine
rebuild, host-code refusal, the batch check, device_id (two GPUs) and the GPU pipeline.
Issue 23 added three robot cases: a uint8-output (class-id) engine through the backend and
the GPU pipeline, a batch-2 engine checked without onnxruntime (TensorRT checks its own
batch items), and an engine file truncated on disk (rebuilt, one log line).

Every case is written to one JSON report (``TRT_ACCEPTANCE_REPORT``, default
``trt_acceptance_report.json`` in the current directory) with the environment
(TensorRT, CUDA, GPU, JetPack/L4T release, Python packages): send that file back.
"""

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import pytest

from tiny_models import logits_model

REPORT_PATH = Path(os.environ.get('TRT_ACCEPTANCE_REPORT', 'trt_acceptance_report.json'))
# Self-test of this suite (test_tensorrt_fake.py runs it so in CI): the contract fake stands
# in for TensorRT and CUDA; cases that need a real GPU skip.
ON_FAKE = os.environ.get('TRT_ACCEPTANCE_ON_FAKE') == '1'
if ON_FAKE:
    from fakes.tensorrt import install_globally
    install_globally()


def _why_not_here() -> Optional[str]:
    try:
        import tensorrt
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken .so
        return f'TensorRT is not importable ({type(exc).__name__}: {exc})'
    if hasattr(tensorrt, 'fake_state') and not ON_FAKE:
        return 'the tensorrt module is the test fake, not TensorRT'
    from segformer_ros.backends.tensorrt_backend import tensorrt_available
    ok, why = tensorrt_available()
    if not ok:
        return why
    for name in ('onnx', 'onnxruntime'):
        try:
            __import__(name)
        except ImportError:
            return f'{name} is not installed (pip install {name})'
    return None


WHY_NOT = _why_not_here()
pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.skipif(WHY_NOT is not None, reason=f'real-TensorRT acceptance suite: '
                       f'{WHY_NOT}; run `make test-tensorrt` on the robot (docs/jetson.md)'),
]

REPORT: Dict[str, Any] = {'environment': {}, 'cases': []}


def environment() -> Dict[str, Any]:
    """Describe the machine for the report (versions, GPU, JetPack/L4T)."""
    env: Dict[str, Any] = {'python': sys.version.split()[0], 'platform': platform.platform(),
                           'on_fake': ON_FAKE}
    for name in ('tensorrt', 'onnxruntime', 'onnx', 'numpy', 'cv2'):
        try:
            env[name] = getattr(__import__(name), '__version__', '?')
        except Exception as exc:  # noqa: BLE001
            env[name] = f'unavailable: {exc}'
    try:
        from importlib.metadata import version
        env['cuda-python'] = version('cuda-python')
    except Exception:  # noqa: BLE001
        try:
            env['cuda-bindings'] = version('cuda-bindings')
        except Exception as exc:  # noqa: BLE001
            env['cuda-python'] = f'unavailable: {exc}'
    for path in ('/etc/nv_tegra_release', '/proc/device-tree/model'):
        with contextlib.suppress(OSError):
            env[path] = Path(path).read_text(errors='replace').strip('\x00\n ')[:200]
    with contextlib.suppress(Exception):
        from segformer_ros.cuda import runtime as rt
        rt_mod, _, _ = rt.bindings()
        env['cuda_runtime_version'] = rt.check(rt_mod.cudaRuntimeGetVersion(), 'version')
        env['cuda_driver_version'] = rt.check(rt_mod.cudaDriverGetVersion(), 'version')
        count = rt.check(rt_mod.cudaGetDeviceCount(), 'count')
        env['gpus'] = [vars(rt.device_info(i)) if hasattr(rt.device_info(i), '__dict__')
                       else str(rt.device_info(i)) for i in range(int(count))]
    return env


def _write_report() -> None:
    if not REPORT['environment']:
        REPORT['environment'] = environment()
    REPORT['written'] = time.strftime('%Y-%m-%dT%H:%M:%S%z')
    REPORT_PATH.write_text(json.dumps(REPORT, indent=1, default=str))


@contextlib.contextmanager
def case(name: str) -> Iterator[Dict[str, Any]]:
    """Record one acceptance case in the report: status, details, error, seconds."""
    entry: Dict[str, Any] = {'case': name, 'status': 'failed'}
    start = time.monotonic()
    try:
        yield entry
        entry['status'] = 'passed'
    except pytest.skip.Exception as exc:
        entry['status'] = 'skipped'
        entry['reason'] = str(exc)
        raise
    except BaseException as exc:
        entry['error'] = f'{type(exc).__name__}: {exc}'
        raise
    finally:
        entry['seconds'] = round(time.monotonic() - start, 2)
        REPORT['cases'].append(entry)
        _write_report()


def ort_run(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    inp = session.get_inputs()[0]
    dtype = np.float16 if 'float16' in inp.type else np.float32
    return session.run(None, {inp.name: x.astype(dtype)})[0]


def agreement(ref: np.ndarray, got: np.ndarray) -> List[float]:
    """Return the per-item argmax (or id) agreement of two outputs."""
    if ref.ndim == 4 and ref.dtype.kind == 'f':
        ref, got = ref.argmax(1), np.asarray(got).argmax(1)
    got = np.asarray(got).reshape(ref.shape)
    return [float((r == g).mean()) for r, g in zip(ref, got)]


def frames(shape: Any, seed: int = 0) -> np.ndarray:
    from segformer_ros.backends.tensorrt_backend import check_frames
    return check_frames(shape) + np.float32(seed * 0.01)


def make_backend(model: Path, cache: Path, logs: List[str], **options: Any) -> Any:
    from segformer_ros.backends.tensorrt_backend import TensorRTBackend
    return TensorRTBackend(str(model), engine_cache_dir=str(cache), logger=logs.append,
                           **options)


@pytest.fixture(scope='module')
def models(tmp_path_factory: Any) -> Dict[str, Path]:
    d = tmp_path_factory.mktemp('trt_models')
    return {'fixed': logits_model(d / 'fixed.onnx', input_hw=(64, 96)),
            'dynamic': logits_model(d / 'dynamic.onnx', dynamic=True),
            'batch2': logits_model(d / 'batch2.onnx', batch=2),
            'idmap': logits_model(d / 'idmap.onnx', argmax=True),
            'idmap_u8': logits_model(d / 'idmap_u8.onnx', argmax=True, ids_dtype='uint8'),
            'other': logits_model(d / 'other.onnx', input_hw=(64, 96), seed=5)}


@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
@pytest.mark.parametrize('kind', ['fixed', 'dynamic', 'idmap'])
def test_backend_build_matches_onnxruntime(models, tmp_path, kind, precision):
    with case(f'backend {kind} {precision}') as entry:
        logs: List[str] = []
        be = make_backend(models[kind], tmp_path, logs, precision=precision,
                          input_hw=(64, 128) if kind == 'dynamic' else None)
        start = time.monotonic()
        info = be.configure()
        entry.update(build_s=round(time.monotonic() - start, 2), engine=str(be.engine_path),
                     effective_precision=be.effective_precision, describe=be.describe(),
                     check=be.item_agreement, log=logs[-6:])
        x = frames(info.input_shape, seed=3)
        got = be.infer(x)
        ref = ort_run(models[kind], x)
        worst = min(agreement(ref, got))
        entry['agreement'] = worst
        if ref.dtype.kind == 'f':
            entry['max_abs_logit_diff'] = float(np.abs(ref - got).max())
        be.release()
        assert worst >= (0.98 if precision == 'fp16' else 0.995)


def test_cache_reuse_and_rebuild_on_changed_key(models, tmp_path):
    with case('cache reuse / rebuild on changed key') as entry:
        logs: List[str] = []
        be = make_backend(models['fixed'], tmp_path, logs, precision='fp32')
        t0 = time.monotonic()
        be.configure()
        first, first_s = be.engine_path, time.monotonic() - t0
        be.release()
        t0 = time.monotonic()
        be.configure()
        entry.update(first_s=round(first_s, 2), reuse_s=round(time.monotonic() - t0, 2))
        assert not be.built_now and be.engine_path == first
        be.release()
        fp16 = make_backend(models['fixed'], tmp_path, logs, precision='fp16')
        fp16.configure()
        assert fp16.built_now and fp16.engine_path != first
        fp16.release()
        other = make_backend(models['other'], tmp_path, logs, precision='fp32')
        other.configure()
        assert other.built_now and other.engine_path != first
        other.release()
        entry['engines'] = sorted(p.name for p in tmp_path.glob('*.engine'))


def test_stale_cached_engine(models, tmp_path):
    from segformer_ros.backends.engine_cache import read_notes, read_sidecar, write_engine
    from segformer_ros.errors import BackendError
    with case('stale cached engine: refused, then rebuilt') as entry:
        be = make_backend(models['fixed'], tmp_path, [], precision='fp32')
        be.configure()
        path = be.engine_path
        be.release()
        # Intact on disk (the sidecar records these bytes), refused by TensorRT: stale.
        write_engine(path, b'\0' * 4096, read_sidecar(path), read_notes(path))
        with pytest.raises(BackendError, match='could not be deserialized'):
            make_backend(models['fixed'], tmp_path, [], precision='fp32').configure()
        again = make_backend(models['fixed'], tmp_path, [], precision='fp32',
                             rebuild_stale_engine=True)
        again.configure()
        entry['rebuilt'] = again.built_now
        assert again.built_now
        again.release()


def test_batch2_engine_checked_per_item(models, tmp_path):
    from segformer_ros.errors import BackendError
    with case('batch 2 engine: per-item check (NVIDIA/TensorRT#4853)') as entry:
        be = make_backend(models['batch2'], tmp_path, [], precision='fp32')
        try:
            info = be.configure()
        except BackendError as exc:
            assert '4853' in str(exc)
            entry['outcome'] = f'refused: {exc}'
            return
        entry['check'] = be.item_agreement
        x = frames(info.input_shape, seed=7)
        per_item = agreement(ort_run(models['batch2'], x), be.infer(x))
        entry['independent_agreement'] = per_item
        be.release()
        # The backend accepted it, so every item must really match ONNX Runtime.
        assert min(per_item) >= 0.995


def test_uint8_id_engine(models, tmp_path):
    """Issue 23 (defect 1): a uint8 class-id output through the backend and the GPU path."""
    with case('uint8 id-map engine: backend and GPU pipeline') as entry:
        logs: List[str] = []
        be = make_backend(models['idmap_u8'], tmp_path, logs, precision='fp32')
        info = be.configure()
        spec = be.device_io_spec()
        entry.update(output_dtype=spec.output_dtype, output_kind=info.output_kind.value,
                     log=logs[-4:])
        assert spec.output_dtype == 'uint8' and info.output_kind.value == 'class_ids'
        x = frames(info.input_shape, seed=4)
        entry['agreement'] = min(agreement(ort_run(models['idmap_u8'], x), be.infer(x)))
        assert entry['agreement'] >= 0.995
        if not ON_FAKE:
            from segformer_ros.config import PipelineConfig
            from segformer_ros.gpu_segmentation import select_pipeline
            from segformer_ros.pipeline import SegmentationPipeline
            config = PipelineConfig()
            gpu = select_pipeline('gpu', be, config, 'cpu', logs.append)
            cpu = SegmentationPipeline(be, config)
            rng = np.random.default_rng(1)
            frame = rng.uniform(0, 255, (120, 160, 3)).astype(np.uint8)
            a, b = gpu.process(frame, 'bgr').mask, cpu.process(frame, 'bgr').mask
            entry['gpu_mask_agreement'] = float((a == b).mean())
            gpu.release()
            # The same engine output on both paths: the masks are identical.
            assert entry['gpu_mask_agreement'] == 1.0
        be.release()


def test_batch2_engine_without_onnxruntime(models, tmp_path, monkeypatch):
    """Issue 23 (defect 2): no onnxruntime on the robot; TensorRT checks its batch items."""
    from segformer_ros.errors import BackendError
    with case('batch 2 engine without onnxruntime: TensorRT checks each item alone') as entry:
        logs: List[str] = []
        be = make_backend(models['batch2'], tmp_path, logs, precision='fp32')
        onnxruntime = sys.modules.get('onnxruntime')
        monkeypatch.setitem(sys.modules, 'onnxruntime', None)   # as on a robot without it
        try:
            info = be.configure()
        except BackendError as exc:
            assert 'each item run alone' in str(exc) and '4853' in str(exc)
            entry['outcome'] = f'refused: {exc}'
            return
        finally:
            monkeypatch.setitem(sys.modules, 'onnxruntime', onnxruntime)
        entry.update(check_method=be.check_method, check=be.item_agreement, log=logs[-4:])
        assert be.check_method == 'tensorrt-items-alone'
        x = frames(info.input_shape, seed=7)
        per_item = agreement(ort_run(models['batch2'], x), be.infer(x))
        entry['independent_agreement'] = per_item
        be.release()
        # Accepted by its own check, so every item must really match ONNX Runtime.
        assert min(per_item) >= 0.995


def test_truncated_engine_on_disk_rebuilt(models, tmp_path):
    """Issue 23 (defect 5): an engine cut short on disk (power cut) is rebuilt, one line."""
    with case('engine file truncated on disk: rebuilt with one log line') as entry:
        logs: List[str] = []
        be = make_backend(models['fixed'], tmp_path, logs, precision='fp32')
        be.configure()
        path = be.engine_path
        be.release()
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        again = make_backend(models['fixed'], tmp_path, logs, precision='fp32')
        again.configure()              # no rebuild_stale_engine needed
        damaged = [m for m in logs if 'is damaged' in m]
        entry.update(rebuilt=again.built_now, log=damaged, size=len(data))
        assert again.built_now and len(damaged) == 1 and again.engine_path == path
        again.release()


def test_cli_fp16_build_missing_dirs_then_load(models, tmp_path, capsys):
    from segformer_ros.tools.build_engine import main
    with case('CLI fp16 build into missing dirs, sidecar, load') as entry:
        out = tmp_path / 'new' / 'fixed.engine'
        timing = tmp_path / 'cache' / 'missing' / 'timing.cache'
        rc = main(['--onnx', str(models['fixed']), '--output', str(out), '--fp16',
                   '--workspace', '256', '--timing-cache', str(timing)])
        captured = capsys.readouterr()
        entry.update(rc=rc, stdout=captured.out[-2000:], stderr=captured.err[-2000:])
        assert rc == 0 and out.is_file() and timing.is_file()
        meta = json.loads(out.with_suffix('.json').read_text())
        entry['sidecar'] = meta
        assert meta['note_checked'] is True
        be = make_backend(out, tmp_path, [])
        info = be.configure()
        x = frames(info.input_shape, seed=2)
        entry['agreement'] = min(agreement(ort_run(models['fixed'], x), be.infer(x)))
        be.release()
        assert entry['agreement'] >= 0.98


def test_cli_dynamic_needs_shapes(models, tmp_path, capsys):
    from segformer_ros.tools.build_engine import main
    with case('CLI dynamic ONNX: --shapes required, then fp32 build') as entry:
        out = tmp_path / 'dyn.engine'
        rc = main(['--onnx', str(models['dynamic']), '--output', str(out), '--fp32'])
        err = capsys.readouterr().err
        entry['without_shapes'] = err[-500:]
        assert rc == 1 and 'dynamic' in err
        rc = main(['--onnx', str(models['dynamic']), '--output', str(out), '--fp32',
                   '--shapes', 'input:1x3x64x64'])
        assert rc == 0 and out.is_file()


def test_cli_batch2_shapes_checked(models, tmp_path, capsys):
    from segformer_ros.tools.build_engine import main
    with case('CLI --shapes input:2x3x64x64: batch check') as entry:
        out = tmp_path / 'b2.engine'
        rc = main(['--onnx', str(models['dynamic']), '--output', str(out), '--fp32',
                   '--shapes', 'input:2x3x64x64'])
        captured = capsys.readouterr()
        entry.update(rc=rc, stderr=captured.err[-1000:])
        # Either the items agree (engine kept) or the engine is refused and removed.
        assert (rc == 0 and out.is_file()) or (rc == 1 and '4853' in captured.err
                                               and not out.exists())


def test_host_code_engine_refused_unless_allowed(models, tmp_path):
    import tensorrt as trt
    from segformer_ros.errors import BackendError
    with case('version-compatible engine (host code): refused unless allowed') as entry:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        assert parser.parse_from_file(str(models['fixed']))
        config = builder.create_builder_config()
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        plan = builder.build_serialized_network(network, config)
        assert plan is not None
        engine = tmp_path / 'vc.engine'
        engine.write_bytes(bytes(plan))
        with pytest.raises(BackendError, match='allow_engine_host_code'):
            make_backend(engine, tmp_path, []).configure()
        ok = make_backend(engine, tmp_path, [], allow_engine_host_code=True)
        ok.configure()
        entry['allowed_loads'] = True
        ok.release()


def test_foreign_engine_file_refused(tmp_path):
    from segformer_ros.errors import BackendError
    with case('foreign bytes as engine file: refused with a rebuild hint'):
        engine = tmp_path / 'foreign.engine'
        engine.write_bytes(os.urandom(4096))
        with pytest.raises(BackendError, match='could not deserialize the engine file'):
            make_backend(engine, tmp_path, []).configure()


def needs_real_gpu() -> None:
    """Skip a case that needs real CUDA when the suite runs on the fake (self-test)."""
    if ON_FAKE:
        pytest.skip('needs a real GPU (suite self-test on the fake)')


def test_device_id_1(models, tmp_path):
    needs_real_gpu()
    from segformer_ros.cuda import runtime as rt
    rt_mod, _, _ = rt.bindings()
    count = int(rt.check(rt_mod.cudaGetDeviceCount(), 'cudaGetDeviceCount'))
    with case('device_id 1 (two GPUs)') as entry:
        if count < 2:
            pytest.skip(f'needs two GPUs, found {count}')

        def free() -> List[int]:
            out = []
            for d in range(2):
                rt.set_device(d)
                out.append(int(rt.check(rt_mod.cudaMemGetInfo(), 'cudaMemGetInfo')[0]))
            return out

        before = free()
        be = make_backend(models['fixed'], tmp_path, [], precision='fp32', device_id=1)
        info = be.configure()
        be.bind_thread()
        be.infer(frames(info.input_shape))
        after = free()
        entry.update(free_before=before, free_after=after)
        be.release()
        assert before[1] - after[1] > 0
        assert before[0] - after[0] < (before[1] - after[1])


def test_gpu_pipeline_with_tensorrt(models, tmp_path):
    needs_real_gpu()
    from segformer_ros.config import PipelineConfig
    from segformer_ros.gpu_segmentation import select_pipeline
    from segformer_ros.pipeline import SegmentationPipeline
    with case('GPU pipeline (TensorRT) vs CPU pipeline mask') as entry:
        be = make_backend(models['fixed'], tmp_path, [], precision='fp32')
        be.configure()
        logs: List[str] = []
        config = PipelineConfig()
        gpu = select_pipeline('gpu', be, config, 'cpu', logs.append)
        cpu = SegmentationPipeline(be, config)
        rng = np.random.default_rng(0)
        frame = (rng.uniform(0, 255, (120, 160, 3))).astype(np.uint8)
        a = gpu.process(frame, 'bgr').mask
        b = cpu.process(frame, 'bgr').mask
        entry['mask_agreement'] = float((a == b).mean())
        gpu.release()
        be.release()
        assert entry['mask_agreement'] >= 0.99
