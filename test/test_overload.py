"""Overload: 1080p rgb8 frames at (up to) 200 Hz for 60 s into a node process.

The publisher is its own process (test/ros_helpers.py flood); it reports the rate it
really reached. The node (real DeepLab on the CPU, a few frames per second at best) must
drop frames instead of queueing them:

* image -> mask latency stays bounded: p95 of the last 20 s at most ~2x that of the first
  20 s (from 5 s after the first mask), and below a few processing times of one frame;
* its RSS stays flat after warm-up (sampled every second from /proc/<pid>/status; the
  median of the flood's last 20 s within 20 MB of the median of the 20 s after warm-up);
* get_state answers within 1 s throughout (called every ~2 s, every call counts);
* /diagnostics adds up: frames_in == frames_out + frames_dropped + frames_failed, give or
  take the frames in flight while the flood runs, exactly once it has stopped.
"""

import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from ros_helpers import (NodeClient, error_lines, ros_context, rss_mb,  # noqa: E402
                         stamp_ns, start_preset_node, wait_until)
from benchmarks.processes import RosProcess, loopback_env  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
HELPERS = Path(__file__).resolve().parent / 'ros_helpers.py'
FLOOD_S = 60.0
RATE_HZ = 200.0
WINDOW_S = 20.0
START_S = 5.0      # the first window starts 5 s after the first mask (start-up transient)
WARMUP_S = 10.0
RSS_GROWTH_MB = 20.0
# Every call, publisher at full priority. Earlier runs on a heavily loaded machine saw
# one call in ~150 take 1.8-3.9 s: a request or reply lost while 6 MB frames filled the
# shared-memory port, re-sent only at Fast DDS's default 3 s writer heartbeat. The
# loopback profile now heartbeats every 100 ms (config/fastdds_loopback.xml).
SERVICE_LIMIT_S = 1.0
IN_FLIGHT = 3    # one frame in the worker, one in the slot, one between counters


def _counts(client: NodeClient) -> Tuple[float, float, float, float]:
    with client.lock:
        d = dict(client.diagnostics)
    return tuple(float(d.get(k, 'nan')) for k in  # type: ignore[return-value]
                 ('frames_in', 'frames_out', 'frames_dropped', 'frames_failed'))


def test_overload_keeps_latency_memory_and_services_bounded(tmp_path, ros_domain,
                                                            deeplab_model) -> None:
    env = loopback_env(ros_domain)
    node = start_preset_node(tmp_path, ros_domain, deeplab_model, warmup_iterations=1,
                             autostart=True)
    report_path = tmp_path / 'flood.json'
    flood = None
    rss: List[Tuple[float, float]] = []
    services: List[Tuple[float, float]] = []
    balance: List[float] = []
    try:
        assert node.wait_for_log('configured:', 60.0), node.log()[-3000:]
        with ros_context(ros_domain) as context, NodeClient(context) as client:
            assert wait_until(lambda: client.state() == 'active', 30.0)
            # The flood runs at the node's own priority: on this 2-core machine it
            # competes with the node for CPU, harder than a camera driver would.
            flood = RosProcess([sys.executable, str(HELPERS), 'flood',
                                '--topic', '/image',
                                '--rate', str(RATE_HZ), '--seconds', str(FLOOD_S),
                                '--report', str(report_path)], env, tmp_path / 'flood.log')
            assert wait_until(lambda: client.masks, 60.0), node.log()[-3000:]
            t0 = time.time()
            stop = threading.Event()

            def sample_rss() -> None:
                while not stop.wait(1.0):
                    rss.append((time.time() - t0, rss_mb(node.pid)))

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            from lifecycle_msgs.srv import GetState
            while flood.running() and time.time() - t0 < FLOOD_S + 10:
                _, took = client.call(client.get_state_client, GetState.Request(), 10.0)
                services.append((time.time() - t0, took))
                n_in, n_out, n_drop, n_fail = _counts(client)
                balance.append(n_in - n_out - n_drop - n_fail)
                time.sleep(2.0)
            stop.set()
            sampler.join()
            # Flood over: the counters must now add up exactly.
            time.sleep(2.5)
            final = _counts(client)
            with client.lock:
                masks = [(t - t0, (t - stamp_ns(m) * 1e-9)) for t, m in client.masks]
            diag = dict(client.diagnostics)
    finally:
        if flood is not None:
            flood.stop()
        code = node.stop()
    log = node.log_path.read_text()
    assert code == 0, log[-3000:]
    assert 'Traceback' not in log and error_lines(log) == [], log[-3000:]

    published = json.loads(report_path.read_text())
    lat = np.array([x[1] for x in masks if x[0] >= 0])
    when = np.array([x[0] for x in masks if x[0] >= 0])
    end = when.max()
    first = lat[(when >= START_S) & (when <= START_S + WINDOW_S)]
    last = lat[when >= end - WINDOW_S]
    p95_first, p95_last = float(np.percentile(first, 95)), float(np.percentile(last, 95))
    frame_ms = sum(float(diag[f'{s}_ms_p50']) for s in
                   ('convert', 'preprocess', 'inference', 'postprocess', 'publish'))
    # 6 MB messages come and go (glibc keeps freed frames in its arenas): single samples
    # swing by +-20 MB, so compare the median of the 20 s after warm-up with that of the
    # flood's last 20 s.
    flood_end = max(t for t, _ in services)
    baseline = float(np.median([m for t, m in rss if WARMUP_S <= t < WARMUP_S + 20]))
    final_rss = float(np.median([m for t, m in rss if flood_end - 20 <= t <= flood_end]))
    n_in, n_out, n_drop, n_fail = final
    summary = {
        'publisher_rate_hz': round(published['achieved_rate_hz'], 1),
        'published': published['frames_sent'], 'node_frames_in': n_in,
        'node_frames_out': n_out, 'dropped': n_drop, 'failed': n_fail,
        'masks_received': len(masks), 'frame_ms_p50': round(frame_ms, 1),
        'input_age_ms_p50': float(diag['input_age_ms_p50']),
        'latency_p50_ms': round(float(np.median(lat)) * 1e3, 1),
        'latency_p95_first20s_ms': round(p95_first * 1e3, 1),
        'latency_p95_last20s_ms': round(p95_last * 1e3, 1),
        'rss_after_warmup_mb': round(baseline, 1), 'rss_end_of_flood_mb': round(final_rss, 1),
        'rss_min_max_mb': [round(min(m for _, m in rss), 1), round(max(m for _, m in rss), 1)],
        'get_state_max_s': round(max(s for _, s in services), 3),
        'get_state_p50_s': round(float(np.median([s for _, s in services])), 3),
        'get_state_calls': len(services),
        'get_state_over_1s': [(round(t, 1), round(s, 2)) for t, s in services
                              if s >= SERVICE_LIMIT_S],
        'balance_during_flood': sorted(set(balance)),
    }
    print('overload:', json.dumps(summary))
    (tmp_path / 'overload.json').write_text(json.dumps(summary))

    assert published['achieved_rate_hz'] > 30.0, summary   # it is an overload at least
    assert n_out >= 20, summary
    # Bounded, not fast: a queue in front of a ~5 frames/s model fed at 100-200 Hz would
    # push latency to tens of seconds within the minute; keep-latest keeps it at a few
    # frame times. Margins absorb CPU contention on a shared 2-core machine.
    assert p95_last <= 3.0 * p95_first + 0.5, summary
    assert p95_last * 1e3 < 10.0 * frame_ms + 1000.0, summary
    assert final_rss - baseline < RSS_GROWTH_MB, summary
    assert len(services) >= 25, summary
    assert summary['get_state_over_1s'] == [], summary
    assert statistics.median(s for _, s in services) < 0.5, summary
    assert all(0 <= b <= IN_FLIGHT for b in balance), summary
    assert n_in == n_out + n_drop + n_fail, summary
    assert n_fail == 0, summary
    # The age of the image when taken (stamp -> take) is part of the latency, not all of it.
    assert 0.0 < summary['input_age_ms_p50'] < summary['latency_p50_ms'], summary
