"""segformer-ros-eval end to end on a tiny Cityscapes-layout tree, and its pairing rules."""

import json

import numpy as np
import pytest

from segformer_ros.labels import CITYSCAPES_LABEL_TO_TRAIN
from segformer_ros.tools import evaluate

cv2 = pytest.importorskip('cv2')
# The bundled demo model and clip: in every clone, so these tests never skip.
from shared_assets import BUNDLED_MODEL as MODEL, BUNDLED_VIDEO as VIDEO  # noqa: E402
TRAIN_TO_LABEL = {t: label for label, t in CITYSCAPES_LABEL_TO_TRAIN.items()}
TRAIN_CLASS = 16  # 'train': never predicted on a highway clip


def _predict(frames):
    from segformer_ros.presets import load_params_file, preset_path
    params = load_params_file(preset_path('deeplab_mobilenet_cityscapes'))
    params['model_path'] = str(MODEL)
    backend, pipeline = evaluate.build_pipeline(params, lambda _m: None, warmup=0)
    try:
        return [pipeline.process(f, 'bgr', want_overlay=False, want_summary=False).mask
                for f in frames]
    finally:
        backend.release()


def test_cityscapes_tree_known_numbers(tmp_path):
    from segformer_ros.frame_sources import iter_frames
    frames = [f for _, f in iter_frames(VIDEO, max_frames=2)]
    masks = _predict(frames)
    root = tmp_path / 'cityscapes'
    img_dir = root / 'leftImg8bit' / 'val' / 'testcity'
    gt_dir = root / 'gtFine' / 'val' / 'testcity'
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    stems = ['testcity_000000_000000', 'testcity_000001_000000']
    for stem, frame in zip(stems, frames):
        assert cv2.imwrite(str(img_dir / f'{stem}_leftImg8bit.png'), frame)  # lossless
    # Frame 0: GT = the model's own prediction (train ids).
    gt0 = masks[0].copy()
    assert cv2.imwrite(str(gt_dir / f'{stems[0]}_gtFine_labelTrainIds.png'), gt0)
    # Frame 1: corrupted, written as labelIds: an ignored block and a block of 'train'.
    gt1 = masks[1].copy()
    gt1[:100, :100] = 255
    assert not (masks[1][400:450, 300:500] == TRAIN_CLASS).any()
    gt1[400:450, 300:500] = TRAIN_CLASS
    label_ids = np.vectorize(lambda t: TRAIN_TO_LABEL.get(int(t), 0))(gt1).astype(np.uint8)
    assert cv2.imwrite(str(gt_dir / f'{stems[1]}_gtFine_labelIds.png'), label_ids)
    out = tmp_path / 'report.json'
    rc = evaluate.main(['--params', 'deeplab_mobilenet_cityscapes', '--model', str(MODEL),
                        '--cityscapes', str(root), '--split', 'val', '--json', str(out),
                        '--warmup', '0', '--quiet'])
    assert rc == 0
    report = json.loads(out.read_text())
    metrics = report['metrics']
    assert report['frames'] == 2 and report['unpaired_images'] == 0
    h, w = masks[0].shape
    assert (h, w) == (540, 960)
    valid = 2 * h * w - 100 * 100
    block = 50 * 200
    assert metrics['valid_pixels'] == valid
    assert metrics['pixel_accuracy'] == pytest.approx(1 - block / valid, abs=1e-12)
    per_class = {c['name']: c for c in metrics['per_class']}
    assert per_class['train']['iou'] == 0.0 and per_class['train']['gt_pixels'] == block
    # Independent expectation of every IoU from the two (GT, prediction) pairs.
    gts = [gt0, gt1]
    for c in range(19):
        tp = fp = fn = 0
        for gt, pred in zip(gts, masks):
            valid_px = gt != 255
            tp += int(((gt == c) & (pred == c) & valid_px).sum())
            fp += int(((gt != c) & (pred == c) & valid_px).sum())
            fn += int(((gt == c) & (pred != c)).sum())
        row = metrics['per_class'][c]
        if tp + fp + fn == 0:
            assert row['iou'] is None
        else:
            assert row['iou'] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
    # Classes the corruption did not touch keep IoU 1.0.
    touched = set(np.unique(masks[1][400:450, 300:500]).tolist()) | {TRAIN_CLASS}
    untouched = [c for c in np.unique(masks[0]).tolist() if c not in touched]
    assert untouched, 'test needs at least one class outside the corrupted block'
    for c in untouched:
        assert metrics['per_class'][c]['iou'] == 1.0
    scored = [c['iou'] for c in metrics['per_class'] if c['iou'] is not None]
    assert metrics['mean_iou'] == pytest.approx(sum(scored) / len(scored))
    present = [c['iou'] for c in metrics['per_class'] if c['present_in_gt']]
    assert metrics['mean_iou_present_in_gt'] == pytest.approx(sum(present) / len(present))
    assert report['backend'].startswith('onnxruntime')
    assert set(report['stage_ms_median']) >= {'preprocess', 'inference', 'postprocess', 'total'}


def test_video_overlays_without_labels(tmp_path, capsys):
    out_dir = tmp_path / 'overlays'
    rc = evaluate.main(['--params', 'deeplab_mobilenet_cityscapes', '--model', str(MODEL),
                        '--video', str(VIDEO), '--max-frames', '2', '--overlays', str(out_dir),
                        '--json', '-', '--warmup', '0', '--quiet'])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report['frames'] == 2 and report['metrics'] is None
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ['frame_000000.png', 'frame_000001.png']
    assert cv2.imread(str(out_dir / files[0])).shape == (540, 960, 3)


def test_video_overlays_keep_the_source_frame_rate(tmp_path, capsys):
    target = tmp_path / 'overlay.mp4'
    rc = evaluate.main(['--params', 'deeplab_mobilenet_cityscapes', '--model', str(MODEL),
                        '--video', str(VIDEO), '--max-frames', '3', '--overlays', str(target),
                        '--json', '-', '--warmup', '0', '--quiet'])
    assert rc == 0
    source, written = cv2.VideoCapture(str(VIDEO)), cv2.VideoCapture(str(target))
    try:
        assert source.get(cv2.CAP_PROP_FPS) == 25.0
        assert written.get(cv2.CAP_PROP_FPS) == source.get(cv2.CAP_PROP_FPS)
        assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    finally:
        source.release()
        written.release()


def test_folder_pairing_rules(tmp_path):
    images = tmp_path / 'images'
    labels = tmp_path / 'labels'
    images.mkdir()
    labels.mkdir()
    px = np.zeros((2, 2, 3), np.uint8)
    for name in ('a.png', 'b_leftImg8bit.png', 'c.jpg', 'd.png'):
        cv2.imwrite(str(images / name), px)
    lbl = np.zeros((2, 2), np.uint8)
    for name in ('a.png', 'b_gtFine_labelIds.png', 'b_gtFine_labelTrainIds.png',
                 'c_mask.png', 'dd.png'):
        cv2.imwrite(str(labels / name), lbl)
    samples, unpaired = evaluate.folder_samples(images, labels)
    got = {img.name: lab.name for img, lab, _fmt in samples}
    assert got == {'a.png': 'a.png', 'b_leftImg8bit.png': 'b_gtFine_labelTrainIds.png',
                   'c.jpg': 'c_mask.png'}
    assert [p.name for p in unpaired] == ['d.png']


def test_read_label_formats(tmp_path):
    ids = np.array([[7, 26], [0, 24]], np.uint8)
    path = tmp_path / 'x_gtFine_labelIds.png'
    cv2.imwrite(str(path), ids)
    assert evaluate.read_label(path, 'auto').tolist() == [[0, 13], [255, 11]]
    assert evaluate.read_label(path, 'trainids').tolist() == ids.tolist()
    colour = tmp_path / 'x_color.png'
    cv2.imwrite(str(colour), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(Exception, match='single-channel'):
        evaluate.read_label(colour, 'auto')


def test_argument_errors(tmp_path, capsys):
    assert evaluate.main(['--model', 'm.onnx']) == 2
    assert 'exactly one of' in capsys.readouterr().err
    # No model: the node's default (the bundled demo model, warned), then the missing video.
    assert evaluate.main(['--video', 'v.mp4', '--quiet']) == 2
    err = capsys.readouterr().err
    assert 'running the bundled demo model' in err and '--model /path/to' in err, err
    assert "frame source 'v.mp4' does not exist" in err and 'no model' not in err, err
    assert evaluate.main(['--model', 'm.onnx', '--cityscapes', str(tmp_path)]) == 2
    assert 'leftImg8bit' in capsys.readouterr().err


def test_stage_times_print_as_text_not_a_dict(capsys) -> None:
    from shared_assets import BUNDLED_VIDEO

    assert evaluate.main(['--video', str(BUNDLED_VIDEO), '--max-frames', '2', '--quiet',
                          '--warmup', '0']) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if 'median ms per frame' in x][0]
    assert '{' not in line and "'" not in line, line
    assert ', inference ' in line and 'overlay 0.0' not in line, line
