"""Counters and latency statistics for /diagnostics and the benchmarks (no ROS here)."""

import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np


def percentiles(samples: Iterable[float], qs: Tuple[float, ...] = (50.0, 95.0)
                ) -> Tuple[float, ...]:
    """Percentiles of ``samples`` (NaN for each when there are none)."""
    arr = np.fromiter(samples, dtype=np.float64)
    if arr.size == 0:
        return tuple(float('nan') for _ in qs)
    return tuple(float(v) for v in np.percentile(arr, qs))


class LatencyWindow:
    """The last ``size`` durations of one stage, in seconds."""

    def __init__(self, size: int = 300) -> None:
        self._samples: Deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        """Record one duration."""
        with self._lock:
            self._samples.append(seconds)

    def p50_p95_ms(self) -> Tuple[float, float]:
        """Median and 95th percentile in milliseconds (NaN when empty)."""
        with self._lock:
            snapshot = list(self._samples)
        p50, p95 = percentiles(snapshot)
        return p50 * 1e3, p95 * 1e3

    def __len__(self) -> int:
        return len(self._samples)


class RateMeter:
    """Events per second over a sliding time window."""

    def __init__(self, window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._stamps: Deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, count: int = 1) -> None:
        """Record ``count`` events now (none when ``count`` <= 0)."""
        if count <= 0:
            return
        now = self._clock()
        with self._lock:
            self.total += count
            self._stamps.extend([now] * count)
            self._trim(now)

    def rate_hz(self) -> float:
        """Events per second over the window (0 when fewer than two events)."""
        now = self._clock()
        with self._lock:
            self._trim(now)
            if len(self._stamps) < 2:
                return 0.0
            span = now - self._stamps[0]
            return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._stamps and now - self._stamps[0] > self._window:
            self._stamps.popleft()


class StageStats:
    """Latency windows for named pipeline stages plus frame counters."""

    def __init__(self, stages: Iterable[str], window: int = 300) -> None:
        self.stages: Dict[str, LatencyWindow] = {s: LatencyWindow(window) for s in stages}
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self._lock = threading.Lock()
        self.dropped = 0
        self.errors = 0

    def add_times(self, times: Dict[str, float]) -> None:
        """Record a frame's per-stage durations (seconds); unknown stages are added."""
        for stage, seconds in times.items():
            window = self.stages.get(stage)
            if window is None:
                # Under the lock: the diagnostics timer's snapshot (another thread) must
                # never see the dict grow while it walks it.
                with self._lock:
                    window = self.stages.setdefault(stage, LatencyWindow())
            window.add(seconds)

    def count_drop(self, n: int = 1) -> None:
        """Count frames replaced by a newer one before they were processed."""
        with self._lock:
            self.dropped += n

    def count_error(self) -> None:
        """Count a frame that failed (bad input, inference error)."""
        with self._lock:
            self.errors += 1

    def snapshot(self) -> Dict[str, Union[int, float]]:
        """Flat name -> value view for diagnostics and reports (counters as integers)."""
        # Counts stay int: /diagnostics prints floats with 3 decimals ('frames_in = 246.000').
        out: Dict[str, Union[int, float]] = {
            'input_rate_hz': self.input_rate.rate_hz(),
            'output_rate_hz': self.output_rate.rate_hz(),
            'frames_in': int(self.input_rate.total),
            'frames_out': int(self.output_rate.total),
            'frames_dropped': int(self.dropped),
            'frames_failed': int(self.errors),
        }
        # A copy, taken under the lock: the frame worker adds a stage the first time it
        # reports it (a 2-camera GPU node died here with "dictionary changed size during
        # iteration" when that coincided with the diagnostics timer).
        with self._lock:
            windows = list(self.stages.items())
        for stage, window in windows:
            p50, p95 = window.p50_p95_ms()
            out[f'{stage}_ms_p50'] = p50
            out[f'{stage}_ms_p95'] = p95
        return out


class RateLimiter:
    """Allow one event per ``period_s`` per key (for rate-limited error logs)."""

    def __init__(self, period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._period = period_s
        self._clock = clock
        self._last: Dict[str, float] = {}
        self.suppressed: Dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Tell whether an event for ``key`` may be emitted now."""
        now = self._clock()
        last: Optional[float] = self._last.get(key)
        if last is None or now - last >= self._period:
            self._last[key] = now
            return True
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        return False

    def take_suppressed(self, key: str) -> int:
        """How many events for ``key`` were suppressed since the last call (and reset)."""
        return self.suppressed.pop(key, 0)


# A stamp further back than this is on another clock (sim time, an unset camera clock).
_MAX_PLAUSIBLE_AGE_NS = 60_000_000_000


def stamp_age_s(sec: int, nanosec: int, now_ns: int) -> Optional[float]:
    """Seconds from a header stamp to ``now_ns`` (system clock); None when not comparable.

    Zero stamps, stamps in the future and stamps over a minute old are taken to be on
    another clock than the system's, and give None rather than a meaningless age.
    """
    stamp_ns = int(sec) * 1_000_000_000 + int(nanosec)
    if stamp_ns <= 0 or stamp_ns > now_ns or now_ns - stamp_ns >= _MAX_PLAUSIBLE_AGE_NS:
        return None
    return (now_ns - stamp_ns) / 1e9


def stage_medians(times: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Median milliseconds per stage (plus 'total') over per-frame stage times."""
    if not times:
        return {}
    keys = list(times[0])
    out = {k: float(np.median([t.get(k, 0.0) for t in times])) * 1e3 for k in keys}
    out['total'] = float(np.median([sum(t.values()) for t in times])) * 1e3
    return {k: round(v, 3) for k, v in out.items()}
