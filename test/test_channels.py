"""Camera channel topics: one camera keeps the historic names."""

import pytest

from segformer_ros.channels import channels_from_lists
from segformer_ros.errors import ConfigError


def test_single_camera_topics_unchanged() -> None:
    (ch,) = channels_from_lists([], [], [], [], 'raw')
    assert ch.input_topic == 'image'
    assert ch.output_topic('mask') == 'segmentation/mask'
    assert ch.output_topic('summary') == 'segmentation/summary'
    (ch,) = channels_from_lists([], [], [], [], 'compressed')
    assert ch.input_topic == 'image/compressed'


def test_several_cameras_get_namespaces() -> None:
    front, left = channels_from_lists(['front', 'left'], ['/cam_f/image', '/cam_l/image'],
                                      [], ['raw', 'compressed'], 'raw')
    assert front.input_topic == '/cam_f/image'
    assert left.input_topic == '/cam_l/image/compressed'
    assert front.output_topic('mask') == 'front/segmentation/mask'
    assert left.output_topic('overlay') == 'left/segmentation/overlay'


@pytest.mark.parametrize('names, topics, namespaces, message', [
    (['a', 'a'], [], [], 'unique'),
    (['a', 'b'], ['/x'], [], 'camera_topics needs one entry per camera'),
    (['a', 'b'], [], ['same', 'same'], 'different namespaces'),
])
def test_bad_camera_lists_rejected(names, topics, namespaces, message) -> None:
    with pytest.raises(ConfigError, match=message):
        channels_from_lists(names, topics, namespaces, [], 'raw')
