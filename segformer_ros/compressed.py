"""sensor_msgs/CompressedImage (JPEG / PNG) to numpy, with the size checked before decoding.

image_transport's ``compressed`` plugin writes ``format`` as e.g. ``"jpeg"``, ``"png"`` or
``"rgb8; jpeg compressed bgr8"``. The container is recognised from the data's magic bytes
(the format string is only used in messages and to refuse ``compressedDepth``), the image
size is read from the JPEG SOFn marker or the PNG IHDR chunk with a few bytes of parsing,
and an image over ``max_pixels`` is refused before the decoder allocates anything.
"""

from typing import Any, Optional, Tuple

import numpy as np

from .conversion import DEFAULT_MAX_PIXELS, ImageView
from .errors import ImageFormatError

_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not SOFs.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}


def _jpeg_header(buf: memoryview, fmt: str) -> Tuple[int, int, int]:
    """Return (height, width, components) from the first SOFn marker of a JPEG stream."""
    pos, n = 2, len(buf)
    while pos < n:
        if buf[pos] != 0xFF:
            raise ImageFormatError(f'corrupt {fmt} data: expected a JPEG marker at byte {pos}, '
                                   f'got 0x{buf[pos]:02X}')
        while pos < n and buf[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = buf[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # EOI / SOS before any SOF
            break
        if pos + 2 > n:
            break
        length = (buf[pos] << 8) | buf[pos + 1]
        if length < 2:
            raise ImageFormatError(f'corrupt {fmt} data: JPEG segment length {length} < 2')
        if marker in _JPEG_SOF:
            if pos + 8 > n:
                break
            height = (buf[pos + 3] << 8) | buf[pos + 4]
            width = (buf[pos + 5] << 8) | buf[pos + 6]
            return height, width, buf[pos + 7]
        pos += length
    raise ImageFormatError(f'corrupt or truncated {fmt} data: no JPEG SOF marker (frame size) '
                           f'found in {n} bytes')


def _png_header(buf: memoryview, fmt: str) -> Tuple[int, int, int]:
    """Return (height, width, colour type) from a PNG's IHDR chunk."""
    if len(buf) < 26 or bytes(buf[12:16]) != b'IHDR':
        raise ImageFormatError(f'corrupt or truncated {fmt} data: expected a PNG IHDR chunk '
                               f'after the signature, got {len(buf)} bytes')
    width = int.from_bytes(bytes(buf[16:20]), 'big')
    height = int.from_bytes(bytes(buf[20:24]), 'big')
    return height, width, buf[25]


def _check_jpeg_end(buf: np.ndarray, fmt: str) -> None:
    """Refuse a JPEG that does not end with its EOI marker (FF D9): cut short or garbled.

    libjpeg conceals a damaged scan (it fills the rest of the picture with grey and only
    prints a warning), so such a frame would otherwise be segmented as if it were real.
    Zero or whitespace padding after the marker, which some MJPEG cameras add, is accepted.
    """
    tail = bytes(buf[-65536:]).rstrip(b'\x00\r\n ')
    if not tail.endswith(b'\xff\xd9'):
        raise ImageFormatError(
            f'corrupt or truncated {fmt or "jpeg"} data: expected the JPEG end-of-image marker '
            f'FF D9 at the end of the {len(buf)} bytes, got {tail[-2:].hex(" ") or "nothing"}; '
            f'the frame was cut short or garbled in transport')


def compressed_image_size(data: Any, format: str = '') -> Tuple[int, int, bool]:
    """Read ``(height, width, is_gray)`` from JPEG/PNG headers without decoding."""
    # A zero-copy byte view: SOF may follow large APPn segments (EXIF, ICC profiles).
    fmt = format or 'compressed image'
    try:
        head = memoryview(np.frombuffer(data, dtype=np.uint8))
    except (TypeError, ValueError, BufferError):
        raise ImageFormatError(f'{fmt!r} data must be bytes-like, got '
                               f'{type(data).__name__}') from None
    if bytes(head[:2]) == b'\xff\xd8':
        height, width, comps = _jpeg_header(head, fmt)
        gray = comps == 1
    elif bytes(head[:8]) == _PNG_MAGIC:
        height, width, color_type = _png_header(head, fmt)
        gray = color_type in (0, 4)  # grey, grey + alpha
    else:
        raise ImageFormatError(
            f'{fmt!r} data is neither JPEG nor PNG: expected it to start with FF D8 (JPEG) or '
            f'89 50 4E 47 (PNG), got {bytes(head[:8]).hex(" ") or "no bytes"}')
    if height == 0 or width == 0:
        raise ImageFormatError(f'{fmt} header declares an empty or deferred (DNL) size '
                               f'{width}x{height}; expected a positive width and height')
    return height, width, gray


def decode_compressed(format: str, data: Any,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageView:
    """Decode a CompressedImage's data to an ImageView ('bgr', or 'gray' for grey images).

    Raises ImageFormatError for depth formats, unknown containers, corrupt data, and
    images whose header claims more than ``max_pixels`` pixels (checked before decoding).
    """
    fmt = str(format)
    if 'compresseddepth' in fmt.lower().replace(' ', ''):
        raise ImageFormatError(f'format {fmt!r} is a compressed depth image, not a camera '
                               f'picture; subscribe to the colour image topic instead')
    try:
        buf: Optional[np.ndarray] = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        raise ImageFormatError(f'{fmt!r} data must be bytes-like, got '
                               f'{type(data).__name__}') from None
    height, width, gray = compressed_image_size(buf, fmt)
    if width * height > max_pixels:
        raise ImageFormatError(
            f'{fmt or "compressed"} image of {width}x{height} = {width * height} pixels '
            f'exceeds the limit of {max_pixels}; refusing to decode it (raise max_pixels, the '
            f'node\'s max_input_pixels parameter, if the camera really is that large)')
    if bytes(buf[:2]) == b'\xff\xd8':
        _check_jpeg_end(buf, fmt)
    import cv2
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise ImageFormatError(f'corrupt {fmt or "compressed"} data: OpenCV could not '
                               f'decode it ({str(exc).strip().splitlines()[-1]})') from None
    if image is None or image.size == 0:
        raise ImageFormatError(f'corrupt {fmt or "compressed"} data: OpenCV could not decode '
                               f'the {len(buf)} bytes (header said {width}x{height})')
    if image.ndim == 2:
        return ImageView(image, fmt, 'gray', False)
    return ImageView(image, fmt, 'bgr', False)
