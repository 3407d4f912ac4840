"""The parameter table and its mapping to the pipeline configuration."""

import pytest

from segformer_ros.config import Normalization
from segformer_ros.errors import ConfigError
from segformer_ros.parameters import PARAMETERS, check_value, defaults, pipeline_config_from_params


def test_every_parameter_documented_and_defaults_valid() -> None:
    for p in PARAMETERS:
        assert p.description.endswith('.') or p.description.endswith(')'), p.name
        assert check_value(p.name, p.default) is None, p.name
    pipeline_config_from_params(defaults())


def test_nvinfer_form_wins_over_mean_std() -> None:
    cfg = pipeline_config_from_params({'net_scale_factor': 0.01735207357279195,
                                       'offsets': [123.675, 116.28, 103.53],
                                       'mean': [1.0, 2.0, 3.0]})
    norm = cfg.preprocess.normalization
    ref = Normalization.from_nvinfer(0.01735207357279195, (123.675, 116.28, 103.53))
    assert norm == ref
    # nvinfer: y = net_scale_factor * (x - offset)
    x = 200.0
    assert abs((x * norm.scale[0] + norm.bias[0]) - 0.01735207357279195 * (x - 123.675)) < 1e-9


@pytest.mark.parametrize('overrides, message', [
    ({'overlay_alpha': 1.5}, 'overlay_alpha must be <='),
    ({'resize_policy': 'crop'}, 'resize_policy must be one of'),
    ({'mean': [1.0, 2.0]}, 'mean needs 3 values'),
    ({'class_colors': [1, 2]}, '3 values per class'),
    ({'class_colors': [0, 0, 0] * 5}, 'expected a colour for each of the 19 classes'),
    ({'drivable_classes': ['runway']}, "drivable class 'runway'"),
    ({'roi_polygon': [0.0, 0.0, 1.0]}, 'x, y pairs'),
    ({'input_width': 512, 'input_height': 0}, 'set both input_width and input_height'),
])
def test_bad_values_rejected_with_reason(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        pipeline_config_from_params(overrides)


def test_drivable_by_name_or_id() -> None:
    cfg = pipeline_config_from_params({'drivable_classes': ['road', '1']})
    assert cfg.classes.drivable_ids == (0, 1)
