"""sensor_msgs/CompressedImage decoding with the size checked first (segformer_ros.compressed)."""

import time
import tracemalloc

import cv2
import numpy as np
import pytest

from segformer_ros.compressed import compressed_image_size, decode_compressed
from segformer_ros.errors import ImageFormatError


def _image(h=37, w=53, seed=0):
    # Smooth content so JPEG error stays small.
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4 % 256, yy * 6 % 256, (xx + yy) * 2 % 256], axis=2)
    return img.astype(np.uint8)


def _encode(ext, img):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _patch_jpeg_size(data: bytes, height: int, width: int) -> bytes:
    """Rewrite the frame size in a real JPEG's SOF0 marker."""
    i = data.index(b'\xff\xc0')
    out = bytearray(data)
    out[i + 5:i + 7] = height.to_bytes(2, 'big')
    out[i + 7:i + 9] = width.to_bytes(2, 'big')
    return bytes(out)


@pytest.mark.parametrize('fmt', ['png', 'rgb8; png compressed bgr8'])
def test_png_roundtrip_is_exact(fmt):
    img = _image()
    view = decode_compressed(fmt, _encode('.png', img))
    assert view.channel_order == 'bgr' and not view.has_alpha
    np.testing.assert_array_equal(view.array, img)


@pytest.mark.parametrize('fmt', ['jpeg', 'bgr8; jpeg compressed bgr8', ''])
def test_jpeg_roundtrip(fmt):
    img = _image()
    view = decode_compressed(fmt, _encode('.jpg', img))
    assert view.array.shape == img.shape and view.channel_order == 'bgr'
    assert np.abs(view.array.astype(int) - img).mean() < 4


@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_grayscale_stays_mono(ext):
    img = _image()[:, :, 1]
    view = decode_compressed(ext[1:], _encode(ext, img))
    assert view.channel_order == 'gray' and view.array.shape == img.shape


def test_data_as_bytearray_memoryview_ndarray():
    raw = _encode('.png', _image())
    for data in (bytearray(raw), memoryview(raw), np.frombuffer(raw, np.uint8)):
        assert decode_compressed('png', data).array.shape == (37, 53, 3)


def test_header_size_matches_image():
    assert compressed_image_size(_encode('.jpg', _image(20, 30))) == (20, 30, False)
    assert compressed_image_size(_encode('.png', _image(21, 31))) == (21, 31, False)


def test_huge_jpeg_header_refused_before_decoding():
    data = _patch_jpeg_size(_encode('.jpg', _image()), 60000, 60000)
    assert compressed_image_size(data)[:2] == (60000, 60000)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageFormatError, match='60000x60000.*exceeds the limit'):
        decode_compressed('jpeg', data)
    assert time.perf_counter() - t0 < 0.05
    assert tracemalloc.get_traced_memory()[1] < 1_000_000
    tracemalloc.stop()


def test_huge_png_header_refused_before_decoding():
    data = bytearray(_encode('.png', _image()))
    data[16:20] = (100000).to_bytes(4, 'big')
    data[20:24] = (100000).to_bytes(4, 'big')
    with pytest.raises(ImageFormatError, match='exceeds the limit'):
        decode_compressed('png', bytes(data))


def test_max_pixels_is_configurable():
    data = _encode('.png', _image(10, 10))
    decode_compressed('png', data, max_pixels=100)
    with pytest.raises(ImageFormatError, match='limit of 99'):
        decode_compressed('png', data, max_pixels=99)


@pytest.mark.parametrize('ext,fmt', [('.jpg', 'jpeg'), ('.png', 'png')])
def test_corrupt_data_names_the_format(ext, fmt):
    data = _encode(ext, _image())
    # Header intact, body garbage / truncated.
    with pytest.raises(ImageFormatError, match=fmt):
        decode_compressed(fmt, data[:40] + b'\x00' * 10)


@pytest.mark.parametrize('data,words', [
    (b'', ['neither JPEG nor PNG', 'no bytes']),
    (b'GIF89a....', ['neither JPEG nor PNG', '47 49 46']),
    (b'\xff\xd8\xff\xd9', ['no JPEG SOF']),
    (b'\x89PNG\r\n\x1a\n\x00\x00', ['IHDR']),
])
def test_garbage_is_refused(data, words):
    with pytest.raises(ImageFormatError) as exc:
        decode_compressed('jpeg', data)
    for word in words:
        assert word in str(exc.value)


def test_zero_size_header_refused():
    data = _patch_jpeg_size(_encode('.jpg', _image()), 0, 40)
    with pytest.raises(ImageFormatError, match='empty or deferred'):
        decode_compressed('jpeg', data)


def test_compressed_depth_refused():
    with pytest.raises(ImageFormatError, match='depth'):
        decode_compressed('16UC1; compressedDepth png', _encode('.png', _image()))


def test_non_bytes_refused():
    with pytest.raises(ImageFormatError, match='bytes-like'):
        decode_compressed('jpeg', 12345)
