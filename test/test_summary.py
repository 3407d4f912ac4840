"""Per-frame summary statistics (segformer_ros.summary) on hand-built masks."""

import numpy as np
import pytest

from segformer_ros.config import ClassConfig, SummaryConfig
from segformer_ros.errors import ImageFormatError
from segformer_ros.summary import Summary, compute_summary, free_space_boundary, roi_mask

CLASSES = ClassConfig()  # Cityscapes, drivable = road (0)
FULL = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def test_fields_match_the_message():
    from pathlib import Path
    msg = Path(__file__).resolve().parents[1] / 'msg' / 'SegmentationSummary.msg'
    names = [line.split()[1] for line in msg.read_text().splitlines()
             if line.strip() and not line.startswith('#') and 'Header' not in line]
    assert names == list(Summary.__dataclass_fields__)


def test_counts_are_bincount_and_unlabeled_collects_the_rest():
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 1, 5, 13, 18, 19, 200, 255], np.uint8), size=(37, 53))
    s = compute_summary(mask, CLASSES, SummaryConfig(roi_polygon=FULL))
    bc = np.bincount(mask.ravel(), minlength=256)
    assert s.class_pixel_counts == list(bc[:19])
    assert s.unlabeled_pixel_count == int(bc[19:].sum())
    assert sum(s.class_pixel_counts) + s.unlabeled_pixel_count == 37 * 53
    np.testing.assert_allclose(s.class_fractions, bc[:19] / (37 * 53))
    assert (s.width, s.height) == (53, 37)
    assert s.class_names == list(CLASSES.names)
    # Full-frame ROI: same counts.
    assert s.roi_pixel_count == 37 * 53
    assert s.roi_class_pixel_counts == s.class_pixel_counts
    assert s.drivable_class_ids == [0]
    assert s.drivable_fraction == pytest.approx(bc[0] / (37 * 53))
    assert s.roi_drivable_fraction == pytest.approx(s.drivable_fraction)


def test_rectangular_roi_counts():
    # 11 x 21 mask; ROI x 0.25..0.75 of 20 -> columns 5..15, y 0.5..1 of 10 -> rows 5..10.
    mask = np.full((11, 21), 2, np.uint8)
    mask[8:, :] = 0
    roi = ((0.25, 0.5), (0.75, 0.5), (0.75, 1.0), (0.25, 1.0))
    s = compute_summary(mask, CLASSES, SummaryConfig(roi_polygon=roi))
    assert s.roi_pixel_count == 11 * 6
    assert s.roi_class_pixel_counts[0] == 11 * 3
    assert s.roi_class_pixel_counts[2] == 11 * 3
    assert s.roi_drivable_fraction == pytest.approx(0.5)
    assert s.roi_class_fractions[2] == pytest.approx(0.5)
    assert s.roi_polygon_x == [0.25, 0.75, 0.75, 0.25]
    assert s.roi_polygon_y == [0.5, 0.5, 1.0, 1.0]
    expected = np.zeros((11, 21), np.uint8)
    expected[5:11, 5:16] = 1
    np.testing.assert_array_equal(roi_mask(roi, 11, 21), expected)
    assert roi_mask(roi, 11, 21) is roi_mask(roi, 11, 21)  # cached


def test_free_space_staircase():
    h, w = 10, 8
    mask = np.full((h, w), 2, np.uint8)  # building
    heights = [0, 1, 2, 3, 4, 5, 10, 7]   # drivable run length from the bottom per column
    for c, n in enumerate(heights):
        mask[h - n:, c] = 0
    mask[0:2, 7] = 0      # drivable pixels above a break do not count
    mask[4, 6] = 1        # break inside column 6 -> run is rows 5..9
    boundary = free_space_boundary(mask == 0)
    np.testing.assert_array_equal(boundary, [10, 9, 8, 7, 6, 5, 5, 3])
    s = compute_summary(mask, CLASSES, SummaryConfig(roi_polygon=FULL, free_space_bins=4))
    assert s.free_space_column_starts == [0, 2, 4, 6]
    # medians of (10, 9), (8, 7), (6, 5), (5, 3) rounded down.
    assert s.free_space_rows == [9, 7, 5, 4]
    s1 = compute_summary(mask, CLASSES, SummaryConfig(roi_polygon=FULL, free_space_bins=1))
    assert s1.free_space_column_starts == [0] and s1.free_space_rows == [6]
    s_many = compute_summary(mask, CLASSES, SummaryConfig(roi_polygon=FULL, free_space_bins=50))
    assert s_many.free_space_column_starts == list(range(8))
    assert s_many.free_space_rows == [10, 9, 8, 7, 6, 5, 5, 3]


def test_uneven_bins_and_drivable_set():
    mask = np.zeros((4, 10), np.uint8)
    mask[:, 3:] = 1  # sidewalk
    classes = ClassConfig(drivable_ids=(0, 1))
    s = compute_summary(mask, classes, SummaryConfig(roi_polygon=FULL, free_space_bins=3))
    assert s.free_space_column_starts == [0, 3, 6]
    assert s.free_space_rows == [0, 0, 0]
    assert s.drivable_fraction == pytest.approx(1.0)
    s2 = compute_summary(mask, CLASSES, SummaryConfig(roi_polygon=FULL, free_space_bins=3))
    assert s2.free_space_rows == [0, 4, 4]
    assert s2.drivable_fraction == pytest.approx(0.3)


def test_bad_mask():
    with pytest.raises(ImageFormatError, match='uint8 mask'):
        compute_summary(np.zeros((3, 3), np.int64), CLASSES, SummaryConfig())
