"""The drivable grid's camera pose from TF (``grid_camera_z: 0``), with the real tf2_ros.

tf2_ros, tf2_py and tf2 have no PyPI wheel: make setup builds them from ../shared/ros-src
(tools/setup_ros_tools.sh), or a sourced ROS 2 installation provides them. The test publishes
the transforms the way a robot does: ``base_link -> <camera>_link`` (the mounting) and
``<camera>_link -> <camera>_optical`` (REP-103's fixed optical rotation), with tf2_ros's own
broadcasters, over DDS; the node looks up ``grid_frame <- image frame_id`` through that chain.
Each grid is compared cell by cell with the grid of the same pose given as parameters
(the math module on MountingPose, as test_drivable_grid_node.py checks the parameter path).
"""

import math
import sys
import time
from typing import Any, Dict, Iterator, List, Sequence

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from ros2_tools import missing_ros_tools_reason, require_ros_tools, Ros2Process  # noqa: E402
from ros_helpers import wait_until  # noqa: E402
from test_ros2_launch import ACTIVE, interrupt_and_check_clean_exit  # noqa: E402
from segformer_ros.ground_grid import (CameraModel, GridSpec, GroundProjection,  # noqa: E402
                                       MountingPose, drivable_lut)
from segformer_ros.node import SegformerNode  # noqa: E402
from segformer_ros.tools.spin import BackgroundSpin  # noqa: E402
from test_drivable_grid_node import CAMERA_WH, GRID, K, MODEL_HW, _known_mask  # noqa: E402
from tiny_models import constant_ids_model  # noqa: E402

pytestmark = pytest.mark.ros

TF_MISSING = missing_ros_tools_reason('tf2_ros', 'tf2_py', 'tf2_msgs')
# Two mountings: a camera looking forward and down, and another pitched and turned more.
POSE_A = dict(x=0.3, y=0.1, z=1.2, roll=0.0, pitch=0.35, yaw=0.05)
POSE_B = dict(x=0.5, y=-0.2, z=1.0, roll=0.02, pitch=0.45, yaw=-0.1)
OPTICAL_RPY = (-math.pi / 2, 0.0, -math.pi / 2)   # <camera>_link -> <camera>_optical


def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> List[float]:
    """(x, y, z, w) of Rz(yaw) Ry(pitch) Rx(roll): the tf2 / URDF convention."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy]


def transform(parent: str, child: str, xyz: Sequence[float], rpy: Sequence[float]) -> Any:
    """Return a geometry_msgs/TransformStamped ``parent -> child``."""
    from geometry_msgs.msg import TransformStamped

    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = parent, child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = \
        (float(v) for v in xyz)
    q = quaternion_from_rpy(*rpy)
    t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, \
        t.transform.rotation.w = q
    return t


def mounting(camera: str, pose: Dict[str, float]) -> List[Any]:
    """Return the two transforms of a camera mounted at ``pose`` on base_link."""
    return [transform('base_link', f'{camera}_link', (pose['x'], pose['y'], pose['z']),
                      (pose['roll'], pose['pitch'], pose['yaw'])),
            transform(f'{camera}_link', f'{camera}_optical', (0.0, 0.0, 0.0), OPTICAL_RPY)]


def expected_grid(pose: Dict[str, float]) -> np.ndarray:
    """Return the grid of the known mask with ``pose`` given as parameters (MountingPose)."""
    camera = CameraModel.from_camera_info(K, [], 'plumb_bob', CAMERA_WH,
                                          (MODEL_HW[1], MODEL_HW[0]))
    spec = GridSpec(GRID['grid_resolution'], GRID['grid_width'], GRID['grid_height'],
                    GRID['grid_origin_x'], GRID['grid_origin_y'], GRID['grid_max_range'])
    return GroundProjection(camera, MountingPose(**pose).camera_pose(), spec).occupancy(
        _known_mask().astype(np.uint8), drivable_lut([0]))


def tf_subscriptions(node: Any) -> Dict[str, int]:
    """Count the node's own subscriptions to /tf and /tf_static (not the whole graph's)."""
    topics = [sub.topic_name for sub in node.subscriptions]
    return {t: topics.count(t) for t in ('/tf', '/tf_static')}


def grid_array(msg: OccupancyGrid) -> np.ndarray:
    return np.array(msg.data, dtype=np.int8).reshape(msg.info.height, msg.info.width)


def node_params(model: Any, cameras: Sequence[str]) -> Dict[str, Any]:
    """Return the node's parameters: the known-mask model, a grid with its pose from TF."""
    if len(cameras) > 1:
        extra: Dict[str, Any] = dict(cameras=list(cameras),
                                     camera_info_topics=[f'{c}/camera_info' for c in cameras])
    else:
        extra = dict(camera_info_topics=['camera_info'])
    return dict(model_path=str(model), warmup_iterations=0, output_resolution='model',
                drivable_classes=['road'], grid_camera_z=0.0, **GRID, **extra)


class Rig:
    """The cameras and TF of a test, and a SegformerNode in this process (unless external).

    ``external``: the node runs elsewhere (``ros2 launch``); the rig only publishes frames,
    CameraInfo and TF and receives the grids.
    """

    def __init__(self, context: Any, model: Any, cameras: Sequence[str],
                 external: bool = False) -> None:
        import tf2_ros

        self.node: Any = None
        executor = MultiThreadedExecutor(num_threads=4, context=context)
        if not external:
            overrides = [Parameter(k, value=v) for k, v in node_params(model, cameras).items()]
            self.node = SegformerNode(context=context, parameter_overrides=overrides)
            executor.add_node(self.node)
        self.peer = rclpy.create_node('grid_tf_peer', context=context)
        executor.add_node(self.peer)
        self.spin = BackgroundSpin(executor)
        self.broadcaster = tf2_ros.StaticTransformBroadcaster(self.peer)
        self.moving = tf2_ros.TransformBroadcaster(self.peer)
        #: Transforms re-sent on /tf (stamped now) with every frame: a moving mount.
        self.moving_transforms: List[Any] = []
        self.cameras = list(cameras)
        prefix = (lambda c: f'{c}/') if len(cameras) > 1 else (lambda c: '')
        self.image_pubs = {c: self.peer.create_publisher(Image, f'{prefix(c)}image',
                                                         qos_profile_sensor_data)
                           for c in cameras}
        self.info_pubs = {c: self.peer.create_publisher(CameraInfo, f'{prefix(c)}camera_info',
                                                        qos_profile_sensor_data)
                          for c in cameras}
        self.grids: Dict[str, List[OccupancyGrid]] = {c: [] for c in cameras}
        self.masks: Dict[str, List[Image]] = {c: [] for c in cameras}
        for c in cameras:
            self.peer.create_subscription(
                OccupancyGrid, f'{prefix(c)}segmentation/drivable_grid',
                self.grids[c].append, 10)
            self.peer.create_subscription(Image, f'{prefix(c)}segmentation/mask',
                                          self.masks[c].append, 10)
        self.frame = np.random.default_rng(0).integers(
            0, 255, (CAMERA_WH[1], CAMERA_WH[0], 3), dtype=np.uint8).tobytes()
        self.stamp = 1_000_000_000

    def relaunch_static_broadcaster(self, transforms: Sequence[Any]) -> None:
        """Re-launch the static transform publisher with new transforms (a new publisher).

        tf2_ros's StaticTransformBroadcaster keeps the first transform it was given per
        child frame (jazzy's static_transform_broadcaster.py appends only unseen child
        frames), so a changed mounting is published as users do it: the old publisher
        (a static_transform_publisher, a calibration tool) ends, a new one starts.
        """
        import tf2_ros

        self.peer.destroy_publisher(self.broadcaster.pub_tf)
        self.broadcaster = tf2_ros.StaticTransformBroadcaster(self.peer)
        self.broadcaster.sendTransform(list(transforms))

    def start(self) -> None:
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        for ch in self.node._channels:
            assert ch.grid is not None, 'grid_camera_z 0 with tf2_ros: the pose comes from TF'
            assert wait_until(lambda: ch.grid.publisher.get_subscription_count() == 1, 10.0)
            assert wait_until(lambda: ch.mask_pub.get_subscription_count() == 1, 10.0)
        # The node's camera and CameraInfo readers matched too: a test timing an error
        # (4 s for the TF error) then measures the node, not discovery.
        for c in self.cameras:
            assert wait_until(lambda: self.image_pubs[c].get_subscription_count() >= 1, 10.0)
            assert wait_until(lambda: self.info_pubs[c].get_subscription_count() >= 1, 10.0)

    def send(self, with_info: bool = True) -> int:
        """Publish one frame (and its CameraInfo) on every camera; return its stamp."""
        self.stamp += 1_000_000
        if self.moving_transforms:
            now = self.peer.get_clock().now().to_msg()
            for t in self.moving_transforms:
                t.header.stamp = now
            self.moving.sendTransform(self.moving_transforms)
        for c in self.cameras:
            msg = Image(height=CAMERA_WH[1], width=CAMERA_WH[0], encoding='rgb8',
                        step=CAMERA_WH[0] * 3, data=self.frame)
            msg.header.frame_id = f'{c}_optical'
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self.stamp, 10**9)
            info = CameraInfo(width=CAMERA_WH[0], height=CAMERA_WH[1],
                              distortion_model='plumb_bob', k=K)
            info.header = msg.header
            if with_info:
                self.info_pubs[c].publish(info)
            self.image_pubs[c].publish(msg)
        return self.stamp

    def send_until_logged(self, capfd: Any, text: str, with_info: bool = True,
                          timeout: float = 30.0) -> str:
        """Send frames until the node logs a line holding ``text``; return the log read."""
        log = ''
        deadline = time.monotonic() + timeout
        while text not in log and time.monotonic() < deadline:
            self.send(with_info)
            time.sleep(0.1)
            log += capfd.readouterr().err
        assert text in log, f'no log line with {text!r}: {log[-3000:]}'
        return log

    def grid_after(self, camera: str, stamp: int, timeout: float = 30.0) -> np.ndarray:
        """Send frames until a grid of a frame stamped at or after ``stamp`` arrives."""
        def newest() -> Any:
            later = [g for g in self.grids[camera]
                     if g.header.stamp.sec * 10**9 + g.header.stamp.nanosec >= stamp]
            return later[-1] if later else None
        deadline = time.monotonic() + timeout
        while newest() is None and time.monotonic() < deadline:
            self.send()
            wait_until(lambda: newest() is not None, 0.3)
        msg = newest()
        assert msg is not None, f'no drivable grid of camera {camera} since stamp {stamp}'
        assert msg.header.frame_id == 'base_link'
        return grid_array(msg)

    def close(self) -> None:
        if self.node is not None:
            self.node.shutdown_resources()
        self.spin.stop()
        if self.node is not None:
            self.node.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def known_model(tmp_path: Any) -> Any:
    return constant_ids_model(tmp_path / 'known_mask.onnx', _known_mask())


@pytest.fixture
def rig(rclpy_context: Any, known_model: Any) -> Iterator[Rig]:
    if TF_MISSING:
        pytest.skip(TF_MISSING)
    r = Rig(rclpy_context, known_model, ['front'])
    try:
        yield r
    finally:
        r.close()


def _differ(got: np.ndarray, expected: np.ndarray) -> str:
    return f'{int((got != expected).sum())} of {got.size} cells differ'


def test_tf_pose_gives_the_grid_of_the_same_pose_as_parameters(rig: Rig) -> None:
    rig.broadcaster.sendTransform(mounting('front', POSE_A))
    rig.start()
    got = rig.grid_after('front', 0)
    expected = expected_grid(POSE_A)
    assert np.array_equal(got, expected), _differ(got, expected)
    assert {0, 100, -1} <= set(np.unique(got).tolist())


def test_transform_arriving_late_one_error_then_the_grid(rig: Rig, capfd: Any) -> None:
    """Frames before the transform: no grid and one (rate-limited) error; then the grid."""
    rig.start()
    log = rig.send_until_logged(capfd, 'no transform')
    # More frames segmented without a pose (within the 5 s rate-limit period): no grid,
    # no second error.
    segmented = len(rig.masks['front'])
    for _ in range(10):
        rig.send()
        time.sleep(0.1)
    assert wait_until(lambda: len(rig.masks['front']) >= segmented + 5, 10.0), \
        'frames after the first error were not segmented'
    log += capfd.readouterr().err
    assert rig.grids['front'] == [], 'a grid without a camera pose'
    errors = [ln for ln in log.splitlines() if 'no transform' in ln]
    assert len(errors) == 1, log[-3000:]
    # The error names the transform the grid needs (both frames) and the alternative.
    for words in ("drivable_grid of camera", "'base_link' <- 'front_optical'", 'TF',
                  'grid_camera_z'):
        assert words in errors[0], errors[0]
    stamp = rig.send()
    rig.broadcaster.sendTransform(mounting('front', POSE_A))
    got = rig.grid_after('front', stamp)
    expected = expected_grid(POSE_A)
    assert np.array_equal(got, expected), _differ(got, expected)


def test_a_missing_camera_info_does_not_hide_the_tf_error(rig: Rig, capfd: Any) -> None:
    """Two problems one after the other: each is logged when it starts (not rate-limited away).

    First frames without CameraInfo (its error), then with it but without the transform:
    the TF error must come at once, not after the CameraInfo error's rate-limit period.
    """
    rig.start()
    rig.send_until_logged(capfd, 'no CameraInfo', with_info=False)
    # Within 4 s: the node's rate limit lets one error per key through every 5 s.
    rig.send_until_logged(capfd, 'no transform', timeout=4.0)
    assert rig.grids['front'] == []


def test_transform_changing_rebuilds_the_table_and_the_grid_follows(rig: Rig) -> None:
    rig.broadcaster.sendTransform(mounting('front', POSE_A))
    rig.start()
    got_a = rig.grid_after('front', 0)
    assert np.array_equal(got_a, expected_grid(POSE_A)), _differ(got_a, expected_grid(POSE_A))
    projection_a = rig.node._channels[0].grid._projection
    # The camera re-mounted: the static transform replaced (as a re-launched
    # robot_state_publisher or a calibration tool does).
    rig.relaunch_static_broadcaster(mounting('front', POSE_B))
    expected_b = expected_grid(POSE_B)
    assert not np.array_equal(expected_b, got_a), 'the two poses must give different grids'
    deadline = time.monotonic() + 30.0
    got_b = got_a
    while not np.array_equal(got_b, expected_b) and time.monotonic() < deadline:
        got_b = rig.grid_after('front', rig.send())
    assert np.array_equal(got_b, expected_b), _differ(got_b, expected_b)
    assert rig.node._channels[0].grid._projection is not projection_a, 'table rebuilt'


def test_a_moving_mount_on_tf_the_grid_follows(rig: Rig) -> None:
    """The mounting on /tf (a pan-tilt unit, a joint_state_publisher), not /tf_static."""
    front_link, optical = mounting('front', POSE_A)
    rig.broadcaster.sendTransform(optical)   # the optical rotation stays fixed
    rig.moving_transforms = [front_link]
    rig.start()
    got_a = rig.grid_after('front', 0)
    assert np.array_equal(got_a, expected_grid(POSE_A)), _differ(got_a, expected_grid(POSE_A))
    rig.moving_transforms = mounting('front', POSE_B)[:1]
    expected_b = expected_grid(POSE_B)
    deadline = time.monotonic() + 30.0
    got_b = got_a
    while not np.array_equal(got_b, expected_b) and time.monotonic() < deadline:
        got_b = rig.grid_after('front', rig.send())
    assert np.array_equal(got_b, expected_b), _differ(got_b, expected_b)


def test_two_cameras_with_their_own_transforms_get_their_own_grids(
        rclpy_context: Any, known_model: Any) -> None:
    if TF_MISSING:
        pytest.skip(TF_MISSING)
    r = Rig(rclpy_context, known_model, ['front', 'rear'])
    try:
        r.broadcaster.sendTransform(mounting('front', POSE_A) + mounting('rear', POSE_B))
        r.start()
        for camera, pose in (('front', POSE_A), ('rear', POSE_B)):
            got = r.grid_after(camera, 0)
            expected = expected_grid(pose)
            assert np.array_equal(got, expected), f'{camera}: {_differ(got, expected)}'
        # One TF listener for the node, not one per camera (each would deserialize every
        # /tf message again); gone at cleanup, back at the next configure.
        assert tf_subscriptions(r.node) == {'/tf': 1, '/tf_static': 1}
        assert r.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert r.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert tf_subscriptions(r.node) == {'/tf': 0, '/tf_static': 0}
        assert r.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert tf_subscriptions(r.node) == {'/tf': 1, '/tf_static': 1}
    finally:
        r.close()


def test_without_tf2_ros_a_zero_height_disables_the_grid_with_a_reason(
        rclpy_context: Any, known_model: Any, monkeypatch: Any, capfd: Any) -> None:
    """``grid_camera_z: 0`` where tf2_ros cannot be imported (the PyPI wheels alone).

    tf2_ros is made unimportable in this process (None in sys.modules: ``import`` raises
    ImportError, as without the package), so the test runs whether or not it is built.
    """
    monkeypatch.setitem(sys.modules, 'tf2_ros', None)
    node = SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(known_model)), Parameter('warmup_iterations', value=0),
        Parameter('camera_info_topics', value=['camera_info']),
        Parameter('grid_camera_z', value=0.0)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._channels[0].grid is None
        assert node.count_publishers('segmentation/drivable_grid') == 0
        assert tf_subscriptions(node) == {'/tf': 0, '/tf_static': 0}
        log = capfd.readouterr().err
        warnings = [ln for ln in log.splitlines() if 'drivable_grid of camera' in ln]
        assert len(warnings) == 1, log[-3000:]
        assert '[WARN]' in warnings[0]
        for words in ('disabled', 'no camera pose', 'grid_camera_z', 'tf2_ros'):
            assert words in warnings[0], warnings[0]
    finally:
        node.shutdown_resources()
        node.destroy_node()


def test_ros2_launch_with_the_pose_from_tf(ros_domain: int, rclpy_context: Any,
                                           known_model: Any, tmp_path: Any) -> None:
    """The node as users start it: ``ros2 launch`` with a params file, TF from the robot.

    The node process serves its TF listener with its own executors (executors.py: the
    control executor, beside the frame path); the grid must equal the parameters' one.
    """
    if TF_MISSING:
        pytest.skip(TF_MISSING)
    require_ros_tools()
    import yaml

    params_file = tmp_path / 'grid.yaml'
    params_file.write_text(yaml.safe_dump(
        {'/**': {'ros__parameters': node_params(known_model, ['front'])}}))
    launch = Ros2Process(['launch', 'segformer_ros', 'segformer.launch.py',
                          f'params_file:={params_file}', 'image_topic:=/image'],
                         ros_domain, tmp_path / 'launch.log', cwd=tmp_path)
    r = Rig(rclpy_context, None, ['front'], external=True)
    try:
        r.broadcaster.sendTransform(mounting('front', POSE_A))
        assert launch.wait_for_output(lambda out: ACTIVE in out, 60.0), launch.output()[-3000:]
        got = r.grid_after('front', 0)
        expected = expected_grid(POSE_A)
        assert np.array_equal(got, expected), _differ(got, expected)
        r.relaunch_static_broadcaster(mounting('front', POSE_B))
        expected_b = expected_grid(POSE_B)
        deadline = time.monotonic() + 30.0
        while not np.array_equal(got, expected_b) and time.monotonic() < deadline:
            got = r.grid_after('front', r.send())
        assert np.array_equal(got, expected_b), _differ(got, expected_b)
        interrupt_and_check_clean_exit(launch)
    finally:
        r.close()
        launch.close()
