"""The lifecycle node in-process: real rclpy, real DDS (loopback), real model."""

import threading
import time
from typing import Any, List

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from lifecycle_msgs.msg import State  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ros_helpers import deeplab_overrides, wait_until  # noqa: E402
from segformer_ros.msg import SegmentationSummary  # noqa: E402
from segformer_ros.node import SegformerNode  # noqa: E402
from segformer_ros.tools.spin import BackgroundSpin  # noqa: E402

pytestmark = pytest.mark.ros


class _Harness:
    """The node, a camera publisher and output subscribers spinning in one executor."""

    def __init__(self, context: Any, overrides: List[Parameter]) -> None:
        self.node = SegformerNode(context=context, parameter_overrides=overrides)
        self.peer = rclpy.create_node('lifecycle_test_peer', context=context)
        self.camera = self.peer.create_publisher(Image, 'image', qos_profile_sensor_data)
        self.masks: List[Image] = []
        self.overlays: List[Image] = []
        self.summaries: List[Any] = []
        self.peer.create_subscription(Image, 'segmentation/mask', self.masks.append, 10)
        self.peer.create_subscription(Image, 'segmentation/overlay', self.overlays.append, 10)
        self.peer.create_subscription(SegmentationSummary, 'segmentation/summary',
                                      self.summaries.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.spin = BackgroundSpin(self.executor)

    def state(self) -> int:
        return self.node._state_machine.current_state[0]

    def send(self, frame_rgb: np.ndarray, stamp_ns: int) -> Image:
        msg = Image(height=frame_rgb.shape[0], width=frame_rgb.shape[1], encoding='rgb8',
                    step=frame_rgb.shape[1] * 3)
        msg.header.frame_id = 'front_camera'
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.data = frame_rgb.tobytes()
        self.camera.publish(msg)
        return msg

    def wait(self, predicate: Any, timeout: float = 20.0) -> bool:
        return wait_until(predicate, timeout, period=0.05)

    def close(self) -> None:
        self.node.shutdown_resources()
        self.spin.stop()
        self.node.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def harness(rclpy_context, deeplab_model):
    h = _Harness(rclpy_context, deeplab_overrides(deeplab_model))
    h.model = str(deeplab_model)
    yield h
    h.close()


def test_full_lifecycle_publishes_only_while_active(harness, street_frames_bgr) -> None:
    import cv2

    frame = cv2.cvtColor(street_frames_bgr[1], cv2.COLOR_BGR2RGB)
    assert harness.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert harness.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert harness.state() == State.PRIMARY_STATE_INACTIVE
    assert harness.wait(lambda: harness.peer.count_publishers('segmentation/mask') == 1)

    # Inactive: the lifecycle publishers exist but nothing is processed or published.
    harness.send(frame, 1_000_000_000)
    time.sleep(1.0)
    assert harness.masks == []

    assert harness.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert harness.wait(lambda: harness.node.count_subscribers('image') >= 0 and
                        harness.peer.count_subscribers('image') == 1)
    for attempt in range(40):
        harness.send(frame, 2_000_000_000 + attempt)
        if harness.wait(lambda: len(harness.masks) > 0, timeout=0.5):
            break
    assert harness.masks, 'no mask published while active'
    mask_msg = harness.masks[-1]
    assert (mask_msg.width, mask_msg.height, mask_msg.encoding) == (960, 540, 'mono8')
    assert mask_msg.header.frame_id == 'front_camera'
    assert mask_msg.header.stamp.sec == 2
    mask = np.frombuffer(mask_msg.data, np.uint8).reshape(540, 960)
    assert set(np.unique(mask)) <= set(range(19)) | {255}
    # The road is in front of the car: the bottom-centre is mostly class 0.
    assert (mask[450:, 300:660] == 0).mean() > 0.5
    assert harness.wait(lambda: harness.overlays and harness.summaries)
    overlay = harness.overlays[-1]
    assert (overlay.width, overlay.height, overlay.encoding) == (960, 540, 'rgb8')
    summary = harness.summaries[-1]
    assert sum(summary.class_pixel_counts) + summary.unlabeled_pixel_count == 960 * 540

    assert harness.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    time.sleep(0.3)
    count = len(harness.masks)
    harness.send(frame, 3_000_000_000)
    time.sleep(1.0)
    assert len(harness.masks) == count, 'published while inactive'

    assert harness.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert harness.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert harness.wait(lambda: harness.peer.count_publishers('segmentation/mask') == 0)
    assert harness.node._backend is None and harness.node._pipeline is None


def test_failed_configure_is_fixable_without_restart(harness, deeplab_model) -> None:
    harness.node.set_parameters([Parameter('model_path', value='/nonexistent/model.onnx')])
    assert harness.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert harness.state() == State.PRIMARY_STATE_UNCONFIGURED
    harness.node.set_parameters([Parameter('model_path', value=str(deeplab_model))])
    assert harness.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert harness.state() == State.PRIMARY_STATE_INACTIVE


def test_out_of_range_parameter_rejected_with_reason(harness) -> None:
    (result,) = harness.node.set_parameters([Parameter('overlay_alpha', value=1.5)])
    assert not result.successful and 'overlay_alpha' in result.reason
    (result,) = harness.node.set_parameters([Parameter('resize_policy', value='crop')])
    assert not result.successful and 'stretch' in result.reason
    (result,) = harness.node.set_parameters([Parameter('overlay_alpha', value=0.25)])
    assert result.successful


def test_bad_override_falls_back_to_default(rclpy_context, deeplab_model) -> None:
    node = SegformerNode(context=rclpy_context, parameter_overrides=deeplab_overrides(
        deeplab_model, overlay_alpha=7.0))
    try:
        assert node.get_parameter('overlay_alpha').value == 0.5
    finally:
        node.destroy_node()


def test_camera_info_follows_the_mask(rclpy_context, deeplab_model, street_frames_bgr) -> None:
    import cv2
    from sensor_msgs.msg import CameraInfo

    overrides = deeplab_overrides(deeplab_model, camera_info_topics=['camera_info'],
                                  output_resolution='model')
    h = _Harness(rclpy_context, overrides)
    try:
        infos: List[CameraInfo] = []
        h.peer.create_subscription(CameraInfo, 'segmentation/camera_info', infos.append, 10)
        info_pub = h.peer.create_publisher(CameraInfo, 'camera_info', qos_profile_sensor_data)
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        frame = cv2.cvtColor(street_frames_bgr[0], cv2.COLOR_BGR2RGB)
        info = CameraInfo(width=960, height=540, distortion_model='plumb_bob')
        info.k = [800.0, 0.0, 479.5, 0.0, 800.0, 269.5, 0.0, 0.0, 1.0]
        info.p = [800.0, 0.0, 479.5, 0.0, 0.0, 800.0, 269.5, 0.0, 0.0, 0.0, 1.0, 0.0]
        for attempt in range(40):
            info_pub.publish(info)
            h.send(frame, 5_000_000_000 + attempt)
            if h.wait(lambda: len(infos) > 0, timeout=0.5):
                break
        assert infos, 'no camera_info republished'
        out = infos[-1]
        mask = next(m for m in h.masks if m.header.stamp == out.header.stamp)
        # Model resolution (stretch to 513x513): intrinsics scaled per axis.
        assert (out.width, out.height) == (mask.width, mask.height) == (513, 513)
        assert out.header.frame_id == 'front_camera'
        assert abs(out.k[0] - 800.0 * 513 / 960) < 1e-9
        assert abs(out.k[4] - 800.0 * 513 / 540) < 1e-9
        assert abs(out.k[2] - ((479.5 + 0.5) * 513 / 960 - 0.5)) < 1e-9
    finally:
        h.close()


def test_services_and_diagnostics_answer_during_a_long_configure(rclpy_context,
                                                                 deeplab_model) -> None:
    """A slow configure (the bundled model's load + 25 warm-up runs on a CPU) blocks nothing."""
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.srv import GetState

    # The bundled DeepLab takes ~50-200 ms per run here: 25 warm-up runs make a configure of
    # seconds, like a big model's load, in every clone (no ../shared model needed).
    h = _Harness(rclpy_context, deeplab_overrides(deeplab_model, warmup_iterations=25,
                                                  diagnostics_period=0.2))
    try:
        diagnostics: List[Any] = []
        h.peer.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
        client = h.peer.create_client(GetState, 'segformer/get_state')
        assert client.wait_for_service(timeout_sec=10.0)
        # First contact until a reply arrives: right after discovery rmw_fastrtps may drop a
        # reply whose reader has not matched yet, which says nothing about configure.
        for _ in range(5):
            first = client.call_async(GetState.Request())
            if h.wait(first.done, timeout=3.0):
                break
            client.remove_pending_request(first)
        result: List[Any] = []
        worker = threading.Thread(target=lambda: result.append(h.node.trigger_configure()))
        worker.start()
        labels, round_trips = [], []
        while worker.is_alive():
            t0 = time.monotonic()
            future = client.call_async(GetState.Request())
            assert h.wait(future.done, timeout=5.0), 'get_state blocked by configure'
            round_trips.append(time.monotonic() - t0)
            labels.append(future.result().current_state.label)
            time.sleep(0.1)
        worker.join()
        assert result == [TransitionCallbackReturn.SUCCESS]
        assert 'configuring' in labels, labels
        assert max(round_trips) < 1.0, round_trips
        messages = [s.message for d in diagnostics for s in d.status]
        assert any(m.startswith('configuring') for m in messages), messages
    finally:
        h.close()


# ------------------------------------------------------------ a new user's first hour
def test_float_parameters_take_integer_literals(rclpy_context, deeplab_model, capfd) -> None:
    """`-p batch_window_ms:=7`, `mean: [0, 0, 0]` are integers to ROS; they must work."""
    from segformer_ros.node_parameters import read_all

    node = SegformerNode(context=rclpy_context, parameter_overrides=deeplab_overrides(
        deeplab_model, batch_window_ms=7, overlay_alpha=1, mean=[0, 0, 0], std=[1, 1, 1],
        grid_resolution=1))
    try:
        err = capfd.readouterr().err
        assert 'override rejected' not in err, err
        values = read_all(node)
        assert values['batch_window_ms'] == 7.0 and isinstance(values['batch_window_ms'], float)
        assert values['overlay_alpha'] == 1.0 and values['grid_resolution'] == 1.0
        assert values['mean'] == [0.0, 0.0, 0.0]
        assert all(isinstance(v, float) for v in values['mean'])
        # At run time too (`ros2 param set /segformer overlay_alpha 1`), with the same checks.
        (ok,) = node.set_parameters([Parameter('overlay_alpha', value=0)])
        assert ok.successful, ok.reason
        (bad,) = node.set_parameters([Parameter('overlay_alpha', value=2)])
        assert not bad.successful and 'overlay_alpha must be <= 1.0' in bad.reason
        (bad,) = node.set_parameters([Parameter('overlay_alpha', value='high')])
        assert not bad.successful and 'must be a number' in bad.reason
        (bad,) = node.set_parameters([Parameter('mean', value=['a', 'b', 'c'])])
        assert not bad.successful and 'list of numbers' in bad.reason
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._pipeline.config.preprocess.normalization.mean == (0.0, 0.0, 0.0)
    finally:
        node.shutdown_resources()
        node.destroy_node()


def test_bare_node_runs_a_segformer_with_segformer_settings(rclpy_context, tmp_path,
                                                            capfd) -> None:
    """Only model_path given (what the WARN line and --help suggest): ImageNet mean/std."""
    from segformer_ros.parameters import IMAGENET_MEAN, IMAGENET_STD
    from tiny_models import logits_model

    model = logits_model(tmp_path / 'segformer_like.onnx', dynamic=True)
    node = SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(model)), Parameter('warmup_iterations', value=0)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        norm = node._pipeline.config.preprocess.normalization
        assert (norm.mean, norm.std) == (IMAGENET_MEAN, IMAGENET_STD)
        assert node._pipeline.input_hw == (1024, 1024)   # dynamic dims: segformer.yaml's
        assert 'bundled demo model' not in capfd.readouterr().err
    finally:
        node.shutdown_resources()
        node.destroy_node()


def test_model_metadata_refuses_a_wrong_normalization(rclpy_context, tmp_path, capfd) -> None:
    """An export of ours says its mean/std; configure refuses others, and the fix works."""
    import onnx

    from segformer_ros.model_metadata import PREPROCESSING_KEY, preprocessing_metadata
    from tiny_models import logits_model

    path = logits_model(tmp_path / 'exported.onnx')
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = PREPROCESSING_KEY, preprocessing_metadata([127.5] * 3, [127.5] * 3)
    onnx.save(model, str(path))
    node = SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(path)), Parameter('warmup_iterations', value=0)])
    try:
        capfd.readouterr()
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        err = capfd.readouterr().err
        line = [x for x in err.splitlines() if 'configure failed' in x][0]
        assert 'was exported for mean [127.5, 127.5, 127.5]' in line, line
        node.set_parameters([Parameter('mean', value=[127.5] * 3),
                             Parameter('std', value=[127.5] * 3)])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        node.shutdown_resources()
        node.destroy_node()


def test_transitions_and_late_parameters_say_what_happened(harness, capfd) -> None:
    """Deactivate and cleanup log a line, and so does a late configure-time parameter.

    A configure-time parameter set while configured says it waits for the next configure;
    a class-id model advertises no confidence topic and says so once.
    """
    assert harness.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert harness.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    err = capfd.readouterr().err
    notes = [x for x in err.splitlines() if 'segmentation/confidence is not advertised' in x]
    assert len(notes) == 1 and 'class ids' in notes[0], err
    assert harness.peer.count_publishers('segmentation/confidence') == 0
    assert harness.peer.count_publishers('segmentation/mask') == 1

    (result,) = harness.node.set_parameters([Parameter('model_path', value='/other.onnx')])
    assert result.successful
    (result,) = harness.node.set_parameters([Parameter('overlay_alpha', value=0.3)])
    assert result.successful
    err = capfd.readouterr().err
    late = [x for x in err.splitlines() if 'applies at the next configure' in x]
    assert len(late) == 1, err   # overlay_alpha applies at once: no such line for it
    assert 'model_path set while active' in late[0]
    assert 'deactivate, cleanup, configure, activate' in late[0]

    assert harness.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    err = capfd.readouterr().err
    assert [x for x in err.splitlines() if 'deactivated: stopped segmenting /image' in x], err
    assert harness.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    err = capfd.readouterr().err
    assert [x for x in err.splitlines() if 'cleaned up: released the model' in x], err
    # Unconfigured: the next configure reads it anyway, nothing to say.
    harness.node.set_parameters([Parameter('model_path', value='/third.onnx')])
    assert 'applies at the next configure' not in capfd.readouterr().err
    # Configured again: the confidence note is not repeated.
    harness.node.set_parameters([Parameter('model_path', value=harness.model)])
    assert harness.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert 'is not advertised' not in capfd.readouterr().err


def test_unknown_parameter_names_the_closest_ones(rclpy_context, deeplab_model, capfd) -> None:
    overrides = deeplab_overrides(deeplab_model) + [
        Parameter('drivable_clases', value=['road'])]
    node = SegformerNode(context=rclpy_context, parameter_overrides=overrides)
    try:
        lines = [x for x in capfd.readouterr().err.splitlines() if 'drivable_clases' in x]
        assert len(lines) == 1, lines
        assert "unknown parameter 'drivable_clases' (ignored); did you mean drivable_classes?" \
            in lines[0]
        assert len(lines[0]) < 200 and 'model_path' not in lines[0], lines[0]
    finally:
        node.destroy_node()
