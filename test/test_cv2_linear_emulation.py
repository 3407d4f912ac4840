"""The GPU resize tables + integer arithmetic reproduce cv2.resize(INTER_LINEAR) exactly."""

import numpy as np
import pytest

from segformer_ros.config import Normalization, PreprocessConfig
from segformer_ros.cuda.resize_tables import emulate_resize, linear_table, resize_tables
from segformer_ros.errors import ConfigError
from segformer_ros.geometry import compute_geometry
from segformer_ros.preprocessing import preprocess

cv2 = pytest.importorskip('cv2')

# (src frame size, dst size): the sizes the lead checked, 2x, odd and tiny sizes.
SIZES = [((960, 540), (513, 513)), ((960, 540), (1024, 1024)), ((960, 540), (1024, 576)),
         ((1920, 1080), (513, 513)), ((1920, 1080), (1024, 1024)), ((1920, 1080), (512, 288)),
         ((1920, 1080), (960, 540)), ((960, 540), (97, 61)), ((960, 540), (2000, 1111)),
         ((960, 540), (3, 2)), ((960, 540), (1, 1))]


def _variants(bgr):
    return [bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)]


@pytest.mark.parametrize('src,dst', SIZES)
def test_tables_match_cv2_on_real_frames(street_frames_bgr, src, dst):
    for bgr in street_frames_bgr[:2]:
        if bgr.shape[1::-1] != src:
            bgr = cv2.resize(bgr, src, interpolation=cv2.INTER_LINEAR)
        xtab, ytab = resize_tables(src[0], src[1], dst[0], dst[1])
        for img in _variants(bgr):
            ref = cv2.resize(img, dst, interpolation=cv2.INTER_LINEAR)
            got = emulate_resize(img, xtab, ytab)
            assert got.shape == ref.shape
            bad = np.argwhere(got != ref)
            assert bad.size == 0, f'{img.shape} -> {dst}: {len(bad)} values differ, ' \
                                  f'first at {bad[:3].tolist()}'


def test_random_images_and_sizes_match_cv2():
    rng = np.random.default_rng(7)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        dh, dw = (int(v) for v in rng.integers(1, 140, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(emulate_resize(img, *resize_tables(w, h, dw, dh)), ref), \
            (h, w, dh, dw)


def test_upscale_edges_keep_the_vertical_weight():
    # 540 -> 1024 rows: output row 0 samples at -0.236, i.e. row -1 with weight 0.764;
    # OpenCV clamps the row index but keeps the weights (1 - 0.764, 0.764) * 2048.
    ytab = linear_table(540, 1024, vertical=True)
    assert ytab[0].tolist() == [0, 0, 484, 1564]
    xtab = linear_table(540, 1024, vertical=False)
    assert xtab[0].tolist() == [0, 1, 2048, 0]          # horizontal: clamped to (0, 0)
    assert xtab[-1].tolist() == [539, 539, 2048, 0]
    assert (ytab[:, 2] + ytab[:, 3] == 2048).all()


def test_identity_size_is_a_copy():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(emulate_resize(img, *resize_tables(16, 16, 16, 16)), img)


def test_kernel_math_reproduces_preprocess_bit_for_bit(street_frames_bgr):
    """Tables + normalization (mul then add, float32) == preprocessing.preprocess()."""
    norm = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    bgr = cv2.resize(street_frames_bgr[0], (1920, 1080), interpolation=cv2.INTER_LINEAR)
    for policy in ('stretch', 'letterbox'):
        cfg = PreprocessConfig(policy, 'rgb', norm, pad_value=114.0)
        ref, _ = preprocess(bgr, 'bgr', cfg, (513, 513))
        geo = compute_geometry(1080, 1920, 513, 513, policy)
        xtab, ytab = resize_tables(1920, 1080, geo.content_width, geo.content_height)
        content = emulate_resize(bgr, xtab, ytab)[:, :, ::-1]          # BGR -> RGB
        out = np.empty((3, 513, 513), np.float32)
        for c in range(3):
            s, b = np.float32(norm.scale[c]), np.float32(norm.bias[c])
            out[c] = np.float32(114.0) * s + b
            v = content[:, :, c].astype(np.float32) * s + b
            out[c, geo.content_top:geo.content_top + geo.content_height,
                geo.content_left:geo.content_left + geo.content_width] = v
        assert np.array_equal(out.view(np.uint32), ref[0].view(np.uint32)), policy


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match='expected positive resize sizes'):
        linear_table(0, 5, False)
    with pytest.raises(ConfigError, match='expected a uint8 image'):
        emulate_resize(np.zeros((2, 2), np.float32), *resize_tables(2, 2, 1, 1))
