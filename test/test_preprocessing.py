"""Frame -> normalized NCHW float32 (segformer_ros.preprocessing) against slow references."""

import numpy as np
import pytest

from segformer_ros.config import Normalization, PreprocessConfig
from segformer_ros.conversion import image_fields_to_array
from segformer_ros.errors import ConfigError, ImageFormatError
from segformer_ros.geometry import compute_geometry
from segformer_ros.preprocessing import preprocess, preprocess_batch

IMAGENET = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


def _frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _bilinear_reference(frame, geo):
    """Explicit half-pixel bilinear resize of ``frame`` to the content size (float64)."""
    sx, ox, sy, oy = geo.input_to_frame()
    h, w = frame.shape[:2]
    out = np.zeros((geo.content_height, geo.content_width, frame.shape[2]))
    f = frame.astype(np.float64)
    for j in range(geo.content_height):
        y = (j + geo.content_top + 0.5) * sy + oy - 0.5
        y = min(max(y, 0.0), h - 1.0)
        y0 = int(np.floor(y))
        y1 = min(y0 + 1, h - 1)
        fy = y - y0
        for i in range(geo.content_width):
            x = (i + geo.content_left + 0.5) * sx + ox - 0.5
            x = min(max(x, 0.0), w - 1.0)
            x0 = int(np.floor(x))
            x1 = min(x0 + 1, w - 1)
            fx = x - x0
            out[j, i] = ((1 - fy) * ((1 - fx) * f[y0, x0] + fx * f[y0, x1])
                         + fy * ((1 - fx) * f[y1, x0] + fx * f[y1, x1]))
    return out


def _normalize_reference(content_rgb, geo, cfg):
    """(content already in the model's channel order) -> (1, 3, H, W), padding included."""
    mean = np.array(cfg.normalization.mean)
    std = np.array(cfg.normalization.std)
    out = np.empty((3, geo.input_height, geo.input_width))
    for c in range(3):
        out[c] = (cfg.pad_value - mean[c]) / std[c]
        out[c, geo.content_top:geo.content_top + geo.content_height,
            geo.content_left:geo.content_left + geo.content_width] = \
            (content_rgb[:, :, c] - mean[c]) / std[c]
    return out[None]


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('frame_hw,input_hw', [((30, 50), (16, 24)), ((17, 9), (20, 20)),
                                               ((40, 40), (24, 32))])
def test_resize_matches_explicit_bilinear(policy, frame_hw, input_hw):
    frame = _frame(*frame_hw)
    cfg = PreprocessConfig(resize_policy=policy)  # identity normalization, rgb
    batch, geo = preprocess(frame, 'rgb', cfg, input_hw)
    assert geo == compute_geometry(*frame_hw, *input_hw, policy)
    ref = _normalize_reference(_bilinear_reference(frame, geo), geo, cfg)
    # cv2's uint8 INTER_LINEAR uses 11-bit fixed-point weights and rounds to uint8.
    assert np.abs(batch - ref).max() <= 1.0 + 1e-6


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('frame_order', ['rgb', 'bgr'])
@pytest.mark.parametrize('model_order', ['rgb', 'bgr'])
@pytest.mark.parametrize('norm', [IMAGENET, Normalization.from_nvinfer(1 / 255.0),
                                  Normalization.from_nvinfer(0.017, (123.0, 117.0, 104.0))])
def test_normalization_and_channel_orders(policy, frame_order, model_order, norm):
    import cv2
    frame = _frame(45, 80, seed=1)
    cfg = PreprocessConfig(resize_policy=policy, channel_order=model_order,
                           normalization=norm, pad_value=114.0)
    batch, geo = preprocess(frame, frame_order, cfg, (32, 48))
    assert batch.dtype == np.float32 and batch.shape == (1, 3, 32, 48)
    assert batch.flags.c_contiguous
    content = cv2.resize(frame, (geo.content_width, geo.content_height),
                         interpolation=cv2.INTER_LINEAR).astype(np.float64)
    if frame_order != model_order:
        content = content[:, :, ::-1]
    ref = _normalize_reference(content, geo, cfg)
    np.testing.assert_allclose(batch, ref, rtol=1e-5, atol=1e-5)


def test_letterbox_padding_value_and_placement():
    frame = np.full((10, 40, 3), 200, np.uint8)
    cfg = PreprocessConfig(resize_policy='letterbox', pad_value=50.0)
    batch, geo = preprocess(frame, 'rgb', cfg, (40, 40))
    assert (geo.content_top, geo.content_height, geo.content_width) == (15, 10, 40)
    assert np.all(batch[0, :, :15] == 50.0) and np.all(batch[0, :, 25:] == 50.0)
    assert np.all(batch[0, :, 15:25] == 200.0)


def test_mono_is_replicated_and_alpha_dropped():
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    cfg = PreprocessConfig(normalization=IMAGENET)
    b_gray, _ = preprocess(gray, 'gray', cfg, (16, 16))
    b_rgb, _ = preprocess(np.repeat(gray[:, :, None], 3, axis=2), 'rgb', cfg, (16, 16))
    np.testing.assert_allclose(b_gray, b_rgb, rtol=1e-6)
    rgba = np.concatenate([_frame(20, 30), rng.integers(0, 256, (20, 30, 1), np.uint8)], 2)
    b_rgba, _ = preprocess(rgba, 'rgb', cfg, (16, 16))
    b_plain, _ = preprocess(np.ascontiguousarray(rgba[:, :, :3]), 'rgb', cfg, (16, 16))
    np.testing.assert_array_equal(b_rgba, b_plain)


def test_image_view_input_and_strided_views():
    # A padded-step bgr8 message view and a 16-bit view (non-contiguous) both work.
    img = _frame(12, 10)
    step = 10 * 3 + 4
    buf = bytearray(step * 12)
    for y in range(12):
        buf[y * step:y * step + 30] = img[y].tobytes()
    view = image_fields_to_array('bgr8', 12, 10, step, buf)
    cfg = PreprocessConfig()
    b1, _ = preprocess(view, None, cfg, (12, 10))  # no resize: straight from the view
    np.testing.assert_array_equal(b1[0], img[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))
    wide = (img.astype(np.uint16) << 8 | 0x7F).astype('<u2')
    view16 = image_fields_to_array('rgb16', 12, 10, 60, wide.tobytes())
    b2, _ = preprocess(view16, None, cfg, (8, 8))
    b3, _ = preprocess(img, 'rgb', cfg, (8, 8))
    np.testing.assert_array_equal(b2, b3)


def test_output_buffer_is_reused():
    cfg = PreprocessConfig()
    out = np.empty((1, 3, 16, 24), np.float32)
    batch, _ = preprocess(_frame(30, 40), 'rgb', cfg, (16, 24), out=out)
    assert batch is out
    fresh, _ = preprocess(_frame(30, 40), 'rgb', cfg, (16, 24))
    np.testing.assert_array_equal(out, fresh)
    with pytest.raises(ConfigError, match='float32 array of shape'):
        preprocess(_frame(30, 40), 'rgb', cfg, (16, 24), out=np.empty((1, 3, 16, 25), np.float32))


def test_batch_of_different_cameras():
    cfg = PreprocessConfig(resize_policy='letterbox', normalization=IMAGENET)
    a, b = _frame(30, 40, 1), _frame(50, 20, 2)
    batch, geos = preprocess_batch([(a, 'rgb'), (b, 'bgr')], cfg, (24, 24))
    assert batch.shape == (2, 3, 24, 24) and len(geos) == 2
    np.testing.assert_array_equal(batch[0:1], preprocess(a, 'rgb', cfg, (24, 24))[0])
    np.testing.assert_array_equal(batch[1:2], preprocess(b, 'bgr', cfg, (24, 24))[0])
    assert geos[1] == compute_geometry(50, 20, 24, 24, 'letterbox')


@pytest.mark.parametrize('frame,order,match', [
    (np.zeros((4, 4, 3), np.float32), 'rgb', 'uint8'),
    (np.zeros((4, 4, 2), np.uint8), 'rgb', 'shape'),
    (np.zeros((4, 4, 3), np.uint8), 'gray', 'rgb or bgr'),
    (np.zeros((4, 4, 3), np.uint8), None, 'channel order'),
    (np.zeros((0, 4, 3), np.uint8), 'rgb', 'non-empty'),
])
def test_bad_frames_are_refused(frame, order, match):
    with pytest.raises(ImageFormatError, match=match):
        preprocess(frame, order, PreprocessConfig(), (8, 8))
