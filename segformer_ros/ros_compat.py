"""Feature-detected shims that keep the node alive on the rclpy of Humble, Jazzy and Kilted.

Each shim tests for the behaviour it repairs (a try/except or an attribute), never for a
distribution name, except :func:`localhost_env`, whose subject (which environment variable
rcl reads) cannot be probed from Python. Sources reviewed (ros2/rclpy, rcl, rosidl_python;
branches humble and jazzy; Kilted = the ros-kilted-rclpy 9.1 wheel):

1. ``rclpy/lifecycle/node.py`` ``__change_state``: Humble and Jazzy call
   ``trigger_transition_by_id`` without a try, so a change_state request whose transition is
   not valid now raises ``RCLError`` out of the service callback, which ``executor.spin()``
   re-raises: the node dies. Kilted (rclpy#1319) answers ``success=False``.
   -> :func:`wrap_change_state_service`.
2. ``rclpy/executors.py`` ``_take_subscription`` / ``_take_timer``: Humble enters
   ``with sub.handle`` without catching ``InvalidHandle`` (rclpy#1150 added the catch in
   Jazzy), so destroying a subscription or timer while an executor thread takes from it
   ends ``spin()``. Humble's handler then calls ``_execute_timer(tmr, arg)``, which runs the
   timer callback whatever ``arg`` is. -> :func:`guard_executor_takes`.
3. ``rosidl_generator_py`` ``_msg.py.em``: the ``check_fields`` keyword exists since Jazzy;
   Humble's constructor asserts that every keyword names a field (``AssertionError``, or
   nothing under ``python -O``) and checks fields whenever ``__debug__`` is on.
   -> :func:`new_message`.
4. rcl ``localhost.c`` / ``init.c``: Humble reads only ``ROS_LOCALHOST_ONLY``; Jazzy reads
   ``ROS_AUTOMATIC_DISCOVERY_RANGE`` and still honours ``ROS_LOCALHOST_ONLY=1`` with two
   deprecation warnings at every init; Kilted's librcl no longer reads it.
   -> :func:`localhost_env`.
5. ``Executor.shutdown(timeout_sec)`` exists in all three, but Humble's and Jazzy's
   ``MultiThreadedExecutor`` leave their worker pool running and Kilted's joins it
   (``wait_for_threads=True``), and the interpreter joins pool threads at exit: a Ctrl-C
   during a long configure would wait for the configure. -> :func:`shutdown_executor`
   and :func:`exit_now_if_stuck`.
6. ``executors.py`` ``_wait_for_ready_callbacks`` (all three): a QoS event handler destroyed
   while the wait set is built raises ``InvalidHandle`` out of ``spin()``.
   -> :func:`guard_executor_wait` (both executor guards: :func:`harden_executor`).
"""

import os
import sys
import time
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

# Every rclpy private this module touches goes through rclpy_internals (why, where verified).
from .rclpy_internals import (change_state_service, drop_wait_generator, executor_is_shutdown,
                              executor_thread_pool, humble_executor_takes,
                              lifecycle_state_label, message_checks_fields as _checks_fields,
                              pool_threads, rcl_error_type, replace_executor_takes)

# Humble's executor takes, then calls ``_execute_timer(tmr, arg)`` unconditionally: a take
# that found the timer destroyed hands this on, and the guarded execute skips the callback.
_DESTROYED = object()

# Distributions whose rcl reads only ROS_LOCALHOST_ONLY (Iron added the discovery range).
LOCALHOST_ONLY_DISTROS = ('humble',)

M = TypeVar('M')


def _transition_text(request: Any) -> str:
    transition = getattr(request, 'transition', None)
    if transition is None:
        return '?'
    label = getattr(transition, 'label', '')
    return f"'{label}'" if label else f'id {getattr(transition, "id", "?")}'


def wrap_change_state_service(node: Any) -> bool:
    """Make ``node``'s change_state service answer an invalid transition with ``success=False``.

    Call once, after the lifecycle mixin created its services. On Humble and Jazzy the
    request would otherwise raise ``RCLError`` ("Transition is not registered") out of the
    service callback and end the executor's spin; on Kilted the wrapper never sees an
    exception. Logs one error line per refused request. Returns False when the node has no
    change_state service (communication interface disabled) and nothing was wrapped.
    """
    service = change_state_service(node)
    if service is None or not callable(getattr(service, 'callback', None)):
        return False
    original = service.callback
    if getattr(original, '_segformer_ros_guarded', False):
        return True
    rcl_error = rcl_error_type()

    def on_change_state(request: Any, response: Any) -> Any:
        try:
            return original(request, response)
        except rcl_error as exc:
            state = lifecycle_state_label(node)
            node.get_logger().error(
                f'change_state: transition {_transition_text(request)} is not valid in state '
                f"'{state}' ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                'refused, the node stays in its state')
            response.success = False
            return response

    on_change_state._segformer_ros_guarded = True  # type: ignore[attr-defined]
    service.callback = on_change_state
    return True


def guard_executor_takes(executor: Any) -> bool:
    """Let ``executor`` skip a subscription or timer destroyed while it takes from it.

    Feature detection: an executor that still has Humble's ``_execute_subscription`` /
    ``_execute_timer`` pair takes without catching ``InvalidHandle``; wrap its takes (on this
    instance) so a destroyed entity yields "nothing taken" as Jazzy's do. Executors without
    that pair (Jazzy, Kilted) already catch it: nothing is changed and False is returned.
    """
    takes = humble_executor_takes(executor)
    if takes is None:
        return False
    if getattr(executor, '_segformer_ros_takes_guarded', False):
        return True
    from rclpy.exceptions import InvalidHandle

    take_subscription, take_timer, execute_timer = takes

    def guarded_take_subscription(sub: Any) -> Any:
        try:
            return take_subscription(sub)
        except InvalidHandle:
            return None      # Humble's _execute_subscription skips a None message

    def guarded_take_timer(tmr: Any) -> Any:
        try:
            return take_timer(tmr)
        except InvalidHandle:
            return _DESTROYED

    async def guarded_execute_timer(tmr: Any, arg: Any) -> None:
        if arg is _DESTROYED:
            return
        await execute_timer(tmr, arg)

    replace_executor_takes(executor, (guarded_take_subscription, guarded_take_timer,
                                      guarded_execute_timer))
    executor._segformer_ros_takes_guarded = True
    return True


def guard_executor_wait(executor: Any, max_retries: int = 100) -> bool:
    """Let ``executor`` rebuild its wait set when an entity was destroyed while building it.

    Humble's, Jazzy's (7.1.6, seen in test_distro_survival) and Kilted's
    ``_wait_for_ready_callbacks`` collect the nodes' waitables (the QoS event handlers of
    every publisher and subscription), enter each inside a ``try/except InvalidHandle:
    pass``, but then call ``waitable.add_to_wait_set`` on all of them: one whose destruction
    was requested in between (a cleanup destroying publishers on another thread) raises
    ``InvalidHandle`` out of ``spin()`` and the node process dies. The wrapper catches it,
    drops the dead generator and builds the wait set again (the destroyed entity is gone
    from the node's lists by then); after ``max_retries`` failures in a row it re-raises.
    Returns False when the executor lacks ``wait_for_ready_callbacks`` (nothing wrapped).
    """
    original = getattr(executor, 'wait_for_ready_callbacks', None)
    if original is None:
        return False
    if getattr(original, '_segformer_ros_guarded', False):
        return True
    from rclpy.exceptions import InvalidHandle

    def wait_for_ready_callbacks(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(max_retries):
            try:
                return original(*args, **kwargs)
            except InvalidHandle as exc:
                drop_wait_generator(executor)     # it ended with the exception
                if _shutting_down(executor):
                    # The executor or the context is shutting down: its wake-up has been
                    # spent, so a rebuilt wait set could block for ever. End spin() the
                    # way rclpy ends it on shutdown (the exception its own wait raises),
                    # not with this InvalidHandle, which would end the spin thread with
                    # an error (seen at a test teardown: cleanup, then executor.shutdown).
                    ending = _shutdown_exception(executor)
                    if ending is None:
                        raise
                    raise ending from exc
                if attempt:
                    time.sleep(0.001)
        return original(*args, **kwargs)

    wait_for_ready_callbacks._segformer_ros_guarded = True  # type: ignore[attr-defined]
    executor.wait_for_ready_callbacks = wait_for_ready_callbacks
    return True


def _shutdown_exception(executor: Any) -> Optional[BaseException]:
    """Return the exception rclpy's own wait raises when ``executor`` or its context ends.

    ``ShutdownException`` (the executor's shutdown(): spin_once swallows it and spin ends)
    or ``ExternalShutdownException`` (the context's: spin raises it, callers expect it);
    None where this rclpy has neither.
    """
    from rclpy import executors

    if executor_is_shutdown(executor):
        found = getattr(executors, 'ShutdownException', None)
    else:
        found = getattr(executors, 'ExternalShutdownException', None)
    return found() if found is not None else None


def _shutting_down(executor: Any) -> bool:
    context = getattr(executor, 'context', None)
    try:
        context_ok = context is None or bool(context.ok())
    except Exception:  # noqa: BLE001 - a context being torn down counts as shut down
        context_ok = False
    return executor_is_shutdown(executor) or not context_ok


def harden_executor(executor: Any) -> None:
    """Apply :func:`guard_executor_takes` and :func:`guard_executor_wait` to ``executor``.

    node_main does this for its executor; spin a SegformerNode in an executor of your own
    on Humble or Jazzy, and call this on it too.
    """
    guard_executor_takes(executor)
    guard_executor_wait(executor)


def new_message(msg_type: Type[M], check_fields: bool = True) -> M:
    """Construct ``msg_type`` with its field checks on or off where the distro lets us choose.

    ``check_fields`` is a constructor keyword since Jazzy. Humble's constructor refuses
    unknown keywords (AssertionError; ignored under ``python -O``) and checks fields whenever
    ``__debug__`` is on, so there the message is built plainly and checks follow
    ``__debug__``.
    """
    try:
        return msg_type(check_fields=check_fields)  # type: ignore[call-arg]
    except (TypeError, AssertionError):
        return msg_type()


def message_checks_fields(msg: Any) -> bool:
    """Tell whether ``msg`` checks assigned fields (Jazzy+: its flag; Humble: ``__debug__``)."""
    return _checks_fields(msg)


def localhost_env(env: Mapping[str, str], ros_distro: Optional[str] = None) -> Dict[str, str]:
    """Return ``env`` confined to this host for the ROS 2 distribution of the child process.

    Sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (read since Iron) and, for Humble,
    whose rcl reads only ``ROS_LOCALHOST_ONLY``, ``ROS_LOCALHOST_ONLY=1``. Elsewhere
    ``ROS_LOCALHOST_ONLY`` is removed: Jazzy honours it but logs two deprecation warnings
    per process and ignores ``ROS_STATIC_PEERS`` then, Kilted ignores it.
    ``ros_distro`` defaults to ``env['ROS_DISTRO']`` (every distro's setup script sets it).
    """
    out = dict(env)
    distro = (out.get('ROS_DISTRO', '') if ros_distro is None else ros_distro).lower()
    out['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    if distro in LOCALHOST_ONLY_DISTROS:
        out['ROS_LOCALHOST_ONLY'] = '1'
    else:
        out.pop('ROS_LOCALHOST_ONLY', None)
    return out


def shutdown_executor(executor: Any, timeout_s: float) -> bool:
    """Shut ``executor`` down, waiting at most ``timeout_s`` for callbacks still running.

    Returns True when every callback finished. Kilted's ``MultiThreadedExecutor.shutdown``
    would also join its worker threads (``wait_for_threads``, absent before Kilted: a
    TypeError there), which blocks for as long as a callback such as a TensorRT engine
    build in configure runs; it is told not to. Kilted 9.1's ``Executor.shutdown`` also
    returns True without waiting (it tests ``_is_shutdown`` right after setting it), so
    the answer comes from the worker pool: it is shut down (idle workers exit) and its
    threads are joined until the deadline; one still alive is a callback still running.
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    try:
        finished = executor.shutdown(timeout_sec=timeout_s, wait_for_threads=False)
    except TypeError:
        finished = executor.shutdown(timeout_sec=timeout_s)
    pool = executor_thread_pool(executor)     # MultiThreadedExecutor's ThreadPoolExecutor
    if pool is not None:
        pool.shutdown(wait=False)
        for thread in pool_threads(pool):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                finished = False
    return finished is not False


def close_executor_and_node(executor: Any, node: Any, timeout_s: float = 5.0) -> None:
    """Shut down ``executor`` (at most ``timeout_s``), destroy ``node``, shut rclpy down.

    Where a callback (e.g. a configure building a TensorRT engine) is still running after
    ``timeout_s``, the process then ends at once (exit code 0, after one warning): Python
    joins a thread pool's workers at exit, so it would otherwise hold the process after
    Ctrl-C for as long as the build runs.
    """
    import rclpy

    finished = shutdown_executor(executor, timeout_s)
    logger = node.get_logger()
    try:
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    exit_now_if_stuck(finished, logger, timeout_s)


def exit_now_if_stuck(finished: bool, logger: Any, timeout_s: float, code: int = 0) -> None:
    """End the process at once (``os._exit(code)``) unless ``finished``; see above."""
    if finished:
        return
    try:
        logger.warning(f'shutdown: a callback (e.g. a configure building an engine) was still '
                       f'running {timeout_s:.0f} s after the shutdown request; exiting without '
                       'waiting for it')
    except Exception:  # noqa: BLE001 - the logger may be gone with the context
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)
