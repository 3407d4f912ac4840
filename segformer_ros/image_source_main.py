"""Entry point of ``image_source`` (``ros2 run segformer_ros image_source``)."""

import sys
from typing import List, Optional

USAGE = """usage: image_source --ros-args -p source:=<video file or image folder> [-p name:=value]

Publishes a video file (mp4, avi, ...) or a folder of png/jpg images as sensor_msgs/Image on
the topic `image` (remap it: -r image:=/camera/image_raw), with sensor-data QoS, like a camera.
Also `ros2 run segformer_ros image_source --ros-args ...`.

parameters (-p name:=value):
  source                video file or image folder (required)
  rate_hz               publish rate in frames per second (default 30.0)
  frame_id              frame_id stamped on every image (default camera)
  encoding              rgb8, bgr8, mono8, rgba8 or bgra8 (default rgb8)
  width, height         resize to this size (0 = native; height follows aspect unless set)
  loop                  start over at the end instead of stopping (default false)
  max_frames            stop after this many frames (0 = no limit)
  wait_for_subscribers  wait until this many subscribers match before publishing (<= 30 s)

example:
  image_source --ros-args -p source:=assets/data/solidWhiteRight.mp4 -p rate_hz:=10 \\
      -r image:=/camera/image_raw

exit status: 0 when the source ended (or Ctrl-C), 1 when it could not be read, 2 on bad usage.
"""


def main(args: Optional[List[str]] = None) -> int:
    """Publish the configured source until it ends (or forever with loop:=true)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from .cli import absorb_late_interrupt, bad_usage, help_asked, init_or_bad_usage
    from .image_source import ImageSourceNode, wait_for

    if help_asked(args, USAGE):
        return 0
    failed = init_or_bad_usage('image_source', lambda: rclpy.init(args=args))
    if failed is not None:
        return failed
    try:
        node = ImageSourceNode()
    except Exception as exc:  # noqa: BLE001 - a parameter of the wrong type or out of range
        rclpy.try_shutdown()
        return bad_usage('image_source', exc)
    if not node.get_parameter('source').value:
        node.get_logger().error(
            "parameter 'source' is not set: expected a video file or an image folder, e.g. "
            'image_source --ros-args -p source:=/path/to/video.mp4 (see image_source --help)')
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if not wait_for(node, executor):
            node.get_logger().warn('wait_for_subscribers: not enough subscribers after 30 s; '
                                   'publishing anyway')
        node.start()
        while rclpy.ok() and not node.finished:
            executor.spin_once(timeout_sec=0.1)
        node.get_logger().info(f'source finished after {node.published} frames')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError) as exc:
        node.get_logger().error(str(exc))
        code = 1
    finally:
        absorb_late_interrupt()   # the Ctrl-C that ended the loop may still raise (cli.py)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
