"""The node's frame path as up to three overlapping threads (no ROS here).

One thread doing everything for a frame, one frame after the other, leaves the GPU idle
while the host takes the next message and publishes the last results, and leaves the
host idle while the GPU runs: under a flood the node delivered 0.65 of its own pipeline's
frames/s on the H200 (docs/benchmarks.md, "Node vs pipeline"). Here the work is split:

- **intake**: take the newest frame(s) and convert them (``take``);
- **submit**: preprocess and start inference (``submit``; returns a pending result);
- **finish**: wait for the result, postprocess and publish (``finish``).

``prefetch`` puts intake and submit on two threads, so the next message is taken while
inference runs. That pays when inference runs off the host (the GPU pipeline). When it
runs on the host CPU the two would compete for the same cores, and a frame taken during
a long inference would be stale by the time the model is free, so without ``prefetch``
the intake thread submits itself, and takes the newest frame only once a slot is free.

At most ``in_flight`` submissions are between submit and the end of finish: enough to
overlap one frame's finish with the next one's inference, without queueing stale frames.
Results are finished in submission order.
"""

import threading
from collections import deque
from typing import Any, Callable, Deque, Generic, List, Optional, Tuple, TypeVar

T = TypeVar('T')

# How often blocked threads look at the stop flag (they are woken at once on close()).
_POLL_S = 0.5


class Handoff(Generic[T]):
    """Bounded FIFO between two frame-path threads; close() wakes both sides for good."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f'expected a hand-off capacity >= 1, got {capacity}')
        self._capacity = capacity
        self._items: Deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def wait_for_room(self) -> bool:
        """Block until an item would fit; False once closed."""
        with self._cond:
            while len(self._items) >= self._capacity and not self._closed:
                self._cond.wait(_POLL_S)
            return not self._closed

    def put(self, item: T) -> bool:
        """Append ``item`` (blocking while full); False (item not added) once closed."""
        with self._cond:
            while len(self._items) >= self._capacity and not self._closed:
                self._cond.wait(_POLL_S)
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self) -> Tuple[bool, Optional[T]]:
        """Return ``(True, item)``, oldest first; ``(False, None)`` once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait(_POLL_S)
            if not self._items:
                return False, None
            item = self._items.popleft()
            self._cond.notify_all()
            return True, item

    def close(self) -> None:
        """No more puts; get() returns what is left, then (False, None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take_all(self) -> List[T]:
        """Remove and return every item still queued."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class FramePath:
    """Run ``take -> submit -> finish`` on overlapping threads (see the module docstring).

    ``take()`` returns a work item or None (nothing yet: it is called again while
    ``keep_running()``); ``submit(item)`` returns a pending object with ``discard()`` (or
    None: nothing to finish); ``finish(item, pending)`` completes it. An exception in
    ``submit`` or ``finish`` goes to ``on_error(stage, exc)`` and the path goes on; one in
    ``take`` too (stage ``'take'``). ``bind_thread`` runs first on every thread (CUDA's
    current device is per thread).
    """

    def __init__(self, take: Callable[[], Optional[Any]],
                 submit: Callable[[Any], Optional[Any]],
                 finish: Callable[[Any, Any], None],
                 on_error: Callable[[str, BaseException], None], *,
                 prefetch: bool = False, in_flight: int = 2,
                 keep_running: Callable[[], bool] = lambda: True,
                 bind_thread: Callable[[], None] = lambda: None,
                 name: str = 'frame_path') -> None:
        if in_flight < 1:
            raise ValueError(f'expected in_flight >= 1, got {in_flight}')
        self._take, self._submit, self._finish = take, submit, finish
        self._on_error = on_error
        self._keep_running = keep_running
        self._bind_thread = bind_thread
        self._prefetch = bool(prefetch)
        self._name = name
        self._stopping = threading.Event()
        self._slots = threading.Semaphore(in_flight)
        self._taken: Handoff[Any] = Handoff(1)
        self._pending: Handoff[Tuple[Any, Any]] = Handoff(in_flight)
        self._threads: List[threading.Thread] = []

    @property
    def prefetch(self) -> bool:
        """True when intake and submit run on separate threads."""
        return self._prefetch

    def start(self) -> None:
        """Start the threads (once)."""
        if self._threads:
            raise RuntimeError(f'{self._name}: expected one start(), got a second')
        targets = [('intake', self._intake_loop), ('finish', self._finish_loop)]
        if self._prefetch:
            targets.insert(1, ('submit', self._submit_loop))
        for role, target in targets:
            thread = threading.Thread(target=self._run, args=(target,),
                                      name=f'{self._name}_{role}', daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop taking frames, finish what was submitted, join; False if a thread hangs.

        The caller makes ``take`` return (e.g. closes its reader) before or right after.
        """
        self._stopping.set()
        self._taken.close()
        deadline = timeout_s
        alive = False
        for thread in self._threads:
            if thread.name.endswith('_finish'):
                continue
            thread.join(timeout=max(0.0, deadline))
            alive = alive or thread.is_alive()
        # Intake and submit are done: nothing more comes; finish drains what is queued.
        self._pending.close()
        for thread in self._threads:
            if thread.name.endswith('_finish'):
                thread.join(timeout=max(0.0, deadline))
                alive = alive or thread.is_alive()
        return not alive

    # ------------------------------------------------------------------ threads
    def _running(self) -> bool:
        return not self._stopping.is_set() and self._keep_running()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            self._bind_thread()
        except Exception as exc:  # noqa: BLE001 - reported; the loop's stages fail with it
            self._on_error('bind', exc)
        target()

    def _intake_loop(self) -> None:
        try:
            while self._running():
                if self._prefetch:
                    if not self._taken.wait_for_room():
                        return
                elif not self._acquire_slot():
                    return
                # Without prefetch the slot is held before the take: the newest frame is
                # taken only when the model can start on it (it would go stale waiting).
                try:
                    item = self._take()
                except Exception as exc:  # noqa: BLE001 - the node goes on
                    item = None
                    self._on_error('take', exc)
                if item is None:
                    if not self._prefetch:
                        self._slots.release()
                    continue
                if self._prefetch:
                    if not self._taken.put(item):
                        return
                else:
                    self._submit_held(item)
        finally:
            self._taken.close()
            if not self._prefetch:
                self._pending.close()

    def _submit_loop(self) -> None:
        try:
            while True:
                ok, item = self._taken.get()
                if not ok or self._stopping.is_set():
                    return
                self._submit_one(item)
        finally:
            self._pending.close()

    def _acquire_slot(self) -> bool:
        """Wait for a free in-flight slot; False when stopping."""
        while not self._slots.acquire(timeout=_POLL_S):
            if self._stopping.is_set():
                return False
        return True

    def _submit_one(self, item: Any) -> None:
        if self._acquire_slot():
            self._submit_held(item)

    def _submit_held(self, item: Any) -> None:
        """Submit ``item`` with a slot already held; the finish thread gives it back."""
        try:
            pending = self._submit(item)
        except Exception as exc:  # noqa: BLE001 - the node goes on
            self._slots.release()
            self._on_error('submit', exc)
            return
        if pending is None or not self._pending.put((item, pending)):
            _discard(pending)
            self._slots.release()

    def _finish_loop(self) -> None:
        while True:
            ok, entry = self._pending.get()
            if not ok or entry is None:
                return
            item, pending = entry
            try:
                self._finish(item, pending)
            except Exception as exc:  # noqa: BLE001 - the node goes on
                self._on_error('finish', exc)
            finally:
                _discard(pending)
                self._slots.release()


def _discard(pending: Optional[Any]) -> None:
    """Give a pending result's resources back (no-op once collected)."""
    if pending is not None:
        pending.discard()
