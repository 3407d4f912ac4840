"""segformer-ros-eval on real Cityscapes ground truth vs a plain, independent reference.

The reference uses only ONNX Runtime, OpenCV and numpy, following the model cards
(../shared/models/*.MODEL.md): the whole frame resized to the model input with
cv2 INTER_LINEAR, RGB, raw 0..255 (both graphs normalise internally); DeepLab's id map and
ESPNetv2's argmax (channel 19 = void = unlabeled) back to the frame with pixel-centre nearest
(cv2 INTER_NEAREST_EXACT), or for ``exact`` ESPNetv2's logits bilinearly upsampled per channel
(cv2 INTER_LINEAR, half-pixel) before the argmax. IoU = TP / (GT + pred - TP) on labelled
pixels; an unlabeled prediction on a labelled pixel is a miss. mIoU: the official Cityscapes
mean over every class with TP + FP + FN > 0; also the mean over the classes present in the
labels (the tool's ``mean_iou_present_in_gt``).
"""

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

from segformer_ros.backends.onnxruntime_backend import stable_optimization_level
from shared_assets import cityscapes_root, deeplab_model_path, espnetv2_model

cv2 = pytest.importorskip('cv2')
ort = pytest.importorskip('onnxruntime')

NUM_CLASSES = 19


def _pairs(root: Path):
    images = sorted((root / 'leftImg8bit').glob('*_leftImg8bit.png'))
    assert images, f'no frames in {root}'
    for image in images:
        key = image.name[:-len('_leftImg8bit.png')]
        yield image, root / 'gtFine' / f'{key}_gtFine_labelTrainIds.png'


def _reference_masks(model: Path, root: Path, kind: str) -> Dict[str, np.ndarray]:
    """Masks per mode ('fast', 'exact' for logits; 'ids' for DeepLab), frames stacked."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = stable_optimization_level(ort)   # ORT < 1.24
    session = ort.InferenceSession(str(model), options, providers=['CPUExecutionProvider'])
    inp = session.get_inputs()[0]
    in_h, in_w = inp.shape[2], inp.shape[3]
    out: Dict[str, list] = {}
    for image, _ in _pairs(root):
        rgb = cv2.cvtColor(cv2.imread(str(image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        x = x.astype(np.float32).transpose(2, 0, 1)[None]
        y = session.run(None, {inp.name: x})[0][0]
        if kind == 'ids':
            ids = y.astype(np.uint8)
            out.setdefault('ids', []).append(
                cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST_EXACT))
            continue
        small = np.argmax(y, axis=0).astype(np.uint8)
        small[small >= NUM_CLASSES] = 255                      # void channel: unlabeled
        out.setdefault('fast', []).append(
            cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT))
        best = np.full((h, w), -np.inf, np.float32)
        ids = np.zeros((h, w), np.uint8)
        for c in range(y.shape[0]):
            up = cv2.resize(np.ascontiguousarray(y[c]), (w, h), interpolation=cv2.INTER_LINEAR)
            win = up > best
            best[win] = up[win]
            ids[win] = c if c < NUM_CLASSES else 255
        out.setdefault('exact', []).append(ids)
    return {k: np.stack(v) for k, v in out.items()}


def _miou(pred: np.ndarray, root: Path) -> Tuple[float, float, np.ndarray]:
    gt = np.stack([cv2.imread(str(label), cv2.IMREAD_UNCHANGED) for _, label in _pairs(root)])
    valid = gt != 255
    g, p = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
    tp = np.bincount(g[g == p], minlength=NUM_CLASSES)[:NUM_CLASSES]
    gt_px = np.bincount(g, minlength=NUM_CLASSES)[:NUM_CLASSES]
    pred_px = np.bincount(p[p < NUM_CLASSES], minlength=NUM_CLASSES)[:NUM_CLASSES]
    union = gt_px + pred_px - tp
    present, scored = gt_px > 0, union > 0
    iou = np.where(scored, tp / np.maximum(union, 1) * 100, np.nan)
    return float(iou[scored].mean()), float(iou[present].mean()), iou


def _tool(preset: str, root: Path, tmp_path: Path, *extra: str) -> dict:
    import json

    from segformer_ros.tools.evaluate import main

    target = tmp_path / f'{preset}{"_".join(extra)}.json'
    assert main(['--params', preset, '--images', str(root / 'leftImg8bit'),
                 '--labels', str(root / 'gtFine'), '--quiet', '--json', str(target),
                 '--set', 'num_threads=2', *extra]) == 0
    return json.loads(target.read_text())['metrics']


def _compare(metrics: dict, reference: Tuple[float, float, np.ndarray]) -> None:
    miou, miou_present, per_class = reference
    assert metrics['mean_iou'] * 100 == pytest.approx(miou, abs=0.1)
    assert metrics['mean_iou_present_in_gt'] * 100 == pytest.approx(miou_present, abs=0.1)
    tool = np.array([np.nan if c['iou'] is None else c['iou'] * 100
                     for c in metrics['per_class']])
    np.testing.assert_array_equal(np.isnan(tool), np.isnan(per_class))
    np.testing.assert_allclose(tool[~np.isnan(tool)], per_class[~np.isnan(per_class)],
                               atol=0.5)


def test_eval_espnetv2_matches_independent_reference(tmp_path):
    root, model = cityscapes_root(), espnetv2_model()
    reference = _reference_masks(model, root, 'logits')
    fast = _tool('espnetv2_cityscapes', root, tmp_path, '--model', str(model))
    exact = _tool('espnetv2_cityscapes', root, tmp_path, '--model', str(model),
                  '--set', 'upsample_mode=exact')
    ref_fast, ref_exact = _miou(reference['fast'], root), _miou(reference['exact'], root)
    _compare(fast, ref_fast)
    _compare(exact, ref_exact)
    # A trained model on real labels (the random-weight one scores a few %).
    assert fast['mean_iou'] > 0.5 and exact['mean_iou'] > 0.5


def test_eval_deeplab_matches_independent_reference(tmp_path):
    root, model = cityscapes_root(), deeplab_model_path()
    reference = _reference_masks(model, root, 'ids')
    metrics = _tool('deeplab_mobilenet_cityscapes', root, tmp_path)
    _compare(metrics, _miou(reference['ids'], root))
    assert metrics['mean_iou'] > 0.4
