"""Frames from a video file, an image folder or a single image, as BGR uint8 arrays.

Shared by the tools (eval, selfcheck) and the image-source node, so they all read
the same frames in the same order: folders are read in sorted file-name order.
"""

from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np

from .errors import ConfigError, ImageFormatError

IMAGE_SUFFIXES: Tuple[str, ...] = ('.png', '.jpg', '.jpeg')
VIDEO_SUFFIXES: Tuple[str, ...] = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')


def list_images(folder: Union[str, Path]) -> List[Path]:
    """Image files (*.png, *.jpg, *.jpeg; any case) directly in ``folder``, sorted by name."""
    d = Path(folder)
    if not d.is_dir():
        raise ConfigError(f"image folder '{d}' does not exist or is not a directory")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read one image as BGR uint8 (H, W, 3); grey and BGRA files are converted."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageFormatError(f"cannot read image '{path}'; expected a PNG or JPEG file")
    return img


def _iter_video(path: Path) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageFormatError(f"cannot open video '{path}'; expected a file OpenCV can decode "
                               f'(e.g. H.264 .mp4)')
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def _iter_once(path: Path) -> Iterator[np.ndarray]:
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ConfigError(f"image folder '{path}' has no {'/'.join(IMAGE_SUFFIXES)} files")
        for f in files:
            yield read_image(f)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        yield read_image(path)
    else:
        yield from _iter_video(path)


def iter_frames(path: Union[str, Path], loop: bool = False,
                max_frames: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(index, bgr_frame)`` from a video, an image folder or one image.

    ``index`` counts frames yielded (0, 1, ...), across loops. ``loop`` restarts at the
    end; ``max_frames`` stops after that many frames (None = no limit).
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"frame source '{p}' does not exist; expected a video file, an image "
                          f'folder or an image')
    if max_frames is not None and max_frames <= 0:
        return
    index = 0
    while True:
        produced = 0
        for frame in _iter_once(p):
            yield index, frame
            index += 1
            produced += 1
            if max_frames is not None and index >= max_frames:
                return
        if produced == 0:
            # A video OpenCV opens but cannot decode reads as empty (and would loop forever).
            raise ImageFormatError(f"frame source '{p}' has no readable frames; check that "
                                   f'OpenCV can decode it (codec)')
        if not loop:
            return
