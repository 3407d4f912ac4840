"""Keep-latest slots and the multi-camera batching window."""

import threading
import time

import pytest

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


def test_deeper_slot_keeps_the_last_n_and_hands_out_the_oldest_first() -> None:
    slots = LatestFrameSlots(1, depth=3)
    for item in 'abcde':
        slots.put(0, item)
    assert slots.pending(0) == 3 and slots.drop_counts() == {0: 2}     # a and b replaced
    assert [slots.take_batch(0.0, timeout_s=0.1) for _ in range(3)] == [
        [(0, 'c')], [(0, 'd')], [(0, 'e')]]
    assert slots.taken_counts() == [3]
    assert slots.take_batch(0.0, timeout_s=0.05) == []


def test_one_frame_serves_the_cameras_in_turn() -> None:
    slots = LatestFrameSlots(3, depth=2)
    for item in ('a0', 'a1'):
        slots.put(0, item)
    slots.put(2, 'c0')
    taken = [slots.take_batch(1.0, timeout_s=0.1, one_frame=True) for _ in range(3)]
    # Camera 0 first, then camera 2 (1 has nothing), then 0 again: never 0 twice in a row
    # while another camera waits; and no window wait for a single frame.
    assert taken == [[(0, 'a0')], [(2, 'c0')], [(0, 'a1')]]


def test_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match='depth of at least 1, got 0'):
        LatestFrameSlots(1, depth=0)
