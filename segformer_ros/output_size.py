"""The published mask's size: ``output_resolution`` parsed, and its geometry (no ROS here).

``output_resolution`` is one of

* ``'input'``: the camera frame's size (the mask lines up with the image it came from);
* ``'model'``: the model-input geometry without letterbox padding;
* ``'WxH'`` (e.g. ``'640x480'``): an explicit size, typically a depth camera's, so that a
  consumer pairing the mask pixel for pixel with an organized point cloud (Nav2's
  semantic_segmentation_layer) gets equal sizes. The mask then covers the same field of
  view as the camera frame (letterbox padding cut away), scaled per axis to W x H.

Every size maps to one :class:`~segformer_ros.geometry.ResizeGeometry` whose "frame" is
the published mask, so nearest sampling (mask, confidence) and bilinear sampling
(``upsample_mode: exact``) use the same half-pixel rule at any published size, on the CPU
and in the GPU kernels alike.
"""

import re
from typing import Optional, Tuple, Union

from .errors import ConfigError
from .geometry import ResizeGeometry

NAMED_RESOLUTIONS: Tuple[str, ...] = ('input', 'model')
# Largest explicit side: the mask is one byte per pixel; 8192 also bounds the index tables.
MAX_SIDE = 8192
_WXH = re.compile(r'^\s*(\d+)\s*[xX]\s*(\d+)\s*$')


def parse_output_resolution(value: str) -> Union[str, Tuple[int, int]]:
    """Return ``'input'``, ``'model'`` or ``(width, height)``; ConfigError otherwise."""
    text = str(value).strip()
    if text in NAMED_RESOLUTIONS:
        return text
    match = _WXH.match(text)
    if not match:
        raise ConfigError(f"output_resolution must be 'input', 'model' or WIDTHxHEIGHT "
                          f"(e.g. '640x480'), got {value!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ConfigError(f'output_resolution {value!r}: width and height must be in '
                          f'1..{MAX_SIDE}, got {width}x{height}')
    return width, height


def output_resolution_problem(value: object) -> Optional[str]:
    """Why ``value`` is not a valid output_resolution, or None (for parameter validation)."""
    try:
        parse_output_resolution(str(value))
    except ConfigError as exc:
        return str(exc)
    return None


def size_text(width: int, height: int) -> str:
    """Return the output_resolution string of an explicit size (``'640x480'``)."""
    return f'{int(width)}x{int(height)}'


def published_geometry(geometry: ResizeGeometry, output_resolution: str) -> ResizeGeometry:
    """Return the geometry whose 'frame' is the published mask.

    Only the frame size changes: the content (the part of the model input the camera frame
    occupies) stays, so :meth:`ResizeGeometry.frame_to_map` maps published pixel centres
    onto the same field of view whatever the published size.
    """
    parsed = parse_output_resolution(output_resolution)
    g = geometry
    if parsed == 'input':
        return g
    if parsed == 'model':
        height, width = g.content_height, g.content_width
    else:
        width, height = parsed  # type: ignore[misc]
    return ResizeGeometry(height, width, g.input_height, g.input_width, g.content_top,
                          g.content_left, g.content_height, g.content_width)
