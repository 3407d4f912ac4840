"""Raw sensor_msgs/Image fields <-> numpy (segformer_ros.conversion)."""

import array
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from segformer_ros.conversion import (array_to_image_fields, image_fields_to_array,
                                      image_msg_to_array)
from segformer_ros.encodings import SUPPORTED_ENCODINGS
from segformer_ros.errors import ImageFormatError
from segformer_ros.ros_compat import new_message

EIGHT_BIT = [('rgb8', 3, 'rgb', False), ('bgr8', 3, 'bgr', False),
             ('rgba8', 4, 'rgb', True), ('bgra8', 4, 'bgr', True),
             ('mono8', 1, 'gray', False), ('8UC1', 1, 'gray', False),
             ('8UC3', 3, 'bgr', False), ('8UC4', 4, 'bgr', True)]
SIXTEEN_BIT = [('rgb16', 3, 'rgb'), ('bgr16', 3, 'bgr'), ('rgba16', 4, 'rgb'),
               ('bgra16', 4, 'bgr'), ('mono16', 1, 'gray'), ('16UC1', 1, 'gray'),
               ('16UC3', 3, 'bgr'), ('16UC4', 4, 'bgr')]


def _packed(pixels: np.ndarray, step: int) -> bytearray:
    """Rows of ``pixels`` (H, row_bytes) uint8 written at ``step`` with 0xEE padding."""
    h, row = pixels.shape
    buf = bytearray(b'\xee' * (step * h))
    for y in range(h):
        buf[y * step:y * step + row] = pixels[y].tobytes()
    return buf


@pytest.mark.parametrize('encoding,channels,order,alpha', EIGHT_BIT)
@pytest.mark.parametrize('width,pad', [(7, 0), (7, 5), (16, 3)])
def test_eight_bit_encodings_padded_rows(encoding, channels, order, alpha, width, pad):
    rng = np.random.default_rng(width + pad)
    h = 5
    img = rng.integers(0, 256, (h, width, channels), dtype=np.uint8)
    step = width * channels + pad
    buf = _packed(img.reshape(h, -1), step)
    view = image_fields_to_array(encoding, h, width, step, buf)
    expected = img[:, :, 0] if channels == 1 else img
    assert view.array.shape == expected.shape
    np.testing.assert_array_equal(view.array, expected)
    assert (view.encoding, view.channel_order, view.has_alpha) == (encoding, order, alpha)
    # Zero copy: the view reads the message buffer itself, and may not write to it.
    assert np.shares_memory(view.array, np.frombuffer(buf, np.uint8))
    assert not view.array.flags.writeable


@pytest.mark.parametrize('kind', ['bytes', 'bytearray', 'memoryview', 'array', 'ndarray',
                                  'list'])
def test_data_container_types(kind):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    raw = img.tobytes()
    data = {'bytes': raw, 'bytearray': bytearray(raw), 'memoryview': memoryview(raw),
            'array': array.array('B', raw), 'ndarray': np.frombuffer(raw, np.uint8).copy(),
            'list': list(raw)}[kind]
    view = image_fields_to_array('rgb8', 2, 3, 9, data)
    np.testing.assert_array_equal(view.array, img)


@pytest.mark.parametrize('encoding,channels,order', SIXTEEN_BIT)
@pytest.mark.parametrize('big', [False, True])
def test_sixteen_bit_keeps_high_byte(encoding, channels, order, big):
    rng = np.random.default_rng(3)
    h, w, pad = 3, 5, 6
    vals = rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)
    raw = vals.astype('>u2' if big else '<u2').view(np.uint8).reshape(h, -1)
    step = w * channels * 2 + pad
    view = image_fields_to_array(encoding, h, w, step, _packed(raw, step), is_bigendian=big)
    expected = (vals >> 8).astype(np.uint8)
    if channels == 1:
        expected = expected[:, :, 0]
    np.testing.assert_array_equal(view.array, expected)
    assert view.array.dtype == np.uint8 and view.channel_order == order


def test_sixteen_bit_known_values():
    # 0x1234 little endian = 34 12 -> 0x12; big endian 12 34 -> 0x12.
    assert image_fields_to_array('mono16', 1, 1, 2, b'\x34\x12').array[0, 0] == 0x12
    assert image_fields_to_array('mono16', 1, 1, 2, b'\x12\x34', True).array[0, 0] == 0x12


@pytest.mark.parametrize('pattern,pos', [('rggb', (0, 0)), ('bggr', (1, 1)),
                                         ('gbrg', (1, 0)), ('grbg', (0, 1))])
def test_bayer_pure_red_mosaic(pattern, pos):
    # Only the red sites lit: the demosaiced image must be red (BGR order) inside.
    mosaic = np.zeros((8, 10), np.uint8)
    mosaic[pos[0]::2, pos[1]::2] = 200
    view = image_fields_to_array(f'bayer_{pattern}8', 8, 10, 10, mosaic.tobytes())
    assert view.channel_order == 'bgr' and view.array.shape == (8, 10, 3)
    np.testing.assert_array_equal(view.array[2:6, 2:8], np.full((4, 6, 3), (0, 0, 200)))
    # 16-bit: same mosaic in the high byte.
    wide = (mosaic.astype(np.uint16) << 8).astype('<u2')
    view16 = image_fields_to_array(f'bayer_{pattern}16', 8, 10, 20, wide.tobytes())
    np.testing.assert_array_equal(view16.array, view.array)


@pytest.mark.parametrize('encoding,order', [('yuv422', 'uyvy'), ('uyvy', 'uyvy'),
                                            ('yuv422_yuy2', 'yuyv'), ('yuyv', 'yuyv')])
def test_yuv422_uniform_colour(encoding, order):
    # Y=81 U=90 V=240 is BT.601 red (approx. R 255, G 0, B 0).
    y, u, v = 81, 90, 240
    pair = bytes([u, y, v, y]) if order == 'uyvy' else bytes([y, u, y, v])
    w, h, step = 4, 2, 4 * 2 + 2
    row = pair * (w // 2) + b'\x00\x00'
    view = image_fields_to_array(encoding, h, w, step, row * h)
    assert view.channel_order == 'bgr' and view.array.shape == (h, w, 3)
    b, g, r = (int(c) for c in view.array[1, 2])
    assert r > 230 and g < 30 and b < 30


def test_every_supported_encoding_converts():
    for name, info in SUPPORTED_ENCODINGS.items():
        w, h = 4, 4
        step = w * info.bytes_per_pixel
        view = image_fields_to_array(name, h, w, step, bytes(step * h))
        assert view.array.dtype == np.uint8 and view.array.shape[:2] == (h, w)
        assert view.array.ndim == (2 if view.channel_order == 'gray' else 3)


@pytest.mark.parametrize('encoding,words', [
    ('32FC1', ['not supported', 'float', 'rgb8']),
    ('64FC3', ['float']), ('16SC1', ['signed']), ('8UC2', ['two-channel']),
    ('RGB8', ['unknown', 'rgb8', 'case-sensitive']), ('nv21', ['unknown', 'bgr8']),
])
def test_refused_encodings_say_why(encoding, words):
    with pytest.raises(ImageFormatError) as exc:
        image_fields_to_array(encoding, 2, 2, 8, bytes(64))
    for word in words:
        assert word in str(exc.value)


@pytest.mark.parametrize('h,w,step,n,words', [
    (0, 4, 12, 0, ['non-empty', '4x0']),
    (4, 0, 12, 48, ['non-empty']),
    (4, 4, 11, 100, ['step 11', 'at least 12']),
    (4, 4, 12, 47, ['needs step*height = 48', 'got 47']),
    (-1, 4, 12, 48, ['non-negative']),
    (2.5, 4, 12, 48, ['integer']),
])
def test_bad_geometry_is_refused(h, w, step, n, words):
    with pytest.raises(ImageFormatError) as exc:
        image_fields_to_array('rgb8', h, w, step, bytes(n))
    for word in words:
        assert word in str(exc.value)


def test_odd_width_yuv_is_refused():
    with pytest.raises(ImageFormatError, match='even width'):
        image_fields_to_array('yuyv', 2, 3, 6, bytes(12))


def test_huge_header_fails_fast_without_allocating():
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageFormatError, match='needs step\\*height'):
        image_fields_to_array('rgb8', 40000, 40000, 120000, b'abc', max_pixels=10 ** 10)
    with pytest.raises(ImageFormatError, match='exceeds the limit'):
        image_fields_to_array('rgb8', 40000, 40000, 120000, b'abc')
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.05
    assert peak < 1_000_000


def test_max_pixels_is_configurable():
    image_fields_to_array('mono8', 10, 10, 10, bytes(100), max_pixels=100)
    with pytest.raises(ImageFormatError, match='100 pixels exceeds the limit of 99'):
        image_fields_to_array('mono8', 10, 10, 10, bytes(100), max_pixels=99)


def test_trailing_bytes_are_ignored():
    view = image_fields_to_array('mono8', 2, 2, 2, b'\x01\x02\x03\x04\x05\x06')
    np.testing.assert_array_equal(view.array, [[1, 2], [3, 4]])


def test_image_msg_to_array_reads_attributes():
    msg = SimpleNamespace(encoding='bgr8', height=1, width=2, step=6,
                          data=array.array('B', [1, 2, 3, 4, 5, 6]), is_bigendian=0)
    view = image_msg_to_array(msg)
    np.testing.assert_array_equal(view.array, [[[1, 2, 3], [4, 5, 6]]])
    assert view.channel_order == 'bgr'


@pytest.mark.parametrize('encoding,shape', [('mono8', (5, 7)), ('mono8', (5, 7, 1)),
                                            ('rgb8', (5, 7, 3)), ('bgr8', (3, 9, 3)),
                                            ('rgba8', (2, 3, 4))])
def test_array_to_image_fields_roundtrip(encoding, shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    h, w, step, data = array_to_image_fields(arr, encoding)
    channels = 1 if len(shape) == 2 else shape[2]
    assert (h, w, step) == (shape[0], shape[1], shape[1] * channels)
    assert isinstance(data, array.array) and data.typecode == 'B'
    assert len(data) == step * h
    back = image_fields_to_array(encoding, h, w, step, data).array
    np.testing.assert_array_equal(back, arr.reshape(back.shape))


def test_array_to_image_fields_non_contiguous_and_errors():
    big = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    part = big[1:4, 2:7]
    h, w, step, data = array_to_image_fields(part, 'rgb8')
    assert bytes(data) == np.ascontiguousarray(part).tobytes()
    with pytest.raises(ImageFormatError, match='uint8'):
        array_to_image_fields(big.astype(np.float32), 'rgb8')
    with pytest.raises(ImageFormatError, match='shape'):
        array_to_image_fields(big, 'mono8')
    with pytest.raises(ImageFormatError, match='cannot publish'):
        array_to_image_fields(big, '32FC1')


def test_real_sensor_msgs_image_roundtrip():
    image_mod = pytest.importorskip('sensor_msgs.msg')
    arr = np.random.default_rng(2).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for check in (False, True):
        # new_message: Humble's constructor has no check_fields keyword (ros_compat).
        msg = new_message(image_mod.Image, check_fields=check)
        msg.height, msg.width, msg.step, msg.data = array_to_image_fields(arr, 'rgb8')
        msg.encoding = 'rgb8'
        view = image_msg_to_array(msg)
        np.testing.assert_array_equal(view.array, arr)
