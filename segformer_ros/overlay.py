"""Class mask to colours, and colours blended over the camera frame.

Colours come from a 256-entry RGB lookup table (:func:`segformer_ros.labels.palette_lut`).
Choice for unlabeled pixels (255, or any id without a colour in a blend): the overlay keeps
the camera pixel unchanged there, so "no prediction" never looks like a class. The overlay
is returned in the frame's own channel order (rgb8 in -> rgb8 out, bgr8 -> bgr8); mono
frames give an RGB overlay and 4-channel frames lose their alpha.
Colouring is ``cv2.merge`` + ``cv2.LUT`` (about 3 ms at 1080p, versus 23 ms for
``lut[mask]``), blending is ``cv2.addWeighted`` (about 1 ms).
"""

from typing import Tuple

import numpy as np

from .errors import ConfigError, ImageFormatError
from .labels import UNLABELED


def _lut3(lut: np.ndarray, channel_order: str) -> np.ndarray:
    lut = np.asarray(lut, dtype=np.uint8)
    if lut.shape != (256, 3):
        raise ConfigError(f'expected a (256, 3) uint8 colour table (labels.palette_lut), '
                          f'got shape {lut.shape}')
    if channel_order == 'bgr':
        lut = lut[:, ::-1]
    return np.ascontiguousarray(lut).reshape(256, 1, 3)


def colorize(mask: np.ndarray, lut: np.ndarray, channel_order: str = 'rgb') -> np.ndarray:
    """Map a (H, W) uint8 mask to an (H, W, 3) colour image through ``lut`` (RGB rows)."""
    import cv2
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ImageFormatError(f'expected a (H, W) uint8 mask, got {mask.dtype} {mask.shape}')
    return cv2.LUT(cv2.merge([mask, mask, mask]), _lut3(lut, channel_order))


def _frame3(frame: np.ndarray, channel_order: str) -> Tuple[np.ndarray, str]:
    """Bring a frame to (H, W, 3) uint8 and return it with its (rgb/bgr) channel order."""
    import cv2
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ImageFormatError(f'expected a uint8 frame, got {frame.dtype}')
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2 or channel_order == 'gray':
        if frame.ndim != 2:
            raise ImageFormatError(f'expected a (H, W) frame for channel order gray, '
                                   f'got {frame.shape}')
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB), 'rgb'
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ImageFormatError(f'expected a frame of shape (H, W), (H, W, 3) or (H, W, 4), '
                               f'got {frame.shape}')
    if channel_order not in ('rgb', 'bgr'):
        raise ImageFormatError(f'expected channel order rgb, bgr or gray, got {channel_order!r}')
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return frame, channel_order


def overlay_channel_order(channel_order: str) -> str:
    """Channel order of the overlay :func:`blend_overlay` returns for a frame of this order."""
    return 'rgb' if channel_order == 'gray' else channel_order


def blend_overlay(frame: np.ndarray, mask: np.ndarray, lut: np.ndarray, alpha: float,
                  channel_order: str) -> np.ndarray:
    """Blend class colours over ``frame``: ``(1 - alpha) * frame + alpha * colour``.

    Returns (H, W, 3) uint8 in ``overlay_channel_order(channel_order)``, at the mask's size
    (the frame is resized with INTER_AREA when the mask is published at model resolution).
    Unlabeled pixels (255) keep the frame's value. ``alpha`` may change every call.
    """
    import cv2
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f'overlay alpha must be in [0, 1], got {alpha}')
    base, order = _frame3(frame, channel_order)
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ImageFormatError(f'expected a (H, W) uint8 mask, got {mask.dtype} {mask.shape}')
    if base.shape[:2] != mask.shape:
        base = cv2.resize(base, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA)
    colour = colorize(mask, lut, order)
    out = cv2.addWeighted(base, 1.0 - float(alpha), colour, float(alpha), 0.0)
    unlabeled = cv2.compare(mask, UNLABELED, cv2.CMP_EQ)
    if cv2.countNonZero(unlabeled):
        cv2.copyTo(base, unlabeled, out)
    return out
