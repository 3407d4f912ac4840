"""A camera topic without images is named in a WARN (issue 25, item 3: the silences).

The timing and the wording without ROS (a fake clock); the graph reading and the node's
warnings with real rclpy and DDS on loopback, in-process.
"""

import time
from typing import Callable, List

import numpy as np
import pytest

from segformer_ros.input_watch import (FIRST_WARNING_S, REPEAT_WARNING_S, InputWatch,
                                       PublisherInfo, no_input_message)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_warning_after_a_few_seconds_then_rate_limited() -> None:
    clock = _Clock()
    watch = InputWatch(2, clock=clock)
    clock.now += FIRST_WARNING_S - 0.5
    assert watch.update([0, 0]) == ([], [])
    clock.now += 0.5
    assert watch.update([0, 0]) == ([0, 1], [])
    assert watch.silent_s(0) == pytest.approx(FIRST_WARNING_S)
    assert not watch.ever_received(0)
    for _ in range(int(REPEAT_WARNING_S) - 1):   # silent on, but said already
        clock.now += 1.0
        assert watch.update([0, 0]) == ([], [])
    clock.now += 1.0
    assert watch.update([0, 0]) == ([0, 1], [])   # said again, once per period
    # Camera 1 starts: said once; camera 0 stays silent and is not said again yet.
    clock.now += 1.0
    assert watch.update([0, 3]) == ([], [1])
    clock.now += 1.0
    assert watch.update([0, 5]) == ([], [])
    # Camera 1 stops: a few seconds later it is said again, as stopped.
    clock.now += FIRST_WARNING_S
    assert watch.update([0, 5]) == ([1], [])
    assert watch.ever_received(1) and watch.silent_s(1) == pytest.approx(FIRST_WARNING_S)
    with pytest.raises(ValueError, match='expected 2 frame counts, got 1'):
        watch.update([0])


def test_a_steady_camera_is_never_warned_about() -> None:
    clock = _Clock()
    watch = InputWatch(1, clock=clock)
    for count in range(1, 200):
        clock.now += 0.1
        assert watch.update([count]) == ([], [])


def test_a_slow_camera_is_not_called_stopped_between_its_images() -> None:
    """One image every 10 s: after its first interval (rate unknown yet), never a warning."""
    clock = _Clock()
    watch = InputWatch(1, clock=clock)
    count, warned, resumed = 0, [], []
    for _ in range(600):   # ten minutes, a check a second, an image every 10 s
        clock.now += 1.0
        if round(clock.now) % 10 == 1:
            count += 1
        due, back = watch.update([count])
        warned += [clock.now] * len(due)
        resumed += [clock.now] * len(back)
    assert warned == [106.0] and resumed == [111.0], (warned, resumed)
    # It stops (last image at 691 s): said after three of its intervals (30 s), not after 5 s.
    while not watch.update([count])[0]:
        clock.now += 1.0
    assert clock.now == 691.0 + 30.0 and watch.silent_s(0) == 30.0


def test_the_message_names_the_topic_publishers_and_fix() -> None:
    none = no_input_message('/nobody/image', IMAGE, 5.2, False, [],
                            ['/camera/image_raw', '/front/image'])
    assert none.startswith('no image on /nobody/image for 5 s: it has no publisher')
    assert 'remapping' in none and 'topics of that type: /camera/image_raw, /front/image' in none
    many = no_input_message('/x', IMAGE, 5, False, [], [f'/c{i}' for i in range(8)])
    assert '/c4 (+3 more)' in many and '/c5' not in many

    driver = PublisherInfo('/cam/driver', COMPRESSED, None)
    wrong = no_input_message('/x', IMAGE, 5, False, [driver])
    assert f'1 publisher (/cam/driver) of {COMPRESSED}, but the node subscribes {IMAGE}' in wrong
    assert 'input_transport' in wrong and 'compressed' in wrong

    qos = PublisherInfo('/cam/driver', IMAGE, 'ERROR: Best effort publisher and reliable '
                                              'subscription;')
    bad = no_input_message('/x', IMAGE, 5, False, [qos, PublisherInfo('/b', IMAGE, 'x')])
    assert '2 publishers, QoS incompatible' in bad and '/cam/driver: ERROR: Best effort' in bad

    quiet = no_input_message('/x', IMAGE, 35, True, [PublisherInfo('/bag', IMAGE, None)])
    assert quiet.startswith('images stopped on /x 35 s ago: 1 publisher (/bag)')
    assert 'QoS compatible' in quiet and 'has it stopped' in quiet
    assert all('\n' not in m for m in (none, wrong, bad, quiet))


# ---------------------------------------------------------------- with ROS
@pytest.mark.ros
def test_graph_reading_with_real_publishers(rclpy_context) -> None:
    rclpy = pytest.importorskip('rclpy')
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from segformer_ros.topic_graph import (published_topics_of_type, publishers_of,
                                           type_name)

    assert type_name(Image) == IMAGE and type_name(CompressedImage) == COMPRESSED
    node = rclpy.create_node('graph_reader', context=rclpy_context)
    cam = rclpy.create_node('driver', namespace='/cam', context=rclpy_context)
    try:
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        cam.create_publisher(Image, '/cam/image_raw', best_effort)
        cam.create_publisher(CompressedImage, '/cam/image_raw/compressed', reliable)
        deadline = time.monotonic() + 10.0
        while not publishers_of(node, '/cam/image_raw', reliable) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        (pub,) = publishers_of(node, '/cam/image_raw', reliable)
        assert pub.node == '/cam/driver' and pub.type_name == IMAGE
        assert pub.qos_problem and 'Best effort publisher' in pub.qos_problem
        (pub,) = publishers_of(node, '/cam/image_raw', best_effort)
        assert pub.qos_problem is None
        assert publishers_of(node, '/nobody/image', best_effort) == []
        assert published_topics_of_type(node, IMAGE) == ['/cam/image_raw']
    finally:
        cam.destroy_node()
        node.destroy_node()


@pytest.mark.ros
def test_the_node_says_why_its_topic_is_silent(rclpy_context, ros_domain, deeplab_model,
                                               capfd) -> None:
    """Remapped to a topic nobody publishes: one WARN naming it; the wrong type; recovery."""
    pytest.importorskip('segformer_ros.msg', reason='generated messages missing: make setup')
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    from ros_helpers import deeplab_overrides, ros_context
    from segformer_ros.node import SegformerNode
    from segformer_ros.tools.spin import BackgroundSpin

    node = SegformerNode(context=rclpy_context, parameter_overrides=deeplab_overrides(
        deeplab_model), cli_args=['--ros-args', '-r', 'image:=/nobody/image'])
    peer = rclpy.create_node('silent_topic_peer', context=rclpy_context)
    peer.create_publisher(Image, '/elsewhere/image_raw', qos_profile_sensor_data)
    executor = MultiThreadedExecutor(num_threads=3, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(peer)
    spin = BackgroundSpin(executor)
    log: List[str] = []

    def wait_for(predicate: Callable[[str], bool], timeout: float) -> List[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log.extend(capfd.readouterr().err.splitlines())
            hits = [line for line in log if predicate(line)]
            if hits:
                return hits
            time.sleep(0.2)
        return []

    def silent(line: str) -> bool:
        return '[WARN]' in line and 'no image on /nobody/image' in line

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        started = time.monotonic()
        (warning,) = wait_for(silent, FIRST_WARNING_S + 10.0) or [None]
        assert warning, '\n'.join(log)
        assert time.monotonic() - started >= FIRST_WARNING_S - 1.0   # not at once
        assert 'it has no publisher' in warning and 'remapping' in warning, warning
        assert 'topics of that type: /elsewhere/image_raw' in warning, warning
        assert '/segmentation/mask' not in warning, warning   # not its own outputs
        time.sleep(3.0)   # rate-limited: not repeated every second
        assert len(wait_for(silent, 0.1)) == 1, '\n'.join(log)

        # A compressed stream where raw is expected: the type is named, and the fix.
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        log.clear()
        # (Another participant: Fast DDS refuses a second type for a topic in one.)
        with ros_context(ros_domain) as other:
            driver = rclpy.create_node('compressed_driver', context=other)
            driver.create_publisher(CompressedImage, '/nobody/image', qos_profile_sensor_data)
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            (warning,) = wait_for(silent, FIRST_WARNING_S + 10.0) or [None]
            driver.destroy_node()
        assert warning, '\n'.join(log)
        assert f'1 publisher (/compressed_driver) of {COMPRESSED}' in warning, warning
        assert 'input_transport' in warning, warning

        # Images at last: said once.
        camera = peer.create_publisher(Image, '/nobody/image', qos_profile_sensor_data)
        frame = np.zeros((64, 96, 3), np.uint8)
        msg = Image(height=64, width=96, encoding='rgb8', step=96 * 3, data=frame.tobytes())

        def arrived(line: str) -> bool:
            return 'images arrive on /nobody/image again' in line

        deadline = time.monotonic() + 20.0
        while not wait_for(arrived, 0.5) and time.monotonic() < deadline:
            camera.publish(msg)
        assert wait_for(arrived, 0.1), '\n'.join(log)
    finally:
        node.shutdown_resources()
        spin.stop()
        node.destroy_node()
        peer.destroy_node()
