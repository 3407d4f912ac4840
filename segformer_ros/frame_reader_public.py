"""The frame reader's public-API fallback: executor callbacks into keep-latest slots.

Used when the rclpy internals of the fast reader (frame_reader.py) are missing or changed
on the installed rclpy (rclpy_internals.check_frame_reader_internals, at configure), or when
$SEGFORMER_ROS_FRAME_READER=public asks for it. The camera subscriptions then have ordinary
callbacks in the frame-path callback group (executors.FramePathExecutor in node_main; any
executor that spins the node elsewhere); each callback drops its message into the
camera's keep-latest slot (batching.LatestFrameSlots, ``input_queue_depth`` deep) that the
intake thread waits on. Slower than the fast reader when frames arrive faster than the model
runs, which is why it is only the fallback: the executor takes and converts every frame in
Python, also those the slot then drops (rclpy_internals.py has the numbers).

Counters, as the fast reader's: ``taken``; ``skipped`` = frames replaced in the slot plus
gaps in the publisher's sequence numbers (frames that never reached the callback: replaced
in the DDS reader while the executor was behind, or lost in transport), from the public
MessageInfo of a two-argument callback (rclpy Iron and later; Humble's callbacks get no
MessageInfo, so there only slot replacements are counted); ``lost_while_idle`` = sequence
gaps on a frame that reached an empty slot while the worker waited for one. ``wait_misses``
does not exist here (no wait set of our own): always 0.
"""

import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from .batching import LatestFrameSlots
from .frame_reader import _SequenceGap


def message_info_supported() -> bool:
    """Tell whether this rclpy passes MessageInfo to two-argument subscription callbacks."""
    from rclpy.subscription import Subscription

    kinds = getattr(Subscription, 'CallbackType', None)
    return kinds is not None and hasattr(kinds, 'WithMessageInfo')


class CallbackFrameReader:
    """Keep-latest slots fed by subscription callbacks; :class:`FrameReader`'s interface.

    Create it first, then each camera's subscription with :meth:`callback` (channel index)
    as its callback.
    """

    def __init__(self, channels: int, depth: int = 1) -> None:
        self.channels = channels   # the camera count, fixed for the reader's life
        self._slots: LatestFrameSlots[Any] = LatestFrameSlots(channels, depth)
        self._lock = threading.Lock()
        self._gaps = [_SequenceGap() for _ in range(channels)]
        self.gap_skipped: List[int] = [0] * channels
        self.lost_while_idle: List[int] = [0] * channels
        self._waiting = 0
        self.with_message_info = message_info_supported()

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._slots.closed

    def callback(self, index: int) -> Callable[..., None]:
        """Return the subscription callback of camera ``index`` (one or two arguments)."""
        if self.with_message_info:
            def on_frame_with_info(msg: Any, info: Any) -> None:
                self.put(index, msg, info)
            return on_frame_with_info

        def on_frame(msg: Any) -> None:
            self.put(index, msg, None)
        return on_frame

    def put(self, index: int, msg: Any, info: Optional[Any]) -> None:
        """Store a camera's message (an executor thread); count its sequence gap."""
        with self._lock:
            skipped = self._gaps[index].skipped(info) if info is not None else 0
            self.gap_skipped[index] += skipped
            if skipped and self._waiting and not self._slots.pending(index):
                self.lost_while_idle[index] += skipped
        self._slots.put(index, msg)

    def close(self) -> None:
        """Wake the worker for good; take_batch returns [] from now on."""
        self._slots.close()

    def destroy(self) -> None:
        """Nothing to free (the subscriptions are the node's)."""

    def take_batch(self, window_s: float, timeout_s: Optional[float] = None,
                   before_take: Optional[Callable[[], None]] = None,
                   one_frame: bool = False) -> List[Tuple[int, Any]]:
        """As :meth:`FrameReader.take_batch`; ``before_take`` is not needed (no GIL-long take)."""
        with self._lock:
            self._waiting += 1
        try:
            return self._slots.take_batch(window_s, timeout_s, one_frame=one_frame)
        finally:
            with self._lock:
                self._waiting -= 1

    def drop_counts(self) -> Dict[int, int]:
        """Frames skipped per channel: replaced in the slot, or never delivered."""
        replaced = self._slots.drop_counts()
        with self._lock:
            return {i: replaced[i] + self.gap_skipped[i] for i in replaced}

    def frames_seen(self) -> int:
        """Frames that reached the node: taken plus skipped."""
        return sum(self._slots.taken_counts()) + sum(self.drop_counts().values())

    def input_counters(self) -> List[Dict[str, int]]:
        """Per camera: taken, skipped, lost while the worker waited idle; no wait misses."""
        taken, skipped = self._slots.taken_counts(), self.drop_counts()
        with self._lock:
            return [{'taken': taken[i], 'skipped': skipped[i],
                     'lost_while_idle': self.lost_while_idle[i], 'wait_misses': 0}
                    for i in range(self.channels)]
