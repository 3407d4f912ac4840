"""sensor_msgs/Image encoding names and what each one means for this package.

The names are the ones of ``sensor_msgs/image_encodings.hpp`` (the strings cv_bridge
uses). Each supported encoding maps to an :class:`EncodingInfo` telling the converter how
many channels and bytes per channel the buffer holds, the colour order of the channels,
and whether a conversion step is needed (16-bit, YUV 4:2:2, Bayer).

Decisions (documented here because the node's users will ask):

* Generic OpenCV encodings follow cv_bridge: ``8UC3`` / ``16UC3`` are treated as BGR and
  ``8UC4`` / ``16UC4`` as BGRA (OpenCV's default order), ``8UC1`` / ``16UC1`` as mono.
* 16-bit encodings are brought to 8 bits by keeping the high byte (``value >> 8``),
  honouring ``is_bigendian``; that is a zero-copy strided view of the high bytes.
* Bayer encodings (8 and 16 bit) are demosaiced with OpenCV (bilinear), YUV 4:2:2
  (``yuv422``/``uyvy`` and ``yuv422_yuy2``/``yuyv``) converted with OpenCV; both copy.
* Float (``32FC*``, ``64FC*``) and signed (``8SC*``, ``16SC*``, ``32SC*``) encodings are
  refused: they carry depth, disparity or other measurements, not a camera picture this
  model was trained on, and no scaling to 0..255 would be right for all of them.
  Two-channel generic encodings (``8UC2``, ``16UC2``) are refused for the same reason.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .errors import ImageFormatError


@dataclass(frozen=True)
class EncodingInfo:
    """Layout of one encoding's pixel buffer and how to turn it into 8-bit channels."""

    name: str
    channels: int            # channels stored per pixel in the buffer
    bytes_per_channel: int   # 1 or 2
    channel_order: str       # 'rgb', 'bgr' or 'gray' of the converted array
    has_alpha: bool          # converted array keeps a 4th (alpha) channel
    convert: Optional[str] = None  # None, or the cv2.COLOR_* name of a required conversion

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes one pixel occupies in the message buffer."""
        return self.channels * self.bytes_per_channel


def _info(name: str, channels: int, bpc: int, order: str, alpha: bool = False,
          convert: Optional[str] = None) -> EncodingInfo:
    return EncodingInfo(name, channels, bpc, order, alpha, convert)


# ROS bayer_XXXX names the 2x2 pattern starting at the top-left pixel; OpenCV's
# COLOR_BayerYY2BGR codes name it by the 2nd row's 2nd/3rd pixels, so the letters
# differ (this is exactly cv_bridge's table; the tests check it with pure-colour mosaics).
_BAYER_TO_CV: Dict[str, str] = {
    'rggb': 'COLOR_BayerBG2BGR', 'bggr': 'COLOR_BayerRG2BGR',
    'gbrg': 'COLOR_BayerGR2BGR', 'grbg': 'COLOR_BayerGB2BGR',
}

SUPPORTED_ENCODINGS: Dict[str, EncodingInfo] = {e.name: e for e in (
    _info('rgb8', 3, 1, 'rgb'), _info('bgr8', 3, 1, 'bgr'),
    _info('rgba8', 4, 1, 'rgb', True), _info('bgra8', 4, 1, 'bgr', True),
    _info('mono8', 1, 1, 'gray'),
    _info('rgb16', 3, 2, 'rgb'), _info('bgr16', 3, 2, 'bgr'),
    _info('rgba16', 4, 2, 'rgb', True), _info('bgra16', 4, 2, 'bgr', True),
    _info('mono16', 1, 2, 'gray'),
    _info('8UC1', 1, 1, 'gray'), _info('8UC3', 3, 1, 'bgr'), _info('8UC4', 4, 1, 'bgr', True),
    _info('16UC1', 1, 2, 'gray'), _info('16UC3', 3, 2, 'bgr'),
    _info('16UC4', 4, 2, 'bgr', True),
    _info('yuv422', 2, 1, 'bgr', convert='COLOR_YUV2BGR_UYVY'),
    _info('uyvy', 2, 1, 'bgr', convert='COLOR_YUV2BGR_UYVY'),
    _info('yuv422_yuy2', 2, 1, 'bgr', convert='COLOR_YUV2BGR_YUY2'),
    _info('yuyv', 2, 1, 'bgr', convert='COLOR_YUV2BGR_YUY2'),
) + tuple(_info(f'bayer_{p}{bits}', 1, bits // 8, 'bgr', convert=cv)
          for p, cv in _BAYER_TO_CV.items() for bits in (8, 16))}

_REFUSED_PREFIXES: Tuple[Tuple[str, str], ...] = (
    ('32FC', 'float images carry depth/disparity/measurements, not a camera picture'),
    ('64FC', 'float images carry depth/disparity/measurements, not a camera picture'),
    ('8SC', 'signed images are not camera pictures'),
    ('16SC', 'signed images are not camera pictures'),
    ('32SC', 'signed images are not camera pictures'),
    ('8UC2', 'two-channel images are not camera pictures'),
    ('16UC2', 'two-channel images are not camera pictures'),
)

# Encodings that array_to_image_fields can publish: name -> channels of a uint8 array.
PUBLISH_ENCODINGS: Dict[str, int] = {'mono8': 1, '8UC1': 1, 'rgb8': 3, 'bgr8': 3,
                                     'rgba8': 4, 'bgra8': 4}


def encoding_info(encoding: str) -> EncodingInfo:
    """Look up an encoding; raise ImageFormatError listing the supported ones if unknown."""
    info = SUPPORTED_ENCODINGS.get(encoding)
    if info is not None:
        return info
    supported = ', '.join(SUPPORTED_ENCODINGS)
    for prefix, why in _REFUSED_PREFIXES:
        if encoding.startswith(prefix):
            raise ImageFormatError(
                f'image encoding {encoding!r} is not supported: {why}, which this model was '
                f'not trained on; expected one of: {supported}. Publish the colour camera '
                f'topic (e.g. image_raw or image_rect_color) instead')
    raise ImageFormatError(
        f'unknown or unsupported image encoding {encoding!r}; expected one of: {supported} '
        f'(sensor_msgs/image_encodings names, case-sensitive)')
