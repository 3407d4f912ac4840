"""Per-axis tables that make the GPU resize bit-identical to ``cv2.resize(INTER_LINEAR)``.

OpenCV resizes uint8 images with INTER_LINEAR in fixed point (``resize.cpp``:
``HResizeLinear`` with 11-bit coefficients, then the SIMD ``VResizeLinearVec_32s8u``
vertical pass, whose scalar tail uses the same formula). Per output index ``d`` of an
axis of ``src`` -> ``dst`` samples:

* ``scale = 1 / (dst / src)`` in double (OpenCV inverts ``inv_scale``; ``src / dst``
  differs in the last bit for many sizes), ``f = float32((d + 0.5) * scale - 0.5)``,
  ``s = floor(f)``, ``f = float32(f - s)``;
* horizontally ``s < 0`` gives ``(s, f) = (0, 0)`` and ``s >= src - 1`` gives
  ``(src - 1, 0)``; vertically the *row indices* are clamped to ``0..src-1`` but the
  weight ``f`` is kept (so the first and last rows of an upscale use two equal rows with
  weights that do not round like ``(2048, 0)``);
* coefficients ``c0 = rint(float32(1 - f) * 2048)``, ``c1 = rint(f * 2048)`` (int16).

Then per channel: ``H[r][x] = I[r][x0] * a0 + I[r][x1] * a1`` (int32) and
``out = ((b0 * (H[y0] >> 4)) >> 16) + ((b1 * (H[y1] >> 4)) >> 16) + 2) >> 2``.

Each table is int32 ``(n, 4)``: ``(i0, i1, c0, c1)`` per output index; the preprocess
kernel reads one row of each per pixel. :func:`emulate_resize` is the kernel's arithmetic
in numpy (the CPU tests check it against cv2 on real frames).
"""

from typing import Tuple

import numpy as np

from ..errors import ConfigError

COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (1 << 11)


def linear_table(src: int, dst: int, vertical: bool) -> np.ndarray:
    """Return the int32 ``(dst, 4)`` table ``(i0, i1, c0, c1)`` of one axis (see module doc)."""
    src, dst = int(src), int(dst)
    if src <= 0 or dst <= 0:
        raise ConfigError(f'expected positive resize sizes, got src={src} dst={dst}')
    scale = 1.0 / (dst / src)  # exactly OpenCV's double arithmetic
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if not vertical:
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= src - 1
        f[high], s[high] = 0, src - 1
    c0 = np.rint((np.float32(1) - f) * np.float32(COEF_SCALE)).astype(np.int64)
    c1 = np.rint(f * np.float32(COEF_SCALE)).astype(np.int64)
    out = np.empty((dst, 4), dtype=np.int32)
    out[:, 0] = np.clip(s, 0, src - 1)
    out[:, 1] = np.clip(s + 1, 0, src - 1)
    out[:, 2] = np.clip(c0, -32768, 32767)   # saturate_cast<short>
    out[:, 3] = np.clip(c1, -32768, 32767)
    return out


def resize_tables(src_w: int, src_h: int, dst_w: int,
                  dst_h: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return (column table, row table) for a ``src_w x src_h -> dst_w x dst_h`` resize."""
    return linear_table(src_w, dst_w, False), linear_table(src_h, dst_h, True)


def emulate_resize(img: np.ndarray, xtab: np.ndarray, ytab: np.ndarray) -> np.ndarray:
    """Resize a uint8 (H, W) or (H, W, C) image with the kernel's integer arithmetic."""
    if img.dtype != np.uint8:
        raise ConfigError(f'expected a uint8 image, got {img.dtype}')
    planes = img[:, :, None] if img.ndim == 2 else img
    im = planes.astype(np.int32)
    a0, a1 = xtab[None, :, 2, None], xtab[None, :, 3, None]
    h = im[:, xtab[:, 0]] * a0 + im[:, xtab[:, 1]] * a1
    b0, b1 = ytab[:, 2, None, None], ytab[:, 3, None, None]
    s0, s1 = h[ytab[:, 0]] >> 4, h[ytab[:, 1]] >> 4
    out = (((b0 * s0) >> 16) + ((b1 * s1) >> 16) + 2) >> 2
    out = np.clip(out, 0, 255).astype(np.uint8)
    return out[:, :, 0] if img.ndim == 2 else out
