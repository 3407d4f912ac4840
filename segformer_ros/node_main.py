"""Entry point of ``segformer_node`` (``ros2 run segformer_ros segformer_node``)."""

import sys
from typing import List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import TransitionCallbackReturn

from .executors import make_node_executors
from .memory import keep_image_buffers
from .node import SegformerNode


def autostart(node: SegformerNode) -> bool:
    """Configure, then activate; log and return False when a step fails."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error('autostart: configure failed; fix the parameters and call '
                                'the change_state service (transition configure) again')
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error('autostart: activate failed')
        return False
    return True


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until shutdown (SIGINT/SIGTERM or context shutdown)."""
    # Before any image buffer exists: image buffers from the heap, reused across frames;
    # the worker trims the heap once a second (memory.py says why, with numbers).
    keep_image_buffers()
    rclpy.init(args=args)
    node = SegformerNode()
    # The frame path (image callbacks) on one executor, services and timers on another,
    # so neither waits for the other (executors.py says why, with numbers).
    executor = make_node_executors(node)
    try:
        executor.start_control()   # get_state answers during an autostart configure too
        if node.get_parameter('autostart').value:
            autostart(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: BLE001 - see below
        # SIGINT/SIGTERM shut the context down: a wait set built just after that raises
        # RCLError ("context is not valid") instead of ExternalShutdownException. That is a
        # normal shutdown; anything else is a real error.
        if node.context.ok():
            raise
    finally:
        # Leave the graph cleanly (no stray Fast DDS shared-memory segments) whatever
        # lifecycle state the node was in.
        try:
            node.shutdown_resources()
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
