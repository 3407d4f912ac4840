"""Model output (logits or class-id map) to a uint8 class mask at the published size.

Published geometry (``PostprocessConfig.output_resolution``):

* ``'input'``: the camera frame's ``frame_height x frame_width`` (the mask lines up with
  the image it came from; letterbox padding is cut away);
* ``'model'``: the model-input geometry without the letterbox padding, i.e.
  ``content_height x content_width`` (for ``stretch`` that is the full model input size).
  Cheaper to publish when the camera is much larger than the model.
* ``'WxH'``: an explicit size (a depth camera's), same field of view (:mod:`.output_size`).

Sampling follows :meth:`ResizeGeometry.frame_to_map` (half-pixel centres):

* id maps, and logits in ``'fast'`` mode (argmax at logit resolution first), use nearest
  sampling ``index = floor((x + 0.5) * sx + ox)``, clipped to the content region; the index
  vectors are cached per (geometry, map shape), the gather is two ``np.take`` calls;
* logits in ``'exact'`` mode are upsampled channel by channel with bilinear interpolation
  at ``u - 0.5`` (``align_corners=False``, what Hugging Face's
  ``post_process_semantic_segmentation`` / ``torch.nn.functional.interpolate`` do), clamped
  at the content region's edges, and a running argmax keeps memory at a few planes.

Trade-off: ``fast`` costs one argmax at logit resolution plus a uint8 gather (a few ms at
1080p); ``exact`` costs one float resize and compare per class at the published
resolution (tens of ms at 1080p for 19 classes) and gives smoother class boundaries; the
two agree on most pixels, differing only in a band about one logit cell wide along
boundaries (docs/benchmarks.md has measured numbers).

Ids outside ``0 .. num_classes - 1`` become 255 (unlabeled). Non-finite logits: NaN
never wins (it counts as -inf); a pixel whose logits are all non-finite gets 255.
"""

import functools
import math
from typing import Tuple

import numpy as np

from .backends.base import OutputKind
from .config import PostprocessConfig
from .errors import ModelError
from .geometry import ResizeGeometry
from .labels import UNLABELED
from .output_size import published_geometry  # noqa: F401 - re-exported (public name)

_F32_MAX = float(np.finfo(np.float32).max)


def _content_span(offset: float, scale: float, frame_size: int,
                  map_size: int) -> Tuple[float, float]:
    """Continuous [start, end) of the content region along one map axis."""
    start = offset
    end = offset + scale * frame_size
    return max(0.0, start), min(float(map_size), end)


@functools.lru_cache(maxsize=64)
def nearest_indices(geometry: ResizeGeometry, map_height: int,
                    map_width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row and column index vectors of nearest sampling from a map to the frame (cached).

    ``rows[y] = floor((y + 0.5) * sy + oy)`` and likewise for columns, clipped to the
    content region of the map (and to the map).
    """
    sx, ox, sy, oy = geometry.frame_to_map(map_height, map_width)

    def axis(n: int, s: float, o: float, size: int) -> np.ndarray:
        lo, hi = _content_span(o, s, n, size)
        idx = np.floor((np.arange(n, dtype=np.float64) + 0.5) * s + o)
        first = min(max(int(math.floor(lo)), 0), size - 1)
        last = max(min(int(math.ceil(hi)) - 1, size - 1), first)
        idx = np.clip(idx, first, last).astype(np.intp)
        idx.flags.writeable = False
        return idx

    return (axis(geometry.frame_height, sy, oy, map_height),
            axis(geometry.frame_width, sx, ox, map_width))


def _bilinear_axis(n: int, s: float, o: float,
                   size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return indices (i0, i1) and weights w1 of bilinear sampling at u - 0.5 (clamped)."""
    lo, hi = _content_span(o, s, n, size)
    first = min(max(int(math.floor(lo)), 0), size - 1)
    last = max(min(int(math.ceil(hi)) - 1, size - 1), first)
    pos = (np.arange(n, dtype=np.float64) + 0.5) * s + o - 0.5
    pos = np.clip(pos, first, last)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, last)
    return i0, i1, (pos - i0).astype(np.float32)


def ids_to_uint8(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Cast a class-id map to uint8, mapping ids outside 0..num_classes-1 to 255."""
    if ids.dtype == np.uint8:
        if num_classes >= UNLABELED:
            return ids
        return np.where(ids < num_classes, ids, np.uint8(UNLABELED))
    if np.issubdtype(ids.dtype, np.signedinteger) and num_classes > np.iinfo(ids.dtype).max:
        bad = ids < 0   # int8, > 127 classes: viewed unsigned, -100 would pass as id 156
    elif np.issubdtype(ids.dtype, np.signedinteger):
        # Negative ids viewed as unsigned are huge: one comparison catches both ends.
        bad = ids.view(np.dtype(ids.dtype.str.replace('i', 'u'))) >= num_classes
    else:
        bad = ids >= num_classes
    out = ids.astype(np.uint8)
    if bad.any():
        out[bad] = UNLABELED
    return out


def _gather(map_u8: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.empty((rows.shape[0], cols.shape[0]), dtype=np.uint8)
    np.take(np.take(map_u8, rows, axis=0), cols, axis=1, out=out)
    return out


def _finite_logits(logits: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Return (logits without NaN/Inf, mask of pixels whose logits are all non-finite)."""
    if np.isfinite(logits).all():
        return logits, np.zeros(logits.shape[1:], dtype=bool)
    finite = np.isfinite(logits)
    invalid = ~finite.any(axis=0)
    # NaN and -inf can never win; +inf wins over any finite value.
    clean = np.nan_to_num(logits.astype(np.float32), nan=-_F32_MAX, posinf=_F32_MAX,
                          neginf=-_F32_MAX)
    return clean, invalid


def argmax_logits(logits: np.ndarray, num_classes: int) -> np.ndarray:
    """Argmax over channels at logit resolution (uint8; 255 for invalid pixels/classes)."""
    clean, invalid = _finite_logits(logits)
    ids = np.argmax(clean, axis=0).astype(np.uint8)
    if invalid.any():
        ids[invalid] = UNLABELED
    if logits.shape[0] > num_classes:
        ids = ids_to_uint8(ids, num_classes)
    return ids


def _exact_upsample_argmax(logits: np.ndarray, target: ResizeGeometry,
                           num_classes: int) -> np.ndarray:
    import cv2
    clean, invalid = _finite_logits(logits)
    channels, map_h, map_w = clean.shape
    out_h, out_w = target.frame_height, target.frame_width
    sx, ox, sy, oy = target.frame_to_map(map_h, map_w)
    x0, x1 = _content_span(ox, sx, out_w, map_w)
    y0, y1 = _content_span(oy, sy, out_h, map_h)
    integral = all(abs(v - round(v)) < 1e-6 for v in (x0, x1, y0, y1))
    if integral:
        crop = (slice(int(round(y0)), int(round(y1))), slice(int(round(x0)), int(round(x1))))

        def upsample(c: int, dst: np.ndarray) -> None:
            # cv2.resize INTER_LINEAR on float32 uses float weights at u - 0.5 with edge
            # clamping: exactly torch's align_corners=False on the content crop.
            cv2.resize(clean[c][crop], (out_w, out_h), dst=dst, interpolation=cv2.INTER_LINEAR)
    else:
        # Letterbox content that does not start on a whole logit cell: separable numpy.
        ry0, ry1, wy = _bilinear_axis(out_h, sy, oy, map_h)
        rx0, rx1, wx = _bilinear_axis(out_w, sx, ox, map_w)
        wy = wy[:, None]

        def upsample(c: int, dst: np.ndarray) -> None:
            plane = clean[c]
            rows = plane[ry0] * (1 - wy) + plane[ry1] * wy
            np.multiply(rows[:, rx0], 1 - wx, out=dst)
            dst += rows[:, rx1] * wx

    best = np.empty((out_h, out_w), dtype=np.float32)
    cand = np.empty_like(best)
    better = np.empty((out_h, out_w), dtype=np.uint8)
    ids = np.zeros((out_h, out_w), dtype=np.uint8)
    upsample(0, best)
    for c in range(1, channels):
        upsample(c, cand)
        # Strictly greater: on ties the lower class id wins, as np.argmax does.
        cv2.compare(cand, best, cv2.CMP_GT, dst=better)
        cv2.max(best, cand, dst=best)
        # better is 0/255: ids = (ids & ~better) | (c & better)
        cv2.bitwise_and(ids, cv2.bitwise_not(better), dst=ids)
        cv2.bitwise_or(ids, np.bitwise_and(better, np.uint8(c)), dst=ids)
    if invalid.any():
        rows, cols = nearest_indices(target, map_h, map_w)
        ids[_gather(invalid.view(np.uint8), rows, cols).view(bool)] = UNLABELED
    if channels > num_classes:
        ids = ids_to_uint8(ids, num_classes)
    return ids


def ids_from_output(output: np.ndarray, kind: OutputKind, geometry: ResizeGeometry,
                    config: PostprocessConfig, num_classes: int) -> np.ndarray:
    """Turn one canonical backend output item into a uint8 mask at the published size.

    ``output`` is ``(C, h, w)`` float logits (``OutputKind.LOGITS``) or an ``(H, W)``
    integer id map (``OutputKind.CLASS_IDS``), both in model-input geometry.
    """
    target = published_geometry(geometry, config.output_resolution)
    if kind is OutputKind.CLASS_IDS:
        if output.ndim != 2:
            raise ModelError(f'expected one (H, W) class-id map, got shape {output.shape}')
        ids = ids_to_uint8(output, num_classes)
    elif kind is OutputKind.LOGITS:
        if output.ndim != 3 or output.shape[0] < 1:
            raise ModelError(f'expected one (C, h, w) logits array, got shape {output.shape}')
        if config.upsample_mode == 'exact':
            return _exact_upsample_argmax(output, target, num_classes)
        ids = argmax_logits(output, num_classes)
    else:
        raise ModelError(f'unknown output kind {kind!r}')
    rows, cols = nearest_indices(target, ids.shape[0], ids.shape[1])
    return _gather(ids, rows, cols)


def confidence_from_logits(logits: np.ndarray, geometry: ResizeGeometry,
                           config: PostprocessConfig) -> np.ndarray:
    """Per-pixel confidence: 255 * max softmax probability, uint8, at the published size.

    Computed at logit resolution (one softmax per logit cell, numerically stable) and
    sampled to the published size with the same nearest rule as the 'fast' mask, so each
    mask pixel's confidence comes from the logit cell that decided its class. Pixels whose
    logits are all non-finite get 0.
    """
    if logits.ndim != 3 or logits.shape[0] < 1:
        raise ModelError(f'expected one (C, h, w) logits array, got shape {logits.shape}')
    clean, invalid = _finite_logits(logits)
    peak = clean.max(axis=0)
    # max softmax = 1 / sum(exp(l - max)); float32 is plenty for a 0..255 result.
    denominator = np.exp(clean - peak[None], dtype=np.float32).sum(axis=0)
    confidence = np.rint(255.0 / denominator).astype(np.uint8)
    if invalid.any():
        confidence[invalid] = 0
    target = published_geometry(geometry, config.output_resolution)
    rows, cols = nearest_indices(target, confidence.shape[0], confidence.shape[1])
    return _gather(confidence, rows, cols)
