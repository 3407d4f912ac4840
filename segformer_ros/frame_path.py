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

The threads share one GIL. Taking a 1080p message (rclpy copies it three times with the
GIL held) and publishing a mask are long C calls that keep it; when the submit thread comes
back from the GPU meanwhile, its next dozen short calls (copy, kernel launches, events)
each wait for the GIL: on the H200 the submit thread spent ~3 ms of every 9.7 ms frame
off the CPU (thread CPU 70 % at 103 masks/s).
:class:`GilTurns` takes turns instead: intake and finish start their GIL-bound work while
the submit thread waits inside inference (which holds no GIL), not while it launches work.
"""

import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import (Any, Callable, ContextManager, Deque, Dict, Generic, Iterator, List,
                    Optional, Tuple, TypeVar)

from .closable import ClosableStore
from .input_watch import PathProgress

T = TypeVar('T')

# How often blocked threads look at the stop flag (they are woken at once on close()).
_POLL_S = 0.5


class Handoff(ClosableStore, Generic[T]):
    """Bounded FIFO between two frame-path threads; close() wakes both sides for good."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f'expected a hand-off capacity >= 1, got {capacity}')
        super().__init__()
        self._capacity = capacity
        self._items: Deque[T] = deque()

    def _wait_for_room_locked(self) -> bool:
        while len(self._items) >= self._capacity and not self._closed:
            self._cond.wait(_POLL_S)
        return not self._closed

    def wait_for_room(self) -> bool:
        """Block until an item would fit; False once closed."""
        with self._cond:
            return self._wait_for_room_locked()

    def put(self, item: T) -> bool:
        """Append ``item`` (blocking while full); False (item not added) once closed."""
        with self._cond:
            if not self._wait_for_room_locked():
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

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class GilTurns:
    """Lets GIL-heavy work of other threads wait while the submit thread does host work.

    The submit thread marks its submission :meth:`busy` and the engine call inside it
    :meth:`released` (the wait for inference holds no GIL); the other threads call
    :meth:`wait_turn` before their long GIL-holding calls. Waits are bounded
    (``max_wait_s``): a turn is an optimisation, never a dependency.
    """

    def __init__(self, max_wait_s: float = 0.010) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._max_wait_s = max_wait_s

    def busy(self) -> ContextManager[None]:
        """Mark the submit thread's host work (it needs the GIL often)."""
        return self._marked(True)

    def released(self) -> ContextManager[None]:
        """Inside :meth:`busy`: the thread waits in a call that released the GIL."""
        return self._marked(False)

    @contextmanager
    def _marked(self, busy: bool) -> Iterator[None]:
        self._set(busy)
        try:
            yield
        finally:
            self._set(not busy)

    def wait_turn(self) -> None:
        """Return once the submit thread is not doing host work (or after max_wait_s)."""
        with self._cond:
            if self._busy:
                self._cond.wait_for(lambda: not self._busy, self._max_wait_s)

    def _set(self, busy: bool) -> None:
        with self._cond:
            self._busy = busy
            if not busy:
                self._cond.notify_all()


class FramePath:
    """Run ``take -> submit -> finish`` on overlapping threads (see the module docstring).

    ``take(wait_turn)`` returns a work item or None (nothing yet: it is called again while
    ``keep_running()``; it calls ``wait_turn()`` right before its long GIL-bound call);
    ``submit(item, around_inference)`` returns a pending object with ``collect()`` and
    ``discard()`` (or None: nothing to finish), entering ``around_inference()`` around its
    engine call; ``finish(item, results)`` gets what ``collect()`` returned. An exception in
    ``submit`` or ``finish`` goes to ``on_error(stage, exc)`` and the path goes on; one in
    ``take`` too (stage ``'take'``). ``bind_thread`` runs first on every thread (CUDA's
    current device is per thread).
    """

    def __init__(self, take: Callable[[Callable[[], None]], Optional[Any]],
                 submit: Callable[[Any, Callable[[], ContextManager[Any]]], Optional[Any]],
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
        self._turns = GilTurns()
        # Progress, for the stall check (input_watch): when each frame in flight was taken,
        # how long the recent ones took, and threads that ended while the path was running.
        self._progress_lock = threading.Lock()
        self._in_flight_since: Dict[int, float] = {}
        self._recent_s: Deque[float] = deque(maxlen=32)
        self._dead: List[str] = []

    def progress(self) -> PathProgress:
        """Age of the oldest frame in flight, slowest recent frame, threads that died."""
        now = time.monotonic()
        with self._progress_lock:
            oldest = min(self._in_flight_since.values(), default=now)
            return PathProgress(oldest_in_flight_s=now - oldest,
                                slowest_recent_s=max(self._recent_s, default=0.0),
                                dead_threads=tuple(self._dead))

    def _started(self, item: Any) -> None:
        with self._progress_lock:
            self._in_flight_since[id(item)] = time.monotonic()

    def _ended(self, item: Any, finished: bool = False) -> None:
        with self._progress_lock:
            since = self._in_flight_since.pop(id(item), None)
            if finished and since is not None:
                self._recent_s.append(time.monotonic() - since)

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
            thread = threading.Thread(target=self._run, args=(target, role),
                                      name=f'{self._name}_{role}', daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop taking frames, finish what was submitted, join; False if a thread hangs.

        The caller makes ``take`` return (e.g. closes its reader) before or right after.
        """
        self._stopping.set()
        self._taken.close()
        deadline = time.monotonic() + timeout_s
        finishers = [t for t in self._threads if t.name.endswith('_finish')]
        for thread in [t for t in self._threads if t not in finishers]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        # Intake and submit are done: nothing more comes; finish drains what is queued.
        self._pending.close()
        for thread in finishers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------ threads
    def _running(self) -> bool:
        return not self._stopping.is_set() and self._keep_running()

    def _run(self, target: Callable[[], None], role: str) -> None:
        _name_native_thread(threading.current_thread().name)
        try:
            self._bind_thread()
        except Exception as exc:  # noqa: BLE001 - reported; the loop's stages fail with it
            self._on_error('bind', exc)
        try:
            target()
        finally:
            if self._running():
                # Ended while the path should run (an error escaped the loop): the path is
                # stalled; progress() says so and the node reports it (input_watch).
                with self._progress_lock:
                    self._dead.append(role)

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
                    item = self._take(self._turns.wait_turn)
                except Exception as exc:  # noqa: BLE001 - the node goes on
                    item = None
                    self._on_error('take', exc)
                if item is None:
                    if not self._prefetch:
                        self._slots.release()
                    continue
                self._started(item)
                if self._prefetch:
                    if not self._taken.put(item):
                        self._ended(item)
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
                    if ok:
                        self._ended(item)
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
        else:
            self._ended(item)

    def _submit_held(self, item: Any) -> None:
        """Submit ``item`` with a slot already held; the finish thread gives it back."""
        try:
            with self._turns.busy():
                pending = self._submit(item, self._turns.released)
        except Exception as exc:  # noqa: BLE001 - the node goes on
            self._slots.release()
            self._ended(item)
            self._on_error('submit', exc)
            return
        if pending is None or not self._pending.put((item, pending)):
            _discard(pending)
            self._slots.release()
            self._ended(item)

    def _finish_loop(self) -> None:
        while True:
            ok, entry = self._pending.get()
            if not ok or entry is None:
                return
            item, pending = entry
            try:
                results = pending.collect()   # waits for the model: no GIL held
                self._turns.wait_turn()
                self._finish(item, results)
            except Exception as exc:  # noqa: BLE001 - the node goes on
                self._on_error('finish', exc)
            finally:
                _discard(pending)
                self._slots.release()
                self._ended(item, finished=True)


def _name_native_thread(name: str) -> None:
    """Give the OS thread the Python name (top -H, /proc/PID/task/*/comm; 15 chars)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15] + b'\0', 0, 0, 0)   # PR_SET_NAME
    except (OSError, AttributeError):   # not Linux: names are only for diagnostics
        pass


def _discard(pending: Optional[Any]) -> None:
    """Give a pending result's resources back (no-op once collected)."""
    if pending is not None:
        pending.discard()
