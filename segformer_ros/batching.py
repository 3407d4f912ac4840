"""Keep-latest frame slots and batch collection across cameras (no ROS here).

Each camera owns a slot holding its newest unprocessed frames (``depth`` of them, 1 by
default): a slow model drops stale frames instead of queueing them, and every replaced
frame is counted. The inference worker takes the first frame that arrives, then waits at
most ``window_s`` for the other cameras so their frames share one inference; a lone camera
is never delayed by more than the window. At depth N a slot keeps the last N frames and
each take returns the oldest (as a DDS reader at KEEP_LAST N does).

The node's frame reader (frame_reader.py) keeps frames inside the DDS readers instead; this
is the store of its public-API fallback (frame_reader_public.py), used when the rclpy
internals that reader needs are missing or changed (rclpy_internals.py).
"""

import time
from collections import deque
from typing import Deque, Dict, Generic, List, Optional, Tuple, TypeVar

from .closable import ClosableStore

T = TypeVar('T')


class LatestFrameSlots(ClosableStore, Generic[T]):
    """One keep-latest slot per channel, with a condition variable for the worker."""

    def __init__(self, channels: int, depth: int = 1) -> None:
        if channels < 1:
            raise ValueError(f'expected at least one channel, got {channels}')
        if depth < 1:
            raise ValueError(f'expected a slot depth of at least 1, got {depth}')
        super().__init__()
        self._depth = depth
        # Per channel: (arrival time.monotonic(), item), oldest first.
        self._items: List[Deque[Tuple[float, T]]] = [deque() for _ in range(channels)]
        self.dropped: List[int] = [0] * channels
        self.taken: List[int] = [0] * channels
        self._next_turn = 0

    @property
    def channels(self) -> int:
        """Return the camera count."""
        return len(self._items)

    def put(self, channel: int, item: T) -> bool:
        """Store ``item`` as the channel's newest frame; True when an older one was dropped."""
        with self._cond:
            slot = self._items[channel]
            replaced = len(slot) >= self._depth
            if replaced:
                slot.popleft()
                self.dropped[channel] += 1
            slot.append((time.monotonic(), item))
            self._cond.notify_all()
            return replaced

    def reopen(self) -> None:
        """Allow take_batch again after close() (node reactivated); pending frames are dropped."""
        with self._cond:
            self._closed = False
            for slot in self._items:
                slot.clear()

    def take_batch(self, window_s: float, timeout_s: Optional[float] = None,
                   one_frame: bool = False) -> List[Tuple[int, T]]:
        """Wait for frames; return ``(channel, item)`` pairs to process together.

        Blocks until one frame is present (or ``timeout_s`` passes, or close()), then
        keeps collecting other channels' frames until every channel has one or
        ``window_s`` has passed since the first frame arrived. Takes one frame (the
        oldest kept) per channel. ``one_frame``: a single frame, the channels served in
        turn (for models that cannot batch).
        """
        with self._cond:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while not self._closed and not any(self._items):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)
            if self._closed:
                return []
            n = len(self._items)
            if one_frame:
                channel = min((c for c in range(n) if self._items[c]),
                              key=lambda c: (c - self._next_turn) % n)
                self._next_turn = (channel + 1) % n
                return [self._pop(channel)]
            if window_s > 0 and n > 1:
                first = min(slot[0][0] for slot in self._items if slot)
                batch_deadline = first + window_s
                while not self._closed and not all(self._items):
                    remaining = batch_deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            return [self._pop(c) for c in range(n) if self._items[c]]

    def _pop(self, channel: int) -> Tuple[int, T]:
        self.taken[channel] += 1
        return channel, self._items[channel].popleft()[1]

    def pending(self, channel: int) -> int:
        """Frames the channel's slot holds now."""
        with self._cond:
            return len(self._items[channel])

    def drop_counts(self) -> Dict[int, int]:
        """Frames replaced before processing, per channel."""
        with self._cond:
            return dict(enumerate(self.dropped))

    def taken_counts(self) -> List[int]:
        """Frames handed to the worker, per channel."""
        with self._cond:
            return list(self.taken)
