"""segmentation/drivable_grid through the node over DDS: a known mask, checked cell by cell."""

import math
import time
from typing import Any, List

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

from ros_helpers import wait_until  # noqa: E402
from segformer_ros.ground_grid import (CameraModel, GridSpec, GroundProjection,  # noqa: E402
                                       MountingPose, drivable_lut)
from segformer_ros.node import SegformerNode  # noqa: E402
from segformer_ros.tools.spin import BackgroundSpin  # noqa: E402
from tiny_models import constant_ids_model  # noqa: E402

pytestmark = pytest.mark.ros

MODEL_HW = (96, 128)
CAMERA_WH = (256, 192)          # the camera's own size: CameraInfo is scaled to the mask
K = [200.0, 0.0, 127.5, 0.0, 210.0, 95.5, 0.0, 0.0, 1.0]
GRID = dict(grid_frame='base_link', grid_resolution=0.05, grid_width=120, grid_height=100,
            grid_origin_x=0.0, grid_origin_y=-2.5, grid_max_range=6.0)
POSE = dict(grid_camera_x=0.3, grid_camera_y=0.1, grid_camera_z=1.2, grid_camera_roll=0.0,
            grid_camera_pitch=0.35, grid_camera_yaw=0.05)


def _known_mask() -> np.ndarray:
    """Road (0) from a column-dependent row down, building (2) above, a car (13) on the left."""
    h, w = MODEL_HW
    ids = np.full((h, w), 2, np.int64)
    for c in range(w):
        ids[60 + (c * 7) % 25:, c] = 0
    ids[70:85, 10:30] = 13
    return ids


def _expected_grid(mask: np.ndarray) -> np.ndarray:
    camera = CameraModel.from_camera_info(K, [], 'plumb_bob', CAMERA_WH,
                                          (MODEL_HW[1], MODEL_HW[0]))
    pose = MountingPose(*(POSE[f'grid_camera_{n}'] for n in
                          ('x', 'y', 'z', 'roll', 'pitch', 'yaw'))).camera_pose()
    spec = GridSpec(GRID['grid_resolution'], GRID['grid_width'], GRID['grid_height'],
                    GRID['grid_origin_x'], GRID['grid_origin_y'], GRID['grid_max_range'])
    return GroundProjection(camera, pose, spec).occupancy(mask, drivable_lut([0]))


def test_grid_matches_the_math_module_and_is_computed_only_when_subscribed(
        rclpy_context: Any, tmp_path: Any) -> None:
    ids = _known_mask()
    model = constant_ids_model(tmp_path / 'known_mask.onnx', ids)
    overrides = [Parameter(k, value=v) for k, v in dict(
        model_path=str(model), warmup_iterations=0, camera_info_topics=['camera_info'],
        output_resolution='model', drivable_classes=['road'], **GRID, **POSE).items()]
    node = SegformerNode(context=rclpy_context, parameter_overrides=overrides)
    peer = rclpy.create_node('grid_test_peer', context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=4, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(peer)
    spin = BackgroundSpin(executor)
    try:
        camera = peer.create_publisher(Image, 'image', qos_profile_sensor_data)
        info_pub = peer.create_publisher(CameraInfo, 'camera_info', qos_profile_sensor_data)
        masks: List[Image] = []
        peer.create_subscription(Image, 'segmentation/mask', masks.append, 10)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        grid_output = node._channels[0].grid
        assert grid_output is not None

        info = CameraInfo(width=CAMERA_WH[0], height=CAMERA_WH[1], distortion_model='plumb_bob')
        info.header.frame_id = 'front_camera_optical'
        info.k = K
        info.p = K[:3] + [0.0] + K[3:6] + [0.0] + K[6:] + [0.0]
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 255, (CAMERA_WH[1], CAMERA_WH[0], 3), dtype=np.uint8)

        def send(stamp_ns: int) -> None:
            msg = Image(height=CAMERA_WH[1], width=CAMERA_WH[0], encoding='rgb8',
                        step=CAMERA_WH[0] * 3)
            msg.header.frame_id = 'front_camera_optical'
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
            msg.data = frame.tobytes()
            info.header.stamp = msg.header.stamp
            info_pub.publish(info)
            camera.publish(msg)

        # No grid subscriber: masks flow, the grid is never computed.
        for attempt in range(100):
            send(1_000_000_000 + attempt)
            if wait_until(lambda: len(masks) >= 3, timeout=0.3, period=0.02):
                break
        assert len(masks) >= 3, 'no masks published'
        mask = np.frombuffer(masks[-1].data, np.uint8).reshape(MODEL_HW)
        assert np.array_equal(mask, ids.astype(np.uint8)), 'the model must give the known mask'
        assert grid_output.frames_computed == 0

        grids: List[OccupancyGrid] = []
        sub = peer.create_subscription(OccupancyGrid, 'segmentation/drivable_grid',
                                       grids.append, 10)
        assert wait_until(lambda: grid_output.publisher.get_subscription_count() == 1, 10.0)
        for attempt in range(100):
            send(2_000_000_000 + attempt * 1000)
            if wait_until(lambda: len(grids) > 0, timeout=0.3, period=0.02):
                break
        assert grids, 'no drivable grid published while subscribed'
        msg = grids[-1]
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert stamp >= 2_000_000_000 and (stamp - 2_000_000_000) % 1000 == 0, \
            'the grid carries the image stamp'
        assert msg.header.frame_id == 'base_link'
        assert msg.info.map_load_time == msg.header.stamp
        assert math.isclose(msg.info.resolution, 0.05, rel_tol=1e-6)
        assert (msg.info.width, msg.info.height) == (120, 100)
        assert (msg.info.origin.position.x, msg.info.origin.position.y) == (0.0, -2.5)
        assert msg.info.origin.orientation.w == 1.0
        got = np.array(msg.data, dtype=np.int8).reshape(100, 120)
        expected = _expected_grid(ids.astype(np.uint8))
        assert np.array_equal(got, expected), \
            f'{int((got != expected).sum())} cells differ from the math module'
        # The known mask really makes all three kinds of cells.
        assert {0, 100, -1} <= set(np.unique(got).tolist())

        # The subscriber leaves: the grid stops being computed.
        peer.destroy_subscription(sub)
        assert wait_until(lambda: grid_output.publisher.get_subscription_count() == 0, 10.0)
        time.sleep(0.3)
        computed = grid_output.frames_computed
        count = len(masks)
        for attempt in range(50):
            send(3_000_000_000 + attempt)
            if wait_until(lambda: len(masks) >= count + 3, timeout=0.3, period=0.02):
                break
        assert len(masks) >= count + 3
        assert grid_output.frames_computed == computed
    finally:
        node.shutdown_resources()
        spin.stop()
        node.destroy_node()
        peer.destroy_node()


def test_bad_grid_parameters_fail_configure(rclpy_context: Any, tmp_path: Any) -> None:
    model = constant_ids_model(tmp_path / 'known_mask.onnx', _known_mask())
    node = SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(model)), Parameter('warmup_iterations', value=0),
        Parameter('camera_info_topics', value=['camera_info']),
        Parameter('grid_frame', value='')])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.shutdown_resources()
        node.destroy_node()
