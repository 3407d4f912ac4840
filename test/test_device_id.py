"""device_id plumbing that runs on the CPU, and the logic of benchmarks/gpu_device_verify.py.

The two-GPU run itself is benchmarks/gpu_device_verify.py on the lent machine (instructions at
its top); here its decision logic is checked on measured-looking numbers, PASS and FAIL.
"""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from segformer_ros.errors import BackendError

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20


def load_verify():
    spec = importlib.util.spec_from_file_location('gpu_device_verify',
                                                  REPO / 'benchmarks' / 'gpu_device_verify.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def good_child(device=1):
    return {'allocations': [{'kind': 'device', 'current': device, 'pointer': device}] * 5,
            'launch_devices': {str(device): 40}, 'frames': 10, 'errors': [],
            'ort_cuda': True, 'ort_providers': ['CUDAExecutionProvider', 'CPUExecutionProvider']}


def test_verify_passes_when_everything_is_on_gpu1():
    v = load_verify()
    checks = v.evaluate(1, [80_000 * MiB, 80_000 * MiB], [80_000 * MiB, 79_400 * MiB],
                        good_child(), [1])
    assert [s for s, _ in checks] == ['PASS'] * len(checks), checks


def test_verify_fails_on_a_stray_context_on_gpu0():
    v = load_verify()
    child = good_child()
    child['allocations'] = child['allocations'] + [{'kind': 'device', 'current': 0,
                                                    'pointer': 0}]
    child['launch_devices'] = {'0': 3, '1': 37}
    checks = dict((m.split(':')[0], s) for s, m in v.evaluate(
        1, [80_000 * MiB, 80_000 * MiB], [79_500 * MiB, 79_400 * MiB], child, [0, 1]))
    fails = [m for m, s in checks.items() if s == 'FAIL']
    assert any(m.startswith('GPU 0 memory change') for m in fails)
    assert any(m.startswith('allocations on GPU 1') for m in fails)
    assert any(m.startswith('kernel launches') for m in fails)
    assert any(m.startswith('nvidia-smi') for m in fails)


def test_verify_without_ort_gpu_and_smi_is_info_not_fail():
    v = load_verify()
    child = good_child()
    child['ort_cuda'] = False
    checks = v.evaluate(1, [10 * 1024 * MiB] * 2, [10 * 1024 * MiB, 9 * 1024 * MiB], child,
                        None)
    assert {s for s, _ in checks} == {'PASS', 'INFO'}


def test_smi_parsing_maps_pids_to_gpu_indices():
    v = load_verify()
    gpus = v.parse_smi_gpus('0, 00000000:1B:00.0\n1, 00000000:43:00.0\n')
    apps = v.parse_smi_apps('4242, 00000000:43:00.0\n77, 00000000:1B:00.0\n', gpus)
    assert apps == {4242: [1], 77: [0]}


def test_ort_iobinding_names_the_pipeline_device():
    from segformer_ros.cuda.device_inference import OrtCudaInference
    calls = []

    class Binding:
        def bind_input(self, *args):
            calls.append(('in', args[1], args[2]))

        def bind_output(self, *args):
            calls.append(('out', args[1], args[2]))

    meta = SimpleNamespace
    session = SimpleNamespace(
        get_inputs=lambda: [meta(name='input', shape=[1, 3, 8, 8], type='tensor(float)')],
        get_outputs=lambda: [meta(name='logits', shape=[1, 4, 2, 2], type='tensor(float)')],
        io_binding=Binding,
        run_with_iobinding=lambda binding, run_options=None: runs.append(run_options))
    runs = []
    engine = OrtCudaInference(session, same_stream=True, device=1)
    engine.infer_device(1000, 2000, 0)
    assert calls == [('in', 'cuda', 1), ('out', 'cuda', 1)]
    assert np.prod(engine.device_io_spec().input_shape) == 192
    # A session created on a stream runs only where the caller ordered its kernels on it.
    on_stream = OrtCudaInference(session, device=1, stream=SimpleNamespace(ptr=0x5000))
    assert on_stream.same_stream and on_stream.inference_stream.ptr == 0x5000
    on_stream.infer_device(1000, 2000, 0x5000)
    with pytest.raises(BackendError, match="expected inference on the session's stream"):
        on_stream.infer_device(1000, 2000, 0x6000)
    assert engine.inference_stream is None
    # On the pipeline's stream a run returns once queued: ORT is told not to synchronize
    # (the node's path passes only stream=; fda4738 lost this, H200 flood 175 -> 156/s).
    assert on_stream.returns_once_queued and engine.returns_once_queued
    assert runs[-1].get_run_config_entry('disable_synchronize_execution_providers') == '1'
    waits = OrtCudaInference(session, device=1)       # another stream: synchronize, then run
    assert not waits.same_stream and not waits.returns_once_queued


def test_ort_cuda_bind_thread_without_cuda_python(monkeypatch):
    """A cuda provider without cuda-python must not kill the node's inference thread."""
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.errors import BackendError

    def missing():
        raise BackendError('expected cuda-python (cuda.bindings), got ImportError')

    monkeypatch.setattr(rt, 'bindings', missing)
    OnnxRuntimeBackend('m.onnx', provider='cuda', device_id=1).bind_thread()   # no raise
    OnnxRuntimeBackend('m.onnx', provider='cpu').bind_thread()
