"""segformer-ros-import-nvinfer and the node's nvinfer_config parameter (issue 24 item 5).

The TAO CitySemSegFormer config as its model card gives it (fixtures/nvinfer/) imports to
the parameters of config/citysemsegformer_tao.yaml: the same preprocessing, bit for bit, on
a real frame; every key it does not map is listed with the reason.
"""

import configparser
from pathlib import Path
from typing import Dict

import pytest

from segformer_ros.errors import ConfigError
from segformer_ros.nvinfer_config import apply_nvinfer_config, import_nvinfer
from segformer_ros.parameters import defaults, pipeline_config_from_params
from segformer_ros.preprocessing import preprocess
from segformer_ros.presets import load_params_file, preset_path
from segformer_ros.tools.import_nvinfer import main

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'nvinfer'
MODEL_CARD = FIXTURES / 'citysemsegformer_tao_model_card.txt'


def _keys(path: Path) -> Dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=('#',))
    parser.read(path)
    return dict(parser.items('property'))


def _write(tmp_path: Path, body: str, name: str = 'pgie.txt') -> Path:
    path = tmp_path / name
    path.write_text('[property]\n' + body)
    return path


def test_model_card_config_maps_to_the_tao_preset_values():
    imported = import_nvinfer(MODEL_CARD)
    p = imported.params
    assert p['net_scale_factor'] == 0.01735207357279195
    assert p['offsets'] == [123.675, 116.28, 103.53]
    assert p['channel_order'] == 'rgb'
    assert (p['input_height'], p['input_width']) == (1024, 1820)
    assert p['precision'] == 'fp16' and p['max_batch_size'] == 1 and p['device_id'] == 0
    # num-detected-classes=20 for the 19 Cityscapes classes: one void channel (255).
    assert p['void_channels'] == 1 and 'class_names' not in p
    assert p['model_path'].endswith('citysemsegformer.etlt_b1_gpu0_fp16.engine')
    assert p['backend'] == 'tensorrt'
    # Nothing dropped silently: every key of the file is mapped or listed with a reason.
    keys = set(_keys(MODEL_CARD))
    assert keys == set(imported.mapped) | set(imported.unmapped)
    assert not set(imported.mapped) & set(imported.unmapped)
    for key, reason in imported.unmapped.items():
        assert len(reason) > 10, key
    assert 'nothing to set' in imported.unmapped['network-type']
    assert 'argmax' in imported.unmapped['segmentation-threshold']
    assert 'workspace_mb' in imported.unmapped['workspace-size']     # 1048576 MB: out of range
    assert '.etlt' in imported.unmapped['tlt-encoded-model']
    assert 'does not exist' in imported.unmapped['labelfile-path']
    assert 'output-tensor-meta' in imported.unmapped and 'interval' in imported.unmapped


def test_imported_preprocessing_equals_the_tao_preset_bit_for_bit(street_frames_bgr):
    imported = pipeline_config_from_params(import_nvinfer(MODEL_CARD).params)
    preset = pipeline_config_from_params(load_params_file(preset_path('citysemsegformer_tao')))
    assert imported.preprocess == preset.preprocess
    assert imported.input_size == preset.input_size == (1024, 1820)
    for frame in street_frames_bgr[:2]:
        a, geo_a = preprocess(frame, 'bgr', imported.preprocess, imported.input_size)
        b, geo_b = preprocess(frame, 'bgr', preset.preprocess, preset.input_size)
        assert a.tobytes() == b.tobytes()
        assert geo_a == geo_b
    # The check can fail: a different offset changes the input.
    changed = pipeline_config_from_params({**import_nvinfer(MODEL_CARD).params,
                                           'offsets': [123.0, 116.28, 103.53]})
    c, _ = preprocess(street_frames_bgr[0], 'bgr', changed.preprocess, changed.input_size)
    assert c.tobytes() != a.tobytes()


def test_cli_writes_a_params_file_that_lists_the_unmapped_keys(tmp_path, capsys):
    out = tmp_path / 'tao.yaml'
    assert main([str(MODEL_CARD), '-o', str(out)]) == 0
    imported = import_nvinfer(MODEL_CARD)
    assert load_params_file(out) == imported.params
    text = out.read_text()
    err = capsys.readouterr().err
    for key in imported.unmapped:
        assert f'#   {key}: ' in text
        assert f'not mapped  {key}: ' in err
    for key in imported.mapped:
        assert f'#   {key} -> ' in text


def test_onnx_labels_letterbox_and_bgr(tmp_path):
    (tmp_path / 'models').mkdir()
    (tmp_path / 'models' / 'labels.txt').write_text('background\nroad\ncar\n')
    cfg = _write(tmp_path, 'onnx-file=models/seg.onnx\nmodel-engine-file=models/seg.engine\n'
                 'labelfile-path=models/labels.txt\nnum-detected-classes=4\n'
                 'model-color-format=1\nmaintain-aspect-ratio=1\nsymmetric-padding=1\n'
                 'network-mode=0\nnetwork-type=2\nnet-scale-factor=0.00392156862745098\n'
                 'workspace-size=2048\nmystery-key=7\n[class-attrs-all]\npre-cluster-'
                 'threshold=0.2\n')
    imported = import_nvinfer(cfg)
    p = imported.params
    assert p['model_path'] == str((tmp_path / 'models' / 'seg.onnx').resolve())
    assert 'onnx-file is used instead' in imported.unmapped['model-engine-file']
    assert p['class_names'] == ['background', 'road', 'car'] and p['void_channels'] == 1
    assert len(p['class_colors']) == 9
    assert p['channel_order'] == 'bgr' and p['resize_policy'] == 'letterbox'
    assert p['precision'] == 'fp32' and p['workspace_mb'] == 2048
    assert p['offsets'] == [0.0, 0.0, 0.0]
    assert 'not an nvinfer key' in imported.unmapped['mystery-key']
    assert '[class-attrs-all]' in imported.unmapped
    config = pipeline_config_from_params(p)
    assert config.classes.num_classes == 3 and config.classes.drivable_ids == (1,)


@pytest.mark.parametrize('body, expected', [
    ('network-type=0\n', 'expected 2 (semantic segmentation)'),
    ('model-color-format=2\n', 'GRAY (2) models are not supported'),
    ('offsets=1;2\n', "expected 3 values separated by ';'"),
    ('net-scale-factor=abc\n', 'expected a number'),
    ('infer-dims=1;512;512\n', 'expected 3 channels'),
])
def test_configs_that_cannot_work_are_refused_with_the_reason(tmp_path, capsys, body, expected):
    cfg = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=expected.replace('(', r'\(').replace(')', r'\)')):
        import_nvinfer(cfg)
    assert main([str(cfg), '-o', str(tmp_path / 'x.yaml')]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / 'x.yaml').exists()


def test_not_an_nvinfer_file(tmp_path, capsys):
    other = tmp_path / 'other.txt'
    other.write_text('[application]\nenable-perf-measurement=1\n')
    assert main([str(other)]) == 2
    assert 'has no [property] group' in capsys.readouterr().err
    assert main([str(tmp_path / 'missing.txt')]) == 2
    assert 'cannot read nvinfer config' in capsys.readouterr().err


def test_our_parameters_override_the_nvinfer_config(tmp_path):
    cfg = _write(tmp_path, 'net-scale-factor=0.5\noffsets=1;2;3\nmodel-color-format=1\n'
                 'infer-dims=3;256;512\n')
    params = defaults()
    params['nvinfer_config'] = str(cfg)
    params['channel_order'] = 'rgb'        # given in the params file: equals the default
    params['input_width'] = 640            # set to a non-default value: ours
    merged, imported = apply_nvinfer_config(params, given=['channel_order'])
    assert imported is not None
    assert merged['channel_order'] == 'rgb' and merged['input_width'] == 640
    assert merged['input_height'] == 256
    assert merged['net_scale_factor'] == 0.5 and merged['offsets'] == [1.0, 2.0, 3.0]
    unchanged, none = apply_nvinfer_config(defaults())
    assert none is None and unchanged == defaults()


def test_eval_tool_reads_nvinfer_config_from_a_params_file(tmp_path):
    from segformer_ros.tools.evaluate import load_tool_params

    cfg = _write(tmp_path, 'net-scale-factor=0.25\nmodel-color-format=1\n')
    params = load_tool_params(None, [('nvinfer_config', str(cfg)), ('channel_order', 'rgb')])
    assert params['net_scale_factor'] == 0.25 and params['channel_order'] == 'rgb'


@pytest.mark.ros
def test_node_configures_from_nvinfer_config_with_our_overrides(
        tmp_path, rclpy_context, deeplab_model):
    pytest.importorskip('rclpy')
    from rclpy.parameter import Parameter

    from ros_helpers import InProcessNode

    # The model and its input come from the nvinfer file; channel_order from our parameter.
    cfg = _write(tmp_path, f'onnx-file={deeplab_model}\nnet-scale-factor=0.5\n'
                 'offsets=10;20;30\nmodel-color-format=1\nnum-detected-classes=19\n')
    running = InProcessNode(rclpy_context, [
        Parameter('nvinfer_config', value=str(cfg)), Parameter('warmup_iterations', value=0),
        Parameter('channel_order', value='rgb')])
    try:
        running.node.trigger_configure()
        assert running.state() == 'inactive'
        config = running.node._pipeline.config
        assert config.preprocess.channel_order == 'rgb'
        assert config.preprocess.normalization.mean == (10.0, 20.0, 30.0)
        assert config.preprocess.normalization.std == (2.0, 2.0, 2.0)
        assert running.node._params['model_path'] == str(deeplab_model)
    finally:
        running.close()

    bad = _write(tmp_path, 'network-type=1\n', 'classifier.txt')
    running = InProcessNode(rclpy_context, [Parameter('nvinfer_config', value=str(bad))])
    try:
        running.node.trigger_configure()
        assert running.state() == 'unconfigured'
    finally:
        running.close()
