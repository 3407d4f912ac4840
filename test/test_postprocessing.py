"""Model output -> published mask (segformer_ros.postprocessing) on hand-built outputs."""

import math

import numpy as np
import pytest

from segformer_ros.backends.base import OutputKind
from segformer_ros.config import PostprocessConfig, PreprocessConfig
from segformer_ros.geometry import compute_geometry
from segformer_ros.postprocessing import (argmax_logits, ids_from_output, nearest_indices,
                                          published_geometry)
from segformer_ros.preprocessing import preprocess

FAST = PostprocessConfig(upsample_mode='fast')
EXACT = PostprocessConfig(upsample_mode='exact')


def _nearest_reference(ids, geo):
    """Explicit per-pixel floor((x + 0.5) * s + o), clipped to the map."""
    mh, mw = ids.shape
    sx, ox, sy, oy = geo.frame_to_map(mh, mw)
    out = np.zeros((geo.frame_height, geo.frame_width), ids.dtype)
    for y in range(geo.frame_height):
        r = min(max(math.floor((y + 0.5) * sy + oy), 0), mh - 1)
        for x in range(geo.frame_width):
            c = min(max(math.floor((x + 0.5) * sx + ox), 0), mw - 1)
            out[y, x] = ids[r, c]
    return out


def _bilinear_reference(plane, geo):
    """Explicit bilinear at u - 0.5, clamped to the content region of the map (float64)."""
    mh, mw = plane.shape
    sx, ox, sy, oy = geo.frame_to_map(mh, mw)
    lo_x, hi_x = ox, ox + sx * geo.frame_width
    lo_y, hi_y = oy, oy + sy * geo.frame_height
    fx0, lx = int(math.floor(lo_x)), int(math.ceil(hi_x)) - 1
    fy0, ly = int(math.floor(lo_y)), int(math.ceil(hi_y)) - 1
    out = np.zeros((geo.frame_height, geo.frame_width))
    p = plane.astype(np.float64)
    for y in range(geo.frame_height):
        v = min(max((y + 0.5) * sy + oy - 0.5, fy0), ly)
        y0 = int(math.floor(v))
        y1 = min(y0 + 1, ly)
        wy = v - y0
        for x in range(geo.frame_width):
            u = min(max((x + 0.5) * sx + ox - 0.5, fx0), lx)
            x0 = int(math.floor(u))
            x1 = min(x0 + 1, lx)
            wx = u - x0
            out[y, x] = ((1 - wy) * ((1 - wx) * p[y0, x0] + wx * p[y0, x1])
                         + wy * ((1 - wx) * p[y1, x0] + wx * p[y1, x1]))
    return out


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('frame_hw,input_hw,map_hw', [
    ((6, 10), (8, 8), (8, 8)), ((13, 7), (16, 16), (4, 4)), ((9, 31), (12, 20), (3, 5)),
    ((50, 30), (20, 20), (20, 20))])
def test_id_map_nearest_matches_formula(policy, frame_hw, input_hw, map_hw):
    geo = compute_geometry(*frame_hw, *input_hw, policy)
    ids = (np.arange(map_hw[0] * map_hw[1], dtype=np.int64) % 250).reshape(map_hw)
    mask = ids_from_output(ids, OutputKind.CLASS_IDS, geo, FAST, num_classes=250)
    assert mask.dtype == np.uint8 and mask.shape == frame_hw
    np.testing.assert_array_equal(mask, _nearest_reference(ids, geo).astype(np.uint8))


def test_letterbox_never_samples_padding():
    geo = compute_geometry(10, 40, 40, 40, 'letterbox')  # content rows 15..24
    ids = np.full((40, 40), 7, np.int64)
    ids[15:25] = 3
    mask = ids_from_output(ids, OutputKind.CLASS_IDS, geo, FAST, num_classes=19)
    assert np.all(mask == 3)


def test_out_of_range_ids_become_unlabeled():
    geo = compute_geometry(2, 3, 2, 3)
    ids = np.array([[0, 18, 19], [-1, 255, 1000]], np.int64)
    mask = ids_from_output(ids, OutputKind.CLASS_IDS, geo, FAST, num_classes=19)
    np.testing.assert_array_equal(mask, [[0, 18, 255], [255, 255, 255]])
    mask8 = ids_from_output(ids.clip(0, 255).astype(np.uint8), OutputKind.CLASS_IDS, geo,
                            FAST, num_classes=19)
    np.testing.assert_array_equal(mask8, [[0, 18, 255], [0, 255, 255]])


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
def test_model_resolution_is_content_size(policy):
    geo = compute_geometry(300, 500, 64, 64, policy)
    cfg = PostprocessConfig(output_resolution='model')
    ids = np.random.default_rng(0).integers(0, 19, (64, 64))
    mask = ids_from_output(ids, OutputKind.CLASS_IDS, geo, cfg, 19)
    assert mask.shape == (geo.content_height, geo.content_width)
    top, left = geo.content_top, geo.content_left
    np.testing.assert_array_equal(
        mask, ids[top:top + geo.content_height, left:left + geo.content_width])
    logits = np.random.default_rng(1).standard_normal((19, 16, 16)).astype(np.float32)
    for mode in ('fast', 'exact'):
        m = ids_from_output(logits, OutputKind.LOGITS, geo,
                            PostprocessConfig(upsample_mode=mode, output_resolution='model'), 19)
        assert m.shape == (geo.content_height, geo.content_width)
    assert published_geometry(geo, 'input') is geo


def test_fast_logits_argmax_then_nearest():
    logits = np.zeros((3, 2, 2), np.float32)
    logits[0, 0, 0] = 5       # class 0 top-left
    logits[1, 0, 1] = 5       # class 1 top-right
    logits[2, 1, :] = 5       # class 2 bottom row
    geo = compute_geometry(4, 4, 8, 8)
    mask = ids_from_output(logits, OutputKind.LOGITS, geo, FAST, 3)
    np.testing.assert_array_equal(mask, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])


def test_non_finite_logits():
    logits = np.zeros((3, 1, 5), np.float32)
    logits[:, 0, 0] = [np.nan, 1.0, 0.5]        # NaN never wins -> 1
    logits[:, 0, 1] = [np.nan, np.nan, np.nan]  # all non-finite -> 255
    logits[:, 0, 2] = [-np.inf, np.nan, 2.0]    # -> 2
    logits[:, 0, 3] = [0.0, np.inf, 1e30]       # +inf wins -> 1
    logits[:, 0, 4] = [-np.inf, np.inf, np.nan]  # all non-finite -> 255
    np.testing.assert_array_equal(argmax_logits(logits, 3), [[1, 255, 2, 1, 255]])
    geo = compute_geometry(1, 5, 1, 5)
    for cfg in (FAST, EXACT):
        mask = ids_from_output(logits, OutputKind.LOGITS, geo, cfg, 3)
        np.testing.assert_array_equal(mask, [[1, 255, 2, 1, 255]])


def test_more_logit_channels_than_classes():
    logits = np.zeros((4, 1, 2), np.float32)
    logits[3, 0, 0] = 9
    logits[1, 0, 1] = 9
    geo = compute_geometry(1, 2, 1, 2)
    for cfg in (FAST, EXACT):
        np.testing.assert_array_equal(
            ids_from_output(logits, OutputKind.LOGITS, geo, cfg, 3), [[255, 1]])


@pytest.mark.parametrize('policy,frame_hw,input_hw,map_hw', [
    ('stretch', (23, 37), (16, 16), (4, 4)),       # integral crop: cv2.resize path
    ('letterbox', (12, 40), (40, 40), (10, 10)),   # content rows 14..26 -> 3.5 cells: numpy path
    ('letterbox', (20, 40), (40, 40), (10, 10)),   # content rows 10..30 -> 2.5..7.5 cells
    ('letterbox', (16, 32), (32, 32), (8, 8)),     # content rows 8..24 -> 2..6 cells: integral
])
def test_exact_matches_explicit_bilinear_argmax(policy, frame_hw, input_hw, map_hw):
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((5,) + map_hw).astype(np.float32)
    geo = compute_geometry(*frame_hw, *input_hw, policy)
    mask = ids_from_output(logits, OutputKind.LOGITS, geo, EXACT, 5)
    up = np.stack([_bilinear_reference(p, geo) for p in logits])
    ref = np.argmax(up, axis=0)
    # Allow disagreement only where the top two reference scores are within float error.
    top2 = np.sort(up, axis=0)[-2:]
    near_tie = (top2[1] - top2[0]) < 1e-4
    assert np.all((mask == ref) | near_tie)


def test_exact_boundary_is_sharper_than_fast():
    # Two classes, logit difference a ramp across 4 cells: bilinear puts the boundary at the
    # zero crossing (frame column 16 of 32), fast puts it at a cell edge.
    ramp = np.array([-1.5, -0.5, 0.5, 1.5], np.float32)
    logits = np.zeros((2, 1, 4), np.float32)
    logits[1, 0] = ramp
    geo = compute_geometry(1, 32, 1, 4)
    exact = ids_from_output(logits, OutputKind.LOGITS, geo, EXACT, 2)
    fast = ids_from_output(logits, OutputKind.LOGITS, geo, FAST, 2)
    np.testing.assert_array_equal(exact[0], [0] * 16 + [1] * 16)
    np.testing.assert_array_equal(fast[0], [0] * 16 + [1] * 16)
    ramp2 = np.array([-2.0, -1.0, 0.25, 1.0], np.float32)   # crossing inside cell 2
    logits[1, 0] = ramp2
    exact = ids_from_output(logits, OutputKind.LOGITS, geo, EXACT, 2)
    fast = ids_from_output(logits, OutputKind.LOGITS, geo, FAST, 2)
    # u - 0.5 where value crosses 0: between cells 1 and 2 at fraction 0.8 -> u = 2.3,
    # i.e. frame x = 2.3 * 8 - 0.5 = 17.9 -> first class-1 column is 18.
    assert list(exact[0]).index(1) == 18
    assert list(fast[0]).index(1) == 16


def test_nearest_indices_are_cached():
    geo = compute_geometry(1080, 1920, 512, 512)
    a = nearest_indices(geo, 128, 128)
    b = nearest_indices(geo, 128, 128)
    assert a[0] is b[0] and a[1] is b[1]
    assert not a[0].flags.writeable


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('kind', ['ids', 'fast', 'exact'])
def test_geometry_round_trip_rectangle(policy, kind):
    """A bright rectangle in the frame comes back in the same place (+-1 px / +-1 cell)."""
    fh, fw = 270, 480
    top, bottom, left, right = 100, 190, 150, 330
    frame = np.zeros((fh, fw, 3), np.uint8)
    frame[top:bottom, left:right] = 255
    batch, geo = preprocess(frame, 'rgb', PreprocessConfig(resize_policy=policy), (128, 128))
    bright = batch[0, 0] > 127.5  # the "model": class 1 where the input is bright
    if kind == 'ids':
        out, tol_y, tol_x = bright.astype(np.int64), 1, 1
        cfg = FAST
    else:
        # Logits at 1/4 resolution: mean of the 4x4 block; 1 logit cell = 4 input px.
        score = bright.reshape(32, 4, 32, 4).mean(axis=(1, 3)).astype(np.float32)
        out = np.stack([np.full_like(score, 0.5), score])
        cfg = FAST if kind == 'fast' else EXACT
        tol_y = math.ceil(4 * fh / geo.content_height / 2) + 1
        tol_x = math.ceil(4 * fw / geo.content_width / 2) + 1
    out_kind = OutputKind.CLASS_IDS if kind == 'ids' else OutputKind.LOGITS
    mask = ids_from_output(out, out_kind, geo, cfg, 2)
    assert mask.shape == (fh, fw)
    rows = np.where(mask.any(axis=1))[0]
    cols = np.where(mask.any(axis=0))[0]
    assert abs(rows[0] - top) <= tol_y and abs(rows[-1] + 1 - bottom) <= tol_y
    assert abs(cols[0] - left) <= tol_x and abs(cols[-1] + 1 - right) <= tol_x
    inner = mask[top + tol_y:bottom - tol_y, left + tol_x:right - tol_x]
    assert inner.all()
