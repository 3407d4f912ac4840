"""Every rclpy internal the product relies on, in one place, with a startup check.

rclpy's public API does not cover everything the node needs; where it falls short, the
product reaches into rclpy's private parts, and only here. Each entry below says what it
uses, why the public API is not enough and where it was verified. A new rclpy release may
rename or reshape any of them: :func:`check_frame_reader_internals` (run at configure)
verifies the ones of the fast frame reader and the node then falls back to the public API
(a slower path, logged once) instead of failing; test/test_rclpy_internals.py (Kilted in
``make test``, Jazzy in ``make test-jazzy``) fails when any of them is missing or changed.

Verified on (tests and node suite): Kilted rclpy 9.1.2 (PyPI wheel ros-kilted-rclpy 9.1.2,
Python 3.11) and Jazzy rclpy 7.1.5 (rclpy's package.xml and egg-info; PyPI wheel
ros-jazzy-rclpy 7.1.6, Python 3.12). Humble (rclpy 3.3) only by reading its sources
(ros_compat.py names what differs there).

The internals:

1. Frame reader (frame_reader.py): ``rclpy.impl.implementation_singleton``'s C module
   (``_rclpy``): ``_rclpy.WaitSet(subscriptions, guard_conditions, timers, clients,
   services, events, context_handle)`` with ``clear_entities`` / ``add_subscription`` /
   ``add_guard_condition`` / ``wait(timeout_ns)`` / ``get_ready_entities('subscription')``;
   ``Subscription.handle.take_message(msg_type, raw) -> (msg, info) | None`` (``info``: a
   dict with ``publication_sequence_number``, and on Kilted ``publisher_gid``; Jazzy 7.1.5
   has no gid, so the skipped-frame count keeps one sequence per subscription there) and
   ``handle.pointer``; the ``handle`` context managers of subscriptions, guard conditions
   and the context (they keep the C entities alive while waited on). Why: the public way to
   wait on a subscription is an executor, which takes and converts every frame the camera
   sends (6 MB of Python message per 1080p frame, with the GIL held) and rebuilds its wait
   set in Python, also for the frames the keep-latest slot then drops; measured in
   docs/benchmarks.md "Node vs pipeline", it was most of the node's CPU outside inference
   and starved the inference worker of the GIL. rclpy's own ``wait_for_message`` uses the
   same internals (it is not a public wait on several subscriptions either).
   Fallback when missing or changed: frame_reader_public.py (executor callbacks into
   batching.LatestFrameSlots). Measured on the 2-core dev machine (2026-12-07, bench_ros,
   bundled DeepLab, 1920x1080 rgb8, $SEGFORMER_ROS_FRAME_READER=auto vs public, two
   alternating runs each): at 30 Hz no difference beyond noise (node CPU per mask 51.1 /
   53.3 vs 50.9 / 54.2 ms); under a 200 Hz flood 58.0 / 59.8 vs 74.9 / 68.2 ms per mask and
   18.9 / 14.5 vs 12.5 / 9.7 masks/s (``--scenarios pipeline,flood --flood-rate 200
   --duration 8 --rounds 1``; load average 2.7-6.3 from other work on the machine).
2. ``_rclpy.RCLError`` (ros_compat.wrap_change_state_service): the exception a refused
   lifecycle transition raises; Kilted re-exports it as ``rclpy.subscription.RCLError``,
   Jazzy and Humble have no public name for it.
3. Lifecycle node privates: ``node._service_change_state`` (ros_compat: Humble/Jazzy let an
   invalid transition end spin(); the service object has no public accessor) and
   ``node._state_machine.current_state`` (the state label for logs and /diagnostics:
   LifecycleNodeMixin has no public getter in Humble, Jazzy or Kilted).
4. ``Node._parameter_overrides`` (node_parameters, nvinfer_config): which parameters the
   launch gave explicitly, to tell them from declared defaults; rclpy keeps them private.
5. Executor privates: ``_is_shutdown`` (executors.NodeExecutors.spin, ros_compat: the
   executor's own shutdown flag; no public accessor in Jazzy or Kilted), ``_nodes`` /
   ``_nodes_lock`` (executors.ControlExecutor.add_node: adds a node without taking its
   ``executor`` attribute, which ``add_node`` always sets), ``_cb_iter`` (ros_compat: the
   wait generator ended by an exception must be dropped before retrying),
   MultiThreadedExecutor's ``_executor`` thread pool and its ``_threads`` (ros_compat
   shutdown_executor: no public way to join the pool with a deadline), and
   ``_take_subscription`` / ``_take_timer`` / ``_execute_timer`` where Humble's
   ``_execute_subscription`` is there too (ros_compat guard_executor_takes; Jazzy and
   Kilted have no ``_execute_subscription``, so nothing is patched there).
6. Generated messages' ``_check_fields`` (ros_compat.message_checks_fields): whether a
   message checks assigned fields; rosidl_generator_py keeps the flag private.

Items 2-6 are each feature-detected where they are used: an absent attribute gives the
documented default, except ``_nodes`` / ``_nodes_lock``, for which there is no public way
(``Node.executor``'s setter removes the node from its previous executor, so two executors
cannot share a node publicly): without them node_main stops at start with an error that
names them and says to run with $SEGFORMER_ROS_EXECUTOR=multi. Only item 1 has a slower
public path the node switches to by itself.
"""

import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

# $SEGFORMER_ROS_FRAME_READER: ``auto`` (default: the fast reader when the check passes)
# or ``public`` (the executor-callback fallback, e.g. to compare the two or to test it).
FRAME_READER_ENV = 'SEGFORMER_ROS_FRAME_READER'
FRAME_READER_CHOICES: Tuple[str, ...] = ('auto', 'public')

try:
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
    _IMPORT_PROBLEM = ''
except Exception as exc:  # noqa: BLE001 - any failure means "not usable": fall back
    _rclpy = None
    _IMPORT_PROBLEM = (f'rclpy.impl.implementation_singleton.rclpy_implementation cannot be '
                       f'imported ({type(exc).__name__}: {exc})')

# Arities (parameters after self) of the C methods the frame reader calls, as used there.
_ARITIES: Tuple[Tuple[str, str, int], ...] = (
    ('WaitSet', '__init__', 7),
    ('WaitSet', 'clear_entities', 0),
    ('WaitSet', 'add_subscription', 1),
    ('WaitSet', 'add_guard_condition', 1),
    ('WaitSet', 'wait', 1),
    ('WaitSet', 'get_ready_entities', 1),
    ('Subscription', 'take_message', 2),
)
# Attributes (no call shape to check) the frame reader uses on the C classes.
_ATTRIBUTES: Tuple[Tuple[str, str], ...] = (
    ('Subscription', 'pointer'), ('Subscription', '__enter__'), ('Subscription', '__exit__'),
    ('GuardCondition', 'pointer'), ('GuardCondition', '__enter__'),
    ('GuardCondition', '__exit__'), ('Context', '__enter__'), ('Context', '__exit__'),
)
# Python-level: the ``handle`` properties of the public wrappers.
_HANDLE_OWNERS: Tuple[Tuple[str, str], ...] = (
    ('rclpy.subscription', 'Subscription'), ('rclpy.guard_condition', 'GuardCondition'),
    ('rclpy.context', 'Context'),
)

_PYBIND_SIGNATURE = re.compile(r'^\s*[A-Za-z_][A-Za-z0-9_]*\((?P<params>.*)\)\s*(->.*)?$')


def rclpy_version() -> str:
    """Return the installed rclpy's version (``'unknown'`` when no metadata says)."""
    from importlib import metadata

    for dist in ('rclpy', 'ros-rclpy'):
        try:
            return metadata.version(dist)
        except Exception:  # noqa: BLE001 - no such distribution: try the next source
            continue
    try:
        from ament_index_python.packages import get_package_share_directory

        xml = os.path.join(get_package_share_directory('rclpy'), 'package.xml')
        with open(xml, encoding='utf-8') as f:
            found = re.search(r'<version>([^<]+)</version>', f.read())
        if found:
            return found.group(1).strip()
    except Exception:  # noqa: BLE001 - informational only
        pass
    return 'unknown'


def _split_params(text: str) -> List[str]:
    """Split a signature's parameter text at top-level commas."""
    params, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in '[(':
            depth += 1
        elif char in '])':
            depth -= 1
        elif char == ',' and depth == 0:
            params.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        params.append(text[start:].strip())
    return params


def arity(func: Any) -> Optional[int]:
    """Return the count of parameters after ``self`` of ``func``; None when unreadable.

    pybind11 methods have no ``inspect`` signature but a first docstring line
    ``name(self: T, arg0: int, ...) -> R`` (one per overload: those are unreadable here).
    """
    try:
        params = list(inspect.signature(func).parameters.values())
        if params and params[0].name == 'self':
            params = params[1:]
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            return None
        return len(params)
    except (TypeError, ValueError):
        pass
    lines = (getattr(func, '__doc__', None) or '').strip().splitlines()
    found = _PYBIND_SIGNATURE.match(lines[0]) if lines else None
    if found is None:
        return None
    params = _split_params(found.group('params'))
    if params and params[0].split(':')[0].strip() == 'self':
        params = params[1:]
    if any(p.startswith('*') for p in params):
        return None     # pybind11's ``f(*args, **kwargs)`` line of an overloaded function
    return len(params)


@dataclass(frozen=True)
class InternalsCheck:
    """What :func:`check_frame_reader_internals` found."""

    rclpy_version: str
    problems: Tuple[str, ...] = ()
    forced: bool = False          # $SEGFORMER_ROS_FRAME_READER=public

    @property
    def usable(self) -> bool:
        """True when the fast frame reader may be used."""
        return not self.problems and not self.forced

    def fallback_warning(self) -> str:
        """Return the WARN line the node logs (once) when it uses the public fallback."""
        reason = '; '.join(([f'forced by {FRAME_READER_ENV}=public'] if self.forced else [])
                           + list(self.problems))
        return (f'frame reader: using the public-API fallback on rclpy {self.rclpy_version} '
                f'({reason}). Slower when cameras send faster than the model runs: an '
                f'executor now takes and converts every frame in Python, also those the '
                f'keep-latest slot then drops (under a 200 Hz 1080p flood: about 1.2x the CPU '
                f'per mask and 0.7x the masks/s); /diagnostics wait_misses are not available. '
                f'segformer_ros/rclpy_internals.py lists the internals the fast reader needs')


def frame_reader_choice(environ: Optional[Dict[str, str]] = None) -> str:
    """Return $SEGFORMER_ROS_FRAME_READER (``auto`` when unset); ValueError when invalid."""
    env = os.environ if environ is None else environ
    choice = (env.get(FRAME_READER_ENV, '') or 'auto').strip().lower()
    if choice not in FRAME_READER_CHOICES:
        raise ValueError(f'{FRAME_READER_ENV} must be one of {", ".join(FRAME_READER_CHOICES)}, '
                         f'got {env.get(FRAME_READER_ENV)!r}')
    return choice


def internals_problems(context: Any = None) -> List[str]:
    """Return what is missing or changed among the frame reader's internals ([] if none).

    Names and call shapes (arities) always; with ``context`` (an initialised rclpy Context)
    also a wait set built, waited on and read back the way the frame reader does, on a guard
    condition (microseconds; no DDS entity is created).
    """
    if _rclpy is None:
        return [_IMPORT_PROBLEM]
    problems = []
    for cls_name, method, expected in _ARITIES:
        cls = getattr(_rclpy, cls_name, None)
        func = getattr(cls, method, None) if cls is not None else None
        if func is None:
            problems.append(f'_rclpy.{cls_name}.{method} is missing')
            continue
        got = arity(func)
        if got is None:
            problems.append(f'the signature of _rclpy.{cls_name}.{method} cannot be read')
        elif got != expected:
            problems.append(f'_rclpy.{cls_name}.{method} takes {got} arguments, the frame '
                            f'reader passes {expected}')
    for cls_name, attr in _ATTRIBUTES:
        if not hasattr(getattr(_rclpy, cls_name, None), attr):
            problems.append(f'_rclpy.{cls_name}.{attr} is missing')
    for module_name, cls_name in _HANDLE_OWNERS:
        try:
            module = __import__(module_name, fromlist=[cls_name])
            cls = getattr(module, cls_name)
        except Exception as exc:  # noqa: BLE001
            problems.append(f'{module_name}.{cls_name} cannot be imported ({exc})')
            continue
        if not isinstance(inspect.getattr_static(cls, 'handle', None), property):
            problems.append(f'{module_name}.{cls_name}.handle is not a property any more')
    if not problems and context is not None:
        problems.extend(_probe_wait_set(context))
    return problems


def _probe_wait_set(context: Any) -> List[str]:
    """Wait on a triggered guard condition as the frame reader waits on subscriptions."""
    from rclpy.guard_condition import GuardCondition

    try:
        guard = GuardCondition(None, None, context=context)
    except Exception as exc:  # noqa: BLE001 - the context is not usable: not our problem
        return [f'probe: no guard condition on this context ({type(exc).__name__}: {exc})']
    try:
        guard.trigger()
        with Entered([guard.handle, context.handle]):
            wait_set = _rclpy.WaitSet(0, 1, 0, 0, 0, 0, context.handle)
            wait_set.clear_entities()
            wait_set.add_guard_condition(guard.handle)
            wait_set.wait(0)
            ready = wait_set.get_ready_entities('guard_condition')
            pointer = guard.handle.pointer
        if pointer not in set(ready):
            return [f'probe: get_ready_entities did not report the triggered guard condition '
                    f'by its handle pointer (got {list(ready)!r})']
        return []
    except Exception as exc:  # noqa: BLE001 - any failure means "changed"
        return [f'probe: waiting on a guard condition failed ({type(exc).__name__}: {exc})']
    finally:
        try:
            guard.destroy()
        except Exception:  # noqa: BLE001
            pass


def check_frame_reader_internals(context: Any = None,
                                 environ: Optional[Dict[str, str]] = None,
                                 problems: Optional[Sequence[str]] = None) -> InternalsCheck:
    """Run the configure-time check: may the fast frame reader be used on this rclpy.

    ``problems`` replaces the detection (tests inject a result); ``environ`` defaults to
    ``os.environ`` ($SEGFORMER_ROS_FRAME_READER=public forces the fallback). Raises
    ValueError for an invalid $SEGFORMER_ROS_FRAME_READER.
    """
    forced = frame_reader_choice(environ) == 'public'
    found = list(problems) if problems is not None else internals_problems(context)
    return InternalsCheck(rclpy_version(), tuple(found), forced)


# ------------------------------------------------------------ 1. frame reader
def wait_for_subscriptions(subscriptions: Sequence[Any], wake: Any, context: Any,
                           timeout_s: float) -> Set[int]:
    """Wait until some of ``subscriptions`` have data, ``wake`` fires or the timeout passes.

    Returns the indices (into ``subscriptions``) of those ready.
    """
    pointers = []
    with Entered([s.handle for s in subscriptions] + [wake.handle, context.handle]):
        wait_set = _rclpy.WaitSet(len(subscriptions), 1, 0, 0, 0, 0, context.handle)
        wait_set.clear_entities()
        for sub in subscriptions:
            wait_set.add_subscription(sub.handle)
            pointers.append(sub.handle.pointer)
        wait_set.add_guard_condition(wake.handle)
        wait_set.wait(max(0, int(timeout_s * 1e9)))
        ready = set(wait_set.get_ready_entities('subscription'))
    return {i for i, p in enumerate(pointers) if p in ready}


def take_message(subscription: Any) -> Optional[Tuple[Any, Any]]:
    """Take one message and its info dict from ``subscription``'s reader (None if empty)."""
    with subscription.handle:
        return subscription.handle.take_message(subscription.msg_type, subscription.raw)


class Entered:
    """Enter several rclpy handles (keeps them alive while waited on)."""

    def __init__(self, handles: Sequence[Any]) -> None:
        self._handles = list(handles)
        self._entered: List[Any] = []

    def __enter__(self) -> 'Entered':
        try:
            for handle in self._handles:
                handle.__enter__()
                self._entered.append(handle)
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        while self._entered:
            self._entered.pop().__exit__(None, None, None)


# ------------------------------------------------------------ 2.-6. the others
def rcl_error_type() -> type:
    """Return ``RCLError`` (item 2); ``Exception``'s never-raised stand-in when absent."""
    found = getattr(_rclpy, 'RCLError', None)
    return found if isinstance(found, type) else _NeverRaised


class _NeverRaised(Exception):
    """Stands for an exception type this rclpy does not have (nothing raises it)."""


def change_state_service(node: Any) -> Optional[Any]:
    """Return a lifecycle node's change_state service (item 3); None when absent."""
    return getattr(node, '_service_change_state', None)


def lifecycle_state_label(node: Any) -> str:
    """Return a lifecycle node's current state label (item 3); ``'unknown'`` when unreadable."""
    try:
        return str(node._state_machine.current_state[1])
    except Exception:  # noqa: BLE001 - informational only
        return 'unknown'


def parameter_overrides(node: Any) -> Dict[str, Any]:
    """Return the parameter overrides the node was started with (item 4)."""
    return dict(getattr(node, '_parameter_overrides', None) or {})


def executor_is_shutdown(executor: Any) -> bool:
    """Return an executor's own shutdown flag (item 5); False when absent."""
    return bool(getattr(executor, '_is_shutdown', False))


def add_node_without_claiming(executor: Any, node: Any) -> Optional[bool]:
    """Add ``node`` to ``executor`` without setting ``node.executor`` (item 5).

    True when added, False when it was there; None when this rclpy has no ``_nodes`` /
    ``_nodes_lock`` (nothing done; executors.ControlExecutor then says what to do).
    """
    lock, nodes = getattr(executor, '_nodes_lock', None), getattr(executor, '_nodes', None)
    if lock is None or not isinstance(nodes, set):
        return None
    with lock:
        if node in nodes:
            return False
        nodes.add(node)
    return True


def drop_wait_generator(executor: Any) -> None:
    """Forget the executor's wait generator after it ended with an exception (item 5)."""
    executor._cb_iter = None


def executor_thread_pool(executor: Any) -> Optional[Any]:
    """Return a MultiThreadedExecutor's ThreadPoolExecutor (item 5); None when absent."""
    pool = getattr(executor, '_executor', None)
    return pool if callable(getattr(pool, 'shutdown', None)) else None


def pool_threads(pool: Any) -> List[Any]:
    """Return a ThreadPoolExecutor's worker threads (item 5: no public accessor)."""
    return list(getattr(pool, '_threads', ()))


_HUMBLE_TAKES = ('_take_subscription', '_take_timer', '_execute_timer')


def humble_executor_takes(executor: Any) -> Optional[Tuple[Callable[..., Any], ...]]:
    """Return Humble's take/execute trio of ``executor`` (item 5); None elsewhere."""
    if not all(hasattr(executor, name) for name in _HUMBLE_TAKES + ('_execute_subscription',)):
        return None
    return tuple(getattr(executor, name) for name in _HUMBLE_TAKES)


def replace_executor_takes(executor: Any, takes: Sequence[Callable[..., Any]]) -> None:
    """Set the trio :func:`humble_executor_takes` returned, wrapped (item 5)."""
    for name, func in zip(_HUMBLE_TAKES, takes):
        setattr(executor, name, func)


def message_checks_fields(msg: Any) -> bool:
    """Return whether ``msg`` checks assigned fields (item 6; Humble: ``__debug__``)."""
    return bool(getattr(msg, '_check_fields', __debug__))
