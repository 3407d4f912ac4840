"""segformer_ros.tools.spin.BackgroundSpin: stops by joining, and says why spinning ended."""

import threading
import time

import pytest

from ros_helpers import wait_until
from segformer_ros.tools.spin import BackgroundSpin

pytestmark = pytest.mark.ros


def test_stop_joins_the_spin_thread(rclpy_context) -> None:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    node = rclpy.create_node('spin_join_probe', context=rclpy_context)
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(1))
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(node)
    spin = BackgroundSpin(executor, 'probe_spin')
    try:
        assert wait_until(lambda: len(ticks) >= 3, 10.0), 'the executor never ran the timer'
        assert spin.alive and spin.name == 'probe_spin'
        # Hardened as node_main's executors are: entities destroyed on another thread while
        # the wait set is built do not end the spin (ros_compat.guard_executor_wait).
        assert getattr(executor.wait_for_ready_callbacks, '_segformer_ros_guarded', False)
    finally:
        assert spin.stop(timeout=10.0), 'the spin thread was still running after stop()'
        node.destroy_node()
    assert not spin.alive and spin.failure is None


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_raising_callback_ends_the_spin_and_is_kept(rclpy_context) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    node = rclpy.create_node('spin_failure_probe', context=rclpy_context)

    def explode() -> None:
        raise RuntimeError('callback exploded')

    node.create_timer(0.01, explode)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    spin = BackgroundSpin(executor)
    try:
        assert wait_until(lambda: not spin.alive, 10.0), 'spinning went on after the raise'
        assert spin.failure is not None and 'RuntimeError: callback exploded' in spin.failure
    finally:
        spin.stop()
        node.destroy_node()


class _NeverWokenExecutor:
    """Stands for rclpy's executor in the shutdown race: shutdown() does not end its wait.

    ``spin()`` and an unbounded ``spin_once()`` block for good, as a wait set left without
    its wake-up guard does; a bounded ``spin_once`` returns after its timeout.
    """

    def __init__(self, context) -> None:
        self.context = context
        self.bounded_waits = 0

    def spin(self) -> None:
        threading.Event().wait()

    def spin_once(self, timeout_sec=None) -> None:
        if timeout_sec is None:
            threading.Event().wait()
        self.bounded_waits += 1
        time.sleep(timeout_sec)

    def shutdown(self, timeout_sec=None) -> bool:
        return True


def test_stop_ends_a_spin_whose_wait_nothing_wakes(rclpy_context) -> None:
    executor = _NeverWokenExecutor(rclpy_context)
    spin = BackgroundSpin(executor, 'never_woken_spin')
    assert wait_until(lambda: executor.bounded_waits >= 2, 5.0)
    t0 = time.monotonic()
    assert spin.stop(timeout=3.0), 'stop() waited for a wait nothing wakes'
    assert time.monotonic() - t0 < 1.0 + BackgroundSpin.POLL_S
    assert not spin.alive and spin.failure is None
