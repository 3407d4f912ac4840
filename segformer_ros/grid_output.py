"""The ``segmentation/drivable_grid`` output of one camera: wiring only, no geometry.

The geometry is :mod:`.ground_grid`; this module turns the node's parameters, the
channel's latest CameraInfo and (optionally) TF into its inputs, keeps the lookup table
for as long as they do not change, and publishes nav_msgs/OccupancyGrid. The grid is
computed only while someone subscribes.

The camera pose: the ``grid_camera_*`` parameters when ``grid_camera_z > 0`` (parameters
win), otherwise TF from the image's frame_id (the optical frame) to ``grid_frame`` when
tf2_ros is importable (a real ROS install, or make setup's build from ../shared/ros-src;
the PyPI wheels alone have none). The latest transform is used: cameras are rigidly
mounted; a changed transform (a re-launched static publisher, a new calibration) rebuilds
the lookup table on the next frame.
"""

import array
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np
from std_msgs.msg import Header

from .channels import ChannelSpec
from .config import PipelineConfig
from .errors import SegformerRosError
from .ground_grid import (CameraModel, CameraPose, GridSettings, GroundProjection,
                          drivable_lut, grid_settings_from_params)


def tf_available() -> bool:
    """Return True when tf2_ros can be imported (a full ROS 2 install)."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


def occupancy_grid_message(grid: np.ndarray, settings: GridSettings,
                           header: Header) -> Any:
    """Build a nav_msgs/OccupancyGrid of an int8 (height, width) grid, stamped ``header``."""
    msg = _occupancy_grid_type()()
    msg.header.stamp = header.stamp
    msg.header.frame_id = settings.frame
    info = msg.info
    info.map_load_time = header.stamp
    info.resolution = float(settings.grid.resolution)
    info.width = int(settings.grid.width)
    info.height = int(settings.grid.height)
    info.origin.position.x = float(settings.grid.origin_x)
    info.origin.position.y = float(settings.grid.origin_y)
    info.origin.orientation.w = 1.0
    msg.data = array.array('b', np.ascontiguousarray(grid, dtype=np.int8).tobytes())
    return msg


class _TfPoses:
    """Optical-frame poses from TF (only built when tf2_ros imports).

    One buffer and listener per node, shared by its cameras (:meth:`acquire` and
    :meth:`release` count them): a listener subscribes to /tf and /tf_static and inserts
    every transform of every message into its buffer in Python, work that one listener
    per camera would repeat for each camera.
    """

    _lock = threading.Lock()
    _by_node: Dict[int, '_TfPoses'] = {}

    def __init__(self, node: Any) -> None:
        import tf2_ros
        self._node = node
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)
        self._transform_error = tf2_ros.TransformException
        self._users = 0

    @classmethod
    def acquire(cls, node: Any) -> '_TfPoses':
        """Return the node's TF poses (created for the first camera that needs them)."""
        with cls._lock:
            poses = cls._by_node.get(id(node))
            if poses is None or poses._node is not node:
                poses = cls._by_node[id(node)] = cls(node)
            poses._users += 1
            return poses

    def lookup(self, target: str, source: str) -> CameraPose:
        """Return the latest pose of ``source`` in ``target``; SegformerRosError if none."""
        from rclpy.time import Time
        try:
            t = self._buffer.lookup_transform(target, source, Time()).transform
        except self._transform_error as exc:
            # tf2's own text names one frame at most ("base_link" ... does not exist):
            # say which transform the grid needs and where it comes from.
            raise SegformerRosError(
                f'no transform {target!r} <- {source!r} in TF ({type(exc).__name__}: '
                f'{str(exc).strip()}); expected grid_frame <- the image\'s frame_id (the '
                f'camera\'s optical frame) from the TF tree (robot_state_publisher, '
                f'static_transform_publisher), or set grid_camera_z > 0 to give the pose as '
                f'parameters') from exc
        return CameraPose.from_transform((t.translation.x, t.translation.y, t.translation.z),
                                         (t.rotation.x, t.rotation.y, t.rotation.z,
                                          t.rotation.w))

    def release(self) -> None:
        """Drop one camera's use; the last one unsubscribes the listener."""
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            if self._by_node.get(id(self._node)) is self:
                del self._by_node[id(self._node)]
        self._listener.unregister()


class DrivableGridOutput:
    """One camera's drivable grid publisher and its cached projection."""

    def __init__(self, node: Any, spec: ChannelSpec, settings: GridSettings,
                 config: PipelineConfig, qos: Any, log_error: Callable[[str, str], None]) -> None:
        self._node = node
        self._spec = spec
        self.settings = settings
        self._lut = drivable_lut(config.classes.drivable_ids)
        self._roi = (tuple(tuple(map(float, v)) for v in config.summary.roi_polygon)
                     if settings.use_roi else None)
        self._log_error = log_error
        self._tf = _TfPoses.acquire(node) if settings.mounting is None else None
        self._fixed_pose = settings.mounting.camera_pose() if settings.mounting else None
        self.publisher = node.create_lifecycle_publisher(
            _occupancy_grid_type(), spec.output_topic('drivable_grid'), qos)
        #: Frames computed and the seconds they took (tests and benchmarks read them).
        self.frames_computed = 0
        self.seconds = 0.0
        # The lookup table of this camera, kept while its inputs stay the same (one per
        # camera: a 1080p table holds some 25 MB).
        self._projection: Optional[GroundProjection] = None
        self._projection_key: Optional[tuple] = None

    def publish(self, mask: np.ndarray, header: Header, camera_info: Optional[Any]) -> None:
        """Compute and publish the grid of one frame's mask, if anyone subscribes."""
        if self.publisher.get_subscription_count() == 0:
            return
        # One rate-limit key per kind of problem (as the node keys bad input by its raise
        # site): a missing CameraInfo must not hide the missing transform that follows it.
        key = f'grid:{self._spec.name}'
        if camera_info is None:
            self._log_error(f'{key}:no_camera_info',
                            f'drivable_grid of camera {self._spec.name!r}: no CameraInfo '
                            f'received on {self._spec.camera_info_topic} yet; expected one '
                            f'before the grid can be computed')
            return
        t0 = time.perf_counter()
        stage = 'camera_info'
        try:
            camera = CameraModel.from_camera_info(
                camera_info.k, camera_info.d, camera_info.distortion_model,
                (int(camera_info.width), int(camera_info.height)),
                (int(mask.shape[1]), int(mask.shape[0])))
            stage = 'pose'
            pose = self._pose(header.frame_id or camera_info.header.frame_id)
            stage = 'projection'
            table_key = (camera, pose)
            if table_key != self._projection_key or self._projection is None:
                self._projection = GroundProjection(camera, pose, self.settings.grid, self._roi)
                self._projection_key = table_key
            projection = self._projection
            grid = projection.occupancy(mask, self._lut)
        except SegformerRosError as exc:
            self._log_error(f'{key}:{stage}',
                            f'drivable_grid of camera {self._spec.name!r}: {exc}')
            return
        except Exception as exc:  # noqa: BLE001 - the grid must never end the frame path
            self._log_error(f'{key}:{stage}', f'drivable_grid of camera {self._spec.name!r}: '
                                              f'{type(exc).__name__}: {exc}')
            return
        if projection.empty:
            self._log_error(f'{key}:empty', f'drivable_grid of camera {self._spec.name!r}: no '
                                            f'pixel reaches the grid (camera above the grid '
                                            f'looking down expected); check the pose and '
                                            f'grid_origin/width/height')
        self.publisher.publish(occupancy_grid_message(grid, self.settings, header))
        self.frames_computed += 1
        self.seconds += time.perf_counter() - t0

    def _pose(self, optical_frame: str) -> CameraPose:
        if self._fixed_pose is not None:
            return self._fixed_pose
        if not optical_frame:
            raise SegformerRosError('the image has no header.frame_id: expected the camera\'s '
                                    'optical frame to look up in TF, or set grid_camera_z > 0')
        assert self._tf is not None
        return self._tf.lookup(self.settings.frame, optical_frame)

    def release(self) -> None:
        """Destroy the publisher and the TF listener."""
        self._node.destroy_lifecycle_publisher(self.publisher)
        self._projection = self._projection_key = None
        if self._tf is not None:
            self._tf.release()
            self._tf = None


def drivable_grid_output(node: Any, spec: ChannelSpec, params: Mapping[str, Any],
                         config: PipelineConfig, qos: Any,
                         log_error: Callable[[str, str], None]) -> Optional[DrivableGridOutput]:
    """Create the channel's grid output, or None where it cannot work (say why once).

    The grid needs intrinsics (the channel's camera_info topic) and a pose (parameters or
    TF); bad grid parameters raise ConfigError so that configure fails with the reason.
    """
    settings = grid_settings_from_params(params)
    if not spec.camera_info_topic:
        return None
    if settings.mounting is None and not tf_available():
        node.get_logger().warning(
            f'drivable_grid of camera {spec.name!r} disabled: no camera pose; set grid_camera_z '
            f'> 0 (and grid_camera_x/y/roll/pitch/yaw) or install tf2_ros to read it from TF')
        return None
    return DrivableGridOutput(node, spec, settings, config, qos, log_error)


def _occupancy_grid_type() -> Any:
    """nav_msgs/OccupancyGrid, imported when a grid is configured (not for every node)."""
    from nav_msgs.msg import OccupancyGrid
    return OccupancyGrid
