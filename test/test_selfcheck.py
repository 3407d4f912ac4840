"""segformer-ros-selfcheck end to end: the DeepLab model in both slots, pass and fail."""

import json

import pytest

from segformer_ros.tools import selfcheck

# The bundled demo model and clip: in every clone, so these tests never skip.
from shared_assets import BUNDLED_MODEL as MODEL, BUNDLED_VIDEO as VIDEO  # noqa: E402


def _args(*extra):
    return ['--params', 'deeplab_mobilenet_cityscapes', '--model', str(MODEL),
            '--video', str(VIDEO), '--frames', '3', '--backend-a', 'onnxruntime',
            '--num-threads-a', '1', '--backend-b', 'onnxruntime', '--num-threads-b', '2',
            '--warmup', '0', '--quiet'] + list(extra)


def test_same_model_two_thread_counts_agree(tmp_path, capsys):
    out = tmp_path / 'selfcheck.json'
    assert selfcheck.main(_args('--json', str(out))) == 0
    text = capsys.readouterr().out
    assert 'pixel agreement 100.000 %' in text and 'PASS' in text
    report = json.loads(out.read_text())
    agreement = report['agreement']
    assert agreement['frames'] == 3
    assert agreement['pixel_agreement'] == 1.0 and agreement['min_frame_agreement'] == 1.0
    present = [v for v in agreement['per_class_iou'].values() if v is not None]
    assert present and all(v == 1.0 for v in present)
    assert agreement['logit_max_abs_diff'] is None  # the model outputs class ids
    assert report['passed'] is True
    assert 'threads=1' in report['a']['backend'] and 'threads=2' in report['b']['backend']
    for slot in ('a', 'b'):
        assert report[slot]['stage_ms_median']['inference'] > 0


def test_impossible_threshold_fails(capsys):
    assert selfcheck.main(_args('--min-agreement', '1.01')) == 1
    assert 'FAIL' in capsys.readouterr().out


def test_one_source_only(capsys):
    assert selfcheck.main(['--model', 'm.onnx', '--topic', '/camera/image',
                           '--video', 'x.mp4']) == 2
    assert 'exactly one of --video, --images or --topic' in capsys.readouterr().err


def test_without_a_model_uses_the_bundled_one_as_the_node_does(capsys):
    args = ['--video', str(VIDEO), '--frames', '1', '--backend-a', 'onnxruntime',
            '--num-threads-a', '1', '--backend-b', 'onnxruntime', '--num-threads-b', '2',
            '--warmup', '0', '--quiet']
    assert selfcheck.main(args) == 0
    captured = capsys.readouterr()
    assert 'running the bundled demo model' in captured.err
    assert MODEL.name in captured.out and 'PASS' in captured.out


def test_the_same_backend_twice_is_refused_unless_asked(capsys):
    # The defaults (auto vs onnxruntime) on a machine without TensorRT: one backend twice.
    base = ['--params', 'deeplab_mobilenet_cityscapes', '--model', str(MODEL),
            '--video', str(VIDEO), '--frames', '1', '--warmup', '0', '--quiet']
    from segformer_ros.backends.factory import tensorrt_status
    if tensorrt_status()[0]:
        base += ['--backend-a', 'onnxruntime']   # make them the same where TensorRT exists
    assert selfcheck.main(base) == 2
    err = capsys.readouterr().err
    assert 'A and B are the same (onnxruntime' in err and '--allow-same' in err, err
    assert selfcheck.main(base + ['--allow-same']) == 0
    out = capsys.readouterr().out
    verdict = [line for line in out.splitlines() if 'pixel agreement' in line][0]
    assert verdict.startswith('A onnxruntime') and ' vs B onnxruntime' in verdict, verdict
    assert 'the same backend and model: a determinism check' in verdict and 'PASS' in verdict


def test_verdict_names_both_backends(capsys):
    assert selfcheck.main(_args()) == 0
    verdict = [line for line in capsys.readouterr().out.splitlines()
               if 'pixel agreement' in line][0]
    assert 'threads=1' in verdict and 'threads=2' in verdict and ' vs B ' in verdict, verdict
    assert 'determinism' not in verdict


@pytest.mark.ros
def test_selfcheck_on_a_live_topic(tmp_path, deeplab_model, street_frames_bgr, ros_domain,
                                   monkeypatch) -> None:
    """Frames from a live topic (published by a thread here) go through both backends."""
    import threading

    import rclpy
    from rclpy.context import Context
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    monkeypatch.setenv('ROS_DOMAIN_ID', str(ros_domain))
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain)
    node = rclpy.create_node('selfcheck_camera', context=context)
    publisher = node.create_publisher(Image, '/robot/camera/image_raw', qos_profile_sensor_data)
    stop = threading.Event()

    def publish() -> None:
        frame = street_frames_bgr[0]
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                    step=frame.shape[1] * 3)
        msg.data = frame.tobytes()
        while not stop.is_set():
            publisher.publish(msg)
            stop.wait(0.1)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    report_path = tmp_path / 'report.json'
    try:
        code = selfcheck.main(['--model', str(deeplab_model), '--params',
                               'deeplab_mobilenet_cityscapes', '--topic',
                               '/robot/camera/image_raw', '--frames', '2', '--quiet',
                               '--allow-same',
                               '--json', str(report_path)])
    finally:
        stop.set()
        thread.join()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report['agreement']['frames'] == 2
    assert report['agreement']['pixel_agreement'] == 1.0
