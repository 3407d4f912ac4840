"""Metrics on hand-made label maps with known answers; the labelIds -> trainIds table."""

import math

import numpy as np
import pytest

from segformer_ros.errors import ConfigError
from segformer_ros.labels import label_ids_to_train_ids
from segformer_ros.metrics import (AgreementStats, ConfusionMatrix, format_table,
                                   logit_difference, mask_agreement, per_class_agreement)


def test_confusion_matrix_known_iou_with_ignore_and_absent_classes():
    # 4 classes. GT row-major 2x6; 255 and 7 (>= num_classes) are ignored.
    gt = np.array([[0, 0, 0, 1, 1, 255],
                   [2, 2, 0, 1, 7, 255]])
    pred = np.array([[0, 0, 1, 1, 1, 3],
                     [2, 0, 0, 9, 2, 0]])
    m = ConfusionMatrix(4)
    m.update(gt, pred)
    # Valid GT pixels: 9. Class 0: GT 4 px (cols 0,1,2 row0; col2 row1), pred 0 on
    # (0,0),(0,1),(1,1),(1,2) -> TP 3 ((0,0),(0,1),(1,2)), FP 1 ((1,1) GT 2), FN 1 ((0,2)).
    # Class 1: GT (0,3),(0,4),(1,3); pred 1 on (0,2),(0,3),(0,4) -> TP 2, FP 1, FN 1 (pred 9).
    # Class 2: GT (1,0),(1,1); pred 2 on (1,0) -> TP 1, FN 1 (GT 7 pixel's pred 2 ignored).
    # Class 3: nowhere in GT; its only prediction is on an ignored pixel -> absent (NaN).
    iou = m.iou()
    assert iou[0] == pytest.approx(3 / 5)
    assert iou[1] == pytest.approx(2 / 4)
    assert iou[2] == pytest.approx(1 / 2)
    assert math.isnan(iou[3])
    assert m.missed.tolist() == [0, 1, 0, 0]  # the 9 on a class-1 pixel
    s = m.summary(['a', 'b', 'c', 'd'])
    assert s['valid_pixels'] == 9
    assert s['mean_iou'] == pytest.approx((3 / 5 + 2 / 4 + 1 / 2) / 3)
    assert s['mean_iou_present_in_gt'] == s['mean_iou']  # no class only predicted
    assert s['classes_in_miou'] == 3  # the absent class 3 (NaN) is left out
    assert s['pixel_accuracy'] == pytest.approx(6 / 9)
    assert s['mean_accuracy'] == pytest.approx((3 / 4 + 2 / 3 + 1 / 2) / 3)
    assert s['classes_in_gt'] == 3
    d = s['per_class'][3]
    assert d['name'] == 'd' and d['iou'] is None and not d['present_in_gt']
    assert 'absent' in format_table(s)


def test_class_only_predicted_scores_zero_in_the_official_mean():
    # cityscapesscripts averages every class with TP + FP + FN > 0: the predicted-only
    # class 2 scores 0 and counts; the present-in-GT mean leaves it out.
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 2, 1, 1]])
    m = ConfusionMatrix(3)
    m.update(gt, pred)
    iou = m.iou()
    assert iou.tolist() == [pytest.approx(0.5), 1.0, 0.0]
    s = m.summary()
    assert s['mean_iou'] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert s['classes_in_miou'] == 3
    assert s['mean_iou_present_in_gt'] == pytest.approx(0.75)
    assert s['classes_in_gt'] == 2
    assert s['per_class'][2]['iou'] == 0.0 and not s['per_class'][2]['present_in_gt']
    assert 'predicted, not in GT: counts 0' in format_table(s)


def test_accumulation_equals_one_big_update_and_merge():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 6, size=(2, 20, 30))
    gt[gt == 5] = 255
    pred = rng.integers(0, 5, size=(2, 20, 30))
    one = ConfusionMatrix(5)
    one.update(gt, pred)
    parts = ConfusionMatrix(5)
    parts.update(gt[0], pred[0])
    other = ConfusionMatrix(5)
    other.update(gt[1], pred[1])
    parts.merge(other)
    assert (one.matrix == parts.matrix).all()
    assert one.matrix.sum() == np.count_nonzero(gt != 255)
    with pytest.raises(ConfigError):
        one.update(gt[0], pred[0][:, :5])


def test_mask_agreement_and_per_class():
    a = np.array([[0, 0, 1, 1], [2, 2, 255, 3]])
    b = np.array([[0, 1, 1, 1], [2, 2, 255, 0]])
    assert mask_agreement(a, b) == pytest.approx(6 / 8)
    iou = per_class_agreement(a, b, 5)
    assert iou[0] == pytest.approx(1 / 3)  # A: (0,0),(0,1); B: (0,0),(1,3); 1 shared
    assert iou[1] == pytest.approx(2 / 3)
    assert iou[2] == 1.0
    assert iou[3] == 0.0
    assert math.isnan(iou[4])
    assert mask_agreement(np.zeros((0, 3)), np.zeros((0, 3))) == 1.0
    with pytest.raises(ConfigError, match='same shape'):
        mask_agreement(a, b[:, :2])


def test_agreement_stats_over_frames_and_logits():
    stats = AgreementStats(3)
    a1 = np.zeros((2, 5), np.uint8)
    b1 = a1.copy()
    b1[0, 0] = 1
    assert stats.update(a1, b1) == pytest.approx(0.9)
    la = np.zeros((1, 3, 2, 2), np.float32)
    lb = la.copy()
    lb[0, 1, 1, 1] = -0.5
    lb[0, 2, 0, 0] = 0.25
    stats.update(a1, a1, la, lb)
    s = stats.summary(['x', 'y', 'z'])
    assert s['frames'] == 2
    assert s['pixel_agreement'] == pytest.approx(19 / 20)
    assert s['min_frame_agreement'] == pytest.approx(0.9)
    assert s['per_class_iou'] == {'x': pytest.approx(19 / 20), 'y': 0.0, 'z': None}
    assert s['logit_max_abs_diff'] == pytest.approx(0.5)
    assert s['logit_mean_abs_diff'] == pytest.approx(0.75 / 12)
    assert logit_difference(la, lb) == (pytest.approx(0.5), pytest.approx(0.75 / 12))


def test_label_ids_to_train_ids_spot_checks():
    ids = np.array([[7, 26, 0, -1], [8, 33, 1, 34]], dtype=np.int32)
    train = label_ids_to_train_ids(ids)
    assert train.dtype == np.uint8
    assert train.tolist() == [[0, 13, 255, 255], [1, 18, 255, 255]]
    assert label_ids_to_train_ids(np.array([24, 11], np.uint8)).tolist() == [11, 2]
