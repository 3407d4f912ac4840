"""close() for the frame path's condition-guarded stores (no ROS here)."""

import threading


class ClosableStore:
    """Base of a store whose items live under ``self._cond``: close() wakes every waiter.

    Subclasses wait on ``self._cond`` and stop waiting once ``self._closed`` is set
    (frame_path.Handoff between threads, batching.LatestFrameSlots behind the public-API
    frame reader).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True after close() (until a subclass reopens)."""
        return self._closed

    def close(self) -> None:
        """Wake every waiter for good: from now on waits return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
