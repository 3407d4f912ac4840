"""The node's output messages as rosbags types, for segmented bags (no rclpy).

segformer-ros-bag writes rosbag2 files with the pure-Python ``rosbags`` package, whose
messages are its own dataclasses: this module builds the same messages the node publishes
(:mod:`.ros_messages`, :mod:`.label_info_msg`, :mod:`.grid_output`) from the same
pipeline results, field for field. The typestore knows the standard types (ROS 2 Jazzy's
definitions, which Humble and Kilted share for these messages) plus our
SegmentationSummary and vision_msgs' LabelInfo / VisionClass.
"""

from typing import Any, Optional, Sequence

import numpy as np

from .camera_info import scale_intrinsics
from .conversion import array_to_image_fields
from .ground_grid import GridSettings
from .summary import Summary

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
SUMMARY = 'segformer_ros/msg/SegmentationSummary'
LABEL_INFO = 'vision_msgs/msg/LabelInfo'
OCCUPANCY_GRID = 'nav_msgs/msg/OccupancyGrid'

# msg/SegmentationSummary.msg without its comments (test_bag_tool checks they agree).
SUMMARY_DEFINITION = """std_msgs/Header header
uint32 width
uint32 height
string[] class_names
uint32[] class_pixel_counts
float32[] class_fractions
uint32 unlabeled_pixel_count
float32[] roi_polygon_x
float32[] roi_polygon_y
uint32 roi_pixel_count
uint32[] roi_class_pixel_counts
float32[] roi_class_fractions
uint8[] drivable_class_ids
float32 drivable_fraction
float32 roi_drivable_fraction
uint32[] free_space_column_starts
uint32[] free_space_rows
"""
# vision_msgs (ROS 2 Humble..Kilted) LabelInfo and VisionClass.
LABEL_INFO_DEFINITION = """std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
"""
VISION_CLASS_DEFINITION = """uint16 class_id
string class_name
"""


def make_typestore() -> Any:
    """Return a rosbags typestore with the standard types and the node's output types."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    types.update(get_types_from_msg(SUMMARY_DEFINITION, SUMMARY))
    types.update(get_types_from_msg(VISION_CLASS_DEFINITION, 'vision_msgs/msg/VisionClass'))
    types.update(get_types_from_msg(LABEL_INFO_DEFINITION, LABEL_INFO))
    store.register(types)
    return store


def copy_header(store: Any, header: Any) -> Any:
    """Return a new std_msgs/Header with the input's stamp and frame_id."""
    t = store.types
    return t['std_msgs/msg/Header'](
        stamp=t['builtin_interfaces/msg/Time'](sec=int(header.stamp.sec),
                                               nanosec=int(header.stamp.nanosec)),
        frame_id=str(header.frame_id))


def image(store: Any, array: np.ndarray, encoding: str, header: Any) -> Any:
    """Build the sensor_msgs/Image of ``array`` (as ros_messages.image_message does)."""
    height, width, step, data = array_to_image_fields(array, encoding)
    return store.types[IMAGE](header=copy_header(store, header), height=height, width=width,
                              encoding=encoding, is_bigendian=0, step=step,
                              data=np.frombuffer(data, dtype=np.uint8))


def summary(store: Any, s: Summary, header: Any) -> Any:
    """Build a SegmentationSummary (as ros_messages.summary_message fills it)."""
    def u32(values: Sequence[Any]) -> np.ndarray:
        return np.asarray([int(v) for v in values], dtype=np.uint32)

    def f32(values: Sequence[Any]) -> np.ndarray:
        return np.asarray([float(v) for v in values], dtype=np.float32)

    return store.types[SUMMARY](
        header=copy_header(store, header), width=int(s.width), height=int(s.height),
        class_names=[str(n) for n in s.class_names],
        class_pixel_counts=u32(s.class_pixel_counts), class_fractions=f32(s.class_fractions),
        unlabeled_pixel_count=int(s.unlabeled_pixel_count),
        roi_polygon_x=f32(s.roi_polygon_x), roi_polygon_y=f32(s.roi_polygon_y),
        roi_pixel_count=int(s.roi_pixel_count),
        roi_class_pixel_counts=u32(s.roi_class_pixel_counts),
        roi_class_fractions=f32(s.roi_class_fractions),
        drivable_class_ids=np.asarray([int(v) for v in s.drivable_class_ids], dtype=np.uint8),
        drivable_fraction=float(s.drivable_fraction),
        roi_drivable_fraction=float(s.roi_drivable_fraction),
        free_space_column_starts=u32(s.free_space_column_starts),
        free_space_rows=u32(s.free_space_rows))


def label_info(store: Any, names: Sequence[str], header: Any, threshold: float = 0.0) -> Any:
    """Build a vision_msgs/LabelInfo (as label_info_msg.label_info_message does)."""
    vision_class = store.types['vision_msgs/msg/VisionClass']
    return store.types[LABEL_INFO](
        header=copy_header(store, header),
        class_map=[vision_class(class_id=i, class_name=str(n)) for i, n in enumerate(names)],
        threshold=float(threshold))


def camera_info(store: Any, info: Any, header: Any, width: int, height: int) -> Any:
    """Build the mask's CameraInfo: ``info`` rescaled (as ros_messages.camera_info_message)."""
    if (info.width, info.height) in ((width, height), (0, 0)):
        k, p = list(info.k), list(info.p)
    else:
        k, p = scale_intrinsics(list(info.k), list(info.p), (info.width, info.height),
                                (width, height))
    return store.types[CAMERA_INFO](
        header=copy_header(store, header), height=int(height), width=int(width),
        distortion_model=str(info.distortion_model),
        d=np.asarray(info.d, dtype=np.float64), k=np.asarray(k, dtype=np.float64),
        r=np.asarray(info.r, dtype=np.float64), p=np.asarray(p, dtype=np.float64),
        binning_x=0, binning_y=0, roi=info.roi)


def occupancy_grid(store: Any, grid: np.ndarray, settings: GridSettings, header: Any) -> Any:
    """Build a nav_msgs/OccupancyGrid (as grid_output.occupancy_grid_message does)."""
    t = store.types
    stamp = t['builtin_interfaces/msg/Time'](sec=int(header.stamp.sec),
                                             nanosec=int(header.stamp.nanosec))
    pose = t['geometry_msgs/msg/Pose'](
        position=t['geometry_msgs/msg/Point'](x=float(settings.grid.origin_x),
                                              y=float(settings.grid.origin_y), z=0.0),
        orientation=t['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))
    info = t['nav_msgs/msg/MapMetaData'](
        map_load_time=stamp, resolution=float(settings.grid.resolution),
        width=int(settings.grid.width), height=int(settings.grid.height), origin=pose)
    return t[OCCUPANCY_GRID](
        header=t['std_msgs/msg/Header'](stamp=stamp, frame_id=settings.frame), info=info,
        data=np.ascontiguousarray(grid, dtype=np.int8).ravel())


def stamp_ns(header: Any) -> int:
    """Return a header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def mask_from_image(msg: Any) -> Optional[np.ndarray]:
    """Return the (H, W) uint8 array of a mono8 Image read from a bag (None otherwise)."""
    if msg.encoding not in ('mono8', '8UC1'):
        return None
    data = np.asarray(msg.data, dtype=np.uint8)
    rows = data[:int(msg.height) * int(msg.step)].reshape(int(msg.height), int(msg.step))
    return rows[:, :int(msg.width)]
