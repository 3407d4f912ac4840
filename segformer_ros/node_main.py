"""Entry point of ``segformer_node`` (``ros2 run segformer_ros segformer_node``)."""

import faulthandler
import signal
import sys
from typing import List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import TransitionCallbackReturn

from .cli import help_asked, init_or_bad_usage, params_files
from .executors import make_node_executors
from .memory import keep_image_buffers
from .node import SegformerNode
from .ros_compat import close_executor_and_node


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


def warn_params_files_without_node(node: SegformerNode, argv: List[str]) -> None:
    """WARN for each --params-file that holds no section for this node (ROS ignores it)."""
    from .presets import params_file_node_problem

    for path in params_files(argv):
        problem = params_file_node_problem(path, node.get_name())
        if problem:
            node.get_logger().warning(problem)


USAGE = """usage: segformer_node [--ros-args -p name:=value ... --params-file FILE -r from:=to]

The segformer lifecycle node (also `ros2 run segformer_ros segformer_node`). It starts
unconfigured; configure and activate it through its lifecycle services, or with
-p autostart:=true, or use `ros2 launch segformer_ros segformer.launch.py`. With model_path
empty it runs the bundled demo model; -p model_path:=/path/to/segformer.onnx runs yours with
SegFormer's settings (the defaults: config/segformer.yaml). Parameters: README.md's table,
config/*.yaml presets. Bad --ros-args exit with status 2 and one line.

example:
  segformer_node --ros-args -p autostart:=true -r image:=/camera/image_raw
"""


def _ignore_further_interrupts() -> None:
    """Let a second SIGINT not break off the shutdown (which is bounded: 5 s at most).

    Ctrl-C on ``ros2 launch`` in a terminal reaches the whole process group, this node
    included, and launch then sends the node a SIGINT of its own: without this, the second
    one raised KeyboardInterrupt half-way through shutdown_resources (a traceback, exit
    code -2 and a C++ ``terminate`` from a thread left running). SIGTERM still ends it.
    """
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:   # main() called from another thread (tests): no signals there
        pass


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until shutdown (SIGINT/SIGTERM or context shutdown)."""
    if help_asked(args, USAGE):
        return 0
    argv = sys.argv[1:] if args is None else list(args)
    # Before any image buffer exists: image buffers from the heap, reused across frames;
    # the worker trims the heap every 30 s (memory.py says why, with numbers).
    keep_image_buffers()
    # `kill -USR1 <pid>` prints every thread's stack to stderr and the node goes on: a hang
    # (a shutdown that does not end, a stall) diagnosed on the robot without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # SIGINT is how ros2 launch and supervisors stop a node. A process started from a
    # background job inherits SIGINT ignored, and Python then installs no handler of its own:
    # rclpy's would be the only way out, and spin()'s periodic wake (executors.py) could not
    # raise the KeyboardInterrupt that ends the node when rclpy's handler does not.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    failed = init_or_bad_usage('segformer_node', lambda: rclpy.init(args=args))
    if failed is not None:
        return failed
    node = SegformerNode()
    warn_params_files_without_node(node, argv)
    # The frame path apart from services and timers (executors.py says why, with
    # numbers); both executors hardened (deactivate/cleanup while they wait: ros_compat).
    executor = make_node_executors(node)
    try:
        executor.start_control()   # get_state answers during an autostart configure too
        if node.get_parameter('autostart').value:
            # On an executor thread, not here: SIGINT may be delivered to any thread, so a
            # configure sleeping or building in the main thread might never see Ctrl-C;
            # spin() always does (rclpy's handler wakes it), and the shutdown is bounded.
            executor.create_task(autostart, node)
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
        _ignore_further_interrupts()
        # Leave the graph cleanly (no stray Fast DDS shared-memory segments) whatever
        # lifecycle state the node was in.
        try:
            node.shutdown_resources()
        finally:
            # Bounded: Ctrl-C during a long configure (engine build) exits (ros_compat).
            close_executor_and_node(executor, node, timeout_s=5.0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
