"""segformer-ros-eval's IoU and mIoU against the official Cityscapes scoring (issue 24).

cityscapesscripts (PyPI, installed without its dependencies by tools/setup.sh) scores the
masks the tool wrote (``--masks``) with its own ``evalPixelLevelSemanticLabeling``:
``evaluateImgLists`` over label-id PNGs, per-class IoU and the mean over the classes whose
IoU is not NaN. Both sides see the same files: the tool's train-id masks and the shared
frames' train-id labels are mapped to Cityscapes label ids with cityscapesscripts' own label
table (255 = unlabeled = label id 0, ignored in evaluation).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from shared_assets import cityscapes_root, espnetv2_model

cv2 = pytest.importorskip('cv2')
official = pytest.importorskip(
    'cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling',
    reason='cityscapesscripts is part of the dev environment (tools/requirements-nodeps.txt)')
from cityscapesscripts.helpers.labels import labels as cs_labels  # noqa: E402


def _train_to_label_ids() -> np.ndarray:
    """Lookup table train id -> Cityscapes label id; everything else -> 0 (unlabeled)."""
    lut = np.zeros(256, np.uint8)
    for label in cs_labels:
        if 0 <= label.trainId < 255 and not label.ignoreInEval:
            lut[label.trainId] = label.id
    return lut


def _write_ids(source: Path, target: Path, lut: np.ndarray) -> None:
    train = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    assert train is not None and train.ndim == 2, source
    assert cv2.imwrite(str(target), lut[train])


def _official_scores(pred_files, gt_files) -> dict:
    args = official.args
    args.quiet = True
    args.JSONOutput = False
    args.evalInstLevelScore = False   # needs *_instanceIds.png, which the shared frames lack
    args.evalPixelAccuracy = False
    result = official.evaluateImgLists([str(p) for p in pred_files],
                                       [str(g) for g in gt_files], args)
    per_class = result['classScores']
    scores = [v for v in per_class.values() if not math.isnan(v)]
    return {'per_class': per_class, 'miou': official.getScoreAverage(per_class, args),
            'miou_check': sum(scores) / len(scores)}


@pytest.mark.parametrize('mode', ['fast', 'exact'])
def test_eval_matches_cityscapesscripts(tmp_path, mode):
    from segformer_ros.tools.evaluate import main

    root, model = cityscapes_root(), espnetv2_model()
    masks = tmp_path / 'masks'
    report = tmp_path / 'eval.json'
    assert main(['--params', 'espnetv2_cityscapes', '--model', str(model),
                 '--images', str(root / 'leftImg8bit'), '--labels', str(root / 'gtFine'),
                 '--set', 'num_threads=2', '--set', f'upsample_mode={mode}',
                 '--masks', str(masks), '--quiet', '--json', str(report)]) == 0
    metrics = json.loads(report.read_text())['metrics']

    lut = _train_to_label_ids()
    pred_files, gt_files = [], []
    for label in sorted((root / 'gtFine').glob('*_gtFine_labelTrainIds.png')):
        key = label.name[:-len('_gtFine_labelTrainIds.png')]
        pred, gt = tmp_path / f'{key}_pred.png', tmp_path / f'{key}_gtFine_labelIds.png'
        _write_ids(masks / f'{key}_leftImg8bit.png', pred, lut)
        _write_ids(label, gt, lut)
        pred_files.append(pred)
        gt_files.append(gt)
    assert len(pred_files) == 3
    scores = _official_scores(pred_files, gt_files)

    # Per-class IoU: the 19 evaluated classes by name, NaN (absent) on both sides alike.
    ours = {c['name']: c['iou'] for c in metrics['per_class']}
    assert len(ours) == 19
    for name, iou in ours.items():
        theirs = scores['per_class'][name]
        if math.isnan(theirs):
            assert iou is None, name
        else:
            assert iou == pytest.approx(theirs, abs=1e-12), name
    assert metrics['mean_iou'] == pytest.approx(scores['miou'], abs=1e-12)
    assert scores['miou'] == pytest.approx(scores['miou_check'], abs=1e-12)
    # These frames lack some classes that the model predicts: the official mean is lower
    # than the present-in-GT mean (issue 24: the old figures were inflated).
    assert metrics['classes_in_miou'] > metrics['classes_in_gt']
    assert metrics['mean_iou'] < metrics['mean_iou_present_in_gt']
