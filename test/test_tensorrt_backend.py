"""TensorRT backend paths without TensorRT: availability, errors, CLI.

``tensorrt`` is hidden from the import system in each of these tests (sys.modules entry
None makes ``import tensorrt`` raise ImportError), so they also run, and mean the same, on a
robot that has TensorRT. The backend with a (fake) TensorRT: test_tensorrt_fake.py.
"""

import sys

import pytest

from segformer_ros.backends.tensorrt_backend import (TensorRTBackend, onnx_has_qdq,
                                                     tensorrt_available)
from segformer_ros.errors import BackendError
from segformer_ros.tools.build_engine import main as build_main, parse_shapes


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``import tensorrt`` fail as on a machine without TensorRT."""
    monkeypatch.setitem(sys.modules, 'tensorrt', None)


def test_unavailable_without_tensorrt_with_reason(no_tensorrt):
    ok, reason = tensorrt_available()
    assert ok is False
    assert 'tensorrt is not importable' in reason


def test_configure_without_tensorrt_says_how_to_fix(tmp_path, no_tensorrt):
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'x')
    backend = TensorRTBackend(str(model), precision='fp16', engine_cache_dir=str(tmp_path))
    with pytest.raises(BackendError, match='needs the tensorrt Python package.*onnxruntime'):
        backend.configure()
    assert not backend.is_configured
    backend.release()  # safe after a failed configure


def test_bad_precision_refused(tmp_path):
    with pytest.raises(BackendError, match='fp16, fp32 or int8'):
        TensorRTBackend(str(tmp_path / 'm.onnx'), precision='int4')


def test_qdq_detection(tmp_path):
    onnx = pytest.importorskip('onnx')
    from onnx import TensorProto, helper

    def save(nodes, name):
        graph = helper.make_graph(
            nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])],
            [helper.make_tensor('s', TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor('z', TensorProto.INT8, [], [0])])
        path = tmp_path / name
        onnx.save(helper.make_model(graph), str(path))
        return str(path)

    plain = save([helper.make_node('Relu', ['x'], ['y'])], 'plain.onnx')
    qdq = save([helper.make_node('QuantizeLinear', ['x', 's', 'z'], ['q']),
                helper.make_node('DequantizeLinear', ['q', 's', 'z'], ['y'])], 'qdq.onnx')
    assert not onnx_has_qdq(plain)
    assert onnx_has_qdq(qdq)


def test_parse_shapes_trtexec_style():
    assert parse_shapes('input:1x3x512x1024') == (('input', (1, 3, 512, 1024)),)
    assert parse_shapes('a:1x3,b:2x2') == (('a', (1, 3)), ('b', (2, 2)))
    assert parse_shapes('') == ()
    for bad in ('1x3x4', 'input:1xAx3', 'input:0x3'):
        with pytest.raises(ValueError):
            parse_shapes(bad)


def test_build_cli_without_tensorrt(tmp_path, capsys, no_tensorrt):
    rc = build_main(['--onnx', str(tmp_path / 'm.onnx'), '--output', str(tmp_path / 'm.engine'),
                     '--fp16'])
    assert rc == 2
    assert 'TensorRT is not importable' in capsys.readouterr().err


def test_factory_names_tensorrt_reason():
    from segformer_ros.backends.factory import tensorrt_status
    ok, reason = tensorrt_status()
    assert isinstance(ok, bool) and (ok or reason)
