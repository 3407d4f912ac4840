"""segformer-ros-selfcheck end to end: the DeepLab model in both slots, pass and fail."""

import json
from pathlib import Path

import pytest

from segformer_ros.tools import selfcheck

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
MODEL = SHARED / 'models' / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
VIDEO = SHARED / 'data' / 'solidWhiteRight.mp4'
needs_shared = pytest.mark.skipif(not (MODEL.is_file() and VIDEO.is_file()),
                                  reason='shared DeepLab model / video not present')


def _args(*extra):
    return ['--params', 'deeplab_mobilenet_cityscapes', '--model', str(MODEL),
            '--video', str(VIDEO), '--frames', '3', '--backend-a', 'onnxruntime',
            '--num-threads-a', '1', '--backend-b', 'onnxruntime', '--num-threads-b', '2',
            '--warmup', '0', '--quiet'] + list(extra)


@needs_shared
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


@needs_shared
def test_impossible_threshold_fails(capsys):
    assert selfcheck.main(_args('--min-agreement', '1.01')) == 1
    assert 'FAIL' in capsys.readouterr().out


def test_live_topic_is_explained(capsys):
    assert selfcheck.main(['--model', 'm.onnx', '--topic', '/camera/image']) == 2
    assert 'use --video or --images' in capsys.readouterr().err


def test_needs_a_model(tmp_path, capsys):
    assert selfcheck.main(['--images', str(tmp_path)]) == 2
    assert 'no model for A' in capsys.readouterr().err
