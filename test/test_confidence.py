"""Confidence (max softmax probability) and the latched label_info: math, pipeline, node."""

import math
import time

import numpy as np
import pytest

from segformer_ros.config import PipelineConfig, PostprocessConfig
from segformer_ros.geometry import compute_geometry
from segformer_ros.postprocessing import confidence_from_logits

from tiny_models import logits_model


def test_confidence_is_max_softmax_probability() -> None:
    logits = np.zeros((3, 2, 2), np.float32)
    logits[1, 0, 0] = math.log(2.0)          # p = 2 / 4
    logits[2, 1, 1] = 50.0                    # p ~ 1
    geometry = compute_geometry(2, 2, 2, 2)
    conf = confidence_from_logits(logits, geometry, PostprocessConfig())
    assert conf.dtype == np.uint8 and conf.shape == (2, 2)
    assert conf[0, 0] == round(255 * 0.5)
    assert conf[0, 1] == round(255 / 3)      # uniform over 3 classes
    assert conf[1, 1] == 255


def test_confidence_non_finite_and_upsampled() -> None:
    logits = np.zeros((2, 2, 2), np.float32)
    logits[:, 0, 0] = np.nan
    logits[0, 1, 1] = np.inf
    geometry = compute_geometry(8, 8, 8, 8)   # 2x2 logits cover an 8x8 input
    conf = confidence_from_logits(logits, geometry, PostprocessConfig())
    assert conf.shape == (8, 8)
    assert (conf[:4, :4] == 0).all()          # all logits NaN: no confidence
    assert (conf[4:, 4:] == 255).all()        # +inf wins outright
    assert (conf[:4, 4:] == 128).all()        # two equal logits: p = 0.5


def test_pipeline_confidence_only_for_logits_and_when_asked(tmp_path, street_frames_bgr) -> None:
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.pipeline import SegmentationPipeline

    backend = OnnxRuntimeBackend(str(logits_model(tmp_path / 'tiny.onnx')))
    backend.configure()
    pipeline = SegmentationPipeline(backend, PipelineConfig())
    frame = street_frames_bgr[0]
    plain = pipeline.process(frame, 'bgr')
    assert plain.confidence is None
    result = pipeline.process(frame, 'bgr', want_confidence=True)
    assert result.confidence.shape == result.mask.shape == frame.shape[:2]
    # The winning class's probability is at least uniform (1/19) everywhere.
    assert result.confidence.min() >= math.floor(255 / 19)
    backend.release()


@pytest.mark.ros
def test_node_publishes_confidence_and_latched_label_info(tmp_path, rclpy_context,
                                                          street_frames_bgr) -> None:
    pytest.importorskip('segformer_ros.msg', reason='generated messages missing')
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    LabelInfo = pytest.importorskip(
        'vision_msgs.msg', reason='vision_msgs fixture not built (make setup)').LabelInfo

    from segformer_ros.node import SegformerNode
    from segformer_ros.tools.spin import BackgroundSpin

    model = logits_model(tmp_path / 'tiny.onnx')
    node = SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(model)), Parameter('warmup_iterations', value=0),
        Parameter('drivable_classes', value=['road', 'sidewalk'])])
    peer = rclpy.create_node('confidence_peer', context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=3, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(peer)
    spin = BackgroundSpin(executor)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        # A late joiner still gets the label set (transient local).
        labels = []
        peer.create_subscription(LabelInfo, 'segmentation/label_info', labels.append,
                                 QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        confidences, masks = [], []
        peer.create_subscription(Image, 'segmentation/confidence', confidences.append, 10)
        peer.create_subscription(Image, 'segmentation/mask', masks.append, 10)
        camera = peer.create_publisher(Image, 'image', qos_profile_sensor_data)
        frame = street_frames_bgr[2]
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                    step=frame.shape[1] * 3)
        msg.header.frame_id = 'cam'
        msg.header.stamp.sec = 7
        msg.data = frame.tobytes()
        deadline = time.monotonic() + 20.0
        while not (confidences and labels) and time.monotonic() < deadline:
            camera.publish(msg)
            time.sleep(0.3)
        assert labels, 'no label_info for a late subscriber'
        info = labels[0]
        assert [c.class_id for c in info.class_map] == list(range(19))
        assert info.class_map[0].class_name == 'road' and info.threshold == 0.0
        # Sent with the first frame's header: the camera's frame_id.
        assert info.header.frame_id == 'cam' and info.header.stamp.sec == 7
        assert confidences, 'no confidence image'
        conf = confidences[-1]
        assert (conf.encoding, conf.width, conf.height) == ('mono8', 960, 540)
        assert conf.header.frame_id == 'cam' and conf.header.stamp.sec == 7
        values = np.frombuffer(conf.data, np.uint8)
        assert values.min() >= 13 and values.max() <= 255
    finally:
        node.shutdown_resources()
        spin.stop()
        node.destroy_node()
        peer.destroy_node()
