"""Per-frame statistics of a class mask (the content of msg/SegmentationSummary.msg).

Field names and meanings are exactly those of the message (minus the header), so the node
can copy them one by one. Counting uses ``cv2.calcHist`` (exact for masks up to 2**24
pixels, np.bincount beyond), the region-of-interest mask is rasterized once per
(polygon, mask size) with ``cv2.fillPoly`` and cached, and the free-space boundary is one
vectorized argmax over the flipped non-drivable map.

Conventions:

* ROI vertices are normalized (x right, y down, 0..1); vertex ``(x, y)`` is placed at pixel
  coordinates ``(x * (width - 1), y * (height - 1))`` (so (0, 0)-(1, 1) covers every pixel),
  with 1/16-pixel precision; pixels on the polygon's edges count as inside (fillPoly).
* Fractions are over ``width * height``; ROI fractions over ``roi_pixel_count`` (0 when
  the ROI is empty). Ids >= len(class_names) count as unlabeled.
* Free space: columns are split into ``min(free_space_bins, width)`` bins with
  ``start_i = i * width // bins``; each bin reports the median of its columns' boundary
  rows, rounded down to a whole row.
"""

import functools
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .config import ClassConfig, SummaryConfig
from .errors import ImageFormatError

_EXACT_FLOAT_COUNT = 1 << 24  # float32 holds every integer up to here


@dataclass
class Summary:
    """One frame's summary; fields mirror msg/SegmentationSummary.msg (header excluded)."""

    width: int = 0
    height: int = 0
    class_names: List[str] = field(default_factory=list)
    class_pixel_counts: List[int] = field(default_factory=list)
    class_fractions: List[float] = field(default_factory=list)
    unlabeled_pixel_count: int = 0
    roi_polygon_x: List[float] = field(default_factory=list)
    roi_polygon_y: List[float] = field(default_factory=list)
    roi_pixel_count: int = 0
    roi_class_pixel_counts: List[int] = field(default_factory=list)
    roi_class_fractions: List[float] = field(default_factory=list)
    drivable_class_ids: List[int] = field(default_factory=list)
    drivable_fraction: float = 0.0
    roi_drivable_fraction: float = 0.0
    free_space_column_starts: List[int] = field(default_factory=list)
    free_space_rows: List[int] = field(default_factory=list)


@functools.lru_cache(maxsize=16)
def roi_mask(polygon: Tuple[Tuple[float, float], ...], height: int, width: int) -> np.ndarray:
    """Rasterize a normalized polygon to a read-only (H, W) uint8 mask of 0/1 (cached)."""
    import cv2
    shift = 4
    one = 1 << shift
    pts = np.array([[round(x * (width - 1) * one), round(y * (height - 1) * one)]
                    for x, y in polygon], dtype=np.int32)
    out = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(out, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    out.flags.writeable = False
    return out


def _histogram(mask: np.ndarray, where: Optional[np.ndarray] = None) -> np.ndarray:
    """256-bin histogram of a uint8 mask (optionally only where ``where`` is non-zero)."""
    import cv2
    if mask.size < _EXACT_FLOAT_COUNT:
        hist = cv2.calcHist([mask], [0], where, [256], [0, 256])
        return hist.ravel().astype(np.int64)
    values = mask.ravel() if where is None else mask[where.astype(bool)]
    return np.bincount(values, minlength=256)


def free_space_boundary(drivable: np.ndarray) -> np.ndarray:
    """Per column, the top row of the drivable run touching the bottom (height if none)."""
    height = drivable.shape[0]
    blocked = ~drivable[::-1]  # row 0 is now the bottom row
    first = np.argmax(blocked, axis=0)  # first blocked row counted from the bottom
    any_blocked = blocked[first, np.arange(blocked.shape[1])]
    return np.where(any_blocked, height - first, 0)


def compute_summary(mask: np.ndarray, classes: ClassConfig, config: SummaryConfig) -> Summary:
    """Compute the summary of a (H, W) uint8 class mask."""
    import cv2
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.ndim != 2 or mask.size == 0:
        raise ImageFormatError(f'expected a non-empty (H, W) uint8 mask, got {mask.dtype} '
                               f'{mask.shape}')
    height, width = mask.shape
    roi = roi_mask(tuple(tuple(map(float, v)) for v in config.roi_polygon), height, width)
    drivable_lut = np.zeros(256, dtype=np.uint8)
    drivable_lut[[int(i) for i in classes.drivable_ids]] = 1
    drivable = cv2.LUT(mask, drivable_lut).view(bool)
    return summary_from_counts(width, height, _histogram(mask), _histogram(mask, roi),
                               free_space_boundary(drivable), classes, config)


def summary_from_counts(width: int, height: int, counts: np.ndarray, roi_counts: np.ndarray,
                        boundary: np.ndarray, classes: ClassConfig,
                        config: SummaryConfig) -> Summary:
    """Assemble the summary from per-id histograms (256 bins) and the per-column boundary.

    Shared by the CPU path (:func:`compute_summary`) and the GPU pipeline, whose kernels
    produce the same histograms and boundary.
    """
    import cv2
    n = classes.num_classes
    total = height * width
    drivable_ids = [int(i) for i in classes.drivable_ids]
    class_counts = np.asarray(counts)[:n]
    unlabeled = total - int(class_counts.sum())
    roi_class_counts = np.asarray(roi_counts)[:n]
    roi = roi_mask(tuple(tuple(map(float, v)) for v in config.roi_polygon), height, width)
    roi_total = int(cv2.countNonZero(roi))
    boundary = np.asarray(boundary)
    bins = min(config.free_space_bins, width)
    starts = (np.arange(bins, dtype=np.int64) * width) // bins
    ends = np.append(starts[1:], width)
    rows = [int(np.floor(np.median(boundary[s:e]))) for s, e in zip(starts, ends)]

    def frac(values: np.ndarray, denom: int) -> List[float]:
        return [float(v) / denom for v in values] if denom else [0.0] * len(values)

    return Summary(
        width=width, height=height,
        class_names=list(classes.names),
        class_pixel_counts=[int(c) for c in class_counts],
        class_fractions=frac(class_counts, total),
        unlabeled_pixel_count=unlabeled,
        roi_polygon_x=[float(x) for x, _ in config.roi_polygon],
        roi_polygon_y=[float(y) for _, y in config.roi_polygon],
        roi_pixel_count=roi_total,
        roi_class_pixel_counts=[int(c) for c in roi_class_counts],
        roi_class_fractions=frac(roi_class_counts, roi_total),
        drivable_class_ids=drivable_ids,
        drivable_fraction=float(class_counts[drivable_ids].sum()) / total,
        roi_drivable_fraction=(float(roi_class_counts[drivable_ids].sum()) / roi_total
                               if roi_total else 0.0),
        free_space_column_starts=[int(s) for s in starts],
        free_space_rows=rows,
    )
