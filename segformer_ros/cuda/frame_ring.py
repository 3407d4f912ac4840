"""Bookkeeping of the frames in flight in the GPU pipeline (a ring of ``depth`` slots).

Pure Python (no CUDA): submission ``n`` goes to slot ``n % depth``; a slot is busy from
its submission until its ticket is collected, so at most ``depth`` submissions are in
flight and a slot's buffers are reused only after its results were handed out. One thread
may submit while another collects (the node's frame path): the bookkeeping is locked.
"""

import threading
from dataclasses import dataclass
from typing import List, Optional

from ..errors import BackendStateError, ConfigError


@dataclass(frozen=True)
class GpuTicket:
    """Handle of one submission (one frame, or one batch of frames from several cameras)."""

    seq: int      # submission number, from 0
    slot: int     # ring slot holding its buffers
    count: int    # frames in the submission


class FrameRing:
    """Assigns ring slots to submissions and checks tickets (see module docstring)."""

    def __init__(self, depth: int) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f'expected a pipeline depth >= 1 (frames in flight), got '
                              f'{depth!r}; use 1 for synchronous use, 2 to overlap frames')
        self.depth = depth
        self._busy: List[Optional[GpuTicket]] = [None] * depth
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Submissions not collected yet."""
        with self._lock:
            return sum(t is not None for t in self._busy)

    def acquire(self, count: int) -> GpuTicket:
        """Reserve the next slot for a submission of ``count`` frames."""
        with self._lock:
            return self._acquire(count)

    def _acquire(self, count: int) -> GpuTicket:
        slot = self._seq % self.depth
        held = self._busy[slot]
        if held is not None:
            raise BackendStateError(
                f'expected at most {self.depth} submission(s) in flight, got one more while '
                f'submission {held.seq} still holds slot {slot}; collect() it first (or build '
                f'the pipeline with a larger depth)')
        ticket = GpuTicket(self._seq, slot, int(count))
        self._busy[slot] = ticket
        self._seq += 1
        return ticket

    def oldest(self) -> GpuTicket:
        """Return the submission in flight longest (collect() without a ticket takes it)."""
        with self._lock:
            held = [t for t in self._busy if t is not None]
        if not held:
            raise BackendStateError('expected a submission in flight to collect, got none; '
                                    'call submit() first')
        return min(held, key=lambda t: t.seq)

    def check(self, ticket: GpuTicket) -> None:
        """Raise unless ``ticket`` is in flight (not yet collected, from this ring)."""
        with self._lock:
            self._check(ticket)

    def _check(self, ticket: GpuTicket) -> None:
        if not (0 <= ticket.slot < self.depth) or self._busy[ticket.slot] != ticket:
            raise BackendStateError(f'expected a ticket in flight, got {ticket} (already '
                                    f'collected, or from another pipeline)')

    def release(self, ticket: GpuTicket) -> None:
        """Mark ``ticket``'s slot free again."""
        with self._lock:
            self._check(ticket)
            self._busy[ticket.slot] = None
