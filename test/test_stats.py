"""Latency windows, rate meters and the error-log rate limiter."""

import math

import pytest

from segformer_ros.stats import LatencyWindow, RateLimiter, RateMeter, StageStats, percentiles


class FakeClock:
    """A settable clock (time is an input here, not something to mock away)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_and_empty() -> None:
    assert percentiles(range(1, 101), (50.0,)) == (50.5,)
    assert all(math.isnan(v) for v in percentiles([]))


def test_latency_window_keeps_last_samples() -> None:
    w = LatencyWindow(size=3)
    for s in (1.0, 1.0, 0.002, 0.002, 0.002):
        w.add(s)
    p50, p95 = w.p50_p95_ms()
    assert p50 == p95 == 2.0


def test_rate_meter_window() -> None:
    clock = FakeClock()
    meter = RateMeter(window_s=5.0, clock=clock)
    for _ in range(11):
        meter.tick()
        clock.now += 0.1
    assert abs(meter.rate_hz() - 10 / 1.1) < 1e-6
    clock.now += 10.0
    assert meter.rate_hz() == 0.0
    assert meter.total == 11


def test_rate_limiter_counts_suppressed() -> None:
    clock = FakeClock()
    limiter = RateLimiter(period_s=5.0, clock=clock)
    assert limiter.allow('bad encoding')
    assert not limiter.allow('bad encoding')
    assert not limiter.allow('bad encoding')
    assert limiter.allow('other key')
    clock.now += 5.0
    assert limiter.allow('bad encoding')
    assert limiter.take_suppressed('bad encoding') == 2
    assert limiter.take_suppressed('bad encoding') == 0


def test_stage_stats_snapshot() -> None:
    stats = StageStats(('inference',))
    stats.add_times({'inference': 0.010, 'publish': 0.001})
    stats.count_drop(3)
    snap = stats.snapshot()
    assert snap['inference_ms_p50'] == 10.0
    assert snap['publish_ms_p50'] == 1.0
    assert snap['frames_dropped'] == 3.0


def test_stage_stats_snapshot_while_a_new_stage_appears() -> None:
    # The frame worker reports a stage for the first time while the diagnostics timer (another
    # thread) is inside snapshot(): here that interleaving is made to happen, not hoped for.
    stats = StageStats(('inference', 'publish'))
    stats.add_times({'inference': 0.010, 'publish': 0.001})
    window = stats.stages['inference']
    original = window.p50_p95_ms

    def p50_p95_with_worker_in_between():
        stats.add_times({'download': 0.002})   # a GPU-path stage, first reported now
        return original()

    window.p50_p95_ms = p50_p95_with_worker_in_between
    snap = stats.snapshot()   # raised RuntimeError: dictionary changed size during iteration
    assert snap['inference_ms_p50'] == 10.0 and snap['publish_ms_p50'] == 1.0
    assert stats.snapshot()['download_ms_p50'] == 2.0   # the next snapshot has it


def test_stage_stats_snapshot_with_a_racing_worker_thread() -> None:
    import threading

    stats = StageStats(('inference',))
    stop = threading.Event()
    failures = []

    def worker() -> None:
        for i in range(20000):
            if stop.is_set():
                return
            stats.add_times({f'stage_{i}': 0.001, 'inference': 0.01})

    def diagnostics() -> None:
        try:
            while not stop.is_set():
                stats.snapshot()
        except RuntimeError as exc:   # the race, if snapshot walked the live dict
            failures.append(exc)

    threads = [threading.Thread(target=worker), threading.Thread(target=diagnostics)]
    for thread in threads:
        thread.start()
    threads[0].join(30.0)
    stop.set()
    threads[1].join(10.0)
    assert not failures, failures


def test_stamp_age_only_for_stamps_on_the_system_clock():
    from segformer_ros.stats import stamp_age_s

    now = 1_800_000_000 * 1_000_000_000
    assert stamp_age_s(1_800_000_000, 0, now + 25_000_000) == pytest.approx(0.025)
    assert stamp_age_s(1_799_999_999, 990_000_000, now) == pytest.approx(0.010)
    assert stamp_age_s(0, 0, now) is None                    # unset stamp
    assert stamp_age_s(1_800_000_001, 0, now) is None        # in the future
    assert stamp_age_s(1_000, 0, now) is None                # sim time / another clock
