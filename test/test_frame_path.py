"""The frame path of issue 9: frames pulled from DDS by the worker, executors split.

Real rclpy and Fast DDS on loopback: a publisher and the pulled subscription in one
process, an executor spinning meanwhile (it must never take the pulled frames).
"""

import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from ros_helpers import wait_until  # noqa: E402


def _node(context, name):
    return rclpy.create_node(name, context=context)


def test_frame_reader_takes_the_newest_and_counts_the_skipped(rclpy_context) -> None:
    from rclpy.executors import MultiThreadedExecutor
    from std_msgs.msg import Header

    from segformer_ros.frame_reader import FrameReader, PulledCallbackGroup
    from segformer_ros.node import SENSOR_QOS

    node = _node(rclpy_context, 'frame_reader_probe')
    called = []
    sub = node.create_subscription(Header, 'frames', called.append, SENSOR_QOS,
                                   callback_group=PulledCallbackGroup())
    pub = node.create_publisher(Header, 'frames', 10)
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    reader = FrameReader(rclpy_context, [sub])
    try:
        assert wait_until(lambda: pub.get_subscription_count() >= 1, 10.0)
        assert reader.take_batch(0.0, timeout_s=0.2) == []          # nothing yet: times out
        pub.publish(Header(frame_id='first'))
        assert [m.frame_id for _, m in reader.take_batch(0.0, timeout_s=5.0)] == ['first']
        for i in range(5):
            pub.publish(Header(frame_id=str(i)))
            time.sleep(0.02)
        batch = reader.take_batch(0.0, timeout_s=5.0)
        assert [(c, m.frame_id) for c, m in batch] == [(0, '4')]     # the newest only
        # Skipped frames come from the publisher's sequence numbers (known from the 2nd take).
        assert reader.drop_counts() == {0: 4} and reader.frames_seen() == 6
        assert called == []                                          # no executor took them
        reader.close()
        assert reader.take_batch(0.0, timeout_s=5.0) == [] and reader.closed
    finally:
        reader.destroy()
        executor.shutdown()
        spin.join(5.0)
        node.destroy_node()


def test_deeper_reader_queues_frames_oldest_first(rclpy_context) -> None:
    """input_queue_depth N: the reader keeps the last N frames, taken oldest first."""
    from rclpy.qos import QoSProfile
    from std_msgs.msg import Header

    from segformer_ros.frame_reader import FrameReader, PulledCallbackGroup
    from segformer_ros.node import SENSOR_QOS

    node = _node(rclpy_context, 'frame_reader_queue')
    qos = QoSProfile(reliability=SENSOR_QOS.reliability, history=SENSOR_QOS.history,
                     depth=3, durability=SENSOR_QOS.durability)
    sub = node.create_subscription(Header, 'queued', lambda m: None, qos,
                                   callback_group=PulledCallbackGroup())
    pub = node.create_publisher(Header, 'queued', 10)
    reader = FrameReader(rclpy_context, [sub])
    try:
        assert wait_until(lambda: pub.get_subscription_count() >= 1, 10.0)
        pub.publish(Header(frame_id='first'))   # the sequence numbers' baseline
        assert [m.frame_id for _, m in reader.take_batch(0.0, timeout_s=5.0)] == ['first']
        for i in range(5):
            pub.publish(Header(frame_id=str(i)))
            time.sleep(0.02)
        taken = [m.frame_id for _ in range(3)
                 for _, m in reader.take_batch(0.0, timeout_s=5.0)]
        assert taken == ['2', '3', '4']          # the last three, in order
        assert reader.take_batch(0.0, timeout_s=0.2) == []
        # Frames 0 and 1 were replaced in the reader: counted as skipped.
        assert reader.drop_counts() == {0: 2} and reader.frames_seen() == 6
    finally:
        reader.destroy()
        node.destroy_node()


def test_one_frame_at_a_time_serves_the_cameras_in_turn(rclpy_context) -> None:
    """Models that cannot batch: one frame per take, every camera served in its turn."""
    from std_msgs.msg import Header

    from segformer_ros.frame_reader import FrameReader, PulledCallbackGroup
    from segformer_ros.node import SENSOR_QOS

    node = _node(rclpy_context, 'frame_reader_turns')
    group = PulledCallbackGroup()
    subs = [node.create_subscription(Header, f'cam{i}', lambda m: None, SENSOR_QOS,
                                     callback_group=group) for i in range(3)]
    pubs = [node.create_publisher(Header, f'cam{i}', 10) for i in range(3)]
    reader = FrameReader(rclpy_context, subs)
    try:
        assert wait_until(lambda: all(p.get_subscription_count() >= 1 for p in pubs), 10.0)
        order = []
        for round_ in range(3):
            for i, pub in enumerate(pubs):            # every camera has a frame waiting
                pub.publish(Header(frame_id=f'{i}.{round_}'))
            time.sleep(0.05)
            for _ in range(3):
                batch = reader.take_batch(0.0, timeout_s=5.0, one_frame=True)
                assert len(batch) == 1
                order.append(batch[0][0])
                # A fast camera (0) has a new frame before every take: it must not win
                # every time ahead of the others.
                pubs[0].publish(Header(frame_id='again'))
                time.sleep(0.03)
        # Whatever was ready, each take went to the next camera in turn: none starves.
        assert order == [0, 1, 2] * 3, order
        reader.take_batch(0.0, timeout_s=0.2)         # camera 0's last extra frame
        assert reader.take_batch(0.0, timeout_s=0.2) == []
        for pub in pubs[:2]:
            pub.publish(Header(frame_id='x'))
        time.sleep(0.05)
        assert [c for c, _ in reader.take_batch(0.0, timeout_s=5.0)] == [0, 1]   # batching
    finally:
        reader.destroy()
        node.destroy_node()


def test_split_executors_serve_each_side(rclpy_context) -> None:
    from std_msgs.msg import Header

    from segformer_ros.executors import (ControlExecutor, FramePathCallbackGroup,
                                         FramePathExecutor, NodeExecutors)
    from segformer_ros.node import SENSOR_QOS

    node = _node(rclpy_context, 'split_executor_probe')
    threads = {'frame': set(), 'timer': set()}
    sub = node.create_subscription(
        Header, 'info', lambda _m: threads['frame'].add(threading.current_thread().name),
        SENSOR_QOS, callback_group=FramePathCallbackGroup())
    timer = node.create_timer(0.05, lambda: threads['timer'].add(
        threading.current_thread().name))
    pub = node.create_publisher(Header, 'info', 10)
    executors = NodeExecutors(node, context=rclpy_context)
    assert isinstance(executors.frames, FramePathExecutor)
    assert isinstance(executors.control, ControlExecutor)
    assert executors.frames.can_execute(sub) and not executors.control.can_execute(sub)
    assert executors.control.can_execute(timer) and not executors.frames.can_execute(timer)
    assert node.executor is executors.frames        # rclpy wakes this one; it wakes both
    main = threading.Thread(target=executors.spin, name='frame_path', daemon=True)
    main.start()
    try:
        assert wait_until(lambda: pub.get_subscription_count() >= 1, 10.0)
        assert wait_until(lambda: bool(threads['timer']), 10.0)
        # A timer created while spinning is picked up by the control executor (wake-up).
        late = []
        node.create_timer(0.05, lambda: late.append(1))
        assert wait_until(lambda: bool(late), 10.0)
        assert wait_until(lambda: (pub.publish(Header()), bool(threads['frame']))[1], 10.0)
        assert threads['frame'] == {'frame_path'}
        assert 'frame_path' not in threads['timer']
    finally:
        assert executors.shutdown(timeout_sec=5.0)
        main.join(5.0)
        node.destroy_node()
