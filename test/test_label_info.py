"""segmentation/label_info: vision_msgs/LabelInfo (real type names and hashes), JSON fallback."""

import json
import time

import pytest

from tiny_models import logits_model

# RIHS01 type hashes of ros-perception/vision_msgs (ros2 branch), as rosidl_generator_c
# writes them into a real build's label_info__description.c / vision_class__description.c.
REAL_LABEL_INFO_HASH = 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783'
REAL_VISION_CLASS_HASH = 'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a'


def _vision_msgs():
    return pytest.importorskip('vision_msgs.msg',
                               reason='vision_msgs fixture not built (run make setup)')


def test_fixture_type_hashes_equal_the_real_vision_msgs():
    """The test-only vision_msgs builds the same types a real install has (Kilted hashes)."""
    _vision_msgs()
    from ament_index_python.packages import get_package_share_directory

    share = get_package_share_directory('vision_msgs')
    hashes = {}
    for name in ('LabelInfo', 'VisionClass'):
        with open(f'{share}/msg/{name}.json') as f:
            for entry in json.load(f)['type_hashes']:
                hashes[entry['type_name']] = entry['hash_string']
    assert hashes['vision_msgs/msg/LabelInfo'] == REAL_LABEL_INFO_HASH
    assert hashes['vision_msgs/msg/VisionClass'] == REAL_VISION_CLASS_HASH


def test_label_info_message_fields():
    _vision_msgs()
    from std_msgs.msg import Header

    from segformer_ros.label_info_msg import label_info_message

    header = Header(frame_id='cam')
    header.stamp.sec = 3
    msg = label_info_message(['road', 'sidewalk', 'car'], header)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, 'road'), (1, 'sidewalk'), (2, 'car')]
    assert msg.threshold == 0.0 and msg.header.frame_id == 'cam' and msg.header.stamp.sec == 3


@pytest.mark.ros
def test_json_fallback_on_its_own_topic_when_vision_msgs_is_missing(
        tmp_path, rclpy_context, monkeypatch, capfd) -> None:
    """No vision_msgs: JSON on label_info_json, nothing on label_info, one log line."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    import segformer_ros.node as node_module
    from segformer_ros.tools.spin import BackgroundSpin

    monkeypatch.setattr(node_module, 'label_info_type', lambda: None)
    node = node_module.SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(logits_model(tmp_path / 'tiny.onnx'))),
        Parameter('warmup_iterations', value=0)])
    peer = rclpy.create_node('label_info_peer', context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=3, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(peer)
    spin = BackgroundSpin(executor)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        labels = []
        peer.create_subscription(String, 'segmentation/label_info_json', labels.append,
                                 QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        deadline = time.monotonic() + 15.0
        while not labels and time.monotonic() < deadline:
            time.sleep(0.1)
        assert labels, 'no JSON label set for a late subscriber'
        info = json.loads(labels[0].data)
        assert info['class_map']['0'] == 'road' and len(info['class_map']) == 19
        assert info['unlabeled_id'] == 255 and info['drivable_class_ids'] == [0]
        # Nothing of another type on the name a LabelInfo subscriber uses.
        assert peer.count_publishers('/segmentation/label_info') == 0
        err = capfd.readouterr().err
        hints = [line for line in err.splitlines() if 'vision_msgs is not importable' in line]
        assert len(hints) == 1 and 'ros-$ROS_DISTRO-vision-msgs' in hints[0], err
    finally:
        node.shutdown_resources()
        spin.stop()
        node.destroy_node()
        peer.destroy_node()


@pytest.mark.ros
def test_match_camera_info_with_several_cameras_fails_configure(
        tmp_path, rclpy_context, capfd) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from segformer_ros.node import SegformerNode

    node = SegformerNode(context=rclpy_context, parameter_overrides=[
        Parameter('model_path', value=str(logits_model(tmp_path / 'tiny.onnx'))),
        Parameter('cameras', value=['front', 'rear']),
        Parameter('match_camera_info', value='/depth/camera_info')])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        err = capfd.readouterr().err
        assert 'match_camera_info sizes one camera' in err and '2 cameras' in err
        node.set_parameters([Parameter('output_resolution', value='not-a-size')])
        assert node.get_parameter('output_resolution').value == 'input'  # refused
    finally:
        node.destroy_node()
