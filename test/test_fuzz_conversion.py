"""Property tests: converters either return a correct array or raise ImageFormatError."""

import numpy as np
from hypothesis import HealthCheck, given, settings
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
