"""Mask colouring and blending (segformer_ros.overlay)."""

import numpy as np
import pytest

from segformer_ros.errors import ConfigError, ImageFormatError
from segformer_ros.labels import CITYSCAPES_PALETTE, palette_lut
from segformer_ros.overlay import blend_overlay, colorize, overlay_channel_order

LUT = palette_lut(CITYSCAPES_PALETTE)


def _mask():
    mask = np.zeros((4, 6), np.uint8)
    mask[0, :3] = 13   # car (0, 0, 142)
    mask[1] = 255      # unlabeled
    mask[2, 1] = 40    # id without a colour
    mask[3] = 10       # sky (70, 130, 180)
    return mask


def test_colorize_uses_the_lut_in_rgb_and_bgr():
    mask = _mask()
    rgb = colorize(mask, LUT)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], (0, 0, 142))
    np.testing.assert_array_equal(rgb[3, 5], (70, 130, 180))
    np.testing.assert_array_equal(rgb[1, 0], (0, 0, 0))
    np.testing.assert_array_equal(rgb, LUT[mask])
    np.testing.assert_array_equal(colorize(mask, LUT, 'bgr'), LUT[mask][:, :, ::-1])


@pytest.mark.parametrize('order', ['rgb', 'bgr'])
def test_blend_keeps_frame_order_and_unlabeled(order):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    mask = _mask()
    colour = LUT[mask] if order == 'rgb' else LUT[mask][:, :, ::-1]
    for alpha in (0.0, 0.3, 0.5, 1.0):
        out = blend_overlay(frame, mask, LUT, alpha, order)
        ref = np.rint((1 - alpha) * frame + alpha * colour.astype(float))
        labeled = mask != 255
        assert np.abs(out[labeled].astype(int) - ref[labeled]).max() <= 1
        np.testing.assert_array_equal(out[~labeled], frame[~labeled])
    np.testing.assert_array_equal(blend_overlay(frame, mask, LUT, 0.0, order), frame)
    assert overlay_channel_order(order) == order


def test_blend_mono_and_rgba_frames():
    gray = np.full((4, 6), 100, np.uint8)
    out = blend_overlay(gray, _mask(), LUT, 1.0, 'gray')
    assert overlay_channel_order('gray') == 'rgb'
    np.testing.assert_array_equal(out[0, 0], (0, 0, 142))
    np.testing.assert_array_equal(out[1, 0], (100, 100, 100))
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = 50
    rgba[..., 3] = 7
    out = blend_overlay(rgba, _mask(), LUT, 0.0, 'bgr')
    assert out.shape == (4, 6, 3) and np.all(out == 50)


def test_blend_resizes_frame_to_model_resolution_mask():
    frame = np.full((40, 60, 3), 80, np.uint8)
    out = blend_overlay(frame, _mask(), LUT, 0.5, 'rgb')
    assert out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out[1], np.full((6, 3), 80))


def test_blend_1080p_real_size():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    mask = np.zeros((1080, 1920), np.uint8)
    out = blend_overlay(frame, mask, LUT, 1.0, 'rgb')
    assert np.all(out == np.array(CITYSCAPES_PALETTE[0], np.uint8))


def test_bad_inputs():
    with pytest.raises(ConfigError, match=r'\[0, 1\]'):
        blend_overlay(np.zeros((4, 6, 3), np.uint8), _mask(), LUT, 1.5, 'rgb')
    with pytest.raises(ImageFormatError, match='uint8 mask'):
        colorize(np.zeros((4, 6), np.int32), LUT)
    with pytest.raises(ConfigError, match='256, 3'):
        colorize(_mask(), LUT[:19])
    with pytest.raises(ImageFormatError, match='channel order'):
        blend_overlay(np.zeros((4, 6, 3), np.uint8), _mask(), LUT, 0.5, 'xyz')
