"""The rclpy internals the product relies on are there, shaped as used (run per distro).

``make test`` runs this on Kilted, ``make test-jazzy`` on Jazzy: a new rclpy that renames
or reshapes any entry of segformer_ros/rclpy_internals.py fails here, by name, instead of
the node quietly taking its slower fallback (or, for the feature-detected ones, its
default). Real rclpy and Fast DDS on loopback; the check's own failure paths are shown on
stand-ins shaped like the pybind11 module.
"""

import threading
from types import SimpleNamespace

import pytest

rclpy = pytest.importorskip('rclpy')

from segformer_ros import rclpy_internals as internals  # noqa: E402
from ros_helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.ros


def test_the_frame_readers_internals_pass_the_configure_check(rclpy_context) -> None:
    assert internals.internals_problems(rclpy_context) == []
    check = internals.check_frame_reader_internals(rclpy_context, environ={})
    assert check.usable and check.problems == () and not check.forced
    # The version the WARN would name: the installed rclpy's, read from its metadata.
    assert check.rclpy_version == rclpy_version_from_package_xml()


def rclpy_version_from_package_xml() -> str:
    """Return rclpy's package.xml version through ament_index (an independent source)."""
    import re
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory

    xml = Path(get_package_share_directory('rclpy')) / 'package.xml'
    return re.search(r'<version>([^<]+)</version>', xml.read_text()).group(1)


def test_take_message_returns_the_message_and_the_info_the_reader_counts_with(
        rclpy_context) -> None:
    """The take's result shape: (msg, info) with the sequence number and publisher gid."""
    from std_msgs.msg import Header

    from segformer_ros.frame_reader import PulledCallbackGroup
    from segformer_ros.node import SENSOR_QOS

    node = rclpy.create_node('internals_take', context=rclpy_context)
    sub = node.create_subscription(Header, 'internals', lambda _m: None, SENSOR_QOS,
                                   callback_group=PulledCallbackGroup())
    pub = node.create_publisher(Header, 'internals', 10)
    wake = rclpy.guard_condition.GuardCondition(None, None, context=rclpy_context)
    try:
        assert wait_until(lambda: pub.get_subscription_count() >= 1, 10.0)
        assert internals.take_message(sub) is None
        pub.publish(Header(frame_id='a'))
        ready = set()
        assert wait_until(lambda: ready.update(internals.wait_for_subscriptions(
            [sub], wake, rclpy_context, 0.2)) or ready == {0}, 10.0)
        msg, info = internals.take_message(sub)
        assert msg.frame_id == 'a'
        assert isinstance(info['publication_sequence_number'], int)
        assert info['publication_sequence_number'] >= 1
        # The publisher's gid (sequence numbers per publisher): Kilted's info has it, Jazzy
        # 7.1.5's has not (the reader then keeps one sequence per subscription).
        if int(internals.rclpy_version().split('.')[0]) >= 9:
            assert isinstance(info['publisher_gid']['data'], (bytes, bytearray, list))
        else:
            assert info.get('publisher_gid') is None, info
        # A triggered guard condition ends the wait with no subscription ready.
        wake.trigger()
        assert internals.wait_for_subscriptions([sub], wake, rclpy_context, 5.0) == set()
    finally:
        wake.destroy()
        node.destroy_node()


def test_the_other_internals_are_there(rclpy_context) -> None:
    """Items 2-6 of rclpy_internals: each private the accessors read exists on this rclpy."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.lifecycle import LifecycleNode
    from rclpy.parameter import Parameter
    from std_msgs.msg import Header

    assert issubclass(internals.rcl_error_type(), Exception)
    assert internals.rcl_error_type().__name__ == 'RCLError'
    node = LifecycleNode('internals_lifecycle', context=rclpy_context,
                         parameter_overrides=[Parameter('given', value=3)])
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    other = SingleThreadedExecutor(context=rclpy_context)
    try:
        assert callable(internals.change_state_service(node).callback)
        assert internals.lifecycle_state_label(node) == 'unconfigured'
        assert set(internals.parameter_overrides(node)) == {'given'}
        assert internals.add_node_without_claiming(other, node) is True
        assert internals.add_node_without_claiming(other, node) is False
        assert node in other.get_nodes() and node.executor is None
        assert hasattr(executor, '_cb_iter')
        internals.drop_wait_generator(executor)
        pool = internals.executor_thread_pool(executor)
        assert pool is not None
        pool.submit(lambda: None).result(5.0)
        assert internals.pool_threads(pool) and all(isinstance(t, threading.Thread)
                                                    for t in internals.pool_threads(pool))
        assert internals.executor_is_shutdown(executor) is False
        executor.shutdown(timeout_sec=1.0)
        assert internals.executor_is_shutdown(executor) is True
        assert hasattr(Header(), '_check_fields')
        assert internals.message_checks_fields(Header(check_fields=False)) is False
        # Humble's take trio (guard_executor_takes) is absent on Jazzy and Kilted.
        assert internals.humble_executor_takes(executor) is None
    finally:
        other.shutdown(timeout_sec=1.0)
        node.destroy_node()


def _fake_module(**overrides) -> SimpleNamespace:
    """Return a stand-in for _rclpy built from the real one, with some classes replaced."""
    real = internals._rclpy
    names = ('WaitSet', 'Subscription', 'GuardCondition', 'Context', 'RCLError')
    fake = SimpleNamespace(**{n: getattr(real, n) for n in names})
    for name, value in overrides.items():
        setattr(fake, name, value)
    return fake


def test_the_check_names_a_missing_or_reshaped_internal(monkeypatch, rclpy_context) -> None:
    class WaitSet:   # Python stand-ins: inspect reads their signatures
        def __init__(self, subscriptions, guards, timers, clients, services, context):
            pass

        def clear_entities(self):
            pass

        def add_subscription(self, sub):
            pass

        def add_guard_condition(self, guard):
            pass

        def wait(self, timeout_ns):
            pass

    monkeypatch.setattr(internals, '_rclpy', _fake_module(WaitSet=WaitSet))
    problems = internals.internals_problems(rclpy_context)
    assert '_rclpy.WaitSet.__init__ takes 6 arguments, the frame reader passes 7' in problems
    assert '_rclpy.WaitSet.get_ready_entities is missing' in problems
    check = internals.check_frame_reader_internals(rclpy_context, environ={})
    assert not check.usable and 'get_ready_entities is missing' in check.fallback_warning()
    assert f'rclpy {internals.rclpy_version()}' in check.fallback_warning()

    monkeypatch.setattr(internals, '_rclpy', None)
    monkeypatch.setattr(internals, '_IMPORT_PROBLEM', 'rclpy.impl gone')
    assert internals.internals_problems() == ['rclpy.impl gone']


def test_arity_reads_pybind11_and_python_signatures() -> None:
    real = internals._rclpy
    assert internals.arity(real.WaitSet.__init__) == 7
    assert internals.arity(real.Subscription.take_message) == 2
    assert internals.arity(lambda a, b: None) == 2
    assert internals.arity(lambda *a: None) is None
    # pybind11's first docstring line of an overloaded method: no single arity.
    overloaded = SimpleNamespace(__doc__='f(*args, **kwargs)\nOverloaded function.\n')
    assert internals.arity(overloaded) is None
    doc = SimpleNamespace(__doc__='take_message(self: X, arg0: object, arg1: '
                                  'typing.Optional[typing.Dict[str, int]]) -> object')
    assert internals.arity(doc) == 2
    assert internals.arity(SimpleNamespace(__doc__='Overloaded function.')) is None


def test_the_environment_variable_forces_or_fails() -> None:
    env = internals.FRAME_READER_ENV
    forced = internals.check_frame_reader_internals(environ={env: 'public'}, problems=[])
    assert forced.forced and not forced.usable
    assert f'forced by {env}=public' in forced.fallback_warning()
    assert internals.check_frame_reader_internals(environ={env: 'auto'}, problems=[]).usable
    with pytest.raises(ValueError, match=f'{env} must be one of auto, public'):
        internals.check_frame_reader_internals(environ={env: 'fast'})


def test_without_the_executor_internals_node_main_says_what_to_do(
        rclpy_context, monkeypatch) -> None:
    """Two executors cannot share a node publicly: a clear error naming the way out."""
    from segformer_ros import executors

    assert internals.add_node_without_claiming(SimpleNamespace(), object()) is None
    # As on an rclpy that renamed them (its own add_node uses the new names).
    monkeypatch.setattr(executors, 'add_node_without_claiming', lambda _e, _n: None)
    node = rclpy.create_node('internals_add_node', context=rclpy_context)
    try:
        with pytest.raises(RuntimeError, match=f'rclpy {internals.rclpy_version()} has no '
                           r'Executor._nodes / _nodes_lock.*SEGFORMER_ROS_EXECUTOR=multi'):
            executors.node_executors(node, rclpy_context)
    finally:
        node.destroy_node()
