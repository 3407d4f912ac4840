"""Helpers shared by the hardening tests.

A client of the node's services and topics, process probes (/proc RSS, threads, fds,
Fast DDS shared memory), an in-process node harness and a flood publisher.

Run as a script, this module is the overload test's camera stand-in::

    python test/ros_helpers.py flood --topic /camera/image_raw --rate 200 \
        --width 1920 --height 1080 --seconds 60 --report flood.json

It publishes one pre-built rgb8 frame over and over with a fresh stamp (building a
1080p message per frame in Python would cap the rate far below 200 Hz), paced by an
absolute schedule, and writes how many frames it really sent and at what rate.
"""

import argparse
import array
import gc
import json
import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from segformer_ros.tools.spin import BackgroundSpin

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / 'config' / 'deeplab_mobilenet_cityscapes.yaml'
_PAGE_KB = os.sysconf('SC_PAGE_SIZE') // 1024


# ----------------------------------------------------------------- domain ids
_OWN_COUNTER = [50]


def next_domain() -> int:
    """Return a ROS domain id distinct from the other tests of this run (for module fixtures).

    Uses the same counter as conftest's ``ros_domain`` fixture, so module-scoped node
    processes never share a domain with a function-scoped test.
    """
    try:
        import conftest
        counter = conftest._domain_counter
    except (ImportError, AttributeError):  # another import mode: a counter of our own
        counter = _OWN_COUNTER
    counter[0] += 1
    return 1 + (os.getpid() * 7 + 13 * counter[0]) % 100


# ------------------------------------------------------------- process probes
def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (VmRSS of /proc/<pid>/status)."""
    text = Path(f'/proc/{pid}/status').read_text()
    match = re.search(r'^VmRSS:\s+(\d+) kB', text, re.MULTILINE)
    assert match, f'no VmRSS in /proc/{pid}/status'
    return int(match.group(1)) / 1024.0


def rss_mb_fast(pid: int) -> float:
    """Resident set size in MiB from /proc/<pid>/statm (cheaper; same number as VmRSS)."""
    fields = Path(f'/proc/{pid}/statm').read_text().split()
    return int(fields[1]) * _PAGE_KB / 1024.0


def thread_count(pid: int) -> int:
    """Count the OS threads of ``pid``."""
    return len(os.listdir(f'/proc/{pid}/task'))


def fd_targets(pid: int) -> Dict[int, str]:
    """Open file descriptors of ``pid`` and what they point to."""
    out: Dict[int, str] = {}
    base = f'/proc/{pid}/fd'
    for name in os.listdir(base):
        try:
            out[int(name)] = os.readlink(f'{base}/{name}')
        except OSError:  # closed between listdir and readlink
            continue
    return out


# Fast DDS 3 names its segments and port files fastdds_*, Fast DDS 2 (Jazzy, Humble) fastrtps_*.
SHM_PREFIXES = ('/dev/shm/fastdds_', '/dev/shm/fastrtps_')


def shm_files(pid: int) -> Set[str]:
    """Fast DDS shared-memory files ``pid`` has mapped or open (see SHM_PREFIXES)."""
    found: Set[str] = set()
    for line in Path(f'/proc/{pid}/maps').read_text().splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ''
        if path.startswith(SHM_PREFIXES):
            found.add(path.replace(' (deleted)', ''))
    for target in fd_targets(pid).values():
        if target.startswith(SHM_PREFIXES):
            found.add(target)
    return found


def shm_owned(pid: int) -> Set[str]:
    """Fast DDS shared-memory files owned by ``pid``'s participant(s).

    Fast DDS keeps a lock file ``<segment>_el`` open for every segment and port it created
    (a peer only maps them), so the open ``_el`` files name what the process owns.
    """
    owned: Set[str] = set()
    for target in fd_targets(pid).values():
        # Fast DDS 3 names them fastdds_*, Fast DDS 2 (Jazzy, Humble) fastrtps_*.
        if target.startswith(SHM_PREFIXES) and target.endswith('_el'):
            owned |= {target, target[:-len('_el')]}
    return owned


def shm_in_use() -> Set[str]:
    """Fast DDS shared-memory files some live process has mapped or open."""
    used: Set[str] = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                used |= shm_files(int(entry))
            except (OSError, ValueError):  # exited meanwhile, or not ours to read
                continue
    return used


def orphaned(paths: Set[str]) -> List[str]:
    """Those of ``paths`` that still exist although no live process uses them.

    A participant maps its own segment and port, and also the segments and ports of the
    peers it talks to; only files nobody uses any more are left behind.
    """
    used = shm_in_use()
    return sorted(p for p in paths if os.path.exists(p) and p not in used)


# ------------------------------------------------------------------- messages
def image_msg(array_u8: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = 'camera',
              step: Optional[int] = None, height: Optional[int] = None,
              width: Optional[int] = None, data: Optional[bytes] = None,
              is_bigendian: bool = False) -> Any:
    """Build a sensor_msgs/Image from an array, every field overridable (for bad frames)."""
    from sensor_msgs.msg import Image

    arr = np.ascontiguousarray(array_u8)
    msg = Image()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    msg.height = int(arr.shape[0] if height is None else height)
    msg.width = int(arr.shape[1] if width is None else width)
    msg.encoding = encoding
    msg.is_bigendian = int(is_bigendian)
    row = arr.shape[1] * (arr.shape[2] if arr.ndim == 3 else 1) * arr.itemsize
    msg.step = int(row if step is None else step)
    buf = array.array('B')
    buf.frombytes(arr.tobytes() if data is None else data)
    msg.data = buf
    return msg


def compressed_msg(data: bytes, fmt: str, stamp_ns: int, frame_id: str = 'camera') -> Any:
    """Build a sensor_msgs/CompressedImage."""
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    msg.format = fmt
    buf = array.array('B')
    buf.frombytes(data)
    msg.data = buf
    return msg


def stamp_ns(msg: Any) -> int:
    """Header stamp in nanoseconds."""
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def mask_array(msg: Any) -> np.ndarray:
    """Return the (H, W) uint8 class mask of a mono8 Image."""
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)


def plain_onnx_mask(model: Path, frame_rgb: np.ndarray) -> np.ndarray:
    """Compute the reference DeepLab mask: model card preprocessing, bare InferenceSession."""
    import cv2
    import onnxruntime as ort

    from segformer_ros.backends.onnxruntime_backend import stable_optimization_level

    options = ort.SessionOptions()   # deterministic on ORT < 1.24 too (see there)
    options.graph_optimization_level = stable_optimization_level(ort)
    session = ort.InferenceSession(str(model), options, providers=['CPUExecutionProvider'])
    x = cv2.resize(frame_rgb, (513, 513), interpolation=cv2.INTER_LINEAR)
    ids = session.run(None, {'input': x.astype(np.float32).transpose(2, 0, 1)[None]})[0][0]
    h, w = frame_rgb.shape[:2]
    return cv2.resize(ids.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


# ---------------------------------------------------------------- log parsing
def error_lines(log: str) -> List[str]:
    """ERROR lines of a ROS log."""
    return [line for line in log.splitlines() if '[ERROR]' in line]


def wait_until(predicate: Callable[[], Any], timeout: float, period: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


# ------------------------------------------------------------------ rclpy side
@contextmanager
def ros_context(domain_id: int) -> Iterator[Any]:
    """Yield an initialised rclpy context on ``domain_id``; shut it down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


class NodeClient:
    """Talks to a segformer node: lifecycle/parameter services, camera, outputs, diagnostics.

    Spins its own executor in a background thread, so service calls can be timed and
    messages arrive while the test thread waits.
    """

    def __init__(self, context: Any, node_name: str = 'segformer',
                 camera_topic: str = '/image', compressed: bool = False,
                 output_prefix: str = '/segmentation', summary: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image

        self.node = rclpy.create_node(f'hardening_client_{os.getpid()}', context=context)
        self.get_state_client = self.node.create_client(GetState, f'/{node_name}/get_state')
        self.change_client = self.node.create_client(ChangeState, f'/{node_name}/change_state')
        self.params_client = self.node.create_client(SetParameters,
                                                     f'/{node_name}/set_parameters')
        self.camera = self.node.create_publisher(CompressedImage if compressed else Image,
                                                 camera_topic, qos_profile_sensor_data)
        self.lock = threading.Lock()
        self.masks: List[Tuple[float, Any]] = []   # (receipt time.time(), message)
        self.summaries: List[Any] = []
        self.diagnostics: Dict[str, str] = {}
        self.diag_status: Tuple[int, str] = (0, '')   # level byte, message
        self.diag_history: List[Tuple[int, str]] = []
        self.diag_count = 0
        self._reachable = False
        self.node.create_subscription(Image, f'{output_prefix}/mask', self._on_mask, 50)
        if summary:
            from segformer_ros.msg import SegmentationSummary
            self.node.create_subscription(SegmentationSummary, f'{output_prefix}/summary',
                                          self.summaries.append, 50)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.executor = MultiThreadedExecutor(num_threads=2, context=context)
        self.executor.add_node(self.node)
        self.spin = BackgroundSpin(self.executor, 'node_client_spin')

    # ----------------------------------------------------------- callbacks
    def _on_mask(self, msg: Any) -> None:
        with self.lock:
            self.masks.append((time.time(), msg))

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(': segmentation'):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    level = status.level if isinstance(status.level, int) else \
                        int.from_bytes(status.level, 'little')
                    self.diag_status = (level, status.message)
                    self.diag_history.append(self.diag_status)
                    self.diag_count += 1

    # ------------------------------------------------------------ queries
    def masks_with_stamp(self, stamp: int) -> List[Any]:
        """Received masks whose header stamp is ``stamp`` (ns)."""
        with self.lock:
            return [m for _, m in self.masks if stamp_ns(m) == stamp]

    def diag_value(self, key: str) -> float:
        """Return a numeric /diagnostics value (NaN when not received yet)."""
        with self.lock:
            return float(self.diagnostics.get(key, 'nan'))

    def wait_for_camera_match(self, timeout: float = 20.0) -> bool:
        """Wait until the node's image subscription matched our camera publisher."""
        return wait_until(lambda: self.camera.get_subscription_count() >= 1, timeout)

    # ----------------------------------------------------------- services
    def call(self, client: Any, request: Any, timeout: float = 30.0) -> Tuple[Any, float]:
        """Call a service; return (response, seconds it took). Asserts on timeout."""
        assert client.wait_for_service(timeout_sec=30.0), f'{client.srv_name} not available'
        done = threading.Event()
        start = time.monotonic()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            raise AssertionError(f'{client.srv_name} did not answer within {timeout} s')
        return future.result(), time.monotonic() - start

    def call_idempotent(self, client: Any, request: Any, attempts: int = 3,
                        timeout: float = 10.0) -> Any:
        """Call a service whose request may safely be repeated; retry a lost reply.

        Right after discovery rmw_fastrtps drops a reply whose reader the node's reply
        writer has not matched within 100 ms (the node logs 'failed to send response');
        the client then waits forever. Seen in CI on get_state.
        """
        for attempt in range(attempts):
            try:
                return self.call(client, request, timeout)[0]
            except AssertionError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError('unreachable')

    def state(self, attempts: int = 3) -> str:
        """Return the lifecycle state label ('unconfigured', 'inactive', 'active', ...)."""
        from lifecycle_msgs.srv import GetState

        response = self.call_idempotent(self.get_state_client, GetState.Request(), attempts)
        return response.current_state.label

    def ensure_reachable(self) -> None:
        """Make one answered call to get_state and to set_parameters (a no-op request).

        A change_state request cannot be repeated blindly, so before the first one the
        node's endpoints are made to answer, which means discovery has completed.
        """
        from rcl_interfaces.srv import SetParameters

        if not self._reachable:
            self.state()
            self.call_idempotent(self.params_client, SetParameters.Request())
            self._reachable = True

    def transition(self, transition_id: int, timeout: float = 60.0) -> bool:
        """Trigger a lifecycle transition by id; True on success."""
        from lifecycle_msgs.srv import ChangeState

        self.ensure_reachable()
        request = ChangeState.Request()
        request.transition.id = transition_id
        response, _ = self.call(self.change_client, request, timeout)
        return bool(response.success)

    def set_parameters(self, **values: Any) -> List[Any]:
        """Set parameters over the service; the SetParametersResult of each.

        Setting the same values twice is harmless, so a lost reply is retried.
        """
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(k, value=v).to_parameter_msg()
                              for k, v in values.items()]
        return list(self.call_idempotent(self.params_client, request).results)

    # ------------------------------------------------------------- frames
    def send_until_mask(self, make_msg: Callable[[], Any], stamp: int,
                        timeout: float = 30.0, resend_s: float = 3.0) -> Optional[Any]:
        """Publish a good frame (again every ``resend_s``) until its mask arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.camera.publish(make_msg())
            if wait_until(lambda: self.masks_with_stamp(stamp), min(resend_s, timeout)):
                return self.masks_with_stamp(stamp)[0]
        return None

    def close(self) -> None:
        """Stop spinning and destroy the client node."""
        self.spin.stop()
        self.node.destroy_node()

    def __enter__(self) -> 'NodeClient':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_preset_node(tmp_dir: Path, domain: int, model: Path,
                      remaps: Optional[Dict[str, str]] = None, **values: Any) -> Any:
    """Start the node on the DeepLab preset in its own process (a RosProcess).

    ``values`` override the preset (``warmup_iterations`` is 0 unless given); the log goes
    to ``tmp_dir/node.log``.
    """
    from benchmarks.processes import RosProcess, loopback_env, node_command, params_file

    overrides = params_file({'model_path': str(model), 'warmup_iterations': 0, **values},
                            str(tmp_dir))
    return RosProcess(node_command([str(PRESET), overrides], remaps or {}),
                      loopback_env(domain), tmp_dir / 'node.log')


def deeplab_overrides(model: Path, **extra: Any) -> List[Any]:
    """Parameter overrides of the DeepLab preset with ``model`` and ``extra`` values."""
    from rclpy.parameter import Parameter

    from segformer_ros.presets import load_params_file

    params: Dict[str, Any] = load_params_file(PRESET)
    params['model_path'] = str(model)
    params['warmup_iterations'] = 0
    params.update(extra)
    return [Parameter(k, value=v) for k, v in params.items()]


class InProcessNode:
    """A SegformerNode in this process, spun by its own executor, plus a NodeClient."""

    def __init__(self, context: Any, overrides: List[Any]) -> None:
        from rclpy.executors import MultiThreadedExecutor

        from segformer_ros.node import SegformerNode

        self.node = SegformerNode(context=context, parameter_overrides=overrides)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.spin = BackgroundSpin(self.executor, 'node_spin')
        self.client = NodeClient(context, camera_topic='/image')

    def state(self) -> str:
        """Lifecycle state label, read directly from the node."""
        return str(self.node._state_machine.current_state[1])

    def close(self) -> None:
        """Release the node's resources and stop both executors."""
        self.client.close()
        self.node.shutdown_resources()
        self.spin.stop()
        self.node.destroy_node()


# ------------------------------------------------------------ flood publisher
def flood(topic: str, rate_hz: float, width: int, height: int, seconds: float,
          report: Optional[str], wait_subscribers: float) -> Dict[str, float]:
    """Publish one rgb8 frame with fresh stamps at ``rate_hz`` for ``seconds``."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node(f'flood_publisher_{os.getpid()}')
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    # A frame with structure (gradient plus blocks), so the model sees something.
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                      ((xx // 64 + yy // 64) % 2) * 200], axis=-1).astype(np.uint8)
    msg = image_msg(frame, 'rgb8', 0, frame_id='flood_camera')
    deadline = time.monotonic() + wait_subscribers
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    period = 1.0 / rate_hz
    sent = 0
    start = time.monotonic()
    next_t = start
    end = start + seconds
    try:
        while time.monotonic() < end:
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            sent += 1
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_t = time.monotonic()  # far behind: do not burst to catch up
    except KeyboardInterrupt:
        pass
    elapsed = time.monotonic() - start
    result = {'frames_sent': float(sent), 'seconds': elapsed,
              'achieved_rate_hz': sent / elapsed if elapsed > 0 else 0.0,
              'requested_rate_hz': rate_hz, 'width': float(width), 'height': float(height)}
    if report:
        Path(report).write_text(json.dumps(result))
    node.destroy_node()
    rclpy.try_shutdown()
    return result


def _malloc_trim() -> None:
    """Hand free heap pages back to the OS, so RSS measures live memory, not free lists.

    Without it RSS swings by ~30 MB between lifecycle cycles, depending on whether glibc
    kept the last inference's freed buffers; a leak is memory that stays live.
    """
    import ctypes
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as is
        pass


def _thread_counts(pid: int, previous_native: Optional[float]) -> Tuple[int, List[Any]]:
    """OS thread count and Python threads, after threads on their way out have gone.

    A joined Python thread leaves ``threading.enumerate()`` before its OS thread has
    finished exiting; on a loaded machine /proc lists it a moment longer, where it reads as
    one more native thread (seen once in ~40 loaded runs). So when the native count is above
    the previous sample's, it is read again for up to 1 s and the lowest reading is kept: a
    leaked thread stays in every reading, an exiting one does not.
    """
    os_threads, py = thread_count(pid), threading.enumerate()
    deadline = time.monotonic() + 1.0
    while (previous_native is not None and os_threads - len(py) > previous_native
           and time.monotonic() < deadline):
        time.sleep(0.05)
        again, py_again = thread_count(pid), threading.enumerate()
        if again - len(py_again) < os_threads - len(py):
            os_threads, py = again, py_again
    return os_threads, py


def start_pool_workers(executors: Sequence[Any], timeout_s: float = 10.0) -> int:
    """Start every worker thread of these rclpy executors' pools now; return how many run.

    ``MultiThreadedExecutor`` runs callbacks on a ``ThreadPoolExecutor`` (reached through
    segformer_ros.rclpy_internals, hence the fallback to 0 where that changes), which starts a
    worker only when a task finds none idle: how many have started by a given cycle depends on
    how often service calls overlapped, i.e. on the machine's load. Each late starter brings a
    thread stack and a glibc malloc arena (2-5 MB RSS), which a leak check must not read as a
    leak (CI: three late starters, +20.6 MB). Tasks that block until released keep every worker
    busy, so each further task starts one more, up to the pool's bound; each task touches the
    heap once, so its thread's arena exists before the first sample.
    """
    from concurrent.futures import ThreadPoolExecutor, wait

    from segformer_ros.rclpy_internals import executor_thread_pool, pool_threads

    release = threading.Event()

    def hold() -> None:
        bytearray(256 * 1024)   # this thread's first malloc: its arena comes now
        release.wait(timeout_s)

    futures = []
    started = 0
    try:
        for pool in (executor_thread_pool(e) for e in executors):
            if not isinstance(pool, ThreadPoolExecutor):
                continue
            bound = pool._max_workers
            # A submit that finds an idle worker starts none (the idle count may be stale
            # by a task or two): submit until the pool is at its bound, a few extra at most.
            for _ in range(bound * 3):
                if len(pool_threads(pool)) >= bound:
                    break
                futures.append(pool.submit(hold))
            started += len(pool_threads(pool))
    finally:
        release.set()
        wait(futures, timeout_s)
    return started


def _resources(previous: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """RSS, threads (by kind) and fds of this process."""
    gc.collect()   # cycles of destroyed entities freed now, not at a random later cycle
    _malloc_trim()
    pid = os.getpid()
    os_threads, py = _thread_counts(pid, previous['native_threads'] if previous else None)
    pool = sum(1 for t in py if t.name.startswith('ThreadPoolExecutor-'))
    return {'rss_mb': rss_mb(pid), 'os_threads': float(os_threads),
            'py_threads': float(len(py)), 'pool_threads': float(pool),
            # Executor pools start workers lazily up to max_workers: bounded, not a leak.
            'other_py_threads': float(len(py) - pool),
            # Threads not started by Python: Fast DDS, ONNX Runtime's pool.
            'native_threads': float(os_threads - len(py)),
            'fds': float(len(fd_targets(pid))),
            'inference_threads': float(sum(1 for t in py if t.name.startswith('segformer_')
                                           and t.name.rsplit('_', 1)[-1] in
                                           ('intake', 'submit', 'finish')))}


def _frame_path_counts(running: 'InProcessNode', matched: bool) -> Dict[str, float]:
    """Count where a frame got lost: matching, node input/output, mask topic, executors.

    An executor that stopped spinning has its traceback printed to stderr.
    """
    node, client = running.node, running.client
    for spin in (running.spin, client.spin):
        if spin.failure:
            print(f'{spin.name} ended with:\n{spin.failure}', file=sys.stderr)
    stats = node._stats
    mask_pub = node._channels[0].mask_pub if node._channels else None
    return {'camera_matched': float(matched),
            'camera_subscribers': float(client.camera.get_subscription_count()),
            'node_frames_in': float(stats.input_rate.total) if stats else -1.0,
            'node_frames_out': float(stats.output_rate.total) if stats else -1.0,
            'node_frame_errors': float(stats.errors) if stats else -1.0,
            'mask_subscribers': float(mask_pub.get_subscription_count()) if mask_pub else -1.0,
            'client_masks_total': float(len(client.masks)),
            'node_spinning': float(running.spin.alive),
            'client_spinning': float(client.spin.alive)}


def lifecycle_cycles(model: Path, domain_id: int, cycles: int,
                     frame_every: int) -> List[Dict[str, float]]:
    """Run configure/activate/deactivate/cleanup ``cycles`` times; sample after each.

    Every ``frame_every``-th cycle (and the last) also segments a 320x180 frame and
    records whether its mask came back with the right size.
    """
    from rclpy.lifecycle import TransitionCallbackReturn

    from benchmarks.processes import confine_this_process

    ok = TransitionCallbackReturn.SUCCESS
    try:  # the node process's allocator setting (node_main sets it before anything else)
        from segformer_ros.memory import keep_image_buffers
        keep_image_buffers()
    except ImportError:
        pass
    confine_this_process(domain_id)
    yy, xx = np.mgrid[0:180, 0:320]
    frame = np.stack([xx * 255 // 319, yy * 255 // 179, (xx + yy) % 256], -1).astype(np.uint8)
    samples: List[Dict[str, float]] = []
    with ros_context(domain_id) as context:
        running = InProcessNode(context, deeplab_overrides(model))
        node, client = running.node, running.client
        start_pool_workers([running.executor, client.executor])
        try:
            for cycle in range(cycles):
                row: Dict[str, float] = {'cycle': float(cycle)}
                t0 = time.monotonic()
                row['configure_ok'] = float(node.trigger_configure() == ok)
                row['activate_ok'] = float(node.trigger_activate() == ok)
                if cycle % frame_every == 0 or cycle == cycles - 1:
                    stamp = (cycle + 1) * 10**9
                    mask = None
                    matched = client.wait_for_camera_match()
                    if matched:
                        mask = client.send_until_mask(
                            lambda: image_msg(frame, 'rgb8', stamp), stamp)
                    row['mask_ok'] = float(mask is not None and (mask.width, mask.height)
                                           == (320, 180))
                    if not row['mask_ok']:   # what the failure message needs to say where
                        row.update(_frame_path_counts(running, matched))
                row['deactivate_ok'] = float(node.trigger_deactivate() == ok)
                row['cleanup_ok'] = float(node.trigger_cleanup() == ok)
                row['released'] = float(node._backend is None and node._frame_path is None
                                        and not node._channels)
                row['seconds'] = time.monotonic() - t0
                row.update(_resources(samples[-1] if samples else None))
                samples.append(row)
        finally:
            running.close()
    return samples


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: the flood publisher, or the lifecycle-cycle runner."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    c = sub.add_parser('cycles', help='lifecycle cycles of an in-process node (JSON out)')
    c.add_argument('--model', required=True)
    c.add_argument('--domain', type=int, required=True)
    c.add_argument('--cycles', type=int, default=50)
    c.add_argument('--frame-every', type=int, default=5)
    f = sub.add_parser('flood', help='publish a fixed rgb8 frame at a high rate')
    f.add_argument('--topic', default='/camera/image_raw')
    f.add_argument('--rate', type=float, default=200.0)
    f.add_argument('--width', type=int, default=1920)
    f.add_argument('--height', type=int, default=1080)
    f.add_argument('--seconds', type=float, default=60.0)
    f.add_argument('--wait-subscribers', type=float, default=30.0)
    f.add_argument('--report', default='')
    args = parser.parse_args(argv)
    if args.command == 'cycles':
        samples = lifecycle_cycles(Path(args.model), args.domain, args.cycles,
                                   args.frame_every)
        print('CYCLES ' + json.dumps(samples), flush=True)
        return 0
    result = flood(args.topic, args.rate, args.width, args.height, args.seconds,
                   args.report or None, args.wait_subscribers)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
