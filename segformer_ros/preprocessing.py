"""Camera frame (uint8, any channel order) to the model's float32 NCHW input.

One resize and one fused normalization pass per channel:

1. the frame is resized to the content size of :func:`~segformer_ros.geometry.compute_geometry`
   with ``cv2.resize(..., INTER_LINEAR)`` (half-pixel centres, the geometry contract);
   mono frames are resized as one plane and replicated, 4-channel frames are resized with
   their alpha and the alpha plane is then ignored (cheaper than dropping it at full size);
2. each model channel is written straight into the preallocated output as
   ``x * scale + bias`` (:attr:`Normalization.scale` / :attr:`Normalization.bias`, float32),
   which also does the HWC -> CHW transpose and the RGB/BGR reorder;
3. with ``letterbox`` the bands around the content get ``pad_value * scale + bias``.
"""

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .config import PreprocessConfig
from .conversion import ImageView
from .errors import ConfigError, ImageFormatError
from .geometry import ResizeGeometry, compute_geometry

Frame = Union[np.ndarray, ImageView]
FRAME_CHANNEL_ORDERS: Tuple[str, ...] = ('rgb', 'bgr', 'gray')


def unpack_frame(frame: Frame, channel_order: Optional[str]) -> Tuple[np.ndarray, str]:
    """Return (uint8 array (H, W) or (H, W, C in 1/3/4), channel order) of a frame."""
    if isinstance(frame, ImageView):
        array, order = frame.array, frame.channel_order
    else:
        array, order = np.asarray(frame), channel_order
    if order is None:
        raise ImageFormatError('expected a channel order (rgb, bgr or gray) with a bare '
                               'numpy frame, got None')
    if array.dtype != np.uint8:
        raise ImageFormatError(f'expected a uint8 frame, got {array.dtype}; convert 16-bit '
                               f'or float images to 8 bits first (see conversion.py)')
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        order = 'gray'
    elif array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageFormatError(f'expected a frame of shape (H, W), (H, W, 3) or (H, W, 4), '
                               f'got {array.shape}')
    elif order not in ('rgb', 'bgr'):
        raise ImageFormatError(f'expected channel order rgb or bgr for a {array.shape[2]}-'
                               f'channel frame, got {order!r}')
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f'expected a non-empty frame, got shape {array.shape}')
    return array, order


def _check_out(out: np.ndarray, shape: Tuple[int, ...]) -> None:
    if (out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous
            or not out.flags.writeable):
        raise ConfigError(f'preprocess output buffer must be a writeable C-contiguous float32 '
                          f'array of shape {shape}, got {out.dtype} {out.shape}')


def _fill(frame: Frame, channel_order: Optional[str], config: PreprocessConfig,
          input_hw: Tuple[int, int], dst: np.ndarray) -> ResizeGeometry:
    """Write one frame into ``dst`` (3, H, W) float32; return its geometry."""
    import cv2
    array, order = unpack_frame(frame, channel_order)
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    geo = compute_geometry(array.shape[0], array.shape[1], in_h, in_w, config.resize_policy)
    top, left = geo.content_top, geo.content_left
    ch, cw = geo.content_height, geo.content_width
    if (ch, cw) != array.shape[:2]:
        array = cv2.resize(array, (cw, ch), interpolation=cv2.INTER_LINEAR)
    # Contiguous planes make the per-channel passes below run at memory speed.
    planes = [array] if array.ndim == 2 else cv2.split(array)
    scale = config.normalization.scale
    bias = config.normalization.bias
    for c in range(3):
        if order == 'gray':
            src = planes[0]
        elif order == config.channel_order:
            src = planes[c]
        else:
            src = planes[2 - c]
        s, b = np.float32(scale[c]), np.float32(bias[c])
        plane = dst[c]
        region = plane[top:top + ch, left:left + cw]
        np.multiply(src, s, out=region, casting='unsafe')
        np.add(region, b, out=region)
        if (ch, cw) != (in_h, in_w):
            pad = np.float32(np.float32(config.pad_value) * s + b)
            plane[:top] = pad
            plane[top + ch:] = pad
            plane[top:top + ch, :left] = pad
            plane[top:top + ch, left + cw:] = pad
    return geo


def preprocess(frame: Frame, channel_order: Optional[str], config: PreprocessConfig,
               input_hw: Tuple[int, int],
               out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, ResizeGeometry]:
    """Turn one uint8 frame into a C-contiguous float32 (1, 3, H, W) batch.

    ``frame`` is an :class:`ImageView` (its channel order wins) or a uint8 array with
    ``channel_order`` in rgb/bgr/gray. ``out``, when given, must be a float32 (1, 3, H, W)
    C-contiguous array: it is filled in place and returned (no per-frame allocation).
    """
    shape = (1, 3, int(input_hw[0]), int(input_hw[1]))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        _check_out(out, shape)
    geo = _fill(frame, channel_order, config, input_hw, out[0])
    return out, geo


def preprocess_batch(frames: Sequence[Tuple[Frame, Optional[str]]], config: PreprocessConfig,
                     input_hw: Tuple[int, int], out: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, List[ResizeGeometry]]:
    """Preprocess several ``(frame, channel_order)`` pairs into one (N, 3, H, W) batch.

    Frames may differ in size and channel order (multi-camera batching); each gets its
    own geometry. ``out`` works as in :func:`preprocess` with shape (N, 3, H, W).
    """
    if not frames:
        raise ImageFormatError('expected at least one frame to batch, got none')
    shape = (len(frames), 3, int(input_hw[0]), int(input_hw[1]))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        _check_out(out, shape)
    geos = [_fill(f, order, config, input_hw, out[i]) for i, (f, order) in enumerate(frames)]
    return out, geos
