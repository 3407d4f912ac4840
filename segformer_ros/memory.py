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
