"""The input / stall watchdog's verdicts (input_watch.py, no ROS)."""

from segformer_ros.input_watch import (LOST_MIN_FRAMES, CameraInput, InputWatch, PathProgress)

TOPIC = '/camera/image_raw'


def assess(watch, now, camera, path=PathProgress(), input_timeout_s=5.0, stall_timeout_s=5.0):
    return watch.assess(now, [camera], path, input_timeout_s, stall_timeout_s)


def test_frames_coming_in_is_ok() -> None:
    watch = InputWatch(started_s=0.0)
    for t in range(1, 20):
        verdict = assess(watch, float(t), CameraInput(TOPIC, 1, taken=t * 30))
        assert (verdict.level, verdict.key) == ('ok', None), verdict
    assert verdict.values['camera_image_raw_publishers'] == 1


def test_no_publisher_warns_after_the_timeout_naming_the_topic_and_the_fix() -> None:
    watch = InputWatch(started_s=0.0)
    assert assess(watch, 4.9, CameraInput(TOPIC, 0)).level == 'ok'
    verdict = assess(watch, 5.0, CameraInput(TOPIC, 0))
    assert verdict.level == 'warn' and verdict.key == f'no_input:{TOPIC}'
    assert TOPIC in verdict.message and 'no publisher' in verdict.message
    assert 'remapping' in verdict.message
    assert assess(watch, 9.0, CameraInput(TOPIC, 0), input_timeout_s=0.0).level == 'ok'


def test_incompatible_qos_and_matched_but_silent_publishers_are_told_apart() -> None:
    watch = InputWatch(started_s=0.0)
    verdict = assess(watch, 6.0, CameraInput(TOPIC, 0, graph_publishers=1,
                                             incompatible=('/cam/driver: RELIABILITY',)))
    assert 'incompatible QoS' in verdict.message and '/cam/driver' in verdict.message
    verdict = assess(watch, 7.0, CameraInput(TOPIC, 2))
    assert '2 publisher(s) matched but no frame arrived' in verdict.message


def test_a_frame_resets_the_no_input_clock() -> None:
    watch = InputWatch(started_s=0.0)
    assert assess(watch, 6.0, CameraInput(TOPIC, 1)).level == 'warn'
    assert assess(watch, 7.0, CameraInput(TOPIC, 1, taken=1)).level == 'ok'
    assert assess(watch, 11.9, CameraInput(TOPIC, 1, taken=1)).level == 'ok'
    assert assess(watch, 12.1, CameraInput(TOPIC, 1, taken=1)).level == 'warn'


def test_frames_lost_while_the_node_waited_are_an_error() -> None:
    """The Jazzy case of issue 21: 29 of 30 frames sent never reached the node."""
    watch = InputWatch(started_s=0.0)
    verdict = assess(watch, 3.0, CameraInput(TOPIC, 1, taken=1, lost_while_idle=29))
    assert verdict.level == 'error' and verdict.key == f'lost:{TOPIC}'
    assert '29 never arrived' in verdict.message and 'segment' in verdict.message
    assert verdict.values['camera_image_raw_frames_lost_in_transport'] == 29
    # A few losses among many frames are not an error; the window starts again.
    verdict = assess(watch, 4.0, CameraInput(TOPIC, 1, taken=60, lost_while_idle=31))
    assert verdict.level == 'ok', verdict
    # Too few frames to judge yet.
    verdict = assess(InputWatch(0.0), 1.0,
                     CameraInput(TOPIC, 1, taken=1, lost_while_idle=LOST_MIN_FRAMES - 2))
    assert verdict.level == 'ok'


def test_a_frame_held_too_long_is_a_stall_but_a_slow_model_is_not() -> None:
    watch = InputWatch(started_s=0.0)
    cam = CameraInput(TOPIC, 1, taken=5)
    verdict = assess(watch, 1.0, cam, PathProgress(oldest_in_flight_s=6.0,
                                                   slowest_recent_s=0.2))
    assert verdict.level == 'error' and verdict.key == 'stall:frame'
    assert '6.0 s' in verdict.message
    # A model that takes 2 s a frame: 6 s in flight is within 4x its slowest frame.
    verdict = assess(watch, 2.0, cam, PathProgress(oldest_in_flight_s=6.0,
                                                   slowest_recent_s=2.0))
    assert verdict.level == 'ok', verdict
    verdict = assess(watch, 3.0, cam, PathProgress(oldest_in_flight_s=60.0),
                     stall_timeout_s=0.0)
    assert verdict.level == 'ok'


def test_a_dead_frame_path_thread_is_a_stall_and_wins_over_warnings() -> None:
    watch = InputWatch(started_s=0.0)
    verdict = assess(watch, 10.0, CameraInput(TOPIC, 0),
                     PathProgress(dead_threads=('intake',)))
    assert verdict.level == 'error' and 'intake' in verdict.message


def test_wait_misses_are_reported_once_per_new_miss() -> None:
    watch = InputWatch(started_s=0.0)
    verdict = assess(watch, 1.0, CameraInput(TOPIC, 1, taken=3, wait_misses=2))
    assert verdict.level == 'warn' and 'found by polling' in verdict.message
    assert verdict.values['camera_image_raw_wait_misses'] == 2
    assert assess(watch, 2.0, CameraInput(TOPIC, 1, taken=4, wait_misses=2)).level == 'ok'
