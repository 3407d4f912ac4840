"""Executors of the node process: the frame path apart from services and timers.

Why two executors (measured, docs/benchmarks.md "Node vs pipeline"): rclpy's executors are
Python. A ``MultiThreadedExecutor`` serving the image subscription together with the
lifecycle and parameter services rebuilds its wait set (every service, timer and guard
of the node) after each image, and re-yields a task that a pool thread has not started
yet, so its threads spin on the GIL while the inference worker needs it back after every
numpy/OpenCV call. A ``SingleThreadedExecutor`` for everything is lighter but cannot
answer ``get_state`` while ``change_state`` runs a long configure (model load, TensorRT
engine build).

So the image subscriptions live in a :class:`FramePathCallbackGroup`, waited on by a
:class:`FramePathExecutor` (one thread, a wait set of the image and camera_info
subscriptions only, callbacks that only drop the message into the keep-latest slot),
and everything else (lifecycle and parameter services, the /diagnostics timer) by a
:class:`ControlExecutor` of a few threads that is idle between service calls. Each
executor leaves the other's entities out of its wait set, so no DDS reader is waited on
twice.
"""

import threading
from typing import Any, Optional, Tuple

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                             SingleThreadedExecutor)

from .rclpy_internals import add_node_without_claiming, executor_is_shutdown

# Service calls may overlap a transition (get_state during a long configure): two
# threads answer them; the frame path never waits for these.
CONTROL_THREADS = 2
# The main thread's wait wakes this often so that a pending SIGINT is raised (spin()).
_SIGNAL_WAKE_S = 0.5


class FramePathCallbackGroup(MutuallyExclusiveCallbackGroup):
    """Callback group of camera subscriptions: served by :class:`FramePathExecutor` alone.

    Any executor still runs it (it is a plain mutually exclusive group); the executors of
    this module use the type to split the node's entities between them.
    """


def is_frame_path(entity: Any) -> bool:
    """Tell whether ``entity`` (subscription, timer, service, waitable) is on the frame path."""
    return isinstance(getattr(entity, 'callback_group', None), FramePathCallbackGroup)


class FramePathExecutor(SingleThreadedExecutor):
    """Single-threaded executor that waits only on frame-path entities.

    It owns the nodes' ``executor`` attribute (rclpy wakes that one when entities are
    created or destroyed) and passes each wake-up on to ``partner``, so the control
    executor sees new services and timers too.
    """

    def __init__(self, partner: Optional[Any] = None, *,
                 context: Optional[Context] = None) -> None:
        super().__init__(context=context)
        self.partner = partner

    def can_execute(self, entity: Any) -> bool:
        """Frame-path entities only (see the module docstring)."""
        return is_frame_path(entity) and super().can_execute(entity)

    def wake(self) -> None:
        """Wake this executor and the partner (new or destroyed entities)."""
        super().wake()
        if self.partner is not None:
            self.partner.wake()


class ControlExecutor(MultiThreadedExecutor):
    """Multi-threaded executor for everything except the frame path.

    Adding a node does not take the node's ``executor`` attribute (rclpy keeps one per
    node): the :class:`FramePathExecutor` holds it and forwards wake-ups here.
    """

    def __init__(self, num_threads: int = CONTROL_THREADS, *,
                 context: Optional[Context] = None) -> None:
        super().__init__(num_threads=num_threads, context=context)

    def can_execute(self, entity: Any) -> bool:
        """Everything but frame-path entities."""
        return not is_frame_path(entity) and super().can_execute(entity)

    def add_node(self, node: Any) -> bool:
        """Serve ``node``'s non-frame entities without taking its ``executor`` attribute."""
        added = add_node_without_claiming(self, node)   # rclpy internals: see there
        if added is None:
            # No public way: the public add_node sets node.executor, whose setter removes
            # the node from its previous executor, so one of the two would lose it.
            from .rclpy_internals import rclpy_version
            raise RuntimeError(
                f'rclpy {rclpy_version()} has no Executor._nodes / _nodes_lock, which the '
                f'split executors need to share a node (segformer_ros/rclpy_internals.py); '
                f'run with {EXECUTOR_ENV}=multi (one MultiThreadedExecutor) instead')
        if not added:
            return False
        self.wake()
        return True


def node_executors(node: Any, context: Optional[Context] = None
                   ) -> Tuple[FramePathExecutor, ControlExecutor]:
    """Build the node process's two executors with ``node`` added to both.

    Spin the control executor in a thread of its own and the frame-path executor in
    another (node_main spins it in the main thread); shut both down at exit.
    """
    control = ControlExecutor(context=context)
    frames = FramePathExecutor(control, context=context)
    control.add_node(node)
    frames.add_node(node)
    return frames, control


class NodeExecutors:
    """The node process's executors: start, spin and shut down together.

    :meth:`start_control` spins the control executor in a thread of its own (services
    answer from then on, also during an autostart configure in the main thread);
    :meth:`spin` serves the frame path in the calling thread until shutdown. An exception
    that ends the control thread (a callback raised) stops the frame path too and is
    raised again by :meth:`spin`, as a single executor's spin would have raised it.
    """

    def __init__(self, node: Any, context: Optional[Context] = None) -> None:
        from .ros_compat import harden_executor

        self.frames, self.control = node_executors(node, context)
        for executor in (self.frames, self.control):
            harden_executor(executor)
        self._thread: Optional[threading.Thread] = None
        self._failure: Optional[BaseException] = None

    def create_task(self, callback: Any, *args: Any) -> Any:
        """Run ``callback(*args)`` on a control thread (e.g. autostart: services answer)."""
        return self.control.create_task(callback, *args)

    def start_control(self) -> None:
        """Start answering services and timers in the background (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._spin_control,
                                            name='segformer_control', daemon=True)
            self._thread.start()

    def _spin_control(self) -> None:
        try:
            self.control.spin()
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to spin() in the main thread
            self._failure = exc
        finally:
            # However the control spin ended (SIGINT/SIGTERM shut the context down, or a
            # callback raised), the frame path ends with it. Without this the main thread
            # could stay in rcl_wait after a SIGTERM: seen in 2 of 10 runs of
            # test_faults' shutdown-mid-frame test (py-spy: control and worker threads gone,
            # MainThread waiting in FramePathExecutor.spin).
            self.frames.shutdown(timeout_sec=0.0)

    def spin(self) -> None:
        """Serve the frame path here until shutdown; re-raise a control-thread failure."""
        self.start_control()
        frames = self.frames
        # As Executor.spin(), but the wait wakes every _SIGNAL_WAKE_S: in about 1 run in 20
        # (Kilted and Jazzy, test_node_cross_process under stall_loop) the node stayed in
        # rcl_wait after SIGINT, both executors waiting and the context never shut down
        # (stacks from kill -USR1). Python's own SIGINT handler, which rclpy's chains to,
        # only raises KeyboardInterrupt when the main thread runs Python code again: the
        # wake gives it that chance, so a SIGINT always ends spin() within a second.
        while frames.context.ok() and not executor_is_shutdown(frames):
            frames.spin_once(timeout_sec=_SIGNAL_WAKE_S)
        if self._failure is not None:
            raise self._failure

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        """Shut both executors down, bounded; False if a callback is still running.

        The control executor's pool is not joined past ``timeout_sec`` (a configure
        building an engine may still run: ros_compat.shutdown_executor).
        """
        from .ros_compat import shutdown_executor

        limit = 10.0 if timeout_sec is None else timeout_sec
        done = self.frames.shutdown(timeout_sec=limit) is not False
        done = shutdown_executor(self.control, limit) and done
        if self._thread is not None:
            self._thread.join(timeout=limit)
            done = done and not self._thread.is_alive()
        return done


# Executor designs node_main can run, for measuring alternatives (docs/benchmarks.md "Node
# vs pipeline"); ``split`` is the default and the only one the tests cover.
EXECUTOR_DESIGNS: Tuple[str, ...] = ('split', 'multi', 'single', 'events')
EXECUTOR_ENV = 'SEGFORMER_ROS_EXECUTOR'


class SingleExecutorSpin:
    """One executor for everything (the designs measured against ``split``)."""

    def __init__(self, node: Any, design: str) -> None:
        if design == 'multi':
            self.executor: Any = MultiThreadedExecutor(num_threads=4)   # before issue 9
        elif design == 'single':
            self.executor = SingleThreadedExecutor()
        else:
            from rclpy.experimental import EventsExecutor
            self.executor = EventsExecutor()
        if design != 'events':
            from .ros_compat import harden_executor
            harden_executor(self.executor)
        self.executor.add_node(node)

    def create_task(self, callback: Any, *args: Any) -> Any:
        """Run ``callback(*args)`` as an executor task."""
        return self.executor.create_task(callback, *args)

    def start_control(self) -> None:
        """Nothing to start: services wait for spin()."""

    def spin(self) -> None:
        """Serve everything in this thread (pool threads for ``multi``)."""
        self.executor.spin()

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        """Shut the executor down, bounded (ros_compat.shutdown_executor)."""
        from .ros_compat import shutdown_executor

        return shutdown_executor(self.executor, 10.0 if timeout_sec is None else timeout_sec)


def make_node_executors(node: Any, design: Optional[str] = None) -> Any:
    """Return the node process's executors: ``split`` unless $SEGFORMER_ROS_EXECUTOR says."""
    import os

    chosen = design or os.environ.get(EXECUTOR_ENV, '') or 'split'
    if chosen not in EXECUTOR_DESIGNS:
        raise ValueError(f'{EXECUTOR_ENV} must be one of {EXECUTOR_DESIGNS}, got {chosen!r}')
    return NodeExecutors(node) if chosen == 'split' else SingleExecutorSpin(node, chosen)
