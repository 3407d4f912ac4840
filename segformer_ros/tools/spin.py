"""Spin an rclpy executor in a background thread, and stop it so the process exits cleanly.

Used by the soak tool and the tests, whose main thread drives the run while callbacks
arrive. Stopping joins the thread: a daemon thread still inside rclpy's wait (GIL
released) when the interpreter exits is ended by ``pthread_exit`` as it takes the GIL
back, and that forced unwind through rclpy's pybind11 frames calls ``std::terminate``, so
the process aborts (exit 134) after doing all its work. Seen in 9 of 54 runs of the
lifecycle-cycle runner with 2-4 busy-loop processes competing; none in 14 after joining.

The thread spins in bounded waits (``spin_once`` with a timeout) rather than
``executor.spin()``, whose wait is unbounded: a CI run once found the thread still alive
10 s after shutdown() (not reproduced in 600 runs here). One window that allows it in
rclpy's wait-set build: a shutdown() landing between its is-shutdown check and its wait
destroys the wake-up guard and drops the nodes, leaving a wait set nothing wakes.
"""

import threading
import traceback
from typing import Any, Optional


class BackgroundSpin:
    """Spins ``executor`` in a daemon thread until :meth:`stop`.

    An exception that ends the spin (a callback raised) is kept as text in ``failure``,
    so a caller that stops getting callbacks can say why.
    """

    #: Longest wait inside one spin_once: how long stop() can wait for a wait set that
    #: nothing will wake any more.
    POLL_S = 0.1

    def __init__(self, executor: Any, name: str = 'rclpy_spin') -> None:
        from segformer_ros.ros_compat import harden_executor

        # As node_main does: a SegformerNode destroys publishers, subscriptions and their
        # QoS event handlers during transitions and shutdown on another thread than this
        # one; unguarded, rclpy's wait-set build raises InvalidHandle out of spin() (seen
        # at a test's teardown, ros_compat item 6).
        harden_executor(executor)
        self.executor = executor
        self.failure: Optional[str] = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            # rclpy's own spin() loop condition, plus stop(); ``_is_shutdown`` is the flag
            # Executor.shutdown() sets (a shutdown by someone else ends the loop too).
            while (not self._stopping.is_set() and self.executor.context.ok()
                   and not getattr(self.executor, '_is_shutdown', False)):
                self.executor.spin_once(timeout_sec=self.POLL_S)
        except ExternalShutdownException:   # Ctrl-C: rclpy's handler shut the context down
            pass
        except Exception:  # noqa: BLE001 - kept for the caller, then reported as usual
            self.failure = traceback.format_exc()
            raise

    @property
    def name(self) -> str:
        """The spin thread's name."""
        return self._thread.name

    @property
    def alive(self) -> bool:
        """True while the executor is being spun."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the executor down and join the thread; False if it did not end in time."""
        self._stopping.set()
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout)
        return not self._thread.is_alive()
