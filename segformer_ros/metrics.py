"""Segmentation metrics (confusion matrix, IoU, accuracy) and backend agreement (no ROS).

Conventions, shared by segformer-ros-eval and segformer-ros-selfcheck:

* Ground truth pixels equal to ``ignore_index`` (255) or outside ``0..num_classes-1``
  are ignored.
* A prediction outside ``0..num_classes-1`` on a valid ground-truth pixel counts as a
  miss (a false negative of the true class, a false positive of no class).
* A class that appears neither in the ground truth nor in the predictions has IoU NaN
  ("absent"). ``mean_iou`` is the official Cityscapes mIoU (cityscapesscripts'
  ``evalPixelLevelSemanticLabeling``: the mean of every class with TP + FP + FN > 0, NaN
  classes left out), so a class predicted on labelled pixels but absent from the ground
  truth scores 0 and counts. ``mean_iou_present_in_gt`` averages only the classes present
  in the ground truth (higher on a few frames; equal once every class is present, as on
  the full val set). Mean accuracy averages the classes present in the ground truth.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ConfigError

IGNORE_INDEX = 255


def _check_shapes(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f'{what}: expected maps of the same shape, got {a.shape} and {b.shape}')


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` confusion matrix (rows GT, columns prediction).

    Predictions outside the classes are kept in :attr:`missed` (per GT class) so that they
    count against the true class without needing a column.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ConfigError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.missed = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one (ground truth, prediction) pair of label maps of the same shape."""
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        _check_shapes(gt, pred, 'confusion matrix update')
        k = self.num_classes
        g = gt.astype(np.int64, copy=False).ravel()
        p = pred.astype(np.int64, copy=False).ravel()
        valid = (g >= 0) & (g < k) & (g != self.ignore_index)
        in_range = (p >= 0) & (p < k)
        both = valid & in_range
        self.matrix += np.bincount(g[both] * k + p[both], minlength=k * k).reshape(k, k)
        self.missed += np.bincount(g[valid & ~in_range], minlength=k)

    def merge(self, other: 'ConfusionMatrix') -> None:
        """Add another matrix of the same size (e.g. from a worker)."""
        if other.num_classes != self.num_classes:
            raise ConfigError(f'cannot merge a {other.num_classes}-class matrix into a '
                              f'{self.num_classes}-class one')
        self.matrix += other.matrix
        self.missed += other.missed

    @property
    def gt_pixels(self) -> np.ndarray:
        """Valid ground-truth pixels per class."""
        return self.matrix.sum(axis=1) + self.missed

    @property
    def pred_pixels(self) -> np.ndarray:
        """Predicted pixels per class (on valid ground truth)."""
        return self.matrix.sum(axis=0)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes neither in the ground truth nor predicted."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.gt_pixels + self.pred_pixels - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall (TP / GT pixels); NaN for classes not in the ground truth."""
        tp = np.diag(self.matrix).astype(np.float64)
        gt = self.gt_pixels
        return np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)

    def summary(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """All metrics as plain Python values (JSON-ready; NaN becomes None)."""
        iou = self.iou()
        acc = self.class_accuracy()
        gt = self.gt_pixels
        present = gt > 0
        scored = ~np.isnan(iou)  # TP + FP + FN > 0: the official mean's classes
        total = int(gt.sum())
        names = list(class_names) if class_names is not None else \
            [str(i) for i in range(self.num_classes)]
        per_class: List[Dict[str, Any]] = []
        for i in range(self.num_classes):
            per_class.append({
                'id': i,
                'name': names[i] if i < len(names) else str(i),
                'iou': None if np.isnan(iou[i]) else float(iou[i]),
                'accuracy': None if np.isnan(acc[i]) else float(acc[i]),
                'gt_pixels': int(gt[i]),
                'pred_pixels': int(self.pred_pixels[i]),
                'present_in_gt': bool(present[i]),
            })
        return {
            'num_classes': self.num_classes,
            'valid_pixels': total,
            'mean_iou': float(np.mean(iou[scored])) if scored.any() else None,
            'mean_iou_present_in_gt': float(np.mean(iou[present])) if present.any() else None,
            'pixel_accuracy': float(np.trace(self.matrix) / total) if total else None,
            'mean_accuracy': float(np.mean(acc[present])) if present.any() else None,
            'classes_in_gt': int(present.sum()),
            'classes_in_miou': int(scored.sum()),
            'per_class': per_class,
        }


def mask_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two class masks hold the same id (1.0 for empty masks)."""
    a = np.asarray(a)
    b = np.asarray(b)
    _check_shapes(a, b, 'mask agreement')
    if a.size == 0:
        return 1.0
    return float(np.count_nonzero(a == b)) / a.size


def _class_overlap(a: np.ndarray, b: np.ndarray, num_classes: int
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Per-class (intersection, union) pixel counts of masks A and B."""
    k = num_classes
    ai = a.astype(np.int64, copy=False).ravel()
    bi = b.astype(np.int64, copy=False).ravel()
    ca = np.bincount(ai[(ai >= 0) & (ai < k)], minlength=k)
    cb = np.bincount(bi[(bi >= 0) & (bi < k)], minlength=k)
    inter = np.bincount(ai[(ai == bi) & (ai >= 0) & (ai < k)], minlength=k)
    return inter, ca + cb - inter


def _ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    out = np.full(inter.shape, np.nan, dtype=np.float64)
    nz = union > 0
    out[nz] = inter[nz] / union[nz]
    return out


def per_class_agreement(a: np.ndarray, b: np.ndarray, num_classes: int) -> np.ndarray:
    """Compute the IoU of mask A against mask B per class (NaN where neither has the class).

    Ids outside ``0..num_classes-1`` (e.g. 255) never match a class.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    _check_shapes(a, b, 'per-class agreement')
    return _ratio(*_class_overlap(a, b, num_classes))


class AgreementStats:
    """Accumulates how well two backends agree over frames (masks, and logits when given)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.frames = 0
        self.equal_pixels = 0
        self.total_pixels = 0
        self.frame_agreements: List[float] = []
        self.intersection = np.zeros(self.num_classes, dtype=np.int64)
        self.union = np.zeros(self.num_classes, dtype=np.int64)
        self.logit_max: Optional[float] = None
        self._logit_sum = 0.0
        self._logit_count = 0

    def update(self, mask_a: np.ndarray, mask_b: np.ndarray,
               logits_a: Optional[np.ndarray] = None,
               logits_b: Optional[np.ndarray] = None) -> float:
        """Add one frame; return its pixel agreement."""
        a = np.asarray(mask_a)
        b = np.asarray(mask_b)
        agreement = mask_agreement(a, b)
        self.frames += 1
        self.equal_pixels += int(np.count_nonzero(a == b))
        self.total_pixels += int(a.size)
        self.frame_agreements.append(agreement)
        inter, union = _class_overlap(a, b, self.num_classes)
        self.intersection += inter
        self.union += union
        if logits_a is not None and logits_b is not None:
            la = np.asarray(logits_a, dtype=np.float32)
            lb = np.asarray(logits_b, dtype=np.float32)
            _check_shapes(la, lb, 'logit difference')
            d = np.abs(la - lb)
            if d.size:
                top = float(d.max())
                self.logit_max = top if self.logit_max is None else max(self.logit_max, top)
                self._logit_sum += float(d.sum(dtype=np.float64))
                self._logit_count += int(d.size)
        return agreement

    @property
    def agreement(self) -> float:
        """Pixel agreement over all frames (1.0 before any frame)."""
        return self.equal_pixels / self.total_pixels if self.total_pixels else 1.0

    def summary(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """JSON-ready results: overall/min agreement, per-class IoU of A vs B, logit diff."""
        iou = _ratio(self.intersection, self.union)
        names = list(class_names) if class_names is not None else []
        return {
            'frames': self.frames,
            'pixel_agreement': self.agreement,
            'min_frame_agreement': min(self.frame_agreements) if self.frame_agreements else None,
            'per_class_iou': {
                (names[i] if i < len(names) else str(i)): (None if np.isnan(v) else float(v))
                for i, v in enumerate(iou)},
            'logit_max_abs_diff': self.logit_max,
            'logit_mean_abs_diff': (self._logit_sum / self._logit_count
                                    if self._logit_count else None),
        }


def logit_difference(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    """Return the (max, mean) absolute difference of two logit tensors of the same shape."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    _check_shapes(a, b, 'logit difference')
    if a.size == 0:
        return 0.0, 0.0
    d = np.abs(a - b)
    return float(d.max()), float(d.mean())


def format_table(summary: Dict[str, Any]) -> str:
    """Readable per-class table plus the headline numbers of :meth:`ConfusionMatrix.summary`."""
    def pct(v: Optional[float]) -> str:
        return '   -  ' if v is None else f'{100.0 * v:6.2f}'

    lines = [f'{"id":>3}  {"class":<16}{"IoU %":>7}{"Acc %":>8}{"GT px":>12}{"pred px":>12}']
    for row in summary['per_class']:
        note = '' if row['present_in_gt'] else \
            ('  (absent)' if row['iou'] is None else '  (predicted, not in GT: counts 0)')
        lines.append(f'{row["id"]:>3}  {row["name"][:15]:<16}{pct(row["iou"]):>7}'
                     f'{pct(row["accuracy"]):>8}{row["gt_pixels"]:>12}{row["pred_pixels"]:>12}'
                     f'{note}')
    lines.append(f'mIoU {pct(summary["mean_iou"]).strip()} % over {summary["classes_in_miou"]} '
                 f'classes (official Cityscapes rule: TP+FP+FN > 0); over the '
                 f'{summary["classes_in_gt"]} classes present in GT '
                 f'{pct(summary["mean_iou_present_in_gt"]).strip()} %')
    lines.append(f'pixel accuracy {pct(summary["pixel_accuracy"]).strip()} %; mean accuracy '
                 f'{pct(summary["mean_accuracy"]).strip()} %')
    return '\n'.join(lines)
