"""The worker pulls camera frames straight from DDS: no executor on the frame path.

Why (measured, docs/benchmarks.md "Node vs pipeline"): with the image subscriptions on an
rclpy executor, every frame the camera publishes is taken and converted into a Python
message (6 MB for 1080p rgb8, with the GIL held) and the executor rebuilds its wait set in
Python, also for the frames the keep-latest slot then throws away. At 30 Hz into a model
that runs at 3-30 frames/s that was most of the node's CPU outside inference, and it
starved the inference worker of the GIL.

Here the camera subscriptions belong to :class:`PulledCallbackGroup`, which every rclpy
executor skips (its ``can_execute`` is False), so no executor waits on or takes them. The
inference worker waits on them with its own wait set when it is ready for the next frame
and takes only then. Their DDS readers are KEEP_LAST depth 1 by default, so the reader
itself is the keep-latest slot: a frame that arrives while the worker is busy replaces the
previous one inside DDS, without Python. With ``input_queue_depth`` N the reader keeps the
last N and each take returns the oldest of them (a queue that absorbs bursts of several
cameras). The publisher's sequence numbers tell how many were replaced (or lost) between
two takes.

A wait that reports nothing is followed by one non-blocking take per camera (a poll, cheap
when the reader is empty): should a middleware's wait ever miss data that is there, the
frame is still taken within one wait period, and counted (``wait_misses``) so that
/diagnostics can say so, instead of the node going silent. Gaps in the sequence numbers of
a frame taken after the worker had waited idle are frames the camera sent that never
reached the reader (``lost_while_idle``): nothing could have replaced them, so they were lost
in transport (issue 21: on Jazzy, frames above the shared-memory segment).

The wait and the take use rclpy internals (no public API waits on a subscription without an
executor taking its messages): rclpy_internals.py holds them, says where they were verified
and checks them at configure; where they are missing or changed the node uses the
public-API fallback instead (frame_reader_public.py: executor callbacks into keep-latest
slots; slower), and logs that once.
"""

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rclpy.callback_groups import CallbackGroup
from rclpy.guard_condition import GuardCondition

from .rclpy_internals import take_message, wait_for_subscriptions

# A publisher restart (or a second publisher) makes the sequence number jump: not drops.
_MAX_PLAUSIBLE_GAP = 100_000


class PulledCallbackGroup(CallbackGroup):
    """Callback group whose entities no executor runs: their owner reads them itself."""

    def can_execute(self, entity: Any) -> bool:
        """Never: keeps the entity out of every executor's wait set."""
        return False

    def beginning_execution(self, entity: Any) -> bool:
        """Never starts a callback."""
        return False

    def ending_execution(self, entity: Any) -> None:
        """Nothing to end."""


class _SequenceGap:
    """Frames a reader skipped, from the publication sequence numbers (per publisher)."""

    def __init__(self) -> None:
        self._last: Dict[bytes, int] = {}

    def skipped(self, info: Any) -> int:
        if not isinstance(info, dict):
            return 0
        seq = info.get('publication_sequence_number')
        gid = (info.get('publisher_gid') or {}).get('data', b'')
        if not isinstance(seq, int) or seq <= 0:
            return 0
        last = self._last.get(gid)
        self._last[gid] = seq
        if last is None or seq <= last or seq - last - 1 > _MAX_PLAUSIBLE_GAP:
            return 0
        return seq - last - 1


class FrameReader:
    """Keep-latest frames of several camera subscriptions, taken by the inference worker.

    ``take_batch`` has :class:`~segformer_ros.batching.LatestFrameSlots`' contract (first
    frame, then up to ``window_s`` for the other cameras; ``[]`` on timeout or close), and
    the counters the node reports: frames seen (``frames_in``: taken plus skipped) and
    skipped per camera (replaced in the reader before the worker took them, or lost).
    """

    def __init__(self, context: Any, subscriptions: Sequence[Any]) -> None:
        if not subscriptions:
            raise ValueError('expected at least one subscription, got none')
        self._context = context
        self._subs = list(subscriptions)
        self._wake = GuardCondition(None, None, context=context)
        self._closed = False
        self._lock = threading.Lock()
        self._gaps = [_SequenceGap() for _ in self._subs]
        self.dropped: List[int] = [0] * len(self._subs)
        self.taken: List[int] = [0] * len(self._subs)
        # Frames a poll found after a wait that reported nothing (see the module docstring).
        self.wait_misses: List[int] = [0] * len(self._subs)
        # Sequence gaps of frames taken after at least one idle wait period: lost in transport.
        self.lost_while_idle: List[int] = [0] * len(self._subs)
        self._idle_waits = [0] * len(self._subs)
        self._next_turn = 0

    @property
    def channels(self) -> int:
        """Return the camera count."""
        return len(self._subs)

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def close(self) -> None:
        """Wake the worker for good; take_batch returns [] from now on."""
        self._closed = True
        try:
            self._wake.trigger()
        except Exception:  # noqa: BLE001 - context already shut down: the wait times out
            pass

    def destroy(self) -> None:
        """Free the wake-up guard condition (after the worker has stopped)."""
        try:
            self._wake.destroy()
        except Exception:  # noqa: BLE001 - context already shut down
            pass

    def _wait(self, indices: Sequence[int], timeout_s: float) -> List[int]:
        """Wait until some of ``indices`` have data (or timeout/close); return those ready."""
        if self._closed or not self._context.ok():
            return []
        # rclpy internals (rclpy_internals.py says which, why and where verified).
        ready = wait_for_subscriptions([self._subs[i] for i in indices], self._wake,
                                       self._context, timeout_s)
        return [i for n, i in enumerate(indices) if n in ready]

    def _take(self, index: int, before_take: Optional[Callable[[], None]] = None
              ) -> Optional[Any]:
        """Take the oldest message the reader keeps (the newest at depth 1; None if none)."""
        sub = self._subs[index]
        if before_take is not None:
            before_take()   # frame_path.GilTurns: the take holds the GIL for milliseconds
        # One take per turn, also at depth > 1: the cameras are served in turn. (Draining "until
        # empty" livelocks under a flood: a new 6 MB frame lands during every take.)
        taken = take_message(sub)
        if taken is None:
            return None
        msg, info = taken
        with self._lock:
            skipped = self._gaps[index].skipped(info)
            self.dropped[index] += skipped
            if self._idle_waits[index]:
                self.lost_while_idle[index] += skipped
            self._idle_waits[index] = 0
            self.taken[index] += 1
        return msg

    def _poll(self, indices: Sequence[int], before_take: Optional[Callable[[], None]],
              first_only: bool) -> Dict[int, Any]:
        """After a wait that reported nothing: take what the readers hold anyway.

        ``first_only``: stop at the first frame (the cameras are served in turn).
        """
        found: Dict[int, Any] = {}
        for i in indices:
            with self._lock:
                self._idle_waits[i] += 1
            msg = self._take(i, before_take)
            if msg is not None:
                found[i] = msg
                with self._lock:
                    self.wait_misses[i] += 1
                if first_only:
                    break
        return found

    def take_batch(self, window_s: float, timeout_s: Optional[float] = None,
                   before_take: Optional[Callable[[], None]] = None,
                   one_frame: bool = False) -> List[Tuple[int, Any]]:
        """Wait for frames; return ``(channel, message)`` pairs to process together.

        ``before_take`` runs right before each take (after the wait for data).
        ``one_frame``: take a single frame, the cameras served in turn (for models that
        cannot batch: a frame taken with others would wait for their inferences, and the
        others' readers would keep no newer frame meanwhile).
        """
        everyone = list(range(len(self._subs)))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        batch: Dict[int, Any] = {}
        while not batch:
            remaining = 0.5 if deadline is None else deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return []
            ready = self._wait(everyone, min(remaining, 0.5))
            if not ready and not self._closed and self._context.ok():
                polled = self._poll(self._in_turn(everyone), before_take, one_frame)
                if polled:
                    if one_frame:
                        i = next(iter(polled))
                        self._next_turn = (i + 1) % len(self._subs)
                        return [(i, polled[i])]
                    batch.update(polled)
                    break
                continue
            if one_frame:
                ready = self._in_turn(ready)
            for i in ready:
                msg = self._take(i, before_take)
                if msg is not None:
                    batch[i] = msg
                    if one_frame:
                        self._next_turn = (i + 1) % len(self._subs)
                        return [(i, msg)]
            if not self._context.ok():
                return []
        if window_s > 0 and len(self._subs) > 1:
            batch_deadline = time.monotonic() + window_s
            while len(batch) < len(self._subs) and not self._closed:
                remaining = batch_deadline - time.monotonic()
                if remaining <= 0:
                    break
                missing = [i for i in everyone if i not in batch]
                for i in self._wait(missing, remaining):
                    msg = self._take(i, before_take)
                    if msg is not None:
                        batch[i] = msg
        return sorted(batch.items())

    def _in_turn(self, ready: Sequence[int]) -> List[int]:
        """``ready`` ordered from the camera whose turn it is (round robin)."""
        n = len(self._subs)
        return sorted(ready, key=lambda i: (i - self._next_turn) % n)

    def frames_seen(self) -> int:
        """Frames that reached the readers: taken plus skipped."""
        with self._lock:
            return sum(self.taken) + sum(self.dropped)

    def input_counters(self) -> List[Dict[str, int]]:
        """Per camera: frames taken, skipped, lost while the worker waited idle, wait misses."""
        with self._lock:
            return [{'taken': self.taken[i], 'skipped': self.dropped[i],
                     'lost_while_idle': self.lost_while_idle[i],
                     'wait_misses': self.wait_misses[i]} for i in range(len(self._subs))]

    def drop_counts(self) -> Dict[int, int]:
        """Frames skipped per channel (replaced before the worker took them, or lost)."""
        with self._lock:
            return dict(enumerate(self.dropped))
