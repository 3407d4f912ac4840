"""The frame reader's public-API fallback, with real rclpy and Fast DDS on loopback.

When the rclpy internals of the fast reader are missing or changed (rclpy_internals.py),
or $SEGFORMER_ROS_FRAME_READER=public forces it, the node takes camera frames through
ordinary subscription callbacks into keep-latest slots (frame_reader_public.py). Here: the
fallback reader's counters, and the node segmenting real DeepLab frames on it, in this
process (forced by the variable; or with the internals "missing") and as node_main runs it
(frame-path executor), with the WARN logged once per node.
"""

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402

from segformer_ros import rclpy_internals  # noqa: E402
from segformer_ros.frame_reader_public import (CallbackFrameReader,  # noqa: E402
                                               message_info_supported)
from segformer_ros.rclpy_internals import FRAME_READER_ENV  # noqa: E402
from ros_helpers import (InProcessNode, NodeClient, deeplab_overrides, image_msg,  # noqa: E402
                         mask_array, plain_onnx_mask, ros_context, start_preset_node,
                         wait_until)

pytestmark = pytest.mark.ros

WARNING = 'frame reader: using the public-API fallback on rclpy'


def _spin_until(executor: Any, predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return bool(predicate())


def test_callback_reader_counts_replaced_and_never_delivered_frames(rclpy_context) -> None:
    if not message_info_supported():
        pytest.skip('this rclpy passes no MessageInfo to callbacks (Humble): no sequence gaps')
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Header

    from segformer_ros.executors import FramePathCallbackGroup
    from segformer_ros.node import SENSOR_QOS

    node = rclpy.create_node('fallback_reader_probe', context=rclpy_context)
    reader = CallbackFrameReader(1, depth=1)
    sub = node.create_subscription(Header, 'frames', reader.callback(0), SENSOR_QOS,
                                   callback_group=FramePathCallbackGroup())
    pub = node.create_publisher(Header, 'frames', 10)
    executor = SingleThreadedExecutor(context=rclpy_context)   # spun here, step by step
    executor.add_node(node)
    try:
        assert wait_until(lambda: pub.get_subscription_count() >= 1, 10.0)
        assert sub.get_publisher_count() == 1
        pub.publish(Header(frame_id='first'))
        assert _spin_until(executor, lambda: reader._slots.pending(0) == 1)
        assert [m.frame_id for _, m in reader.take_batch(0.0, timeout_s=1.0)] == ['first']
        # Five frames while no executor spins: the DDS reader (depth 1) keeps the last; the
        # four it replaced never reach the callback: counted from the sequence numbers.
        for i in range(5):
            pub.publish(Header(frame_id=str(i)))
        time.sleep(0.3)
        assert _spin_until(executor, lambda: reader._slots.pending(0) == 1)
        assert [m.frame_id for _, m in reader.take_batch(0.0, timeout_s=1.0)] == ['4']
        assert reader.drop_counts() == {0: 4} and reader.frames_seen() == 6
        # Two frames delivered while the worker is busy: the slot keeps the newer.
        for frame_id in ('x', 'y'):
            pub.publish(Header(frame_id=frame_id))
            assert _spin_until(executor, lambda f=frame_id: reader._slots._items[0]
                               and reader._slots._items[0][-1][1].frame_id == f)
        assert [m.frame_id for _, m in reader.take_batch(0.0, timeout_s=1.0)] == ['y']
        assert reader.drop_counts() == {0: 5} and reader.frames_seen() == 8
        counters = reader.input_counters()[0]
        assert counters == {'taken': 3, 'skipped': 5, 'lost_while_idle': 0, 'wait_misses': 0}
        # A worker waiting on an empty slot: a gap now is counted as lost while idle.
        got = []
        worker = threading.Thread(target=lambda: got.append(reader.take_batch(0.0, 5.0)))
        worker.start()
        assert wait_until(lambda: reader._waiting == 1, 5.0)
        for i in range(3):
            pub.publish(Header(frame_id=f'z{i}'))
        time.sleep(0.3)
        assert _spin_until(executor, lambda: bool(got))
        worker.join(5.0)
        assert [m.frame_id for _, m in got[0]] == ['z2']
        assert reader.input_counters()[0]['lost_while_idle'] == 2
        reader.close()
        assert reader.take_batch(0.0, timeout_s=1.0) == [] and reader.closed
    finally:
        executor.shutdown()
        node.destroy_node()


def _frame(stamp: int, hw=(120, 160)) -> np.ndarray:
    return np.random.default_rng(stamp).integers(0, 255, (*hw, 3), dtype=np.uint8)


def _segments_one_frame(client: NodeClient, model: Path, stamp: int) -> None:
    """Send a frame until its mask arrives; the mask agrees with a plain ONNX Runtime run."""
    rgb = _frame(stamp)
    assert client.wait_for_camera_match(), 'the node never subscribed to /image'
    mask = client.send_until_mask(lambda: image_msg(rgb, 'rgb8', stamp), stamp, timeout=60.0)
    assert mask is not None, f'no mask for frame {stamp} on the fallback reader'
    assert (mask_array(mask) == plain_onnx_mask(model, rgb)).mean() >= 0.99


@pytest.fixture
def in_process(rclpy_context, deeplab_model) -> Iterator[InProcessNode]:
    node = InProcessNode(rclpy_context, deeplab_overrides(deeplab_model))
    try:
        yield node
    finally:
        node.close()


def _cycle(running: InProcessNode, model: Path, stamp: int) -> None:
    """Configure, activate, segment a frame on the fallback, deactivate, clean up."""
    node = running.node
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert isinstance(node._slots, CallbackFrameReader)
    _segments_one_frame(running.client, model, stamp)
    counters = node._slots.input_counters()[0]
    assert counters['taken'] >= 1 and counters['wait_misses'] == 0
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


def test_forced_fallback_segments_frames_and_warns_once(in_process, deeplab_model, monkeypatch,
                                                        capfd) -> None:
    monkeypatch.setenv(FRAME_READER_ENV, 'public')
    for stamp in (1_000_000_001, 2_000_000_002):     # two configure/activate cycles
        _cycle(in_process, deeplab_model, stamp)
    err = capfd.readouterr().err
    assert err.count(WARNING) == 1, err[-3000:]
    line = next(line for line in err.splitlines() if WARNING in line)
    assert f'rclpy {rclpy_internals.rclpy_version()} (forced by {FRAME_READER_ENV}=public)' \
        in line and '[WARN]' in line, line
    assert err.count('frame reader: executor callbacks (fallback)') == 2, err[-3000:]


def test_missing_internals_fall_back_and_say_which(in_process, deeplab_model, monkeypatch,
                                                   capfd) -> None:
    monkeypatch.delenv(FRAME_READER_ENV, raising=False)
    # As on an rclpy without rclpy.impl.implementation_singleton (after the node was built).
    monkeypatch.setattr(rclpy_internals, '_rclpy', None)
    monkeypatch.setattr(rclpy_internals, '_IMPORT_PROBLEM', 'rclpy.impl.implementation_'
                        'singleton.rclpy_implementation cannot be imported (test)')
    _cycle(in_process, deeplab_model, 3_000_000_003)
    err = capfd.readouterr().err
    assert err.count(WARNING) == 1, err[-3000:]
    assert 'rclpy_implementation cannot be imported (test)' in err


def test_node_main_on_the_fallback_segments_frames(tmp_path, ros_domain, deeplab_model,
                                                   monkeypatch) -> None:
    """node_main's split executors: the frame-path executor runs the camera callbacks."""
    monkeypatch.setenv(FRAME_READER_ENV, 'public')   # the child inherits it (loopback_env)
    proc = start_preset_node(tmp_path, ros_domain, deeplab_model)
    try:
        with ros_context(ros_domain) as context, NodeClient(context) as client:
            for cycle, stamp in enumerate((4_000_000_004, 5_000_000_005)):
                assert client.transition(Transition.TRANSITION_CONFIGURE), proc.log()[-3000:]
                assert client.transition(Transition.TRANSITION_ACTIVATE), proc.log()[-3000:]
                _segments_one_frame(client, deeplab_model, stamp)
                assert client.transition(Transition.TRANSITION_DEACTIVATE)
                assert client.transition(Transition.TRANSITION_CLEANUP)
    finally:
        code = proc.stop(timeout_s=20.0)
    log = proc.log_path.read_text(errors='replace')
    assert code == 0, log[-3000:]
    assert log.count(WARNING) == 1, log[-3000:]
    assert log.count('frame reader: executor callbacks (fallback)') == 2, log[-3000:]
    assert 'Traceback' not in log, log[-3000:]


def test_by_default_the_node_pulls_from_the_dds_readers(in_process, deeplab_model,
                                                        monkeypatch, capfd) -> None:
    """Where the check passes (this rclpy), the fast reader is used and nothing is warned."""
    from segformer_ros.frame_reader import FrameReader

    monkeypatch.delenv(FRAME_READER_ENV, raising=False)
    node = in_process.node
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert isinstance(node._slots, FrameReader)
    _segments_one_frame(in_process.client, deeplab_model, 6_000_000_006)
    err = capfd.readouterr().err
    assert WARNING not in err and 'frame reader: DDS readers pulled by the worker' in err
