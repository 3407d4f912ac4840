"""A camera stand-in: publishes a video file or an image folder as sensor_msgs/Image.

Useful to users without a camera at hand (and to the demo and benchmarks): frames go
out at a fixed rate with a camera frame_id and a fresh stamp, over the same sensor-data
QoS a camera driver uses.
"""

import time
from typing import Any, Iterator, Optional, Tuple

import numpy as np
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from .ros_messages import image_message

ENCODINGS = ('rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8')
RATE_RANGE_HZ = (0.1, 1000.0)


def convert_bgr(frame: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an OpenCV BGR frame to the published encoding."""
    import cv2

    codes = {'rgb8': cv2.COLOR_BGR2RGB, 'mono8': cv2.COLOR_BGR2GRAY,
             'rgba8': cv2.COLOR_BGR2RGBA, 'bgra8': cv2.COLOR_BGR2BGRA}
    return frame if encoding == 'bgr8' else cv2.cvtColor(frame, codes[encoding])


class ImageSourceNode(Node):
    """Publishes frames of a video or image folder at a fixed rate on ``image``."""

    def __init__(self, node_name: str = 'image_source', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.add_on_set_parameters_callback(_check_parameters)
        self.declare_parameter('source', '', ParameterDescriptor(
            description='Video file (mp4, avi, ...) or folder of png/jpg images; '
                        'package://<pkg>/<path> names a file installed with a package (the '
                        'bundled clip: '
                        'package://segformer_ros/assets/data/solidWhiteRight.mp4).',
            read_only=True))
        # Dynamically typed: `-p rate_hz:=10` is an INTEGER to ROS, which a DOUBLE
        # parameter would refuse; _check_parameters accepts any number in range.
        self.declare_parameter('rate_hz', 30.0, ParameterDescriptor(
            description='Publish rate in frames per second.', read_only=True,
            dynamic_typing=True,
            floating_point_range=[FloatingPointRange(from_value=RATE_RANGE_HZ[0],
                                                     to_value=RATE_RANGE_HZ[1])]))
        self.declare_parameter('frame_id', 'camera', ParameterDescriptor(
            description='frame_id stamped on every image (the camera optical frame).'))
        self.declare_parameter('encoding', 'rgb8', ParameterDescriptor(
            description='Published encoding: ' + ', '.join(ENCODINGS), read_only=True))
        self.declare_parameter('width', 0, ParameterDescriptor(
            description='Resize frames to this width (0 = native; height follows aspect '
                        'unless set).', read_only=True,
            integer_range=[IntegerRange(from_value=0, to_value=16384)]))
        self.declare_parameter('height', 0, ParameterDescriptor(
            description='Resize frames to this height (0 = native).', read_only=True,
            integer_range=[IntegerRange(from_value=0, to_value=16384)]))
        self.declare_parameter('loop', False, ParameterDescriptor(
            description='Start over at the end instead of stopping.', read_only=True))
        self.declare_parameter('max_frames', 0, ParameterDescriptor(
            description='Stop after this many frames (0 = no limit).', read_only=True,
            integer_range=[IntegerRange(from_value=0, to_value=1 << 31)]))
        self.declare_parameter('wait_for_subscribers', 0, ParameterDescriptor(
            description='Wait until this many subscribers match before publishing (at most '
                        '30 s).', read_only=True,
            integer_range=[IntegerRange(from_value=0, to_value=100)]))
        self.publisher = self.create_publisher(Image, 'image', qos_profile_sensor_data)
        self.published = 0
        self.finished = False
        self._frames: Optional[Iterator[Tuple[int, np.ndarray]]] = None
        self._timer: Optional[Any] = None

    def start(self) -> None:
        """Open the source and start the publish timer (after optional subscriber wait)."""
        from .assets import PACKAGE_URI_SCHEME, resolve_package_uri
        from .frame_sources import iter_frames

        source = self.get_parameter('source').value
        if source.startswith(PACKAGE_URI_SCHEME):   # e.g. the bundled clip, wherever installed
            source = str(resolve_package_uri(source))
        encoding = self.get_parameter('encoding').value
        if encoding not in ENCODINGS:
            raise ValueError(f'encoding must be one of {ENCODINGS}, got {encoding!r}')
        max_frames = self.get_parameter('max_frames').value or None
        self._frames = iter_frames(source, loop=self.get_parameter('loop').value,
                                   max_frames=max_frames)
        rate_hz = float(self.get_parameter('rate_hz').value)
        self._timer = self.create_timer(1.0 / rate_hz, self._tick)

    def subscribers_ready(self) -> bool:
        """Check that the requested number of subscribers has matched."""
        wanted = self.get_parameter('wait_for_subscribers').value
        return self.publisher.get_subscription_count() >= wanted

    def _tick(self) -> None:
        if self._frames is None or self.finished:
            return
        try:
            _, frame = next(self._frames)
        except StopIteration:
            self.finished = True
            return
        frame = self._resize(frame)
        encoding = self.get_parameter('encoding').value
        header = Header(frame_id=self.get_parameter('frame_id').value,
                        stamp=self.get_clock().now().to_msg())
        self.publisher.publish(image_message(convert_bgr(frame, encoding), encoding, header))
        self.published += 1

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        width = self.get_parameter('width').value
        height = self.get_parameter('height').value
        if not width and not height:
            return frame
        h, w = frame.shape[:2]
        width = width or round(w * height / h)
        height = height or round(h * width / w)
        if (height, width) == (h, w):
            return frame
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def _check_parameters(params: Any) -> SetParametersResult:
    """Accept rate_hz as any number (int or float) in range; the reason goes to the caller."""
    for param in params:
        if param.name != 'rate_hz':
            continue
        value = param.value
        low, high = RATE_RANGE_HZ
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return SetParametersResult(successful=False,
                                       reason=f'rate_hz must be a number, got {value!r}')
        if not low <= value <= high:
            return SetParametersResult(
                successful=False, reason=f'rate_hz must be in {low:g}..{high:g}, got {value}')
    return SetParametersResult(successful=True)


def wait_for(node: ImageSourceNode, executor: Any, timeout_s: float = 30.0) -> bool:
    """Spin until the node's subscriber condition holds or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while not node.subscribers_ready():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True
