"""The node in its own process, driven like a lifecycle manager would, over loopback DDS.

Another process (this test) publishes real frames of the shared video, drives the
lifecycle through the node's change_state/get_state services and checks the mask,
overlay and summary: sizes, encodings, headers, class ids, summary == bincount(mask),
agreement with a plain ONNX Runtime run, silence while inactive.
"""

import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from segformer_ros.msg import SegmentationSummary  # noqa: E402
from ros_helpers import start_preset_node  # noqa: E402

pytestmark = pytest.mark.ros


def plain_onnx_mask(model: Path, frame_rgb: np.ndarray) -> np.ndarray:
    """Compute the reference mask: model-card preprocessing and a bare InferenceSession."""
    import cv2
    import onnxruntime as ort

    from segformer_ros.backends.onnxruntime_backend import stable_optimization_level

    options = ort.SessionOptions()   # deterministic on ORT < 1.24 too (see there)
    options.graph_optimization_level = stable_optimization_level(ort)
    session = ort.InferenceSession(str(model), options, providers=['CPUExecutionProvider'])
    x = cv2.resize(frame_rgb, (513, 513), interpolation=cv2.INTER_LINEAR)
    x = x.astype(np.float32).transpose(2, 0, 1)[None]
    ids = session.run(None, {'input': x})[0][0].astype(np.uint8)
    h, w = frame_rgb.shape[:2]
    return cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


class _Client:
    """Lifecycle service clients, a camera publisher and output subscribers."""

    def __init__(self, context: Any) -> None:
        self.node = rclpy.create_node('cross_process_test', context=context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.change = self.node.create_client(ChangeState, '/segformer/change_state')
        self.get = self.node.create_client(GetState, '/segformer/get_state')
        self.camera = self.node.create_publisher(Image, '/camera/image_raw',
                                                 qos_profile_sensor_data)
        self.received: Dict[str, List[Any]] = {'mask': [], 'overlay': [], 'summary': []}
        for kind, msg_type in (('mask', Image), ('overlay', Image),
                               ('summary', SegmentationSummary)):
            self.node.create_subscription(msg_type, f'/segmentation/{kind}',
                                          self.received[kind].append, 20)

    def spin_until(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def call(self, client: Any, request: Any, timeout: float = 60.0) -> Any:
        """Call a service; None when no reply came within ``timeout``."""
        assert client.wait_for_service(timeout_sec=30.0), f'{client.srv_name} not available'
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    def state(self, attempts: int = 4) -> int:
        # get_state is idempotent, so a lost reply is simply asked again. Right after
        # discovery the node's reply writer may not have matched our reply reader yet;
        # rmw_fastrtps then drops the reply ("client will not receive response") after
        # 100 ms. Seen in CI on a loaded 2-core machine.
        for _ in range(attempts):
            response = self.call(self.get, GetState.Request(), timeout=10.0)
            if response is not None:
                return response.current_state.id
        raise AssertionError(f'/segformer/get_state: no reply in {attempts} attempts')

    def transition(self, transition_id: int, goal_state: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        response = self.call(self.change, request)
        if response is None:
            # A lost reply is not a failed transition: the state tells which it was.
            return self.state() == goal_state
        return response.success

    def publish(self, frame_rgb: np.ndarray, sec: int) -> None:
        msg = Image(height=frame_rgb.shape[0], width=frame_rgb.shape[1], encoding='rgb8',
                    step=frame_rgb.shape[1] * 3)
        msg.header.frame_id = 'camera_optical'
        msg.header.stamp.sec = sec
        msg.data = frame_rgb.tobytes()
        self.camera.publish(msg)

    def publish_until_received(self, frame_rgb: np.ndarray, sec: int, kinds: List[str],
                               timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish(frame_rgb, sec)
            if self.spin_until(lambda: all(any(m.header.stamp.sec == sec
                                               for m in self.received[k]) for k in kinds), 0.7):
                return True
        return False


@pytest.fixture
def node_process(tmp_path, ros_domain, deeplab_model):
    proc = start_preset_node(tmp_path, ros_domain, deeplab_model,
                             remaps={'image': '/camera/image_raw'})
    yield proc
    code = proc.stop()
    assert code == 0, f'node exited with {code}:\n{proc.log()[-2000:]}'


def test_lifecycle_over_services_with_real_frames(node_process, rclpy_context, deeplab_model,
                                                  street_frames_bgr) -> None:
    import cv2

    client = _Client(rclpy_context)
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in street_frames_bgr[:3]]
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert client.transition(Transition.TRANSITION_CONFIGURE,
                             State.PRIMARY_STATE_INACTIVE), node_process.log()[-2000:]
    assert client.state() == State.PRIMARY_STATE_INACTIVE

    # Inactive: lifecycle publishers exist but stay silent.
    for _ in range(5):
        client.publish(frames[0], 1)
        client.spin_until(lambda: False, 0.2)
    assert all(not v for v in client.received.values()), 'published while inactive'

    assert client.transition(Transition.TRANSITION_ACTIVATE, State.PRIMARY_STATE_ACTIVE)
    assert client.state() == State.PRIMARY_STATE_ACTIVE
    agreements = []
    for index, frame in enumerate(frames):
        sec = 100 + index
        assert client.publish_until_received(frame, sec, ['mask', 'overlay', 'summary']), \
            node_process.log()[-2000:]
        mask_msg = next(m for m in client.received['mask'] if m.header.stamp.sec == sec)
        overlay = next(m for m in client.received['overlay'] if m.header.stamp.sec == sec)
        summary = next(m for m in client.received['summary'] if m.header.stamp.sec == sec)
        for msg in (mask_msg, overlay, summary):
            assert msg.header.frame_id == 'camera_optical'
        assert (mask_msg.height, mask_msg.width, mask_msg.encoding) == (540, 960, 'mono8')
        assert mask_msg.step == 960
        assert (overlay.height, overlay.width, overlay.encoding) == (540, 960, 'rgb8')
        mask = np.frombuffer(mask_msg.data, np.uint8).reshape(540, 960)
        assert set(np.unique(mask)) <= set(range(19)) | {255}
        counts = np.bincount(mask.ravel(), minlength=256)
        assert list(summary.class_pixel_counts) == counts[:19].tolist()
        assert summary.unlabeled_pixel_count == int(counts[19:].sum())
        assert (summary.width, summary.height) == (960, 540)
        assert abs(summary.class_fractions[0] - counts[0] / mask.size) < 1e-6
        agreements.append((mask == plain_onnx_mask(deeplab_model, frame)).mean())
    assert min(agreements) >= 0.99, agreements

    assert client.transition(Transition.TRANSITION_DEACTIVATE, State.PRIMARY_STATE_INACTIVE)
    client.spin_until(lambda: False, 0.5)
    before = {k: len(v) for k, v in client.received.items()}
    for _ in range(5):
        client.publish(frames[0], 999)
        client.spin_until(lambda: False, 0.2)
    assert {k: len(v) for k, v in client.received.items()} == before

    assert client.transition(Transition.TRANSITION_CLEANUP, State.PRIMARY_STATE_UNCONFIGURED)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    client.node.destroy_node()


def test_no_silent_stall_every_large_frame_answered(node_process, rclpy_context,
                                                    street_frames_bgr) -> None:
    """Issue 21's repetition: ten 960x540 frames in a row, each answered within seconds.

    Before issue 21, on Jazzy, the node answered the first frame and then nothing for 30 s
    in 2 of 8 runs (frames above ~0.5 MB lost in transport: the loopback profile was not
    loaded there); this fails on that code in most runs there.
    """
    import cv2

    client = _Client(rclpy_context)
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in street_frames_bgr[:3]]
    assert client.transition(Transition.TRANSITION_CONFIGURE, State.PRIMARY_STATE_INACTIVE)
    assert client.transition(Transition.TRANSITION_ACTIVATE, State.PRIMARY_STATE_ACTIVE)
    # The first frame may wait for discovery; every later one is answered within 6 s
    # (DeepLab on 2 loaded cores takes well under 1 s a frame; best effort may lose one).
    assert client.publish_until_received(frames[0], 200, ['mask'], timeout=30.0), \
        node_process.log()[-2000:]
    slow = []
    for index in range(1, 10):
        started = time.monotonic()
        answered = client.publish_until_received(frames[index % 3], 200 + index, ['mask'],
                                                 timeout=6.0)
        slow.append((200 + index, round(time.monotonic() - started, 2), answered))
        assert answered, f'frame {200 + index} unanswered for 6 s: {slow}\n' \
                         f'{node_process.log()[-2000:]}'
    client.node.destroy_node()


def test_sigusr1_prints_the_stacks_and_the_node_goes_on(node_process, rclpy_context) -> None:
    """``kill -USR1 <pid>``: every thread's stack in the node's stderr; the node still answers."""
    import signal

    client = _Client(rclpy_context)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    node_process.proc.send_signal(signal.SIGUSR1)
    # The main thread (spinning in node_main) is among the stacks; the dump takes a moment.
    assert node_process.wait_for_log('node_main.py', 10.0), node_process.log()[-2000:]
    assert 'most recent call first' in node_process.log()
    assert node_process.running()
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    client.node.destroy_node()


# segformer_node with rclpy's signal handlers removed right after rclpy.init: SIGINT then
# reaches only Python's own handler, as in the runs where rclpy's did not end the wait.
WITHOUT_RCLPY_SIGNALS = '''
import sys
import rclpy
import rclpy.signals
from segformer_ros import node_main
init = rclpy.init
def init_then_uninstall(*args, **kwargs):
    init(*args, **kwargs)
    rclpy.signals.uninstall_signal_handlers()
    print('rclpy signal handlers removed', flush=True)
rclpy.init = init_then_uninstall
sys.exit(node_main.main(sys.argv[1:]))
'''


@pytest.mark.parametrize('inherited', ['sigint_default', 'sigint_ignored'])
def test_sigint_ends_the_node_even_when_rclpys_handler_does_not(tmp_path, ros_domain,
                                                                inherited) -> None:
    """Also when started from a background job, which inherits SIGINT ignored."""
    import signal
    import subprocess
    import sys

    from benchmarks.processes import loopback_env

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    log = (tmp_path / 'node.log').open('w')
    proc = subprocess.Popen([sys.executable, '-c', WITHOUT_RCLPY_SIGNALS, '--ros-args',
                             '-p', 'autostart:=false'], env=loopback_env(ros_domain),
                            stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=ignore_sigint if inherited == 'sigint_ignored' else None)
    try:
        deadline = time.monotonic() + 30.0
        while 'handlers removed' not in (tmp_path / 'node.log').read_text() \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)          # in spin() by now
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    finally:
        log.close()
    text = (tmp_path / 'node.log').read_text()
    assert code == 0, f'SIGINT did not end the node (exit {code}):\n{text[-2000:]}'
