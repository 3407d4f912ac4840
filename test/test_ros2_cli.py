"""The ros2 command line against the launched node, over real DDS, as users type it.

``ros2 lifecycle get/set``, ``ros2 param set/get``, ``ros2 topic echo`` and ``ros2 topic hz``
(the real ros2cli verbs: a sourced ROS 2 installation, or built from ../shared/ros-src by
make setup) against ``ros2 launch segformer_ros segformer.launch.py`` with the package's
``image_source`` as the camera (``ros2 run``). The verbs use the ros2 daemon, as they do for
users: started for this module's domain before the launch (so it has discovered the graph
when the verbs ask) and stopped at the end; none may be left behind.
"""

import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

from ros2_tools import require_ros_tools, Ros2Process, ros2_daemon, ros2_until_discovered
from ros_helpers import next_domain, wait_until
from segformer_ros.labels import CITYSCAPES_PALETTE
from shared_assets import BUNDLED_VIDEO

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = '/segformer'
CAMERA_TOPIC = '/camera/image_raw'
CAMERA_HZ = 3.0
ACTIVE = 'active: segmenting'


def _stamp(msg: Any) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def _image(msg: Any) -> np.ndarray:
    channels = {'mono8': 1, 'rgb8': 3, 'bgr8': 3}[msg.encoding]
    arr = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return arr[:, :msg.width * channels].reshape(msg.height, msg.width, channels).squeeze()


class Outputs:
    """Camera frames, masks and overlays of the launched node, by image stamp."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from segformer_ros.tools.spin import BackgroundSpin

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node('cli_test_probe', context=self.context)
        self.frames: Dict[int, Any] = {}
        self.masks: Dict[int, Any] = {}
        self.overlays: Dict[int, Tuple[float, Any]] = {}
        for topic, store in ((CAMERA_TOPIC, self.frames), ('/segmentation/mask', self.masks)):
            self.node.create_subscription(Image, topic, lambda m, s=store: s.__setitem__(
                _stamp(m), m), qos_profile_sensor_data)
        # The overlay is computed only while someone subscribes: this probe does.
        self.node.create_subscription(Image, '/segmentation/overlay', lambda m: self.overlays.
                                      __setitem__(_stamp(m), m), qos_profile_sensor_data)
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        self._spin = BackgroundSpin(executor)

    def close(self) -> None:
        import rclpy
        self._spin.stop()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _camera(domain: int, tmp_path: Path, rate_hz: float = CAMERA_HZ) -> Ros2Process:
    return Ros2Process(['run', 'segformer_ros', 'image_source', '--ros-args',
                        '-p', f'source:={BUNDLED_VIDEO}', '-p', f'rate_hz:={rate_hz}',
                        '-p', 'loop:=true', '-p', 'width:=320', '-r', f'image:={CAMERA_TOPIC}'],
                       domain, tmp_path / 'camera.log')


@pytest.fixture(scope='module')
def running(tmp_path_factory: Any) -> Iterator[Tuple[int, Ros2Process, Outputs]]:
    """One ``ros2 launch`` (no arguments: the bundled model) and a camera, for the module."""
    require_ros_tools()
    domain = next_domain()
    tmp_path = tmp_path_factory.mktemp('ros2_cli')
    daemon = ros2_daemon(domain)
    daemon.__enter__()
    launch = Ros2Process(['launch', 'segformer_ros', 'segformer.launch.py'], domain,
                         tmp_path / 'launch.log', cwd=tmp_path)
    cam = outputs = None
    try:
        assert launch.wait_for_output(lambda out: ACTIVE in out, 60.0), launch.output()[-3000:]
        outputs = Outputs(domain)
        cam = _camera(domain, tmp_path)
        assert wait_until(lambda: len(outputs.overlays) >= 2, 60.0), \
            launch.output()[-3000:] + cam.output()[-2000:]
        yield domain, launch, outputs
    finally:
        for proc in (cam, launch):
            if proc is not None:
                proc.interrupt()
                proc.close()
        if outputs is not None:
            outputs.close()
        daemon.__exit__(None, None, None)


def _state(node: str, domain: int) -> str:
    out = ros2_until_discovered(['lifecycle', 'get', node], domain).stdout
    match = re.match(r'(\w+) \[\d+\]', out.strip())
    return match.group(1) if match else out


def test_lifecycle_get_and_set_through_every_transition_and_back(tmp_path: Path) -> None:
    """A launched node (autostart:=false, its own name) driven by ``ros2 lifecycle`` alone."""
    require_ros_tools()
    domain = next_domain()
    node = '/lc/segformer_lc'
    with ros2_daemon(domain):
        _drive_lifecycle(domain, node, tmp_path)


def _drive_lifecycle(domain: int, node: str, tmp_path: Path) -> None:
    launch = Ros2Process(['launch', 'segformer_ros', 'segformer.launch.py', 'autostart:=false',
                          'namespace:=lc', 'node_name:=segformer_lc'],
                         domain, tmp_path / 'launch.log', cwd=tmp_path)
    try:
        assert launch.wait_for_output(lambda out: 'process started' in out, 30.0)
        assert _state(node, domain) == 'unconfigured', launch.output()[-3000:]
        # A transition the state does not have is refused, and nothing changes.
        refused = ros2_until_discovered(['lifecycle', 'set', node, 'activate'], domain)
        assert 'Unknown transition requested' in refused.stdout, refused.stdout
        assert _state(node, domain) == 'unconfigured'
        # Every transition, back to the start (cleanup), and the way out from active.
        steps = [('configure', 'inactive'), ('activate', 'active'), ('deactivate', 'inactive'),
                 ('cleanup', 'unconfigured'), ('configure', 'inactive'), ('activate', 'active'),
                 ('shutdown', 'finalized')]
        for transition, goal in steps:
            result = ros2_until_discovered(['lifecycle', 'set', node, transition], domain)
            assert 'Transitioning successful' in result.stdout, \
                f'{transition}: {result.stdout}\n{launch.output()[-3000:]}'
            assert _state(node, domain) == goal, (transition, launch.output()[-3000:])
        assert launch.output().count(ACTIVE) == 2
        assert 'configure failed' not in launch.output()
        launch.interrupt()
        assert launch.proc.wait(timeout=30) == 0, launch.output()[-3000:]
        assert wait_until(lambda: not launch.leftovers(), 5.0), launch.leftovers()
    finally:
        launch.close()


def _overlays_after(outputs: Outputs, t_ns: int, n: int, timeout: float) -> List[int]:
    """Wait for ``n`` overlays of frames stamped after ``t_ns``; return their stamps."""
    def later() -> List[int]:
        return sorted(s for s in list(outputs.overlays) if s > t_ns and s in outputs.frames
                      and s in outputs.masks)
    wait_until(lambda: len(later()) >= n, timeout)
    return later()


def test_param_set_of_overlay_alpha_takes_effect_on_the_next_frame(running: Any) -> None:
    """overlay_alpha is the one parameter applied per frame; each value seen on the overlay."""
    domain, launch, outputs = running
    palette = np.array(CITYSCAPES_PALETTE, np.uint8)
    for alpha in ('0.0', '1.0', '0.5'):
        result = ros2_until_discovered(['param', 'set', NODE, 'overlay_alpha', alpha], domain)
        assert 'Set parameter successful' in result.stdout, result.stdout
        # Every frame stamped after the set returned was taken after it: the new value.
        t_set = time.time_ns()
        stamps = _overlays_after(outputs, t_set, 2, 30.0)
        assert len(stamps) >= 2, launch.output()[-3000:]
        for stamp in stamps:
            frame = _image(outputs.frames[stamp]).astype(np.int32)
            overlay = _image(outputs.overlays[stamp]).astype(np.int32)
            mask = _image(outputs.masks[stamp])
            labelled = mask != 255
            colours = palette[np.minimum(mask, len(palette) - 1)].astype(np.int32)
            expected = frame.copy()
            a = float(alpha)
            expected[labelled] = np.rint((1 - a) * frame[labelled] + a * colours[labelled])
            diff = np.abs(overlay - expected)
            assert diff.max() <= 1, f'overlay_alpha {alpha}: max difference {diff.max()}'
    value = ros2_until_discovered(['param', 'get', NODE, 'overlay_alpha'], domain).stdout
    assert '0.5' in value, value


def test_param_set_of_the_watchdog_timeouts(running: Any) -> None:
    """input_timeout_s and stall_timeout_s change at runtime (effect: test_input_watch_node)."""
    domain, _, _ = running
    for name, value in (('input_timeout_s', '2.5'), ('stall_timeout_s', '7.0')):
        result = ros2_until_discovered(['param', 'set', NODE, name, value], domain)
        assert 'Set parameter successful' in result.stdout, result.stdout
        got = ros2_until_discovered(['param', 'get', NODE, name], domain).stdout
        assert got.strip() == f'Double value is: {value}', got
    refused = ros2_until_discovered(['param', 'set', NODE, 'input_timeout_s', '-1.0'], domain)
    assert 'Setting parameter failed' in refused.stdout, refused.stdout


def test_param_set_is_refused_with_the_reason(running: Any) -> None:
    domain, _, _ = running
    # autostart is read-only (the launch file sets it false and drives the transitions).
    read_only = ros2_until_discovered(['param', 'set', NODE, 'autostart', 'true'], domain)
    assert 'Setting parameter failed' in read_only.stdout, read_only.stdout
    assert 'read-only' in read_only.stdout, read_only.stdout
    out_of_range = ros2_until_discovered(['param', 'set', NODE, 'overlay_alpha', '1.5'], domain)
    assert 'Setting parameter failed' in out_of_range.stdout, out_of_range.stdout
    assert 'range' in out_of_range.stdout, out_of_range.stdout
    after = ros2_until_discovered(['param', 'get', NODE, 'autostart'], domain).stdout
    assert after.strip() == 'Boolean value is: False', after


def test_topic_echo_once_label_info_as_a_late_joiner(running: Any) -> None:
    """label_info is sent once (transient local): a subscriber that comes later still gets it."""
    domain, _, _ = running
    result = ros2_until_discovered(['topic', 'echo', '--once', '/segmentation/label_info'],
                                   domain)
    out = result.stdout
    names = re.findall(r'class_name: (\w+)', out)
    assert result.returncode == 0 and len(names) == 19, out
    assert names[0] == 'road' and 'car' in names and 'bicycle' == names[-1], names
    assert re.findall(r'class_id: (\d+)', out) == [str(i) for i in range(19)], out


def test_topic_hz_of_the_mask_sees_the_camera_rate(running: Any, tmp_path: Path) -> None:
    """``ros2 topic hz`` of the mask and of the camera, side by side: the same rate."""
    domain, _, _ = running
    hz = [Ros2Process(['topic', 'hz', topic], domain, tmp_path / f'hz{i}.log')
          for i, topic in enumerate(('/segmentation/mask', CAMERA_TOPIC))]
    try:
        rate = re.compile(r'average rate: ([0-9.]+)')
        assert all(p.wait_for_output(lambda out: len(rate.findall(out)) >= 4, 40.0)
                   for p in hz), [p.output() for p in hz]
        mask_hz, camera_hz = (float(rate.findall(p.output())[-1]) for p in hz)
    finally:
        for p in hz:
            p.interrupt()
            p.close()
    assert abs(camera_hz - CAMERA_HZ) < 0.5 * CAMERA_HZ, camera_hz
    assert 0.7 < mask_hz / camera_hz < 1.3, (mask_hz, camera_hz)
