"""Issue 23: TensorRT defects 1-7, each driven through the contract fake, and the fake's contract.

Every defect test failed on df3d5b6 (the code before the fix). The fake
(test/fakes/tensorrt.py, test/fakes/cuda_runtime.py) cites the binding source of each
behaviour it models; the tests at the end check those behaviours themselves.
"""

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest

from fakes.tensorrt import install, make_tensorrt
from tiny_models import logits_model

from segformer_ros.backends.base import OutputKind
from segformer_ros.backends.engine_cache import EngineCache, _atomic_write, read_notes
from segformer_ros.backends.tensorrt_backend import TensorRTBackend, build_engine
from segformer_ros.cuda import kernels as K
from segformer_ros.errors import BackendError, BackendStateError


def backend(model: Path, tmp_path: Path, logs: List[str], **options) -> TensorRTBackend:
    options.setdefault('engine_cache_dir', str(tmp_path / 'cache'))
    return TensorRTBackend(str(model), logger=logs.append, **options)


def ort_reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def hide(monkeypatch, name: str) -> None:
    """Make ``import name`` fail in the code under test (a robot without that package)."""
    monkeypatch.setitem(sys.modules, name, None)


# ----------------------------------------------------------------- defect 1: uint8/int8 ids
_C_ID_TYPES = {'i64': 'int64', 'int': 'int32', 'u8': 'uint8', 'signed char': 'int8'}


def kernel_reads(kernel: str) -> str:
    """Numpy type a post kernel reads its ``ids`` as, parsed from the CUDA C source."""
    m = re.search(rf'void {kernel}\(const ([\w ]+?)\* __restrict__ ids', K.kernel_source())
    assert m, kernel
    return _C_ID_TYPES[m.group(1)]


@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'int32', 'int64'])
def test_id_map_engine_output_read_by_a_kernel_of_its_type(tmp_path, monkeypatch, dtype):
    """A uint8/int8 id output is read by a kernel of that element size (was the int32 one).

    The fake device memory refuses the old kernel's 4-byte reads of a 1-byte-per-id buffer
    like the GPU does (cudaErrorIllegalAddress at the next synchronize).
    """
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.postprocessing import ids_to_uint8
    _, cuda = install(monkeypatch)
    model = logits_model(tmp_path / 'ids.onnx', argmax=True, ids_dtype=dtype)
    be = backend(model, tmp_path, [], precision='fp32')
    be.configure()
    spec = be.device_io_spec()
    assert spec.output_kind is OutputKind.CLASS_IDS and spec.output_dtype == dtype
    stream = rt.Stream()
    inp, out = rt.DeviceBuffer(spec.input_nbytes), rt.DeviceBuffer(spec.output_nbytes)
    try:
        x = np.random.default_rng(2).normal(size=spec.input_shape).astype(np.float32)
        rt.copy_to_device(x, inp.ptr)
        be.infer_device(inp.ptr, out.ptr, stream.ptr)
        kernel = K.ids_kernel(spec.output_dtype)
        reads = kernel_reads(kernel)
        assert reads == dtype
        count = int(np.prod(spec.output_shape))
        # What the post kernel touches: the whole id map, as its element type.
        assert cuda.access(out.ptr, count * np.dtype(reads).itemsize, kernel, reads), cuda.faults
        stream.synchronize()
        got = rt.copy_to_host(out.ptr, np.empty(spec.output_shape, reads))
        want = ort_reference(model, x)
        np.testing.assert_array_equal(ids_to_uint8(got, 19), ids_to_uint8(want, 19))
    finally:
        for buf in (inp, out):
            buf.free()
        stream.destroy()
        be.release()


def test_fake_faults_on_the_old_int32_read_of_a_uint8_output(tmp_path, monkeypatch):
    from segformer_ros.cuda import runtime as rt
    _, cuda = install(monkeypatch)
    be = backend(logits_model(tmp_path / 'ids.onnx', argmax=True, ids_dtype='uint8'), tmp_path,
                 [], precision='fp32')
    be.configure()
    spec = be.device_io_spec()
    out = rt.DeviceBuffer(spec.output_nbytes)
    inp = rt.DeviceBuffer(spec.input_nbytes)
    be.infer_device(inp.ptr, out.ptr, be._stream.ptr)
    count = int(np.prod(spec.output_shape))
    assert not cuda.access(out.ptr, count * 4, 'post_ids_i32', 'int32')   # df3d5b6's kernel
    assert 'past the end' in cuda.faults[-1]
    with pytest.raises(BackendError, match='cudaErrorIllegalAddress'):
        be._stream.synchronize()
    with pytest.raises(BackendError, match='cudaErrorIllegalAddress'):   # sticky
        rt.copy_to_host(out.ptr, np.empty(count, np.uint8))


def test_unreadable_id_type_refused_when_the_pipeline_is_made(monkeypatch):
    from segformer_ros.config import PipelineConfig
    from segformer_ros.cuda.device_inference import DeviceInference, DeviceIOSpec
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    install(monkeypatch)

    class Uint16(DeviceInference):
        def device_io_spec(self):
            return DeviceIOSpec('in', (1, 3, 8, 8), 'float32', 'out', (1, 8, 8), 'uint16',
                                OutputKind.CLASS_IDS)

    with pytest.raises(BackendError, match=r"class-id outputs of type.*got 'uint16'"):
        GpuPipeline(PipelineConfig(), Uint16())


@pytest.mark.parametrize('dtype', ['uint8', 'int8'])
def test_ort_device_path_takes_uint8_and_int8_ids(tmp_path, dtype):
    """ONNX Runtime's device path sizes a 1-byte id output (df3d5b6 refused the type)."""
    import onnxruntime as ort
    from segformer_ros.cuda.device_inference import OrtCudaInference
    model = logits_model(tmp_path / 'ids.onnx', argmax=True, ids_dtype=dtype)
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    spec = OrtCudaInference(session).device_io_spec()
    assert spec.output_dtype == dtype and spec.output_kind is OutputKind.CLASS_IDS
    assert spec.output_nbytes == 16 * 16 and K.ids_kernel(dtype) == f'post_ids_{dtype[0]}8'


def test_int8_ids_with_many_classes_negative_is_unlabeled():
    """The CPU rule the int8 kernel matches: a negative id is 255 whatever num_classes."""
    from segformer_ros.postprocessing import ids_to_uint8
    ids = np.array([[-100, -1, 0, 127]], np.int8)
    assert ids_to_uint8(ids, 200).tolist() == [[255, 255, 0, 127]]
    assert ids_to_uint8(ids, 19).tolist() == [[255, 255, 0, 255]]


# ----------------------------------------------------------------- defect 2: no onnxruntime
def test_batch2_without_onnxruntime_checked_by_tensorrt_itself(tmp_path, monkeypatch):
    install(monkeypatch, batch_bug=True)
    hide(monkeypatch, 'onnxruntime')
    model = logits_model(tmp_path / 'b2.onnx', batch=2)
    be = backend(model, tmp_path, [], precision='fp32')
    with pytest.raises(BackendError, match='each item run alone.*NVIDIA/TensorRT#4853'):
        be.configure()
    assert not list((tmp_path / 'cache').glob('*.engine'))
    be.release()
    install(monkeypatch, batch_bug=False)
    logs: List[str] = []
    good = backend(model, tmp_path, logs, precision='fp32')
    good.configure()
    assert good.check_method == 'tensorrt-items-alone' and good.item_agreement == [1.0, 1.0]
    notes = read_notes(good.engine_path)
    assert notes['checked'] is True and notes['check_method'] == 'tensorrt-items-alone'
    assert not any('not checked' in m for m in logs)
    good.release()


def test_unchecked_batch2_engine_file_checks_itself_at_load(tmp_path, monkeypatch):
    """An engine file with no recorded check (no sidecar) is checked by TensorRT at load."""
    trt, _ = install(monkeypatch, batch_bug=True)
    model = logits_model(tmp_path / 'b2.onnx', batch=2)
    logger = trt.Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(model))
    engine = tmp_path / 'b2.engine'
    engine.write_bytes(builder.build_serialized_network(network,
                                                        builder.create_builder_config()))
    with pytest.raises(BackendError, match='batch 2 gives wrong results'):
        backend(engine, tmp_path, []).configure()
    assert engine.is_file()          # the user's file is left alone


def test_cached_batch2_engine_without_a_recorded_check_is_checked_once(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch, batch_bug=False)
    model = logits_model(tmp_path / 'b2.onnx', batch=2)
    be = backend(model, tmp_path, [], precision='fp32')
    be.configure()
    path = be.engine_path
    be.release()
    meta = json.loads(path.with_suffix('.json').read_text())
    for k in ('note_checked', 'note_check_method', 'note_item_agreement'):
        del meta[k]                    # as an engine cached before checks were recorded
    path.with_suffix('.json').write_text(json.dumps(meta))
    logs: List[str] = []
    again = backend(model, tmp_path, logs, precision='fp32')
    again.configure()
    assert not again.built_now and again.check_method == 'tensorrt-items-alone'
    assert read_notes(path)['checked'] is True and not any('not checked' in m for m in logs)
    again.release()
    third = backend(model, tmp_path, [], precision='fp32')
    third.configure()
    assert third.check_method is None              # recorded: not checked again
    third.release()


# ----------------------------------------------------------------- defect 3: CLI sidecar
def test_cli_records_what_was_checked(tmp_path, monkeypatch, capsys):
    install(monkeypatch, batch_bug=False)
    hide(monkeypatch, 'onnxruntime')
    from segformer_ros.tools.build_engine import main
    dyn = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    one = tmp_path / 'b1.engine'
    assert main(['--onnx', str(dyn), '--output', str(one), '--fp32', '--shapes',
                 'input:1x3x64x64']) == 0
    assert 'recorded as unchecked' in capsys.readouterr().err
    notes = read_notes(one)
    assert notes['checked'] is False and notes['check_method'] is None
    two = tmp_path / 'b2.engine'
    assert main(['--onnx', str(dyn), '--output', str(two), '--fp32', '--shapes',
                 'input:2x3x64x64']) == 0
    notes = read_notes(two)
    assert notes['checked'] is True and notes['check_method'] == 'tensorrt-items-alone'
    assert notes['item_agreement'] == [1.0, 1.0]
    skipped = tmp_path / 'nocheck.engine'
    assert main(['--onnx', str(dyn), '--output', str(skipped), '--fp32', '--shapes',
                 'input:1x3x64x64', '--no-check']) == 0
    assert read_notes(skipped)['checked'] is False


# ----------------------------------------------------------------- defect 4: release vs infer
def test_release_waits_for_an_inference_in_flight(tmp_path, monkeypatch):
    from segformer_ros.cuda import runtime as rt
    trt, cuda = install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    spec = be.device_io_spec()
    inp, out = rt.DeviceBuffer(spec.input_nbytes), rt.DeviceBuffer(spec.output_nbytes)
    stream = rt.Stream()
    trt.fake_state.execute_gate = threading.Event()
    errors: List[BaseException] = []

    def submit() -> None:
        try:
            be.infer_device(inp.ptr, out.ptr, stream.ptr)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert trt.fake_state.in_execute.wait(5)
    releaser = threading.Thread(target=be.release)
    releaser.start()
    releaser.join(0.5)
    # Still inside execute_async_v3: release must not free the context and buffers yet.
    assert releaser.is_alive() and be._context is not None
    synced = cuda.synchronized
    trt.fake_state.execute_gate.set()
    submitter.join(5)
    releaser.join(5)
    assert not releaser.is_alive() and not errors and be._context is None
    assert cuda.synchronized > synced          # queued work drained before freeing
    with pytest.raises(BackendStateError, match='after release'):
        be.infer_device(inp.ptr, out.ptr, stream.ptr)
    for buf in (inp, out):
        buf.free()
    stream.destroy()


# ----------------------------------------------------------------- defect 5: crash-safe files
def test_engine_and_directory_are_fsynced_with_unique_temp_names(tmp_path, monkeypatch):
    synced: List[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f'/proc/self/fd/{fd}'))
        real_fsync(fd)

    replaced: List[str] = []
    real_replace = os.replace

    def replace(src, dst) -> None:
        replaced.append(str(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    target = tmp_path / 'x.engine'
    _atomic_write(target, b'plan')
    _atomic_write(target, b'plan2')
    assert target.read_bytes() == b'plan2'
    assert str(tmp_path) in synced and any('.x.engine.' in s for s in synced)
    assert len(set(replaced)) == 2       # one temp file per write, never shared


def test_concurrent_writes_of_one_file_do_not_interleave(tmp_path):
    target = tmp_path / 'timing.cache'
    blobs = [bytes([i]) * 200_000 for i in range(8)]
    errors: List[BaseException] = []
    start = threading.Barrier(len(blobs))

    def write(blob: bytes) -> None:
        start.wait()
        try:
            _atomic_write(target, blob)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and target.read_bytes() in blobs
    assert not list(tmp_path.glob('*.tmp'))


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'zeroed'])
def test_damaged_cached_engine_is_rebuilt_with_one_line(tmp_path, monkeypatch, damage):
    trt, _ = install(monkeypatch)
    logs: List[str] = []
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, logs, precision='fp32')
    be.configure()
    path = be.engine_path
    be.release()
    data = path.read_bytes()
    path.write_bytes({'truncated': data[:len(data) // 2], 'empty': b'',
                      'zeroed': bytes(len(data))}[damage])
    be.configure()                     # no rebuild_stale_engine needed: it was never valid
    assert trt.fake_state.builds == 2 and be.built_now and path.read_bytes() == data
    assert sum('is damaged' in m for m in logs) == 1
    be.release()


def test_damaged_engine_file_is_refused_with_the_reason(tmp_path, monkeypatch):
    install(monkeypatch)
    from segformer_ros.tools.build_engine import main
    out = tmp_path / 'm.engine'
    assert main(['--onnx', str(logits_model(tmp_path / 'm.onnx')), '--output', str(out),
                 '--fp32']) == 0
    data = out.read_bytes()
    out.write_bytes(data[:100])
    with pytest.raises(BackendError, match=rf'damaged \(100 of {len(data)} bytes'):
        backend(out, tmp_path, []).configure()


# ----------------------------------------------------------------- defect 6: TensorRT's reason
def test_deserialization_failure_carries_tensorrts_reason(tmp_path, monkeypatch):
    install(monkeypatch)
    logs: List[str] = []
    foreign = tmp_path / 'foreign.engine'
    foreign.write_bytes(b'\x00' * 64)
    with pytest.raises(BackendError, match='TensorRT: .*Magic tag does not match'):
        backend(foreign, tmp_path, logs).configure()
    assert any(m.startswith('TensorRT error: ') and 'Magic tag' in m for m in logs)


# ----------------------------------------------------------------- defect 7
def test_timing_cache_name_has_the_sm_count(tmp_path, monkeypatch):
    cache = EngineCache(str(tmp_path))
    assert (cache.timing_cache_path('10.3.0.30', 'Orin', (8, 7), 8)
            != cache.timing_cache_path('10.3.0.30', 'Orin', (8, 7), 16))
    install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    assert EngineCache(str(tmp_path / 'cache')).timing_cache_path(
        '10.3.0.30', 'Orin', (8, 7), 16).is_file()     # the fake GPU has 16 SMs
    be.release()


def test_engine_file_from_another_gpu_name_is_left_to_tensorrt(tmp_path, monkeypatch):
    """A hardware-compatible engine built on another GPU loads if TensorRT accepts it."""
    install(monkeypatch)
    from segformer_ros.tools.build_engine import main
    out = tmp_path / 'm.engine'
    assert main(['--onnx', str(logits_model(tmp_path / 'm.onnx')), '--output', str(out),
                 '--fp32']) == 0
    meta = json.loads(out.with_suffix('.json').read_text())
    meta.update(gpu_name='NVIDIA Thor', compute_capability=[11, 0])
    out.with_suffix('.json').write_text(json.dumps(meta))
    logs: List[str] = []
    be = backend(out, tmp_path, logs)
    be.configure()                     # df3d5b6 refused here, before TensorRT tried
    assert any('built elsewhere' in m and 'NVIDIA Thor' in m for m in logs)
    be.release()


def test_engine_file_refused_by_tensorrt_names_the_build_machine(tmp_path, monkeypatch):
    install(monkeypatch)
    from segformer_ros.tools.build_engine import main
    out = tmp_path / 'm.engine'
    assert main(['--onnx', str(logits_model(tmp_path / 'm.onnx')), '--output', str(out),
                 '--fp32']) == 0
    install(monkeypatch, gpu_names=['Thor'])
    with pytest.raises(BackendError, match="incompatible device.*gpu_name: engine 'Orin', "
                       "here 'Thor'"):
        backend(out, tmp_path, []).configure()


def test_key_has_the_build_logic_version(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    sidecar = be.engine_path.with_suffix('.json')
    be.release()
    meta = json.loads(sidecar.read_text())
    assert meta['build_logic'] >= 1
    del meta['build_logic']            # an engine built before the field (older build logic)
    sidecar.write_text(json.dumps(meta))
    be.configure()
    assert trt.fake_state.builds == 2 and be.built_now
    be.release()


def test_without_onnx_the_profile_is_parsed_once(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    model = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    hide(monkeypatch, 'onnx')
    be = backend(model, tmp_path, [], precision='fp32', input_hw=(64, 128))
    be.configure()
    be.release()
    parses = trt.fake_state.parses
    be.configure()                     # served from the cache: no TensorRT parse
    assert trt.fake_state.parses == parses and not be.built_now
    be.release()
    other = backend(model, tmp_path, [], precision='fp32', input_hw=(32, 32))
    other.configure()                  # another input size: parsed (and built) anew
    assert trt.fake_state.parses > parses and other.built_now
    other.release()


def test_no_graph_capturable_claim():
    from segformer_ros.cuda.device_inference import DeviceIOSpec
    assert 'graph_capturable' not in DeviceIOSpec.__dataclass_fields__


# ----------------------------------------------------------------- the fake's contract
def test_fake_refuses_subclasses_without_base_init():
    trt = make_tensorrt('10.3.0.30')

    class Logger(trt.ILogger):
        def __init__(self):
            self.seen = []              # forgot trt.ILogger.__init__(self)

        def log(self, severity, msg):
            self.seen.append(msg)

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            pass

    for cls in (Logger, Monitor):
        with pytest.raises(TypeError, match='__init__\\(\\) must be called when overriding'):
            cls()
    from segformer_ros.backends.tensorrt_backend import _make_logger, _make_monitor
    assert _make_logger(trt, print).errors == []
    _make_monitor(trt, lambda p, f: None, print)


def test_fake_progress_monitor_phase_errors_do_not_cancel(tmp_path, capsys):
    trt = make_tensorrt('10.3.0.30')
    model = logits_model(tmp_path / 'm.onnx')

    def build(fail_in: str):
        class Monitor(trt.IProgressMonitor):
            def __init__(self):
                trt.IProgressMonitor.__init__(self)

            def phase_start(self, phase_name, parent_phase, num_steps):
                if fail_in == 'phase_start':
                    raise RuntimeError('x')

            def step_complete(self, phase_name, step):
                if fail_in == 'step_complete':
                    raise RuntimeError('x')
                return True

            def phase_finish(self, phase_name):
                if fail_in == 'phase_finish':
                    raise RuntimeError('x')

        logger = trt.Logger()
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        trt.OnnxParser(network, logger).parse_from_file(str(model))
        config = builder.create_builder_config()
        config.progress_monitor = Monitor()
        return builder.build_serialized_network(network, config)

    assert build('phase_start') is not None and build('phase_finish') is not None
    assert build('step_complete') is None
    assert 'Exception caught in phase_start()' in capsys.readouterr().err


def test_fake_11_has_no_explicit_batch():
    from segformer_ros.backends import trt_compat
    trt11, trt10 = make_tensorrt('11.0.0.1'), make_tensorrt('10.16.0.1')
    assert not hasattr(trt11.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH')
    assert int(trt11.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0
    assert int(trt10.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1
    assert trt_compat.network_flags(trt11, True) == 0
    assert trt_compat.network_flags(trt10, True) == 2


def test_invalid_optimization_profile_is_refused(tmp_path, monkeypatch):
    trt, _ = install(monkeypatch)
    model = logits_model(tmp_path / 'dyn.onnx', dynamic=True)
    bad = (('input', (1, 3, 64, 64), (1, 3, 32, 32), (1, 3, 64, 64)),)   # opt < min
    with pytest.raises(BackendError, match='refused the optimization profile'):
        build_engine(trt, str(model), 'fp32', 64, bad)


def test_no_execution_context_is_a_clear_error(tmp_path, monkeypatch):
    trt, cuda = install(monkeypatch)
    trt.fake_state.context_fails = True
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    with pytest.raises(BackendError, match=r'could not create an execution context '
                       r'\(TensorRT: .*out of memory\)'):
        be.configure()
    be.release()
    assert not [a for a in cuda.live.values() if a.kind in ('device', 'host')]


def test_refused_tensor_address_and_freed_memory(tmp_path, monkeypatch):
    from segformer_ros.cuda import runtime as rt
    _, cuda = install(monkeypatch)
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, [], precision='fp32')
    be.configure()
    spec = be.device_io_spec()
    inp, out = rt.DeviceBuffer(spec.input_nbytes), rt.DeviceBuffer(spec.output_nbytes)
    name = be._in_name
    be._in_name = 'not_a_tensor'
    with pytest.raises(BackendError, match='refused the address of tensor not_a_tensor'):
        be.infer_device(inp.ptr, out.ptr, be._stream.ptr)
    be._in_name = name
    small = rt.DeviceBuffer(spec.output_nbytes // 2)
    be.infer_device(inp.ptr, small.ptr, be._stream.ptr)    # queued: True, like enqueueV3
    assert 'enqueueV3 output' in cuda.faults[-1] and 'past the end' in cuda.faults[-1]
    with pytest.raises(BackendError, match='cudaErrorIllegalAddress'):
        be._stream.synchronize()
    cuda.sticky = None                                  # a fresh process, for the next case
    freed = inp.ptr
    inp.free()
    be.infer_device(freed, out.ptr, be._stream.ptr)
    assert 'freed memory' in cuda.faults[-1] and cuda.sticky is not None
    cuda.sticky = None
    be.infer_device(0, out.ptr, be._stream.ptr)
    assert 'null pointer' in cuda.faults[-1]
    cuda.sticky = None
    for buf in (out, small):
        buf.free()
    be.release()


def test_fake_refuses_a_read_as_another_dtype(monkeypatch):
    from segformer_ros.cuda import runtime as rt
    _, cuda = install(monkeypatch)
    buf = rt.DeviceBuffer(64)
    assert cuda.access(buf.ptr, 64, 'writer', 'float32', write=True)
    assert cuda.access(buf.ptr, 64, 'reader', 'float32')
    assert not cuda.access(buf.ptr, 16, 'reader', 'int32')
    assert 'read as int32, but holds float32' in cuda.faults[-1]
    cuda.sticky = None
    buf.free()


def test_parse_fails_on_a_type_the_fake_cannot_map(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Identity', ['input'], ['out'])], 'g',
                              [helper.make_tensor_value_info('input', TensorProto.DOUBLE,
                                                             [1, 3, 4, 4])],
                              [helper.make_tensor_value_info('out', TensorProto.DOUBLE,
                                                             [1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / 'double.onnx'))
    trt = make_tensorrt('10.3.0.30')
    logger = trt.Logger()
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse_from_file(str(tmp_path / 'double.onnx'))
    assert 'unsupported tensor type' in parser.get_error(0)


def test_release_timeout_leaks_instead_of_freeing(tmp_path, monkeypatch):
    """A call that never returns: release gives up waiting and frees nothing it uses."""
    from segformer_ros.backends import tensorrt_backend
    from segformer_ros.cuda import runtime as rt
    trt, cuda = install(monkeypatch)
    monkeypatch.setattr(tensorrt_backend, 'RELEASE_WAIT_S', 0.2)
    logs: List[str] = []
    be = backend(logits_model(tmp_path / 'm.onnx'), tmp_path, logs, precision='fp32')
    be.configure()
    spec = be.device_io_spec()
    inp, out = rt.DeviceBuffer(spec.input_nbytes), rt.DeviceBuffer(spec.output_nbytes)
    in_buf = be._in_buf.ptr
    trt.fake_state.execute_gate = threading.Event()
    t = threading.Thread(target=be.infer_device, args=(inp.ptr, out.ptr, be._stream.ptr))
    t.start()
    assert trt.fake_state.in_execute.wait(5)
    start = time.monotonic()
    be.release()
    assert time.monotonic() - start < 5
    assert in_buf in cuda.live                          # not freed under the running call
    assert any('still running' in m for m in logs)
    trt.fake_state.execute_gate.set()
    t.join(5)


def test_input_shape_outside_the_profile_is_refused(tmp_path, monkeypatch):
    """set_input_shape returns False outside the engine's profile: configure says so."""
    install(monkeypatch)
    from segformer_ros.tools.build_engine import main
    out = tmp_path / 'dyn.engine'
    assert main(['--onnx', str(logits_model(tmp_path / 'dyn.onnx', dynamic=True)), '--output',
                 str(out), '--fp32', '--shapes', 'input:1x3x32x64']) == 0
    with pytest.raises(BackendError, match=r'refused input shape \[1, 3, 64, 64\].*outside '
                       'the engine profile'):
        backend(out, tmp_path, [], input_hw=(64, 64)).configure()


def test_unparseable_model_and_cut_short_plan(tmp_path, monkeypatch):
    """parse_from_file False -> ModelError with the parser's errors; a cut plan -> None."""
    from segformer_ros.errors import ModelError
    trt, _ = install(monkeypatch)
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not an onnx model')
    with pytest.raises(ModelError, match='TensorRT could not parse.*ModelImporter'):
        build_engine(trt, str(bad), 'fp32', 64)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    trt.OnnxParser(network, logger).parse_from_file(str(logits_model(tmp_path / 'm.onnx')))
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    assert trt.Runtime(logger).deserialize_cuda_engine(plan[:len(plan) - 10]) is None
    assert 'truncated or corrupt' in logger.messages[-1][1]
