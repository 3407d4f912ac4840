"""Flag and version lookup across TensorRT 10.3, 10.16 and 11 (the contract fake's poses)."""

import types

import pytest

from fakes.tensorrt import make_tensorrt

from segformer_ros.backends import trt_compat
from segformer_ros.errors import BackendError

TRT_10_3 = make_tensorrt('10.3.0.30')
TRT_10_16 = make_tensorrt('10.16.0.72')
TRT_11 = make_tensorrt('11.1.0.5')


def test_parse_version_forms():
    v = trt_compat.parse_version('10.3.0.30')
    assert (v.major, v.minor, v.patch) == (10, 3, 0) and v.at_least(10, 3)
    v = trt_compat.parse_version('11.1')
    assert (v.major, v.minor, v.patch) == (11, 1, 0) and not v.at_least(11, 2)
    with pytest.raises(BackendError, match='expected a TensorRT version'):
        trt_compat.parse_version('unknown')


def test_refuses_tensorrt_8():
    with pytest.raises(BackendError, match='expected TensorRT >= 10.*got 8.6.1'):
        trt_compat.check_version(types.SimpleNamespace(__version__='8.6.1'))
    assert trt_compat.check_version(TRT_10_3).major == 10


def test_fp16_flag_on_10_and_absent_on_11():
    flags, note = trt_compat.precision_flags(TRT_10_3, 'fp16')
    assert flags == (TRT_10_3.BuilderFlag.FP16,) and note == 'fp16'
    flags, note = trt_compat.precision_flags(TRT_11, 'fp16')
    assert flags == () and 'strongly typed' in note
    assert trt_compat.is_strongly_typed_only(TRT_11)
    assert not trt_compat.is_strongly_typed_only(TRT_10_3)


def test_int8_and_fp32_flags():
    flags, _ = trt_compat.precision_flags(TRT_10_3, 'int8')
    assert set(flags) == {TRT_10_3.BuilderFlag.INT8, TRT_10_3.BuilderFlag.FP16}
    assert trt_compat.precision_flags(TRT_11, 'int8')[0] == ()
    assert trt_compat.precision_flags(TRT_10_3, 'fp32') == ((), 'fp32')
    with pytest.raises(BackendError, match="got 'bf8'"):
        trt_compat.precision_flags(TRT_10_3, 'bf8')


def test_enum_member_and_dtypes():
    assert trt_compat.enum_member(TRT_11, 'BuilderFlag', 'FP16') is None
    assert trt_compat.enum_member(TRT_11, 'NoSuchEnum', 'X') is None
    assert trt_compat.workspace_pool(TRT_11) == TRT_11.MemoryPoolType.WORKSPACE
    assert trt_compat.numpy_dtype_name(TRT_10_3, TRT_10_3.DataType.HALF) == 'float16'
    assert trt_compat.numpy_dtype_name(TRT_10_3, TRT_10_3.DataType.INT64) == 'int64'
    with pytest.raises(BackendError, match='unsupported TensorRT tensor type'):
        trt_compat.numpy_dtype_name(TRT_10_3, 99)
    assert trt_compat.has_progress_monitor(TRT_10_3)
    assert trt_compat.network_flags(TRT_11) == 0
    assert trt_compat.network_flags(TRT_11, strongly_typed=True) == 0   # always, no flag
    assert trt_compat.network_flags(TRT_10_3, strongly_typed=True) == 1 << 1


def test_strong_typing_preferred_from_10_12():
    assert not trt_compat.prefers_strong_typing(TRT_10_3)
    assert trt_compat.prefers_strong_typing(TRT_10_16)     # FP16 flag deprecated there
    assert trt_compat.prefers_strong_typing(TRT_11)
    assert trt_compat.effective_precision(TRT_11, 'fp16', True, False) == 'fp32'
    assert trt_compat.effective_precision(TRT_11, 'fp16', True, True) == 'fp16'
    assert trt_compat.effective_precision(TRT_10_3, 'fp16', False, False) == 'fp16'
