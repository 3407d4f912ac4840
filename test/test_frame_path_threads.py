"""The frame path's threads (segformer_ros/frame_path.py): overlap, bounds, order, errors.

No ROS: take / submit / finish are plain callables that record when they ran, so each
property the node relies on (the next frame's inference overlaps the last frame's
publish; no more than ``in_flight`` submissions unfinished; results in order; a failing
stage does not stop the path; stop() finishes what was submitted) is checked directly.
"""

import itertools
import threading
import time
from typing import Any, List, Optional

import pytest

from segformer_ros.frame_path import FramePath, GilTurns, Handoff
from segformer_ros.frame_path_plan import plan_frame_path


class Pending:
    """Stands in for PendingResults: collect() once, counts discards."""

    def __init__(self, item: int) -> None:
        self.item = item
        self.discarded = 0
        self.collected = 0

    def collect(self) -> int:
        self.collected += 1
        return self.item

    def discard(self) -> None:
        self.discarded += 1


class Recorder:
    """Callables for FramePath that log events with the thread that ran them."""

    def __init__(self, frames: int, submit_s: float = 0.0, finish_s: float = 0.0) -> None:
        self.frames = frames
        self.submit_s, self.finish_s = submit_s, finish_s
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.events: List[tuple] = []
        self.unfinished = 0
        self.most_unfinished = 0
        self.pendings: List[Pending] = []
        self.finished: List[int] = []
        self.errors: List[tuple] = []
        self.done = threading.Event()

    def log(self, what: str, item: Any) -> None:
        with self.lock:
            self.events.append((time.monotonic(), what, item, threading.current_thread().name))

    def take(self, wait_turn=lambda: None) -> Optional[int]:
        wait_turn()
        item = next(self.counter)
        if item >= self.frames:
            self.done.set()
            time.sleep(0.01)
            return None
        self.log('take', item)
        return item

    def submit(self, item: int, around_inference=None) -> Pending:
        with self.lock:
            self.unfinished += 1
            self.most_unfinished = max(self.most_unfinished, self.unfinished)
        self.log('submit_start', item)
        time.sleep(self.submit_s)
        self.log('submit_end', item)
        pending = Pending(item)
        self.pendings.append(pending)
        return pending

    def finish(self, item: int, result: int) -> None:
        assert result == item
        self.log('finish_start', item)
        time.sleep(self.finish_s)
        with self.lock:
            self.unfinished -= 1
            self.finished.append(item)
        self.log('finish_end', item)

    def on_error(self, stage: str, exc: BaseException) -> None:
        self.errors.append((stage, str(exc)))

    def spans(self, start: str, end: str) -> dict:
        begun = {e[2]: e[0] for e in self.events if e[1] == start}
        return {k: (begun[k], t) for t, w, k, _ in self.events if w == end and k in begun}


def run_path(rec: Recorder, prefetch: bool, in_flight: int = 2, wait_s: float = 10.0
             ) -> FramePath:
    path = FramePath(rec.take, rec.submit, rec.finish, rec.on_error, prefetch=prefetch,
                     in_flight=in_flight, name='test_path')
    path.start()
    deadline = time.monotonic() + wait_s
    while len(rec.finished) < rec.frames and time.monotonic() < deadline:
        time.sleep(0.005)
    assert path.stop(timeout_s=5.0), 'a frame-path thread did not stop'
    return path


def overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize('prefetch', [False, True])
def test_next_inference_overlaps_the_previous_finish(prefetch: bool) -> None:
    rec = Recorder(frames=6, submit_s=0.05, finish_s=0.05)
    run_path(rec, prefetch)
    assert rec.finished == list(range(6)), 'results out of order or missing'
    submits, finishes = rec.spans('submit_start', 'submit_end'), \
        rec.spans('finish_start', 'finish_end')
    overlapped = sum(overlaps(submits[i + 1], finishes[i]) for i in range(5))
    # One thread doing both would give 0; with the split nearly every pair overlaps.
    assert overlapped >= 4, f'submit of frame n+1 overlapped the finish of n {overlapped}/5'
    threads = {e[3] for e in rec.events if e[1] == 'finish_start'}
    assert threads == {'test_path_finish'}


def test_prefetch_takes_the_next_frame_during_inference_and_without_it_does_not() -> None:
    for prefetch in (False, True):
        rec = Recorder(frames=5, submit_s=0.08)
        run_path(rec, prefetch)
        submits = rec.spans('submit_start', 'submit_end')
        takes = {e[2]: e[0] for e in rec.events if e[1] == 'take'}
        during = sum(submits[i][0] < takes[i + 1] < submits[i][1] for i in range(4))
        if prefetch:
            assert during >= 3, f'prefetch: next take during inference {during}/4'
        else:
            # The model's thread takes the newest frame only when it is free.
            assert during == 0, f'no prefetch: a take ran during inference {during}/4'


@pytest.mark.parametrize('in_flight', [1, 2, 3])
def test_never_more_than_in_flight_submissions_unfinished(in_flight: int) -> None:
    rec = Recorder(frames=12, submit_s=0.005, finish_s=0.03)
    run_path(rec, prefetch=True, in_flight=in_flight)
    assert rec.finished == list(range(12))
    assert rec.most_unfinished == in_flight


def test_one_in_flight_takes_only_after_the_last_frame_was_published() -> None:
    """frames_in_flight 1 (CPU inference): strictly one frame at a time, the newest."""
    rec = Recorder(frames=5, submit_s=0.02, finish_s=0.05)
    run_path(rec, prefetch=False, in_flight=1)
    assert rec.finished == list(range(5))
    takes = {e[2]: e[0] for e in rec.events if e[1] == 'take'}
    finishes = rec.spans('finish_start', 'finish_end')
    for i in range(4):
        assert takes[i + 1] >= finishes[i][1], f'frame {i + 1} taken before {i} was published'


def test_failing_stages_are_reported_and_the_path_goes_on() -> None:
    rec = Recorder(frames=10)
    submit, finish, take = rec.submit, rec.finish, rec.take

    def flaky_submit(item: int, around_inference) -> Pending:
        if item % 3 == 0:
            raise RuntimeError(f'submit {item}')
        return submit(item)

    def flaky_finish(item: int, result: int) -> None:
        if item % 3 == 1:
            raise ValueError(f'finish {item}')
        finish(item, result)

    calls = itertools.count()

    def flaky_take(wait_turn) -> Optional[int]:
        if next(calls) == 2:
            raise OSError('take')
        return take(wait_turn)
    rec.submit, rec.finish, rec.take = flaky_submit, flaky_finish, flaky_take
    path = FramePath(rec.take, rec.submit, rec.finish, rec.on_error, prefetch=False,
                     in_flight=1, name='flaky')
    path.start()
    assert rec.done.wait(10.0)
    assert path.stop(timeout_s=5.0)
    # More failures than slots: a leaked slot would have stalled the path at the second.
    assert rec.finished == [i for i in range(10) if i % 3 == 2]
    stages = sorted(stage for stage, _ in rec.errors)
    assert stages.count('submit') == 4 and stages.count('finish') == 3
    assert stages.count('take') == 1
    assert all(p.discarded >= 1 for p in rec.pendings), 'a pending result was not released'


def test_stop_finishes_what_was_submitted_and_releases_it() -> None:
    rec = Recorder(frames=1000, submit_s=0.01, finish_s=0.05)
    path = FramePath(rec.take, rec.submit, rec.finish, rec.on_error, prefetch=True,
                     in_flight=2, name='stopper')
    path.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert path.stop(timeout_s=5.0)
    assert time.monotonic() - t0 < 2.0
    submitted = [p.item for p in rec.pendings]
    assert 0 < len(submitted) < 1000
    assert rec.finished == submitted, 'a submitted frame was dropped at stop'
    assert all(p.discarded >= 1 for p in rec.pendings)
    assert not [t for t in threading.enumerate() if t.name.startswith('stopper_')]


def test_keep_running_false_ends_the_intake() -> None:
    running = threading.Event()
    running.set()
    rec = Recorder(frames=10 ** 6)
    path = FramePath(rec.take, rec.submit, rec.finish, rec.on_error, prefetch=False,
                     keep_running=running.is_set, name='ending')
    path.start()
    time.sleep(0.05)
    running.clear()
    deadline = time.monotonic() + 5
    while any(t.name == 'ending_intake' for t in threading.enumerate()):
        assert time.monotonic() < deadline, 'intake kept running'
        time.sleep(0.01)
    assert path.stop(timeout_s=5.0)


def test_gil_turns_hold_other_threads_only_during_host_work() -> None:
    turns = GilTurns(max_wait_s=2.0)
    waited: List[float] = []

    def other() -> None:
        t0 = time.monotonic()
        turns.wait_turn()
        waited.append(time.monotonic() - t0)
    t0 = time.monotonic()
    turns.wait_turn()                      # nobody submitting: no wait
    assert time.monotonic() - t0 < 0.05
    with turns.busy():
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.1)
        assert not waited, 'wait_turn returned during the host work'
        with turns.released():             # the submit thread waits in inference
            thread.join(1.0)
            assert waited and waited[0] < 0.5
        waited.clear()
        bounded = GilTurns(max_wait_s=0.05)
        with bounded.busy():
            t0 = time.monotonic()
            bounded.wait_turn()            # a turn never blocks for long
            assert 0.04 <= time.monotonic() - t0 < 0.5


def test_the_submit_thread_is_busy_outside_inference_and_others_take_turns() -> None:
    """Take and finish run their GIL-bound calls while submit waits in inference."""
    events: List[tuple] = []
    lock = threading.Lock()
    frames = iter(range(6))

    def log(what: str) -> None:
        with lock:
            events.append((time.monotonic(), what))

    def take(wait_turn) -> Optional[int]:
        item = next(frames, None)
        if item is None:
            time.sleep(0.01)
            return None
        wait_turn()
        log('take')
        return item

    def submit(item: int, around_inference) -> Pending:
        log('host_start')
        time.sleep(0.004)                  # copy + launches (< the turn's 10 ms bound)
        log('host_end')
        with around_inference():
            time.sleep(0.03)               # waiting for the model: no GIL
        return Pending(item)

    def finish(item: int, result: int) -> None:
        log('publish')
    path = FramePath(take, submit, finish, lambda *a: None, prefetch=True, name='turns')
    path.start()
    time.sleep(0.8)
    assert path.stop(timeout_s=5.0)
    host = []
    start = None
    for t, what in events:
        if what == 'host_start':
            start = t
        elif what == 'host_end' and start is not None:
            host.append((start, t))
    inside = [t for t, what in events if what in ('take', 'publish')
              and any(a + 0.0005 < t < b - 0.0005 for a, b in host)]
    assert sum(what == 'publish' for _, what in events) == 6
    assert inside == [], 'a take or publish started during the submit thread\'s host work'


def test_handoff_bounds_orders_and_closes() -> None:
    handoff: Handoff[int] = Handoff(2)
    assert handoff.put(1) and handoff.put(2) and len(handoff) == 2
    blocked = threading.Event()
    result: List[bool] = []

    def third() -> None:
        blocked.set()
        result.append(handoff.put(3))
    thread = threading.Thread(target=third)
    thread.start()
    assert blocked.wait(1.0)
    time.sleep(0.05)
    assert result == [], 'put into a full hand-off did not block'
    assert handoff.get() == (True, 1)
    thread.join(2.0)
    assert result == [True]
    handoff.close()
    assert not handoff.put(4)
    assert handoff.get() == (True, 2) and handoff.get() == (True, 3)
    assert handoff.get() == (False, None)
    assert not handoff.wait_for_room()
    with pytest.raises(ValueError):
        Handoff(0)


def test_plan_follows_the_measurements() -> None:
    gpu = plan_frame_path(0, inference_on_device=True, inference_threads=0, cpu_count=12)
    assert (gpu.in_flight, gpu.prefetch) == (2, True)
    two_cores = plan_frame_path(0, False, 0, cpu_count=2)
    assert (two_cores.in_flight, two_cores.prefetch) == (1, False)
    assert 'one frame at a time' in two_cores.reason
    assert plan_frame_path(0, False, 1, cpu_count=2).in_flight == 1      # 1 spare core
    assert plan_frame_path(0, False, 8, cpu_count=16).in_flight == 2     # 8 spare
    assert plan_frame_path(0, False, 0, cpu_count=16).in_flight == 1     # ORT takes all
    forced = plan_frame_path(3, False, 0, cpu_count=2)
    assert (forced.in_flight, forced.prefetch) == (3, False) and '(set)' in forced.reason
    assert plan_frame_path(1, True, 0).prefetch is False


def test_batch_window_only_where_frames_can_share_an_inference() -> None:
    def batching(window_ms, per_inference, max_batch_size):
        plan = plan_frame_path(0, False, 0, window_ms, per_inference, max_batch_size)
        return plan.batch_window_s, plan.one_frame
    assert batching(5.0, None, 0) == (pytest.approx(0.005), False)   # dynamic batch
    assert batching(5.0, 4, 0) == (pytest.approx(0.005), False)
    assert batching(5.0, 1, 0) == (0.0, True)                         # fixed batch of 1
    assert batching(5.0, None, 1) == (0.0, True)                      # max_batch_size 1
    assert batching(0.0, None, 0) == (0.0, False)   # no window, but frames may still share
