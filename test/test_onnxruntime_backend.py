"""OnnxRuntimeBackend on hand-built ONNX graphs (known answers) and the shared models."""

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pytest

from segformer_ros.backends import OutputKind
from segformer_ros.backends.onnxruntime_backend import (OnnxRuntimeBackend, select_output,
                                                        stable_optimization_level)
from segformer_ros.errors import BackendError, BackendStateError, ModelError

onnx = pytest.importorskip('onnx')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from shared_assets import BUNDLED_MODEL as DEEPLAB, shared_asset, skip_unless_shared_asset  # noqa: E402,E501

SEGFORMER_B0_RELATIVE = 'models/segformer_b0_random_1024.onnx'
SEGFORMER_B0 = shared_asset(SEGFORMER_B0_RELATIVE)

Shape = Sequence[Optional[object]]


def _save(path: Path, nodes: List, inputs: List, outputs: List, inits: List = ()) -> Path:
    graph = helper.make_graph(nodes, 'g', inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def conv_logits_model(path: Path, weight: np.ndarray, in_shape: Shape = (1, 3, 4, 5),
                      out_name: str = 'logits') -> Path:
    """Logits = 1x1 conv of the input with ``weight`` (C, 3): out[c] = sum_k w[c,k] x[k]."""
    c = weight.shape[0]
    w = numpy_helper.from_array(weight.reshape(c, 3, 1, 1).astype(np.float32), 'w')
    out_shape = [in_shape[0], c, in_shape[2], in_shape[3]]
    return _save(path, [helper.make_node('Conv', ['input', 'w'], [out_name])],
                 [helper.make_tensor_value_info('input', TensorProto.FLOAT, list(in_shape))],
                 [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], [w])


def argmax_model(path: Path, in_shape: Shape = (1, 3, 4, 5)) -> Path:
    """Class ids = argmax over the 3 input channels (int64 (N, H, W))."""
    node = helper.make_node('ArgMax', ['input'], ['ArgMax'], axis=1, keepdims=0)
    return _save(path, [node],
                 [helper.make_tensor_value_info('input', TensorProto.FLOAT, list(in_shape))],
                 [helper.make_tensor_value_info('ArgMax', TensorProto.INT64,
                                                [in_shape[0], in_shape[2], in_shape[3]])])


def test_logits_model_info_and_values(tmp_path):
    weight = np.array([[1, 0, 0], [0, 2, 0], [0, 0, -1], [1, 1, 1]], dtype=np.float32)
    path = conv_logits_model(tmp_path / 'm.onnx', weight)
    backend = OnnxRuntimeBackend(str(path))
    info = backend.configure()
    assert info.input_name == 'input' and info.input_shape == (1, 3, 4, 5)
    assert info.input_dtype == 'float32'
    assert info.output_name == 'logits' and info.output_kind is OutputKind.LOGITS
    assert info.num_classes == 4
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 5)).astype(np.float32)
    out = backend.infer(x)
    expected = np.einsum('ck,nkhw->nchw', weight, x)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    backend.release()
    assert not backend.is_configured


def test_dynamic_dims_are_none_and_run_at_two_sizes(tmp_path):
    weight = np.eye(3, dtype=np.float32)
    path = conv_logits_model(tmp_path / 'dyn.onnx', weight, in_shape=('N', 3, 'H', 'W'))
    backend = OnnxRuntimeBackend(str(path), input_hw=(8, 12))
    info = backend.configure()
    assert info.input_shape == (None, 3, None, None)
    assert info.output_shape == (None, 3, None, None)
    for h, w in ((8, 12), (5, 7)):
        x = np.random.default_rng(h).standard_normal((2, 3, h, w)).astype(np.float32)
        np.testing.assert_allclose(backend.infer(x), x, atol=1e-6)
    backend.warmup(1)  # uses input_hw for the dynamic dims


def test_class_id_model(tmp_path):
    backend = OnnxRuntimeBackend(str(argmax_model(tmp_path / 'a.onnx')))
    info = backend.configure()
    assert info.output_kind is OutputKind.CLASS_IDS and info.num_classes is None
    x = np.zeros((1, 3, 4, 5), np.float32)
    x[0, 2, 1, 1] = 5.0
    x[0, 1, 3, 4] = 2.0
    ids = backend.infer(x)
    assert ids.shape == (1, 4, 5)
    assert ids[0, 1, 1] == 2 and ids[0, 3, 4] == 1 and ids[0, 0, 0] == 0


def test_fixed_shape_mismatch_is_refused(tmp_path):
    backend = OnnxRuntimeBackend(str(argmax_model(tmp_path / 'a.onnx')))
    backend.configure()
    with pytest.raises(ValueError, match='height is fixed at 4'):
        backend.infer(np.zeros((1, 3, 5, 5), np.float32))


def test_missing_empty_and_invalid_files(tmp_path):
    missing = tmp_path / 'nope.onnx'
    with pytest.raises(ModelError, match=f"model_path '{missing}' does not exist; set model_path"):
        OnnxRuntimeBackend(str(missing)).configure()
    with pytest.raises(ModelError, match='model_path is empty'):
        OnnxRuntimeBackend('').configure()
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'this is not a protobuf')
    with pytest.raises(ModelError, match="cannot load '.*bad.onnx' as an ONNX model"):
        OnnxRuntimeBackend(str(bad)).configure()
    engine = tmp_path / 'model.engine'
    engine.write_bytes(b'\0' * 16)
    with pytest.raises(ModelError, match='TensorRT engine'):
        OnnxRuntimeBackend(str(engine)).configure()


def test_two_inputs_are_refused_with_the_list(tmp_path):
    path = _save(tmp_path / 'two.onnx', [helper.make_node('Add', ['a', 'b'], ['logits'])],
                 [helper.make_tensor_value_info('a', TensorProto.FLOAT, [1, 3, 2, 2]),
                  helper.make_tensor_value_info('b', TensorProto.FLOAT, [1, 3, 2, 2])],
                 [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 3, 2, 2])])
    with pytest.raises(ModelError,
                       match=r'exactly one image input.*has 2: a float32 \[1, 3, 2, 2\], b'):
        OnnxRuntimeBackend(str(path)).configure()


def test_nhwc_input_is_refused(tmp_path):
    path = _save(tmp_path / 'nhwc.onnx', [helper.make_node('Identity', ['input'], ['logits'])],
                 [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 8, 8, 3])],
                 [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 8, 8, 3])])
    with pytest.raises(ModelError, match=r'expected an NCHW image input \(N, 3, H, W\)'):
        OnnxRuntimeBackend(str(path)).configure()


def test_output_choice_among_several(tmp_path):
    shape = [1, 3, 2, 2]
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node('Identity', ['input'], ['features']),
             helper.make_node('Neg', ['input'], ['logits'])]
    path = _save(tmp_path / 'multi.onnx', nodes, [vi('input', TensorProto.FLOAT, shape)],
                 [vi('features', TensorProto.FLOAT, shape),
                  vi('logits', TensorProto.FLOAT, shape)])
    backend = OnnxRuntimeBackend(str(path))
    assert backend.configure().output_name == 'logits'
    x = np.arange(12, dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(backend.infer(x), -x)

    nodes = [helper.make_node('Identity', ['input'], ['a']),
             helper.make_node('Neg', ['input'], ['b'])]
    path = _save(tmp_path / 'ambiguous.onnx', nodes, [vi('input', TensorProto.FLOAT, shape)],
                 [vi('a', TensorProto.FLOAT, shape), vi('b', TensorProto.FLOAT, shape)])
    with pytest.raises(ModelError, match='has 2 outputs'):
        OnnxRuntimeBackend(str(path)).configure()


def test_select_output_rules():
    assert select_output(['anything']) == 0
    assert select_output(['aux', 'ArgMax']) == 1
    assert select_output(['x', 'y']) is None


def test_unavailable_gpu_provider_says_how_to_fix(tmp_path):
    import onnxruntime as ort
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('CUDA provider present here')
    path = argmax_model(tmp_path / 'a.onnx')
    with pytest.raises(BackendError, match="onnxruntime_provider 'cuda' needs onnxruntime-gpu.*"
                                           'set onnxruntime_provider: cpu'):
        OnnxRuntimeBackend(str(path), provider='cuda').configure()
    with pytest.raises(BackendError, match='must be one of'):
        OnnxRuntimeBackend(str(path), provider='gpu')


def test_session_describe_threads_and_reconfigure(tmp_path):
    import onnxruntime as ort
    backend = OnnxRuntimeBackend(str(argmax_model(tmp_path / 'a.onnx')), num_threads=1,
                                 precision='int8', workspace_mb=64)  # last two: ignored
    with pytest.raises(BackendStateError):
        backend.session
    backend.configure()
    assert backend.session.get_providers() == ['CPUExecutionProvider']
    assert backend.describe() == f'onnxruntime {ort.__version__} CPUExecutionProvider threads=1'
    backend.release()
    backend.release()  # twice is fine
    backend.configure()
    assert backend.infer(np.zeros((1, 3, 4, 5), np.float32)).shape == (1, 4, 5)


def test_run_with_binding(tmp_path):
    import onnxruntime as ort
    backend = OnnxRuntimeBackend(str(argmax_model(tmp_path / 'a.onnx')))
    backend.configure()
    binding = backend.session.io_binding()
    x = np.zeros((1, 3, 4, 5), np.float32)
    x[0, 1] = 1.0
    binding.bind_cpu_input('input', x)
    binding.bind_output('ArgMax')
    backend.run_with_binding(binding)
    out = binding.copy_outputs_to_cpu()[0]
    assert out.shape == (1, 4, 5) and (out == 1).all()
    assert ort.get_device()  # sanity: runtime is importable and reports a device


def test_shared_deeplab_model():
    backend = OnnxRuntimeBackend(str(DEEPLAB), num_threads=2)
    info = backend.configure()
    assert info.input_shape == (1, 3, 513, 513)
    assert info.output_name == 'ArgMax' and info.output_kind is OutputKind.CLASS_IDS
    x = np.full((1, 3, 513, 513), 128.0, np.float32)
    ids = backend.infer(x)
    assert ids.shape == (1, 513, 513) and ids.min() >= 0 and ids.max() <= 18


@pytest.mark.slow
@skip_unless_shared_asset(SEGFORMER_B0_RELATIVE)
def test_shared_segformer_b0_model():
    backend = OnnxRuntimeBackend(str(SEGFORMER_B0))
    info = backend.configure()
    assert info.output_kind is OutputKind.LOGITS and info.num_classes == 19
    x = np.random.default_rng(0).standard_normal((1, 3, 1024, 1024)).astype(np.float32)
    out = backend.infer(x)  # one inference, ~2 s on 2 cores
    assert out.shape == (1, 19, 256, 256) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_stable_optimization_level_by_version():
    import types
    levels = types.SimpleNamespace(ORT_ENABLE_BASIC='basic', ORT_ENABLE_ALL='all')
    for version, want in (('1.21.1', 'basic'), ('1.23.2', 'basic'), ('1.24.0', 'all'),
                          ('1.32.0', 'all'), ('1.32.0+cu126', 'all'), ('2.0.0rc1', 'all')):
        fake = types.SimpleNamespace(__version__=version, GraphOptimizationLevel=levels)
        assert stable_optimization_level(fake) == want, version


def test_bundled_deeplab_is_deterministic():
    """The same frame gives the same ids run after run and session after session.

    ONNX Runtime < 1.24 with its EXTENDED-level fusions broke this on an AVX-512 x86 CPU
    (the same session agreed with itself on 61-98 % of pixels); see
    stable_optimization_level.
    """
    frame = np.random.default_rng(7).uniform(0, 255, (1, 3, 513, 513)).astype(np.float32)
    masks = []
    for _ in range(2):
        backend = OnnxRuntimeBackend(str(DEEPLAB))
        backend.configure()
        masks += [backend.infer(frame).copy() for _ in range(3)]
        backend.release()
    for mask in masks[1:]:
        assert np.array_equal(mask, masks[0]), float((mask == masks[0]).mean())


def test_shared_cuda_arena_is_refused_by_a_cpu_only_onnxruntime() -> None:
    """Without onnxruntime-gpu the per-size sessions keep their own allocators."""
    import onnxruntime as ort

    from segformer_ros.backends.ort_shared_arena import share_cuda_arena

    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('onnxruntime-gpu here: test_gpu_segmentation measures the shared arena')
    assert share_cuda_arena(ort, 0) is False
    assert share_cuda_arena(ort, 0) is False       # a refusal is not remembered as done
