"""Entry point of ``image_source`` (``ros2 run segformer_ros image_source``)."""

import sys
from typing import List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from .image_source import ImageSourceNode, wait_for


def main(args: Optional[List[str]] = None) -> int:
    """Publish the configured source until it ends (or forever with loop:=true)."""
    rclpy.init(args=args)
    node = ImageSourceNode()
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
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
