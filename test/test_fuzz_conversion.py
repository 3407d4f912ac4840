"""Property tests: converters either return a correct array or raise ImageFormatError."""

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segformer_ros.compressed import decode_compressed
from segformer_ros.config import PreprocessConfig
from segformer_ros.conversion import image_fields_to_array
from segformer_ros.encodings import SUPPORTED_ENCODINGS
from segformer_ros.errors import ImageFormatError
from segformer_ros.preprocessing import preprocess

ENCODINGS = sorted(SUPPORTED_ENCODINGS) + ['32FC1', '8SC3', 'RGB8', '', 'bayer_xyz8', '16UC2']
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(encoding=st.sampled_from(ENCODINGS), height=st.integers(0, 9), width=st.integers(0, 9),
       step_extra=st.integers(-6, 8), length_extra=st.integers(-20, 20),
       big=st.booleans(), seed=st.integers(0, 2 ** 16),
       container=st.sampled_from(['bytes', 'bytearray', 'memoryview', 'ndarray']))
def test_raw_fields(encoding, height, width, step_extra, length_extra, big, seed, container):
    info = SUPPORTED_ENCODINGS.get(encoding)
    bpp = info.bytes_per_pixel if info else 3
    step = max(0, width * bpp + step_extra)
    n = max(0, step * height + length_extra)
    raw = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    data = {'bytes': raw, 'bytearray': bytearray(raw), 'memoryview': memoryview(raw),
            'ndarray': np.frombuffer(raw, np.uint8)}[container]
    try:
        view = image_fields_to_array(encoding, height, width, step, data, big)
    except ImageFormatError:
        return
    assert info is not None and height > 0 and width > 0
    assert step >= width * bpp and n >= step * height
    arr = view.array
    assert arr.dtype == np.uint8 and arr.shape[:2] == (height, width)
    if info.convert is not None:
        return  # Bayer / YUV: converted by OpenCV, checked in test_conversion
    # Check a few pixels against the bytes: channel k of pixel (y, x) is the high byte.
    hi = 0 if (info.bytes_per_channel == 1 or big) else 1
    for y, x in ((0, 0), (height - 1, width - 1), (height // 2, width // 2)):
        for k in range(info.channels):
            byte = raw[y * step + x * bpp + k * info.bytes_per_channel + hi]
            got = arr[y, x] if arr.ndim == 2 else arr[y, x, k]
            assert got == byte


@SETTINGS
@given(data=st.binary(max_size=300), fmt=st.sampled_from(['jpeg', 'png', '', 'rgb8; jpeg']))
def test_compressed_random_bytes(data, fmt):
    try:
        view = decode_compressed(fmt, data)
    except ImageFormatError:
        return
    assert view.array.dtype == np.uint8 and view.array.size > 0


@SETTINGS
@given(prefix=st.sampled_from([b'\xff\xd8', b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR']),
       body=st.binary(max_size=200))
def test_compressed_random_bodies_after_magic(prefix, body):
    try:
        decode_compressed('jpeg', prefix + body, max_pixels=1 << 20)
    except ImageFormatError:
        pass


@SETTINGS
@given(h=st.integers(1, 40), w=st.integers(1, 40), ih=st.integers(1, 24), iw=st.integers(1, 24),
       channels=st.sampled_from([0, 1, 3, 4]), policy=st.sampled_from(['stretch', 'letterbox']),
       order=st.sampled_from(['rgb', 'bgr']), seed=st.integers(0, 1000))
def test_preprocess_random_sizes(h, w, ih, iw, channels, policy, order, seed):
    shape = (h, w) if channels == 0 else (h, w, channels)
    frame = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    batch, geo = preprocess(frame, order, PreprocessConfig(resize_policy=policy), (ih, iw))
    assert batch.shape == (1, 3, ih, iw) and np.isfinite(batch).all()
    assert batch.min() >= 0 and batch.max() <= 255
    assert 1 <= geo.content_height <= ih and 1 <= geo.content_width <= iw


@SETTINGS
@given(encoding=st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=12)),
       height=st.integers(0, 2 ** 32 - 1), width=st.integers(0, 2 ** 32 - 1),
       step=st.integers(0, 2 ** 32 - 1), data=st.binary(max_size=64),
       max_pixels=st.integers(1, 2 ** 31))
def test_raw_hostile_headers_allocate_nothing(encoding, height, width, step, data, max_pixels):
    """uint32 header fields claiming up to 4G x 4G pixels over a few bytes: refused, no alloc."""
    import tracemalloc

    tracemalloc.start()
    try:
        view = image_fields_to_array(encoding, height, width, step, data,
                                     max_pixels=max_pixels)
    except ImageFormatError:
        view = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 1 << 20, f'{peak} bytes allocated for a {len(data)}-byte frame'
    if view is not None:
        assert view.array.shape[:2] == (height, width) and height * width <= max_pixels


@SETTINGS
@example(field='height', value=float('inf'))
@example(field='step', value=float('-inf'))
@given(field=st.sampled_from(['height', 'width', 'step']),
       value=st.one_of(st.integers(-2 ** 40, -1), st.floats(allow_nan=True), st.text(max_size=5),
                       st.none(), st.lists(st.integers(), max_size=2)))
def test_raw_non_integer_fields(field, value):
    fields = {'height': 2, 'width': 2, 'step': 6}
    fields[field] = value
    try:
        view = image_fields_to_array('rgb8', fields['height'], fields['width'], fields['step'],
                                     bytes(12))
    except ImageFormatError:
        return
    # Only integral floats such as 2.0 may pass, and then they mean that integer.
    assert isinstance(value, float) and value.is_integer()
    assert view.array.shape[:2] == (fields['height'], fields['width'])


def _small_jpeg() -> bytes:
    import cv2
    yy, xx = np.mgrid[0:24, 0:32]
    img = np.stack([xx * 8, yy * 10, (xx + yy) * 4], axis=2).astype(np.uint8)
    return cv2.imencode('.jpg', img)[1].tobytes()


_JPEG = _small_jpeg()


@SETTINGS
@given(cut=st.integers(0, len(_JPEG)), height=st.integers(0, 65535),
       width=st.integers(0, 65535), patch=st.booleans(), max_pixels=st.integers(1, 1 << 24))
def test_jpeg_cut_or_resized_headers(cut, height, width, patch, max_pixels):
    """A real JPEG cut anywhere and/or with any frame size in its header."""
    data = bytearray(_JPEG[:cut])
    sof = _JPEG.index(b'\xff\xc0')
    if patch and cut >= sof + 9:
        data[sof + 5:sof + 7] = height.to_bytes(2, 'big')
        data[sof + 7:sof + 9] = width.to_bytes(2, 'big')
    try:
        view = decode_compressed('jpeg', bytes(data), max_pixels=max_pixels)
    except ImageFormatError:
        return
    h, w = view.array.shape[:2]
    assert h * w <= max_pixels
    if not patch:
        assert (h, w) == (24, 32) and cut == len(_JPEG)
