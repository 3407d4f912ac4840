"""Grab frames from a live image topic (for the self-check on a robot)."""

import time
from typing import List, Tuple

import numpy as np

from ..errors import SegformerRosError


def collect_topic_frames(topic: str, count: int, timeout_s: float = 30.0,
                         max_pixels: int = 8192 * 8192) -> List[Tuple[np.ndarray, str]]:
    """Subscribe to ``topic`` and return ``count`` frames as ``(array, channel_order)``.

    sensor_msgs/Image, or sensor_msgs/CompressedImage when the topic name ends in
    ``/compressed``; sensor-data QoS like a camera driver. Frames are copied out of the
    messages so they outlive them. Raises SegformerRosError when fewer arrive in time.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    from ..compressed import decode_compressed
    from ..conversion import image_msg_to_array

    compressed = topic.rstrip('/').endswith('/compressed')
    frames: List[Tuple[np.ndarray, str]] = []
    errors: List[str] = []

    def on_message(msg) -> None:
        if len(frames) >= count:
            return
        try:
            view = (decode_compressed(msg.format, msg.data, max_pixels) if compressed
                    else image_msg_to_array(msg, max_pixels))
        except SegformerRosError as exc:
            errors.append(str(exc))
            return
        frames.append((np.array(view.array), view.channel_order))

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node('segformer_selfcheck_grabber', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        node.create_subscription(CompressedImage if compressed else Image, topic, on_message,
                                 qos_profile_sensor_data)
        deadline = time.monotonic() + timeout_s
        while len(frames) < count and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    if len(frames) < count:
        detail = f'; conversion errors: {errors[-1]}' if errors else ''
        raise SegformerRosError(
            f'expected {count} frames on {topic} within {timeout_s:g} s, got {len(frames)}'
            f'{detail}; check the topic name and that the camera publishes')
    return frames
