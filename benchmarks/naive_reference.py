"""Straightforward implementations of the CPU stages, as a baseline for the benchmark.

This is how the stages are commonly written without attention to copies and passes:
copying conversions, float math on the full-size image, per-channel full-resolution
upsampling of logits, per-class Python loops for colouring and statistics. It computes the
same things as the optimized modules (the benchmark checks the masks agree) and is never
used by the node.
"""

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np


def naive_convert(data: Any, height: int, width: int, step: int) -> np.ndarray:
    """Copy message bytes into a new array, then copy the rows out of the padded layout."""
    # bytes() copy, then np.array copy (not via a list: that alone takes ~0.5 s at 1080p).
    flat = np.array(bytearray(bytes(data)), dtype=np.uint8)
    rows = flat[:step * height].reshape(height, step)
    return rows[:, :width * 3].reshape(height, width, 3).copy()


def naive_preprocess(frame_rgb: np.ndarray, mean: Sequence[float], std: Sequence[float],
                     input_hw: Tuple[int, int]) -> np.ndarray:
    """Resize, then float math on HWC, then transpose and make contiguous (several copies)."""
    import cv2
    resized = cv2.resize(frame_rgb, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_LINEAR)
    x = resized.astype(np.float32)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def naive_upsample_argmax(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize every logit channel to full resolution (float), then argmax there."""
    import cv2
    up = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR)
                   for c in logits])
    return np.argmax(up, axis=0).astype(np.uint8)


def naive_ids_upsample(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an id map to the frame with INTER_NEAREST (the model card's reference)."""
    import cv2
    return cv2.resize(ids.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)


def naive_overlay(frame: np.ndarray, mask: np.ndarray, colors: Sequence[Sequence[int]],
                  alpha: float) -> np.ndarray:
    """Blend colour into the frame class by class with boolean masks."""
    out = frame.copy()
    for c, colour in enumerate(colors):
        sel = mask == c
        out[sel] = ((1 - alpha) * frame[sel] + alpha * np.array(colour)).astype(np.uint8)
    return out


def naive_summary(mask: np.ndarray, num_classes: int,
                  roi_polygon: Sequence[Tuple[float, float]], drivable_ids: Sequence[int],
                  bins: int) -> Dict[str, Any]:
    """Per-class loops for counts, a fresh ROI raster, a per-column loop for free space."""
    import cv2
    h, w = mask.shape
    counts = [int((mask == c).sum()) for c in range(num_classes)]
    roi = np.zeros((h, w), np.uint8)
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in roi_polygon],
                   dtype=np.int32)
    cv2.fillPoly(roi, [pts], 1)
    roi_b = roi.astype(bool)
    roi_counts = [int(((mask == c) & roi_b).sum()) for c in range(num_classes)]
    drivable = np.isin(mask, list(drivable_ids))
    boundary: List[int] = []
    for x in range(w):
        row = h
        for y in range(h - 1, -1, -1):
            if not drivable[y, x]:
                break
            row = y
        boundary.append(row)
    nb = min(bins, w)
    starts = [i * w // nb for i in range(nb)]
    ends = starts[1:] + [w]
    rows = [int(np.floor(np.median(boundary[s:e]))) for s, e in zip(starts, ends)]
    return {'class_pixel_counts': counts, 'roi_class_pixel_counts': roi_counts,
            'roi_pixel_count': int(roi_b.sum()), 'free_space_rows': rows}


def naive_message(msg: Any, array: np.ndarray) -> None:
    """Fill a sensor_msgs/Image's data the usual way: ``msg.data = array.tobytes()``."""
    msg.height, msg.width = array.shape[:2]
    msg.step = array.shape[1] * (array.shape[2] if array.ndim == 3 else 1)
    msg.data = array.tobytes()
