"""The distro shims of segformer_ros.ros_compat, each driven through the behaviour it repairs.

Where this rclpy (Kilted, or Jazzy in `make test-jazzy`) no longer shows the behaviour, the
test substitutes the older distro's code as its sources show it (ros2/rclpy humble/jazzy
``lifecycle/node.py`` and ``executors.py``, rosidl_python humble ``_msg.py.em``) around
real rclpy entities, and shows the behaviour without the shim first.
"""

import os
import subprocess
import sys
import threading
import time
from typing import Any, List

import pytest

rclpy = pytest.importorskip('rclpy')

from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rclpy.exceptions import InvalidHandle  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Empty  # noqa: E402

from segformer_ros import ros_compat  # noqa: E402
from segformer_ros.rclpy_internals import rcl_error_type  # noqa: E402
from segformer_ros.ros_compat import (guard_executor_takes, localhost_env,  # noqa: E402
                                      new_message, shutdown_executor,
                                      wrap_change_state_service)

pytestmark = pytest.mark.ros


# ------------------------------------------------------------------ 1. change_state
def _jazzy_on_change_state(node: Any) -> Any:
    """Humble's/Jazzy's ``__on_change_state`` + ``__change_state`` (no try around the trigger)."""
    def on_change_state(req: Any, resp: Any) -> Any:
        transition_id = req.transition.id
        node._state_machine.trigger_transition_by_id(transition_id, True)   # raises RCLError
        resp.success = True
        return resp
    return on_change_state


def test_invalid_change_state_jazzy_shaped_callback_answers_false(rclpy_context) -> None:
    node = LifecycleNode('compat_lifecycle', context=rclpy_context)
    try:
        service = node._service_change_state
        service.callback = _jazzy_on_change_state(node)
        request = ChangeState.Request()
        request.transition.id = 3          # activate while unconfigured: not registered
        rcl_error = rcl_error_type()
        # Without the shim the exception leaves the service callback (and ends spin).
        with pytest.raises(rcl_error):
            service.callback(request, ChangeState.Response())
        assert wrap_change_state_service(node) is True
        response = service.callback(request, ChangeState.Response())
        assert response.success is False
        assert node._state_machine.current_state[1] == 'unconfigured'
        # Wrapping twice does not stack wrappers.
        wrapped = service.callback
        wrap_change_state_service(node)
        assert service.callback is wrapped
    finally:
        node.destroy_node()


def test_invalid_change_state_over_dds_keeps_spinning(rclpy_context) -> None:
    """Real service call: the node's executor must keep serving after a refused request."""
    node = LifecycleNode('compat_lifecycle_dds', context=rclpy_context)
    node._service_change_state.callback = _jazzy_on_change_state(node)
    wrap_change_state_service(node)
    client_node = rclpy.create_node('compat_client', context=rclpy_context)
    client = client_node.create_client(ChangeState, '/compat_lifecycle_dds/change_state')
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(client_node)
    errors: List[BaseException] = []

    def spin() -> None:
        try:
            executor.spin()
        except BaseException as exc:  # noqa: BLE001 - the assertion reports it
            errors.append(exc)
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        assert client.wait_for_service(timeout_sec=20.0)
        for transition_id, expected in ((3, False), (1, True), (1, False)):
            request = ChangeState.Request()
            request.transition.id = transition_id
            future = client.call_async(request)
            deadline = time.monotonic() + 20.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert future.done(), f'no reply to transition {transition_id}; spin: {errors}'
            assert future.result().success is expected
        assert not errors and thread.is_alive()
    finally:
        executor.shutdown(timeout_sec=5.0)
        thread.join(5.0)
        client_node.destroy_node()
        node.destroy_node()


# --------------------------------------------------------- 2. Humble's executor takes
class _HumbleTakes(SingleThreadedExecutor):
    """Humble's ``Executor`` take/execute pair, verbatim (rclpy humble executors.py)."""

    def _take_timer(self, tmr: Any) -> Any:
        with tmr.handle:
            tmr.handle.call_timer()

    async def _execute_timer(self, tmr: Any, _: Any) -> None:
        await ros_compat_await(tmr.callback)

    def _take_subscription(self, sub: Any) -> Any:
        with sub.handle:
            msg_info = sub.handle.take_message(sub.msg_type, sub.raw)
            if msg_info is not None:
                return msg_info[0]
        return None

    async def _execute_subscription(self, sub: Any, msg: Any) -> None:
        if msg:
            await ros_compat_await(sub.callback, msg)


async def ros_compat_await(callback: Any, *args: Any) -> Any:
    """Humble's ``await_or_execute`` for plain callbacks."""
    return callback(*args)


def _humble_handler(executor: Any, entity: Any, take: str, execute: str) -> None:
    """Take, then await the execute coroutine, as Humble's ``_make_handler`` task does."""
    arg = getattr(executor, take)(entity)
    coroutine = getattr(executor, execute)(entity, arg)
    try:
        coroutine.send(None)
    except StopIteration:
        pass


def test_humble_take_of_destroyed_subscription_and_timer(rclpy_context) -> None:
    node = rclpy.create_node('compat_takes', context=rclpy_context)
    try:
        calls: List[str] = []
        sub = node.create_subscription(Empty, 'compat_topic', lambda m: calls.append('sub'), 1)
        tmr = node.create_timer(100.0, lambda: calls.append('timer'))
        executor = _HumbleTakes(context=rclpy_context)
        # A live timer goes through the Humble pair and runs its callback.
        _humble_handler(executor, tmr, '_take_timer', '_execute_timer')
        assert calls == ['timer']
        node.destroy_subscription(sub)
        node.destroy_timer(tmr)
        # Without the shim: InvalidHandle escapes the take (Humble: ends spin).
        with pytest.raises(InvalidHandle):
            _humble_handler(executor, sub, '_take_subscription', '_execute_subscription')
        with pytest.raises(InvalidHandle):
            _humble_handler(executor, tmr, '_take_timer', '_execute_timer')
        assert guard_executor_takes(executor) is True
        _humble_handler(executor, sub, '_take_subscription', '_execute_subscription')
        _humble_handler(executor, tmr, '_take_timer', '_execute_timer')
        assert calls == ['timer'], 'a destroyed entity must not run its callback'
        executor.shutdown(timeout_sec=1.0)
    finally:
        node.destroy_node()


def test_guard_leaves_this_rclpys_executor_alone(rclpy_context) -> None:
    """Jazzy and Kilted take inside a try of their own and have no ``_execute_timer``."""
    executor = MultiThreadedExecutor(context=rclpy_context)
    try:
        has_humble_pair = hasattr(executor, '_execute_timer')
        assert guard_executor_takes(executor) is has_humble_pair
        assert not has_humble_pair, 'this rclpy has the Humble take/execute pair'
    finally:
        executor.shutdown(timeout_sec=1.0)


# ------------------------------------------------------------ 3. check_fields keyword
class _HumbleImage:
    """A message class with Humble's generated constructor (rosidl_python humble)."""

    __slots__ = ['_height', '_encoding']

    def __init__(self, **kwargs: Any) -> None:
        assert all('_' + key in self.__slots__ for key in kwargs.keys()), \
            'Invalid arguments passed to constructor: %s' % \
            ', '.join(sorted(k for k in kwargs.keys() if '_' + k not in self.__slots__))
        self._height = kwargs.get('height', int())
        self._encoding = kwargs.get('encoding', str())


def test_new_message_on_humble_shaped_constructor() -> None:
    if __debug__:
        with pytest.raises(AssertionError, match='check_fields'):
            _HumbleImage(check_fields=True)
    msg = new_message(_HumbleImage, check_fields=True)
    assert isinstance(msg, _HumbleImage)
    assert ros_compat.message_checks_fields(msg) is __debug__


def test_new_message_on_this_rclpy_switches_checks() -> None:
    checked = new_message(Image, check_fields=True)
    unchecked = new_message(Image, check_fields=False)
    assert ros_compat.message_checks_fields(checked)
    assert not ros_compat.message_checks_fields(unchecked)
    with pytest.raises(AssertionError):
        checked.height = 'not an int'


# ------------------------------------------------------------ 4. localhost variables
@pytest.mark.parametrize('distro, localhost_only', [
    ('humble', '1'), ('jazzy', None), ('kilted', None), ('rolling', None)])
def test_localhost_env_per_distro(distro: str, localhost_only: Any) -> None:
    env = localhost_env({'ROS_LOCALHOST_ONLY': '1', 'PATH': '/bin'}, distro)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env.get('ROS_LOCALHOST_ONLY') == localhost_only
    assert env['PATH'] == '/bin'
    assert localhost_env({'ROS_DISTRO': distro}).get('ROS_LOCALHOST_ONLY') == localhost_only


def test_child_process_env_gives_no_localhost_only_warning(ros_domain) -> None:
    """The env handed to child processes must not make this distro's rcl warn or override."""
    from benchmarks.processes import loopback_env

    base = dict(os.environ, ROS_LOCALHOST_ONLY='1')
    code = ('import rclpy; rclpy.init(); n = rclpy.create_node("probe"); '
            'n.destroy_node(); rclpy.shutdown()')
    out = subprocess.run([sys.executable, '-c', code], env=loopback_env(ros_domain, base),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'localhost_only' not in (out.stdout + out.stderr).lower()


# ------------------------------------------------------- 5. bounded executor shutdown
def test_shutdown_executor_returns_while_a_callback_is_stuck(rclpy_context) -> None:
    node = rclpy.create_node('compat_shutdown', context=rclpy_context)
    inside, release = threading.Event(), threading.Event()

    def long_configure() -> None:
        inside.set()
        release.wait(60.0)

    tmr = node.create_timer(0.01, long_configure)
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        assert inside.wait(10.0)
        tmr.cancel()
        start = time.monotonic()
        finished = shutdown_executor(executor, timeout_s=0.5)
        took = time.monotonic() - start
        assert finished is False
        assert took < 5.0, f'shutdown waited {took:.1f} s for a stuck callback'
    finally:
        release.set()
        thread.join(10.0)
        node.destroy_node()


def test_shutdown_executor_true_when_idle(rclpy_context) -> None:
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    assert shutdown_executor(executor, timeout_s=2.0) is True


def test_lifecycle_node_trigger_still_works_after_wrap(rclpy_context) -> None:
    node = LifecycleNode('compat_trigger', context=rclpy_context)
    try:
        wrap_change_state_service(node)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        node.destroy_node()


# ------------------------------------------- 6. entity destroyed while the wait set is built
def test_wait_set_build_with_a_destroyed_event_handler(rclpy_context) -> None:
    """A waitable whose destruction was requested after it was entered (Jazzy 7.1.6 race).

    The executor enters each waitable in a try and then calls ``add_to_wait_set`` on all
    of them; this makes one raise there exactly once, as ``with self.__event`` does when a
    cleanup on another thread destroyed the publisher in between.
    """
    node = rclpy.create_node('compat_wait', context=rclpy_context)
    try:
        node.create_publisher(Empty, 'compat_wait_topic', 1)
        waitable = next(w for w in node.waitables if hasattr(w, 'add_to_wait_set'))
        original = waitable.add_to_wait_set
        failures = [1, 1]

        def add_to_wait_set(wait_set: Any) -> None:
            if failures:
                failures.pop()
                raise InvalidHandle('cannot use Destroyable because destruction was requested')
            original(wait_set)

        waitable.add_to_wait_set = add_to_wait_set
        executor = SingleThreadedExecutor(context=rclpy_context)
        executor.add_node(node)
        with pytest.raises(InvalidHandle):          # without the shim: out of spin_once
            executor.spin_once(timeout_sec=0.05)
        assert ros_compat.guard_executor_wait(executor) is True
        executor.spin_once(timeout_sec=0.05)        # rebuilt the wait set, no exception
        assert not failures
        executor.shutdown(timeout_sec=1.0)
    finally:
        node.destroy_node()


def test_wait_set_race_during_executor_shutdown_ends_spin_quietly(rclpy_context) -> None:
    """The same race while the executor shuts down ends spin() as a shutdown does.

    A node's cleanup destroys its publishers and the caller then shuts the executor down
    (a test harness, a user's teardown): the spin thread's wait-set build meets the
    destroyed handler after shutdown() began. The guard must not rebuild (the wake-up is
    spent) and must not end the thread with InvalidHandle either.
    """
    node = rclpy.create_node('compat_wait_shutdown', context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    try:
        node.create_publisher(Empty, 'compat_wait_shutdown_topic', 1)
        waitable = next(w for w in node.waitables if hasattr(w, 'add_to_wait_set'))
        calls = []

        def add_to_wait_set(wait_set: Any) -> None:
            calls.append(1)
            executor._is_shutdown = True     # what shutdown() sets first, on another thread
            raise InvalidHandle('cannot use Destroyable because destruction was requested')

        waitable.add_to_wait_set = add_to_wait_set
        executor.add_node(node)
        assert ros_compat.guard_executor_wait(executor) is True
        executor.spin_once(timeout_sec=0.05)        # ShutdownException, swallowed by rclpy
        assert calls == [1]                          # no rebuild after shutdown began
        from rclpy.executors import ShutdownException
        with pytest.raises(ShutdownException):
            executor.wait_for_ready_callbacks(timeout_sec=0.05)
    finally:
        executor._is_shutdown = False
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
