"""What a new user met in the first hour (issue 25), checked without a running node.

The node-level halves (a bare node's defaults, integer literals, the lifecycle log lines)
are in test_node_lifecycle.py, the command lines in test_cli_usage.py, the README and
--help commands in test_readme.py.
"""

from pathlib import Path

import numpy as np
import pytest

from segformer_ros.cli import params_files
from segformer_ros.config import Normalization, PreprocessConfig
from segformer_ros.errors import ConfigError
from segformer_ros.model_metadata import (PREPROCESSING_KEY, bundled_model_normalization_warning,
                                          check_normalization, metadata_normalization_problem,
                                          onnx_metadata, preprocessing_metadata)
from segformer_ros.parameters import (IMAGENET_MEAN, IMAGENET_STD, check_value, coerce_value,
                                      defaults, pipeline_config_from_params,
                                      unknown_parameter_message)
from segformer_ros.presets import load_params_file, params_file_node_problem, preset_path
from tiny_models import logits_model

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------ item 2: SegFormer is the default
def test_node_defaults_are_segformer_yaml() -> None:
    """The bare node (no params file) runs a SegFormer as the launch file's preset does."""
    preset = load_params_file(preset_path('segformer'))
    own = defaults()
    differing = {k: (v, own[k]) for k, v in preset.items()
                 if k != 'model_path' and own[k] != v}
    assert not differing, f'node defaults differ from segformer.yaml: {differing}'
    norm = pipeline_config_from_params({}).preprocess.normalization
    assert norm == Normalization(IMAGENET_MEAN, IMAGENET_STD)


def _metadata_model(path: Path, mean, std, order: str = 'rgb') -> Path:
    import onnx

    logits_model(path)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = PREPROCESSING_KEY, preprocessing_metadata(mean, std, order)
    extra = model.metadata_props.add()   # other entries are left alone
    extra.key, extra.value = 'author', 'test'
    onnx.save(model, str(path))
    return path


def test_onnx_metadata_is_read_without_onnx(tmp_path) -> None:
    path = _metadata_model(tmp_path / 'm.onnx', IMAGENET_MEAN, IMAGENET_STD)
    meta = onnx_metadata(str(path))
    assert meta['author'] == 'test'
    assert '"mean": [123.675, 116.28, 103.53]' in meta[PREPROCESSING_KEY]
    assert onnx_metadata(str(logits_model(tmp_path / 'plain.onnx'))) == {}
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'\xff' * 64)
    assert onnx_metadata(str(garbage)) == {}
    assert onnx_metadata(str(tmp_path / 'missing.onnx')) == {}


def test_a_normalization_the_model_metadata_contradicts_is_refused(tmp_path) -> None:
    path = str(_metadata_model(tmp_path / 'seg.onnx', IMAGENET_MEAN, IMAGENET_STD))
    segformer = pipeline_config_from_params({}).preprocess
    assert metadata_normalization_problem(path, segformer) is None
    raw = pipeline_config_from_params({'mean': [0, 0, 0], 'std': [1, 1, 1]}).preprocess
    problem = metadata_normalization_problem(path, raw)
    assert problem and 'was exported for mean [123.675, 116.28, 103.53]' in problem
    assert 'the parameters give mean [0, 0, 0] std [1, 1, 1]' in problem
    with pytest.raises(ConfigError, match='was exported for'):
        check_normalization(path, raw)
    bgr = pipeline_config_from_params({'channel_order': 'bgr'}).preprocess
    assert 'channel_order bgr' in metadata_normalization_problem(path, bgr)
    # The nvinfer form of the same normalization is the same normalization.
    nvinfer = PreprocessConfig(normalization=Normalization.from_nvinfer(1 / 58.395,
                                                                        IMAGENET_MEAN))
    assert 'std [58.395, 58.395, 58.395]' in metadata_normalization_problem(path, nvinfer)


def test_bundled_model_by_path_with_another_normalization_is_warned(deeplab_model) -> None:
    segformer = pipeline_config_from_params({}).preprocess
    raw = pipeline_config_from_params({'mean': [0, 0, 0], 'std': [1, 1, 1]}).preprocess
    warning = check_normalization(str(deeplab_model), segformer)
    assert warning and 'raw 0..255 input' in warning and 'deeplab_mobilenet' in warning
    assert check_normalization(str(deeplab_model), raw) is None
    assert bundled_model_normalization_warning('/elsewhere/x.onnx', str(deeplab_model),
                                               segformer) is None


def test_export_writes_the_metadata_the_node_checks(tmp_path) -> None:
    pytest.importorskip('onnx', reason='the export metadata is written with onnx')
    from segformer_ros.tools.export import (_INSTALL_HINT, checkpoint_normalization,
                                            write_preprocessing_metadata)

    assert 'make setup EXPORT=1' in _INSTALL_HINT and 'on these machines' not in _INSTALL_HINT
    ckpt = tmp_path / 'ckpt'
    ckpt.mkdir()
    mean, std, origin = checkpoint_normalization(str(ckpt))
    assert (mean, std) == (list(IMAGENET_MEAN), list(IMAGENET_STD)) and 'ImageNet' in origin
    (ckpt / 'preprocessor_config.json').write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    mean, std, origin = checkpoint_normalization(str(ckpt))
    assert mean == [127.5] * 3 and std == [127.5] * 3 and origin.endswith('.json')
    path = logits_model(tmp_path / 'exported.onnx')
    write_preprocessing_metadata(path, mean, std)
    write_preprocessing_metadata(path, mean, std)   # idempotent: one entry
    import onnx
    keys = [p.key for p in onnx.load(str(path)).metadata_props]
    assert keys == [PREPROCESSING_KEY]
    with pytest.raises(ConfigError, match='was exported for mean \\[127.5'):
        check_normalization(str(path), pipeline_config_from_params({}).preprocess)


def test_export_without_torch_says_make_setup_export(capsys) -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        pytest.skip('torch and transformers are installed here (make setup EXPORT=1)')
    except ImportError:
        pass
    from segformer_ros.tools import export
    assert export.main(['some/checkpoint', '-o', '/tmp/never.onnx']) == 2
    err = capsys.readouterr().err
    assert 'make setup EXPORT=1' in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------ item 1: integer literals for floats
def test_float_parameters_take_integers_and_refuse_non_numbers() -> None:
    assert check_value('overlay_alpha', 1) is None
    assert coerce_value('overlay_alpha', 1) == 1.0 and isinstance(
        coerce_value('overlay_alpha', 1), float)
    assert coerce_value('mean', [0, 0, 0]) == [0.0, 0.0, 0.0]
    assert coerce_value('free_space_bins', 3) == 3   # an int parameter stays int
    assert 'must be <= 1.0' in check_value('overlay_alpha', 2)
    assert 'must be a number' in check_value('overlay_alpha', 'x')
    assert 'must be a number' in check_value('overlay_alpha', True)
    assert 'list of numbers' in check_value('mean', ['a', 'b', 'c'])
    cfg = pipeline_config_from_params({'mean': [0, 0, 0], 'std': [1, 1, 1],
                                       'overlay_alpha': 1})
    assert cfg.preprocess.normalization == Normalization((0.0,) * 3, (1.0,) * 3)
    assert cfg.postprocess.overlay_alpha == 1.0


# ------------------------------------------------ item 4: typos
def test_unknown_parameter_gets_the_closest_names_in_one_short_line() -> None:
    line = unknown_parameter_message('drivable_clases')
    assert line == "unknown parameter 'drivable_clases' (ignored); did you mean drivable_classes?"
    assert 'model_path' in unknown_parameter_message('modle_path')
    far = unknown_parameter_message('zzzzzz')
    assert 'README.md' in far and len(far) < 120


def test_params_file_without_the_node_key_is_named(tmp_path) -> None:
    wrong = tmp_path / 'wrong.yaml'
    wrong.write_text('segformer_node:\n  ros__parameters:\n    model_path: /m.onnx\n')
    problem = params_file_node_problem(wrong, 'segformer')
    assert problem and "no entry for this node 'segformer'" in problem
    assert "['segformer_node']" in problem
    for good in ('segformer', '/segformer', '/**', '/robot/segformer'):
        path = tmp_path / 'good.yaml'
        path.write_text(f'{good}:\n  ros__parameters:\n    model_path: /m.onnx\n')
        assert params_file_node_problem(path, 'segformer') is None, good
    assert params_file_node_problem(tmp_path / 'missing.yaml', 'segformer') is None
    assert params_file_node_problem(REPO / 'config' / 'segformer.yaml', 'segformer') is None


def test_params_files_found_in_ros_args() -> None:
    argv = ['--ros-args', '-p', 'a:=1', '--params-file', 'x.yaml', '--', '--params-file',
            'not.yaml', '--ros-args', '--params-file', 'y.yaml']
    assert params_files(argv) == ['x.yaml', 'y.yaml']


# ------------------------------------------------ item 5: reports
def test_diagnostics_counters_print_as_integers() -> None:
    pytest.importorskip('diagnostic_msgs', reason='ROS message packages missing: make setup')
    from builtin_interfaces.msg import Time

    from segformer_ros.ros_messages import diagnostics_message
    from segformer_ros.stats import StageStats

    stats = StageStats(('inference',))
    stats.input_rate.tick(246)
    stats.count_drop(3)
    stats.add_times({'inference': 0.0123})
    msg = diagnostics_message(Time(), 'n', 'hw', 'ok', 'running', stats.snapshot())
    values = {kv.key: kv.value for kv in msg.status[0].values}
    assert values['frames_in'] == '246' and values['frames_dropped'] == '3'
    assert values['frames_out'] == '0' and values['frames_failed'] == '0'
    assert values['inference_ms_p50'] == '12.300'   # times keep their decimals


def test_demo_report_prints_a_table_not_dict_reprs() -> None:
    from benchmarks.demo import format_report

    report = {'frames_published': 221, 'masks': 100, 'output_fps': 8.25,
              'frames_replaced_in_node': None, 'backend': 'onnxruntime CPU',
              'stage_ms_p50': {'convert': 1.25, 'inference': 80.5},
              'outputs': {'video': 'out/demo/overlay.mp4', 'grid_samples': ['a.jpg', 'b.jpg']}}
    text = format_report(report)
    assert '{' not in text and '[' not in text, text
    lines = text.splitlines()
    assert any(line.split() == ['masks', '100'] for line in lines), text
    assert any(line.split() == ['inference', '80.5'] for line in lines), text
    assert any(line.split() == ['grid_samples', 'b.jpg'] for line in lines), text
    assert np.all([len(line) <= 100 for line in lines])
