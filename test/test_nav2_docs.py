"""docs/nav2.md: its YAML for our node and for semantic_segmentation_layer is usable as is."""

import re
from pathlib import Path

import yaml

from segformer_ros.channels import single_channel
from segformer_ros.labels import CITYSCAPES_CLASSES
from segformer_ros.parameters import pipeline_config_from_params
from segformer_ros.presets import load_params_file, preset_path, unknown_parameters

DOC = Path(__file__).resolve().parents[1] / 'docs' / 'nav2.md'
# Every parameter semantic_segmentation_layer declares (src/semantic_segmentation_layer.cpp,
# onInitialize): layer level, per source, per class type.
LAYER_KEYS = {'plugin', 'enabled', 'combination_method', 'observation_sources',
              'publish_debug_topics', 'use_approximate_time_sync'}
SOURCE_KEYS = {'segmentation_topic', 'confidence_topic', 'labels_topic', 'pointcloud_topic',
               'observation_persistence', 'sensor_frame', 'expected_update_rate',
               'class_types', 'max_obstacle_distance', 'min_obstacle_distance',
               'tile_map_decay_time', 'visualize_tile_map', 'use_cost_selection',
               'camera_horizontal_fov', 'camera_vertical_fov', 'fov_decay_time',
               'outside_fov_decay_time', 'visualize_frustum_fov'}
CLASS_TYPE_KEYS = {'classes', 'base_cost', 'max_cost', 'mark_confidence',
                   'samples_to_max_cost', 'dominant_priority'}


def _blocks():
    return [yaml.safe_load(b) for b in re.findall(r'```yaml\n(.*?)```', DOC.read_text(), re.S)]


def test_our_block_is_the_shipped_overlay_and_configures():
    ours = _blocks()[0]['segformer']['ros__parameters']
    assert ours == load_params_file(preset_path('nav2_segformer'))
    assert unknown_parameters(ours) == []
    params = load_params_file(preset_path('espnetv2_cityscapes'))
    params.update(ours)
    pipeline_config_from_params(params)


def test_layer_block_uses_declared_keys_our_topics_and_class_names():
    layer = _blocks()[1]['local_costmap']['local_costmap']['ros__parameters']
    plugin = layer['semantic_segmentation_layer']
    assert set(plugin) - {'camera'} <= LAYER_KEYS
    source = plugin[plugin['observation_sources']]
    assert set(source) - set(source['class_types']) <= SOURCE_KEYS
    channel = single_channel('raw')[0]
    for key, output in (('segmentation_topic', 'mask'), ('confidence_topic', 'confidence'),
                        ('labels_topic', 'label_info')):
        assert source[key] == '/' + channel.output_topic(output)
    named = []
    for class_type in source['class_types']:
        params = source[class_type]
        assert set(params) == CLASS_TYPE_KEYS, class_type
        assert 0 <= params['base_cost'] <= params['max_cost'] <= 254
        assert 0 <= params['mark_confidence'] <= 255
        named += params['classes']
    assert set(named) <= set(CITYSCAPES_CLASSES) and len(named) == len(set(named))
