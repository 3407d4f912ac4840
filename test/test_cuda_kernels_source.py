"""Kernel source generation and cuLaunchKernel argument packing (no GPU needed)."""

import ctypes
import struct

import pytest

from segformer_ros.cuda import kernels as K
from segformer_ros.errors import BackendError


@pytest.mark.parametrize('in_dtype,logit_dtype', [('float32', 'float32'), ('float16', 'float16'),
                                                  ('float16', 'float32')])
def test_signatures_match_the_c_source(in_dtype, logit_dtype):
    src = K.kernel_source(in_dtype, logit_dtype)
    parsed = K.parse_signatures(src)
    assert set(parsed) == set(K.KERNEL_SIGNATURES)
    for name, sig in K.KERNEL_SIGNATURES.items():
        assert parsed[name] == [code for _, code in sig], name


def test_dtype_specialization_in_source():
    assert 'return ((const float*)p)[i];' in K.kernel_source('float32', 'float32')
    half = K.kernel_source('float16', 'float16')
    assert 'h2f(((const u16*)p)[i])' in half and 'f2h(v)' in half
    with pytest.raises(BackendError, match="input_dtype must be one of.*got 'int8'"):
        K.kernel_source('int8')


def test_preprocess_is_cv2_fixed_point_without_fma():
    src = K.kernel_source()
    # OpenCV's VResizeLinearVec_32s8u arithmetic, as resize_tables.emulate_resize does it.
    assert '(((yt.z * (h0 >> 4)) >> 16) + ((yt.w * (h1 >> 4)) >> 16) + 2) >> 2' in src
    # numpy rounds x * scale, then + bias: a fused multiply-add would round once.
    assert '__fadd_rn(__fmul_rn(v, s), b)' in src
    names = [n for n, _ in K.KERNEL_SIGNATURES['preprocess']]
    assert 'xtab' in names and 'ytab' in names and 'sx' not in names


def test_source_has_no_unexpanded_format_markers():
    src = K.kernel_source()
    assert '%(' not in src and 'INFINITY' not in src
    # NaN never wins: comparisons are strict greater-than on cleaned values.
    assert 'if (v > best)' in src and 'isnan(v)' in src


def test_args_pack_values_with_c_types():
    values = dict(mask=0x7f0000001000, w=1920, h=1080, drivable=None, boundary=2**40)
    args = K.KernelArgs('free_space', values)
    assert args.unpack() == [0x7f0000001000, 1920, 1080, 0, 2**40]
    # kernelParams is a void*[]: each entry points at the value's bytes.
    ptrs = (ctypes.c_void_p * 5).from_address(args.address)
    assert ctypes.c_int32.from_address(ptrs[1]).value == 1920
    assert struct.unpack('<Q', ctypes.string_at(ptrs[0], 8))[0] == 0x7f0000001000


def test_float_args_are_float32():
    sig = dict.fromkeys((n for n, _ in K.KERNEL_SIGNATURES['preprocess']), 1)
    sig.update(pad=1.875, s0=1 / 58.395, src=0, dst=0, xtab=0x1000, ytab=0x2000)
    args = K.KernelArgs('preprocess', sig)
    names = [n for n, _ in K.KERNEL_SIGNATURES['preprocess']]
    got = dict(zip(names, args.unpack()))
    assert got['pad'] == 1.875 and got['xtab'] == 0x1000
    assert got['s0'] == pytest.approx(1 / 58.395, rel=1e-7)
    assert got['s0'] != 1 / 58.395  # rounded to float32


def test_args_errors_name_the_problem():
    with pytest.raises(BackendError, match='missing.*boundary'):
        K.KernelArgs('free_space', dict(mask=0, w=1, h=1, drivable=0))
    with pytest.raises(BackendError, match='unexpected.*extra'):
        K.KernelArgs('free_space', dict(mask=0, w=1, h=1, drivable=0, boundary=0, extra=1))
    with pytest.raises(BackendError, match='expected an int'):
        K.KernelArgs('free_space', dict(mask=0, w=1.5, h=1, drivable=0, boundary=0))
    with pytest.raises(BackendError, match='does not fit int32'):
        K.KernelArgs('free_space', dict(mask=0, w=2**31, h=1, drivable=0, boundary=0))
    with pytest.raises(BackendError, match='device pointer'):
        K.KernelArgs('free_space', dict(mask=-1, w=1, h=1, drivable=0, boundary=0))
    with pytest.raises(BackendError, match='unknown kernel'):
        K.KernelArgs('nope', {})


def test_grids_cover_the_image():
    assert K.grid_2d(1920, 1080) == (60, 135, 1)
    assert K.grid_2d(1921, 1081) == (61, 136, 1)
    assert K.grid_1d(0) == (1, 1, 1)
    assert K.grid_1d(257) == (2, 1, 1)


def test_nvrtc_options():
    assert K.nvrtc_options('sm_87')[0] == b'--gpu-architecture=sm_87'
    assert b'--use_fast_math' not in K.nvrtc_options('sm_90')
    with pytest.raises(BackendError, match="like 'sm_87'"):
        K.nvrtc_options('orin')


def test_encoding_layouts():
    assert K.encoding_layout('bgr8') == (3, (2, 1, 0))
    assert K.encoding_layout('rgba8') == (4, (0, 1, 2))
    assert K.encoding_layout('bgra8') == (4, (2, 1, 0))
    assert K.encoding_layout('mono8') == (1, (0, 0, 0))
    # 16-bit: the pipeline receives the uint8 high-byte view, laid out like the 8-bit twin.
    assert K.encoding_layout('rgb16') == K.encoding_layout('rgb8')
    assert K.encoding_layout('16UC1') == (1, (0, 0, 0))
    assert K.encoding_layout('yuv422') is None


# C element type of each id kernel's ``ids`` pointer -> (bytes, signed).
_C_TYPES = {'i64': (8, True), 'int': (4, True), 'u8': (1, False), 'signed char': (1, True)}


@pytest.mark.parametrize('dtype', ['int64', 'int32', 'uint8', 'int8'])
def test_id_kernel_reads_the_output_type(dtype):
    """Each integer output type has a kernel reading elements of its size and signedness.

    A wider read runs past the engine's output buffer (issue 23: uint8 outputs went to the
    int32 kernel, 4x past the end: an illegal address on the GPU).
    """
    import re
    import numpy as np
    name = K.ids_kernel(dtype)
    src = K.kernel_source()
    m = re.search(rf'void {name}\(const ([\w ]+?)\* __restrict__ ids', src)
    assert m, name
    size, signed = _C_TYPES[m.group(1)]
    assert size == np.dtype(dtype).itemsize and signed == (np.dtype(dtype).kind == 'i')
    # Ids outside 0..num_classes-1 become 255 in the shared epilogue, as ids_to_uint8 does.
    assert 'if (id < 0 || id >= num_classes) id = 255;' in src


def test_id_kernel_refuses_other_types():
    with pytest.raises(BackendError, match=r"class-id outputs of type.*got 'uint16'"):
        K.ids_kernel('uint16')
    with pytest.raises(BackendError, match="got 'float32'"):
        K.ids_kernel('float32')
