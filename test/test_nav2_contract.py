"""Nav2's semantic_segmentation_layer contract, over real DDS, against the node's process.

The subscriber side copies ros-navigation/semantic_segmentation_layer
(src/semantic_segmentation_layer.cpp, onInitialize): per observation source

* ``segmentation_topic``: sensor_msgs/Image, ``rmw_qos_profile_sensor_data``;
* ``confidence_topic``: sensor_msgs/Image, sensor data QoS;
* ``pointcloud_topic``: sensor_msgs/PointCloud2 (organized, the depth camera's size),
  sensor data QoS;
* ``labels_topic``: vision_msgs/LabelInfo, reliable, transient local, KEEP_ALL depth 5;
* mask + confidence + cloud through message_filters ApproximateTime (queue 1000, max
  interval 0.1 s); the callback drops a set whose ``mask.width * mask.height`` differs
  from the cloud's, and every set until a LabelInfo has arrived.

message_filters has no wheel here: :func:`approximate_sets` below pairs the three streams
within the same 0.1 s bound (each message used once), which is all the layer needs from it
for one camera at a steady rate.
"""

import time
from typing import Any, List, Sequence, Tuple

import numpy as np
import pytest

from ros_helpers import error_lines, image_msg, stamp_ns, wait_until
from shared_assets import REPO, espnetv2_model

pytestmark = pytest.mark.ros

DEPTH_W, DEPTH_H = 320, 240          # the depth camera (4:3), unlike the 16:9 colour camera
MAX_INTERVAL_NS = 100_000_000        # setMaxIntervalDuration(0.1 s)


def approximate_sets(masks: Sequence[Any], confidences: Sequence[Any], clouds: Sequence[Any],
                     max_interval_ns: int = MAX_INTERVAL_NS) -> List[Tuple[Any, Any, Any]]:
    """Group (mask, confidence, cloud) whose stamps span at most ``max_interval_ns``."""
    sets = []
    free_conf, free_cloud = list(confidences), list(clouds)
    for mask in sorted(masks, key=stamp_ns):
        t = stamp_ns(mask)
        if not free_conf or not free_cloud:
            break
        conf = min(free_conf, key=lambda m: abs(stamp_ns(m) - t))
        cloud = min(free_cloud, key=lambda m: abs(stamp_ns(m) - t))
        stamps = (t, stamp_ns(conf), stamp_ns(cloud))
        if max(stamps) - min(stamps) <= max_interval_ns:
            sets.append((mask, conf, cloud))
            free_conf.remove(conf)
            free_cloud.remove(cloud)
    return sets


def organized_cloud(width: int, height: int, stamp: int, frame_id: str) -> Any:
    """Build a synthetic organized xyz cloud of the depth camera's size (a wall at 2 m)."""
    from sensor_msgs.msg import PointCloud2, PointField

    msg = PointCloud2()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
    msg.height, msg.width = height, width
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate('xyz')]
    msg.is_bigendian, msg.point_step, msg.row_step = False, 12, 12 * width
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xyz = np.stack([(u - width / 2) / 300 * 2, (v - height / 2) / 300 * 2,
                    np.full_like(u, 2.0)], axis=-1)
    msg.data = xyz.astype(np.float32).tobytes()
    msg.is_dense = True
    return msg


def camera_info(width: int, height: int, stamp: int, frame_id: str, fx: float) -> Any:
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
    msg.width, msg.height = width, height
    cx, cy = width / 2 - 0.5, height / 2 - 0.5
    msg.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def test_semantic_segmentation_layer_contract(tmp_path, ros_domain, rclpy_context,
                                              street_frames_bgr) -> None:
    LabelInfo = pytest.importorskip(
        'vision_msgs.msg', reason='vision_msgs fixture not built (make setup)').LabelInfo
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                           qos_profile_sensor_data)
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from benchmarks.processes import RosProcess, loopback_env, node_command, params_file
    from segformer_ros.tools.spin import BackgroundSpin

    model = espnetv2_model()
    overrides = params_file({'model_path': str(model), 'warmup_iterations': 0,
                             'autostart': True, 'num_threads': 2,
                             'camera_info_topics': ['/camera/camera_info'],
                             'match_camera_info': '/depth/camera_info'}, str(tmp_path))
    node = RosProcess(node_command([str(REPO / 'config' / 'espnetv2_cityscapes.yaml'),
                                    overrides], {'image': '/camera/image'}),
                      loopback_env(ros_domain), tmp_path / 'node.log')
    layer = rclpy.create_node('semantic_segmentation_layer_contract', context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(layer)
    spin = BackgroundSpin(executor)
    received = {'mask': [], 'confidence': [], 'cloud': [], 'info': [], 'labels': []}
    try:
        sensor = qos_profile_sensor_data      # rmw_qos_profile_sensor_data
        layer.create_subscription(Image, '/segmentation/mask', received['mask'].append, sensor)
        layer.create_subscription(Image, '/segmentation/confidence',
                                  received['confidence'].append, sensor)
        layer.create_subscription(PointCloud2, '/depth/points', received['cloud'].append,
                                  sensor)
        layer.create_subscription(CameraInfo, '/segmentation/camera_info',
                                  received['info'].append, sensor)
        camera = layer.create_publisher(Image, '/camera/image', sensor)
        camera_info_pub = layer.create_publisher(CameraInfo, '/camera/camera_info', sensor)
        depth_info_pub = layer.create_publisher(CameraInfo, '/depth/camera_info', sensor)
        cloud_pub = layer.create_publisher(PointCloud2, '/depth/points', sensor)
        assert wait_until(lambda: camera.get_subscription_count() >= 1, 60.0), \
            f'node never subscribed to the camera:\n{node.log()}'
        frame = np.ascontiguousarray(street_frames_bgr[1][:, :, ::-1])   # rgb8, 960x540
        stamp = 1_700_000_000 * 10**9
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline:
            stamp += 200_000_000
            camera_info_pub.publish(camera_info(960, 540, stamp, 'camera_color', 700.0))
            depth_info_pub.publish(camera_info(DEPTH_W, DEPTH_H, stamp, 'camera_depth', 250.0))
            camera.publish(image_msg(frame, 'rgb8', stamp, frame_id='camera_color'))
            cloud_pub.publish(organized_cloud(DEPTH_W, DEPTH_H, stamp, 'camera_depth'))
            time.sleep(0.5)
            if len(approximate_sets(received['mask'], received['confidence'],
                                    received['cloud'])) >= 3:
                break
        sets = approximate_sets(received['mask'], received['confidence'], received['cloud'])
        assert len(sets) >= 3, (f'{len(sets)} synchronised sets (masks '
                                f'{len(received["mask"])}, confidences '
                                f'{len(received["confidence"])}):\n{node.log()}')
        for mask, conf, cloud in sets:
            # The layer's callback rejects a set unless the sizes agree; stamps are equal,
            # so exact-time sync (use_approximate_time_sync: false) works as well.
            assert stamp_ns(mask) == stamp_ns(conf) == stamp_ns(cloud)
            assert mask.width * mask.height == cloud.width * cloud.height
            assert (mask.width, mask.height) == (conf.width, conf.height) == (DEPTH_W, DEPTH_H)
            assert mask.encoding == conf.encoding == 'mono8'
            assert len(mask.data) >= mask.width * mask.height
            assert mask.header.frame_id == 'camera_color'
            ids = np.frombuffer(bytes(mask.data), np.uint8)
            assert set(np.unique(ids)) <= set(range(19)) | {255}
        # No mask of another size ever went out (frames wait for the depth CameraInfo).
        assert {(m.width, m.height) for m in received['mask']} == {(DEPTH_W, DEPTH_H)}
        # segmentation/camera_info: the colour intrinsics scaled to the mask, same header.
        infos = {stamp_ns(i): i for i in received['info']}
        matched = [infos[stamp_ns(m)] for m, _, _ in sets if stamp_ns(m) in infos]
        assert matched, 'no segmentation/camera_info with a mask\'s stamp'
        info = matched[-1]
        assert (info.width, info.height) == (DEPTH_W, DEPTH_H)
        assert info.k[0] == pytest.approx(700.0 * DEPTH_W / 960)
        assert info.k[4] == pytest.approx(700.0 * DEPTH_H / 540)

        # labels_topic: a late subscriber with the layer's QoS still gets the label set.
        labels_qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=5,
                                reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        layer.create_subscription(LabelInfo, '/segmentation/label_info',
                                  received['labels'].append, labels_qos)
        assert wait_until(lambda: received['labels'], 20.0), 'no LabelInfo for a late joiner'
        labels = received['labels'][0]
        names = {c.class_name: c.class_id for c in labels.class_map}
        assert names['road'] == 0 and names['sidewalk'] == 1 and names['bicycle'] == 18
        assert len(names) == 19 and 255 not in names.values()
        assert labels.header.frame_id == 'camera_color'
        assert not error_lines(node.log()), node.log()
    finally:
        node.stop()
        spin.stop()
        layer.destroy_node()


def test_approximate_sets_pairs_within_the_interval() -> None:
    """The matcher itself: stamps within 0.1 s pair up, each message once; others do not."""
    from types import SimpleNamespace

    def msg(t_ms: int) -> Any:
        sec, nsec = divmod(t_ms * 10**6, 10**9)
        stamp = SimpleNamespace(sec=sec, nanosec=nsec)
        return SimpleNamespace(header=SimpleNamespace(stamp=stamp))

    masks = [msg(0), msg(1000), msg(2000)]
    confs = [msg(0), msg(1050), msg(2300)]
    clouds = [msg(10), msg(1000), msg(2000)]
    sets = approximate_sets(masks, confs, clouds)
    assert [stamp_ns(m) // 10**6 for m, _, _ in sets] == [0, 1000]
