"""50 configure -> activate -> deactivate -> cleanup cycles in one process: nothing grows.

The node runs in this process with the real DeepLab model (warmup_iterations 0, so a
cycle costs one model load) and real DDS. Resident memory, OS threads, Python threads and
open file descriptors are sampled after every cycle; the first cycles are warm-up
(ONNX Runtime's allocator, Fast DDS and executor threads, lazily imported modules), the
rest must be flat. Every fifth cycle (and the last) segments a frame, so inference
buffers and executor threads are part of every sample, and the cycles are shown to leave
a node that still works.
"""

import ctypes
import threading
import time
from typing import Dict, List

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402

from ros_helpers import (InProcessNode, deeplab_overrides, fd_targets, image_msg,  # noqa: E402
                         rss_mb, thread_count)

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SUCCESS = TransitionCallbackReturn.SUCCESS
CYCLES = 50
WARMUP_CYCLES = 10
FRAME_EVERY = 5            # cycles that also segment a frame (0, 5, ..., 45 and the last)
# RSS after malloc_trim still moves by +-6 MB from cycle to cycle (allocator and DDS
# buffers). The median of the last 10 cycles may exceed that of the first 10 steady ones
# by less than 8 MB: a leak of 0.25 MB per cycle (a leaked model session costs ~10 MB)
# would exceed it.
RSS_TOLERANCE_MB = 8.0


def _malloc_trim() -> None:
    """Hand free heap pages back to the OS, so RSS measures live memory, not free lists.

    Without it RSS swings by ~30 MB between cycles, depending on whether glibc kept the
    last inference's freed buffers; a leak is memory that stays live.
    """
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as is
        pass


def _sample(pid: int) -> Dict[str, float]:
    _malloc_trim()
    py = threading.enumerate()
    pool = sum(1 for t in py if t.name.startswith('ThreadPoolExecutor-'))
    os_threads = thread_count(pid)
    return {'rss_mb': rss_mb(pid), 'os_threads': float(os_threads),
            'py_threads': float(len(py)), 'pool_threads': float(pool),
            # Executor pools start workers lazily up to max_workers: bounded, not a leak.
            'other_py_threads': float(len(py) - pool),
            # Threads not started by Python: Fast DDS, ONNX Runtime's pool.
            'native_threads': float(os_threads - len(py)),
            'fds': float(len(fd_targets(pid)))}


def test_fifty_lifecycle_cycles_leak_nothing(rclpy_context, deeplab_model,
                                             street_frames_bgr) -> None:
    import os

    import cv2

    pid = os.getpid()
    frame = cv2.cvtColor(cv2.resize(street_frames_bgr[0], (320, 180)), cv2.COLOR_BGR2RGB)
    running = InProcessNode(rclpy_context, deeplab_overrides(deeplab_model))
    node, client = running.node, running.client
    samples: List[Dict[str, float]] = []
    start = time.monotonic()
    try:
        for cycle in range(CYCLES):
            assert node.trigger_configure() == SUCCESS, f'configure failed in cycle {cycle}'
            assert node.trigger_activate() == SUCCESS, f'activate failed in cycle {cycle}'
            if cycle % FRAME_EVERY == 0 or cycle == CYCLES - 1:
                assert client.wait_for_camera_match()
                stamp = (cycle + 1) * 10**9
                mask = client.send_until_mask(lambda: image_msg(frame, 'rgb8', stamp), stamp)
                assert mask is not None, f'no mask in cycle {cycle}'
                assert (mask.width, mask.height) == (320, 180)
            assert node.trigger_deactivate() == SUCCESS
            assert node.trigger_cleanup() == SUCCESS
            assert running.state() == 'unconfigured'
            assert node._backend is None and node._worker is None and not node._channels
            assert not [t for t in threading.enumerate() if t.name == 'segformer_inference']
            samples.append(_sample(pid))
    finally:
        running.close()
    elapsed = time.monotonic() - start

    steady = samples[WARMUP_CYCLES:]
    base, last = steady[0], steady[-1]
    rss = np.array([s['rss_mb'] for s in steady])
    growth = float(np.median(rss[-10:]) - np.median(rss[:10]))
    report = (f'{CYCLES} cycles in {elapsed:.1f} s; RSS {base["rss_mb"]:.1f} -> '
              f'{last["rss_mb"]:.1f} MB (median of last 10 - first 10 steady cycles: '
              f'{growth:+.1f} MB, max {rss.max():.1f}); '
              f'OS threads {base["os_threads"]:.0f} -> {last["os_threads"]:.0f} (native '
              f'{base["native_threads"]:.0f} -> {last["native_threads"]:.0f}, executor pool '
              f'{base["pool_threads"]:.0f} -> {last["pool_threads"]:.0f}, other Python '
              f'{base["other_py_threads"]:.0f} -> {last["other_py_threads"]:.0f}); fds '
              f'{base["fds"]:.0f} -> {last["fds"]:.0f}')
    print(report)
    print('RSS per cycle:', ' '.join(f'{s["rss_mb"]:.1f}' for s in samples))
    assert growth < RSS_TOLERANCE_MB, report
    for key in ('native_threads', 'other_py_threads', 'fds'):
        values = [s[key] for s in steady]
        assert max(values) <= base[key], f'{key} grew: {values}\n{report}'
    # The node's executor has 4 workers, the test client's 2.
    assert max(s['pool_threads'] for s in samples) <= 4 + 2, report
