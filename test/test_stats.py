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


def test_stamp_age_only_for_stamps_on_the_system_clock():
    from segformer_ros.stats import stamp_age_s

    now = 1_800_000_000 * 1_000_000_000
    assert stamp_age_s(1_800_000_000, 0, now + 25_000_000) == pytest.approx(0.025)
    assert stamp_age_s(1_799_999_999, 990_000_000, now) == pytest.approx(0.010)
    assert stamp_age_s(0, 0, now) is None                    # unset stamp
    assert stamp_age_s(1_800_000_001, 0, now) is None        # in the future
    assert stamp_age_s(1_000, 0, now) is None                # sim time / another clock
