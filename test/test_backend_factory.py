"""create_backend: names, 'auto' selection, engine files, option mapping."""

import numpy as np
import pytest

from segformer_ros.backends import create_backend
from segformer_ros.backends.factory import backend_options_from_params, tensorrt_status
from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from segformer_ros.errors import BackendError, ConfigError
from segformer_ros.parameters import defaults

onnx = pytest.importorskip('onnx')
from onnx import TensorProto, helper  # noqa: E402

TRT_OK, TRT_REASON = tensorrt_status()
no_trt = pytest.mark.skipif(TRT_OK, reason='TensorRT is usable here')


@pytest.fixture
def argmax_onnx(tmp_path):
    node = helper.make_node('ArgMax', ['input'], ['ArgMax'], axis=1, keepdims=0)
    graph = helper.make_graph(
        [node], 'g', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info('ArgMax', TensorProto.INT64, [1, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    path = tmp_path / 'm.onnx'
    onnx.save(model, str(path))
    return str(path)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"backend must be one of \['auto', 'tensorrt', "
                                          r"'onnxruntime'\], got 'openvino'"):
        create_backend('openvino', 'm.onnx')


def test_onnxruntime_backend_ignores_foreign_options(argmax_onnx):
    backend = create_backend('onnxruntime', argmax_onnx, precision='int8', workspace_mb=64,
                             rebuild_stale_engine=True, provider='cpu', num_threads=1)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.name == 'onnxruntime'
    backend.configure()
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, 2] = 1.0
    assert (backend.infer(x) == 2).all()


@pytest.mark.parametrize('suffix', ['.engine', '.plan'])
def test_engine_file_with_onnxruntime_is_explained(suffix):
    with pytest.raises(BackendError,
                       match='is a TensorRT engine, which ONNX Runtime cannot run'):
        create_backend('onnxruntime', f'model{suffix}')


@no_trt
def test_auto_falls_back_to_onnxruntime_and_logs_why(argmax_onnx):
    messages = []
    backend = create_backend('auto', argmax_onnx, logger=messages.append)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert len(messages) == 1
    assert messages[0].startswith('backend auto: using onnxruntime because ')
    assert TRT_REASON in messages[0]


def test_auto_with_a_non_onnx_file_uses_onnxruntime():
    messages = []
    backend = create_backend('auto', 'model.pb', logger=messages.append)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert messages and 'backend auto: using onnxruntime because' in messages[0]


@no_trt
def test_tensorrt_unavailable_says_how_to_fix(argmax_onnx):
    expected = (r'backend tensorrt is not available: .*set backend: onnxruntime or install '
                r'TensorRT \(JetPack ships it\)')
    with pytest.raises(BackendError, match=expected):
        create_backend('tensorrt', argmax_onnx)


@no_trt
def test_auto_with_an_engine_and_no_tensorrt_is_an_error():
    with pytest.raises(BackendError, match='is a TensorRT engine but TensorRT cannot run here'):
        create_backend('auto', 'model.plan')


def test_tensorrt_status_is_a_bool_and_a_reason():
    ok, reason = tensorrt_status()
    assert isinstance(ok, bool) and isinstance(reason, str)
    if not ok:
        assert reason


def test_backend_options_from_params():
    params = defaults()
    params.update(onnxruntime_provider='cuda', num_threads=3, input_height=512, input_width=1024)
    options = backend_options_from_params(params)
    assert options['provider'] == 'cuda' and options['num_threads'] == 3
    assert options['input_hw'] == (512, 1024)
    assert options['precision'] == 'fp16' and options['workspace_mb'] == 1024
    assert 'input_hw' not in backend_options_from_params({**defaults(), 'input_height': 0,
                                                          'input_width': 0})
    assert backend_options_from_params({}) == {}
