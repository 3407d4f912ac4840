"""Keep-latest frame slots and batch collection across cameras (no ROS here).

Each camera owns one slot holding only its newest unprocessed frame: a slow model
drops stale frames instead of queueing them, and every replaced frame is counted.
The inference worker takes the first frame that arrives, then waits at most
``window_s`` for the other cameras so their frames share one inference; a lone camera
is never delayed by more than the window.
"""

import threading
import time
from typing import Dict, Generic, List, Optional, Tuple, TypeVar

T = TypeVar('T')


class LatestFrameSlots(Generic[T]):
    """One keep-latest slot per channel, with a condition variable for the worker."""

    def __init__(self, channels: int) -> None:
        if channels < 1:
            raise ValueError(f'expected at least one channel, got {channels}')
        self._items: List[Optional[T]] = [None] * channels
        self._arrival: List[float] = [0.0] * channels
        self.dropped: List[int] = [0] * channels
        self._cond = threading.Condition()
        self._closed = False

    @property
    def channels(self) -> int:
        """Return the camera count."""
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True after close() until reopen()."""
        return self._closed

    def put(self, channel: int, item: T) -> bool:
        """Store ``item`` as the channel's newest frame; True when an older one was dropped."""
        with self._cond:
            replaced = self._items[channel] is not None
            if replaced:
                self.dropped[channel] += 1
            self._items[channel] = item
            self._arrival[channel] = time.monotonic()
            self._cond.notify_all()
            return replaced

    def close(self) -> None:
        """Wake the worker for good; take_batch returns [] from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Allow take_batch again after close() (node reactivated); pending frames are dropped."""
        with self._cond:
            self._closed = False
            self._items = [None] * len(self._items)

    def take_batch(self, window_s: float, timeout_s: Optional[float] = None
                   ) -> List[Tuple[int, T]]:
        """Wait for frames; return ``(channel, item)`` pairs to process together.

        Blocks until one frame is present (or ``timeout_s`` passes, or close()), then
        keeps collecting other channels' frames until every channel has one or
        ``window_s`` has passed since the first frame arrived.
        """
        with self._cond:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while not self._closed and not any(i is not None for i in self._items):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)
            if self._closed:
                return []
            if window_s > 0 and len(self._items) > 1:
                first = min(a for a, i in zip(self._arrival, self._items) if i is not None)
                batch_deadline = first + window_s
                while not self._closed and any(i is None for i in self._items):
                    remaining = batch_deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch = [(c, i) for c, i in enumerate(self._items) if i is not None]
            self._items = [None] * len(self._items)
            return batch  # type: ignore[return-value]

    def drop_counts(self) -> Dict[int, int]:
        """Frames replaced before processing, per channel."""
        with self._cond:
            return dict(enumerate(self.dropped))
