"""Where a camera frame lands in the model input, and back.

This module is the one definition of resize geometry shared by the CPU path
(preprocessing/postprocessing) and the GPU kernels, so both produce the same masks.

Conventions (the same as OpenCV's INTER_LINEAR / INTER_NEAREST_EXACT and PyTorch's
``align_corners=False``): pixel ``i`` covers ``[i, i + 1)`` and its centre is ``i + 0.5``.

* ``stretch`` (TAO / DeepStream default): the frame fills the whole input, aspect not kept.
* ``letterbox``: the frame is scaled by one factor to fit, centred, and the rest padded;
  on the way back the padding is cut away so the mask lines up with the camera image.
"""

from dataclasses import dataclass
from typing import Tuple

from .errors import ConfigError

RESIZE_POLICIES: Tuple[str, ...] = ('stretch', 'letterbox')


@dataclass(frozen=True)
class ResizeGeometry:
    """Placement of a ``frame_height x frame_width`` frame inside the model input.

    The frame occupies rows ``content_top .. content_top + content_height`` and columns
    ``content_left .. content_left + content_width`` of the ``input_height x input_width`` input.
    """

    frame_height: int
    frame_width: int
    input_height: int
    input_width: int
    content_top: int
    content_left: int
    content_height: int
    content_width: int

    def frame_to_map(self, map_height: int, map_width: int) -> Tuple[float, float, float, float]:
        """Affine map from frame pixel centres to continuous coordinates of a model-space map.

        ``map`` is any map aligned with the model input (the input itself, an id map, or
        logits at 1/4 resolution). Returns ``(sx, ox, sy, oy)`` such that frame column ``x``
        has its centre at map coordinate ``u = (x + 0.5) * sx + ox`` (likewise rows).
        Nearest sampling reads ``floor(u)``; bilinear sampling interpolates at ``u - 0.5``.
        """
        kx = map_width / self.input_width
        ky = map_height / self.input_height
        sx = self.content_width / self.frame_width * kx
        sy = self.content_height / self.frame_height * ky
        return sx, self.content_left * kx, sy, self.content_top * ky

    def input_to_frame(self) -> Tuple[float, float, float, float]:
        """Affine map from input pixel centres (inside the content) to frame coordinates.

        Returns ``(sx, ox, sy, oy)``: input column ``j`` samples the frame at
        ``x = (j + 0.5) * sx + ox - 0.5`` for bilinear interpolation (likewise rows).
        """
        sx = self.frame_width / self.content_width
        sy = self.frame_height / self.content_height
        return sx, -self.content_left * sx, sy, -self.content_top * sy


def compute_geometry(frame_height: int, frame_width: int, input_height: int,
                     input_width: int, policy: str = 'stretch') -> ResizeGeometry:
    """Compute how a frame is placed into a model input of the given size."""
    if min(frame_height, frame_width, input_height, input_width) <= 0:
        raise ConfigError(
            f'expected positive frame and input sizes, got frame {frame_width}x{frame_height}, '
            f'input {input_width}x{input_height}')
    if policy == 'stretch':
        return ResizeGeometry(frame_height, frame_width, input_height, input_width,
                              0, 0, input_height, input_width)
    if policy == 'letterbox':
        scale = min(input_height / frame_height, input_width / frame_width)
        content_h = min(input_height, max(1, round(frame_height * scale)))
        content_w = min(input_width, max(1, round(frame_width * scale)))
        top = (input_height - content_h) // 2
        left = (input_width - content_w) // 2
        return ResizeGeometry(frame_height, frame_width, input_height, input_width,
                              top, left, content_h, content_w)
    raise ConfigError(f'resize_policy must be one of {RESIZE_POLICIES}, got {policy!r}')
