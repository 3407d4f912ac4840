"""Keep-latest slots and the multi-camera batching window."""

import threading
import time

from segformer_ros.batching import LatestFrameSlots


def test_keep_latest_counts_replaced_frames() -> None:
    slots = LatestFrameSlots(1)
    assert slots.put(0, 'a') is False
    assert slots.put(0, 'b') is True
    assert slots.put(0, 'c') is True
    assert slots.take_batch(0.0, timeout_s=0.1) == [(0, 'c')]
    assert slots.drop_counts() == {0: 2}
    assert slots.take_batch(0.0, timeout_s=0.05) == []


def test_window_collects_other_cameras_but_never_waits_longer() -> None:
    slots = LatestFrameSlots(3)
    slots.put(0, 'a0')
    threading.Timer(0.02, lambda: slots.put(1, 'b0')).start()
    t0 = time.monotonic()
    batch = slots.take_batch(window_s=0.15, timeout_s=1.0)
    waited = time.monotonic() - t0
    # camera 2 never sends: the batch closes at the window, with cameras 0 and 1.
    assert batch == [(0, 'a0'), (1, 'b0')]
    assert 0.1 <= waited < 0.5


def test_full_batch_returns_before_window() -> None:
    slots = LatestFrameSlots(2)
    slots.put(0, 'a')
    slots.put(1, 'b')
    t0 = time.monotonic()
    assert slots.take_batch(window_s=1.0, timeout_s=1.0) == [(0, 'a'), (1, 'b')]
    assert time.monotonic() - t0 < 0.2


def test_lone_camera_not_delayed_with_single_channel() -> None:
    slots = LatestFrameSlots(1)
    slots.put(0, 'x')
    t0 = time.monotonic()
    assert slots.take_batch(window_s=1.0, timeout_s=1.0) == [(0, 'x')]
    assert time.monotonic() - t0 < 0.1


def test_close_wakes_waiting_worker() -> None:
    slots = LatestFrameSlots(2)
    result = []
    worker = threading.Thread(target=lambda: result.append(slots.take_batch(0.0)))
    worker.start()
    time.sleep(0.05)
    slots.close()
    worker.join(timeout=1.0)
    assert not worker.is_alive() and result == [[]]
    assert slots.closed
