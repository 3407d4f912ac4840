"""Allocator settings for a long-running image node (glibc; no ROS here).

Every frame allocates and frees buffers of several MB (the incoming message, the mask and
overlay messages). glibc serves large blocks with mmap and returns them on free, but its
*dynamic* mmap threshold rises to the size of the first such block freed, after which
multi-MB buffers come from the heap arenas instead, fragment them, and RSS creeps up for
tens of minutes (seen in our 30-minute soak: +7.5 MB, plateauing). Pinning the threshold
keeps image-sized buffers on mmap, so freeing them gives the memory back at once.
"""

import ctypes
import ctypes.util
import os
import sys
from typing import Optional

# From glibc's malloc.h.
_M_MMAP_THRESHOLD = -3

#: Buffers from this size up always use mmap (a 640x480 mono8 mask is 300 kB).
MMAP_THRESHOLD_BYTES = 256 * 1024


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> Optional[bool]:
    """Fix glibc's mmap threshold; True if set, False if refused, None off glibc."""
    if not sys.platform.startswith('linux'):
        return None
    name = ctypes.util.find_library('c')
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))


#: The node process's setting (issue 9): image-sized buffers from the heap, reused frame
#: after frame. With 256 kB every 6 MB message buffer was a fresh mmap, faulted in page by
#: page and zeroed: 8.9 ms per 6 MB copy into a new buffer on the 2-core machine vs 0.6 ms
#: from the heap, several such buffers per frame (take, conversion, mask, publish). The RSS
#: creep that made us pin 256 kB is bounded by :class:`HeapTrimmer` instead.
NODE_MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024


_M_TRIM_THRESHOLD = -1

#: How often the node's frame path gives free heap pages back (issue 22). A trim returns
#: the frame path's own freed buffers too (rclpy's take of the 6 MB message, the mask), so
#: the next frame faults them in again: trimming once a second cost 4321 minor faults/s
#: and 1.4 ms per trim on the 2-core machine at 30 Hz 1080p with a trivial model; every
#: 30 s, 3 faults/s and 4.38 instead of 5.30 ms CPU per mask (docs/benchmarks.md, "Current
#: results"). The creep the trims bound builds over tens of minutes (the module docstring),
#: so a trim every 30 s bounds it as well.
NODE_TRIM_PERIOD_S = 30.0


_M_ARENA_MAX = -8

#: glibc gives every thread that allocates its own heap arena, up to 8 per core (96 on a
#: 12-core AGX Orin). With image buffers served from the heap, each arena a frame-path,
#: executor or DDS thread ever used keeps its own frame-sized buffers: RSS rose ~3 MB per
#: lifecycle cycle that segmented a frame (new frame-path threads, new arenas) until the
#: 16 arenas of the 2-core machine were all in use, +21 MB over 50 cycles, 26 MB more
#: than with 2 arenas (test_lifecycle_cycles.py; unbounded it grows with the core count).
#: Two arenas bound that; the node's threads take turns on the GIL anyway, so they rarely
#: allocate at once: node CPU per mask 4.20 / 4.18 ms with 2 vs 4.69 / 4.23 with the
#: default (2-core, trivial model, alternated bench_ros runs). A ``MALLOC_ARENA_MAX`` in
#: the environment wins.
NODE_MALLOC_ARENAS = 2


def keep_image_buffers(mmap_threshold: int = NODE_MMAP_THRESHOLD_BYTES) -> Optional[bool]:
    """Set the node's allocator up: image buffers from the heap, kept between frames.

    Pins the mmap threshold at ``mmap_threshold`` and raises the trim threshold to 4x that
    (glibc would otherwise hand the top of the heap back after every frame's free and fault
    it in again on the next); :class:`HeapTrimmer` then trims every
    :data:`NODE_TRIM_PERIOD_S`. Bounds the heap arenas at :data:`NODE_MALLOC_ARENAS`
    unless ``MALLOC_ARENA_MAX`` is set. True if set.
    """
    if not pin_mmap_threshold(mmap_threshold):
        return None if not sys.platform.startswith('linux') else False
    name = ctypes.util.find_library('c')
    mallopt = ctypes.CDLL(name).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if 'MALLOC_ARENA_MAX' not in os.environ and not mallopt(_M_ARENA_MAX, NODE_MALLOC_ARENAS):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, int(4 * mmap_threshold)))


class HeapTrimmer:
    """Give free heap pages back to the OS at most once per ``period_s`` (glibc malloc_trim).

    Called by the inference worker before each frame: the multi-MB buffers freed by the
    frame path stay mapped between trims (so the next frame reuses them without page
    faults) and are released once a period, so RSS cannot creep with fragmentation. Each
    trim makes the next frame fault its buffers in again: keep the period long (the node
    uses :data:`NODE_TRIM_PERIOD_S`).
    """

    def __init__(self, period_s: float = 1.0) -> None:
        import time

        self._clock = time.monotonic
        self._period = period_s
        self._next = 0.0
        self._trim = None
        if sys.platform.startswith('linux'):
            name = ctypes.util.find_library('c')
            try:
                trim = ctypes.CDLL(name).malloc_trim if name else None
            except (OSError, AttributeError):
                trim = None
            if trim is not None:
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
                self._trim = trim

    @property
    def available(self) -> bool:
        """True where malloc_trim exists (glibc)."""
        return self._trim is not None

    def maybe_trim(self) -> bool:
        """Trim when a period has passed since the last trim; True if it trimmed."""
        if self._trim is None:
            return False
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._period
        self._trim(0)
        return True
