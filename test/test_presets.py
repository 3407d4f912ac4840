"""Presets (config/*.yaml): they load, use only known parameters, and mean what they say."""

from pathlib import Path

import numpy as np
import pytest

from segformer_ros.errors import ConfigError
from segformer_ros.parameters import PARAMETER_NAMES, pipeline_config_from_params
from segformer_ros.presets import (available_presets, load_params_file, preset_path,
                                   resolve_params_file, unknown_parameters)

PRESETS = ('segformer', 'segformer_cityscapes', 'citysemsegformer_tao',
           'deeplab_mobilenet_cityscapes', 'espnetv2_cityscapes')
CONFIG = Path(__file__).resolve().parents[1] / 'config'


@pytest.mark.parametrize('name', PRESETS)
def test_preset_loads_with_known_keys_only(name):
    path = preset_path(name)
    assert path == CONFIG / f'{name}.yaml'
    params = load_params_file(path)
    assert params, 'empty preset'
    assert unknown_parameters(params) == []
    assert set(params) <= set(PARAMETER_NAMES)
    config = pipeline_config_from_params(params)
    assert config.classes.num_classes == 19
    assert config.preprocess.channel_order == 'rgb'
    text = path.read_text()
    # No absolute paths of the machine the preset was written on.
    checkout_parent = str(Path(__file__).resolve().parents[2])
    assert checkout_parent + '/' not in text and '\n    model_path: /' not in text


def test_available_presets_lists_them():
    assert set(PRESETS) <= set(available_presets())


def test_tao_normalization_equals_nvinfer_formula():
    params = load_params_file(preset_path('citysemsegformer_tao'))
    norm = pipeline_config_from_params(params).preprocess.normalization
    x = np.random.default_rng(0).uniform(0, 255, size=(1000, 3))
    offsets = np.array([123.675, 116.28, 103.53])
    nvinfer = 0.01735207357279195 * (x - offsets)
    ours = (x - np.array(norm.mean)) / np.array(norm.std)
    np.testing.assert_allclose(ours, nvinfer, rtol=1e-12, atol=1e-12)
    fused = x * np.array(norm.scale) + np.array(norm.bias)
    np.testing.assert_allclose(fused, nvinfer, rtol=1e-9, atol=1e-9)
    assert pipeline_config_from_params(params).input_size == (1024, 1820)


def test_segformer_presets_agree_and_use_imagenet_stats():
    default = pipeline_config_from_params(load_params_file(preset_path('segformer')))
    cityscapes = pipeline_config_from_params(load_params_file(preset_path('segformer_cityscapes')))
    assert default == cityscapes
    norm = default.preprocess.normalization
    assert norm.mean == (123.675, 116.28, 103.53) and norm.std == (58.395, 57.12, 57.375)
    assert default.input_size == (1024, 1024)
    assert default.postprocess.upsample_mode == 'fast'


def test_deeplab_preset_is_raw_pixels_and_the_bundled_model():
    params = load_params_file(preset_path('deeplab_mobilenet_cityscapes'))
    assert params['model_path'] == ('package://segformer_ros/assets/models/'
                                    'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx')
    norm = pipeline_config_from_params(params).preprocess.normalization
    assert norm.scale == (1.0, 1.0, 1.0) and norm.bias == (0.0, 0.0, 0.0)


def _write(tmp_path, text):
    path = tmp_path / 'p.yaml'
    path.write_text(text)
    return path


@pytest.mark.parametrize('key', ['segformer', '/segformer', '/**', '/robot/segformer',
                                 '/**/segformer'])
def test_node_key_forms(tmp_path, key):
    path = _write(tmp_path, f'{key}:\n  ros__parameters:\n    num_threads: 3\n')
    assert load_params_file(path) == {'num_threads': 3}


def test_nested_namespace_and_override_order(tmp_path):
    path = _write(tmp_path, (
        'robot:\n  segformer:\n    ros__parameters:\n      num_threads: 2\n'
        '/**:\n  ros__parameters:\n    num_threads: 1\n    use_sim_time: true\n'
        'other_node:\n  ros__parameters:\n    num_threads: 9\n'))
    params = load_params_file(path)
    assert params == {'num_threads': 2, 'use_sim_time': True}
    assert unknown_parameters(params) == []


def test_unknown_keys_are_reported(tmp_path):
    path = _write(tmp_path, 'segformer:\n  ros__parameters:\n    num_thread: 2\n'
                            '    qos_overrides:\n      /image:\n        depth: 1\n')
    params = load_params_file(path)
    assert params['qos_overrides./image.depth'] == 1
    assert unknown_parameters(params) == ['num_thread']


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        load_params_file(tmp_path / 'missing.yaml')
    with pytest.raises(ConfigError, match="no parameters for node 'segformer'"):
        load_params_file(_write(tmp_path, 'camera:\n  ros__parameters:\n    a: 1\n'))
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_params_file(_write(tmp_path, 'segformer: [unclosed\n'))
    with pytest.raises(ConfigError, match="preset 'nope' not found"):
        preset_path('nope')


def test_resolve_params_file(tmp_path):
    assert resolve_params_file('citysemsegformer_tao') == preset_path('citysemsegformer_tao')
    path = _write(tmp_path, 'segformer:\n  ros__parameters: {}\n')
    assert resolve_params_file(str(path)) == path
    assert load_params_file(path) == {}
    with pytest.raises(ConfigError):
        resolve_params_file(str(tmp_path / 'missing' / 'x.yaml'))
