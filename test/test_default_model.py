"""The embedded default and package:// paths: a fresh install runs with no model_path.

ROS-free checks of the resolver and of the default's parameters, then the node itself in its
own process over loopback DDS, started like ``ros2 launch segformer_ros segformer.launch.py``
with no arguments (segformer.yaml, model_path empty, the camera remapped to
/camera/image_raw) from a directory that is not the checkout: it must reach active, log one
WARN line about the bundled model and publish masks for the camera.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segformer_ros.assets import (BUNDLED_MODEL_URI, BUNDLED_VIDEO_URI, bundled_model_path,
                                  relative_path_note, resolve_model_path, resolve_package_uri,
                                  share_dirs)
from segformer_ros.default_model import with_default_model
from segformer_ros.errors import ConfigError, ModelError
from segformer_ros.parameters import defaults, pipeline_config_from_params
from segformer_ros.presets import load_params_file, preset_path
from shared_assets import BUNDLED_MODEL, BUNDLED_VIDEO, REPO

INSTALL = Path(os.environ.get('SEGFORMER_ROS_INSTALL', REPO / '.build' / 'colcon' / 'install'))


def test_package_uris_resolve_to_the_bundled_files_from_the_checkout() -> None:
    assert share_dirs()[0] == REPO
    assert resolve_package_uri(BUNDLED_MODEL_URI) == BUNDLED_MODEL
    assert resolve_package_uri(BUNDLED_VIDEO_URI) == BUNDLED_VIDEO
    assert resolve_model_path(BUNDLED_MODEL_URI) == str(BUNDLED_MODEL)


def test_a_missing_package_file_names_the_directories_searched() -> None:
    with pytest.raises(ConfigError, match=r"no file 'assets/nope.onnx' in the share directory "
                                          r'of segformer_ros \(searched \['):
        resolve_package_uri('package://segformer_ros/assets/nope.onnx')
    with pytest.raises(ConfigError, match='expected package://<package>/<path'):
        resolve_package_uri('package://segformer_ros')


def test_a_missing_relative_model_path_names_the_directory_it_resolved_against(tmp_path) -> None:
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    note = relative_path_note('models/segformer.onnx', cwd=str(tmp_path))
    assert f"current directory, here '{tmp_path}'" in note
    assert str(tmp_path / 'models' / 'segformer.onnx') in note
    assert relative_path_note('/abs/missing.onnx') == ''
    assert resolve_model_path('~/m.onnx') == os.path.expanduser('~/m.onnx')
    with pytest.raises(ModelError, match=f"does not exist .*here '{Path.cwd()}'"):
        OnnxRuntimeBackend('models/segformer.onnx').configure()


def test_presets_never_point_outside_the_package() -> None:
    for preset in sorted((REPO / 'config').glob('*.yaml')):
        model_path = str(load_params_file(preset).get('model_path', ''))
        assert model_path == '' or model_path.startswith('package://segformer_ros/'), preset


def test_empty_model_path_takes_the_bundled_model_and_its_own_preset() -> None:
    params = load_params_file(preset_path('segformer'))
    assert params['model_path'] == ''
    merged, warning = with_default_model({**defaults(), **params, 'camera_topics': ['/a']})
    assert merged['model_path'] == str(bundled_model_path())
    assert warning is not None and 'bundled demo model' in warning and 'model_path:=' in warning
    config = pipeline_config_from_params(merged)
    deeplab = pipeline_config_from_params(load_params_file(preset_path(
        'deeplab_mobilenet_cityscapes')))
    assert config.preprocess == deeplab.preprocess   # raw 0..255, stretch: not segformer.yaml
    assert config.preprocess != pipeline_config_from_params(params).preprocess
    assert merged['camera_topics'] == ['/a']          # the rest stays as given


def test_a_given_model_path_is_left_alone() -> None:
    params = {**defaults(), 'model_path': '/models/segformer.onnx'}
    merged, warning = with_default_model(params)
    assert merged == params and warning is None


def test_the_colcon_install_resolves_its_own_share_dir(tmp_path) -> None:
    sites = sorted(INSTALL.glob('lib/python3.*/site-packages'))
    assert sites, f'no colcon install at {INSTALL}: run make setup'
    env = dict(os.environ, PYTHONPATH=str(sites[-1]))
    code = ('import segformer_ros.assets as a, segformer_ros.presets as p; '
            'print(a.__file__); print(a.bundled_model_path()); '
            "print(p.preset_path('deeplab_mobilenet_cityscapes'))")
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    share = INSTALL / 'share' / 'segformer_ros'
    assert out[0].startswith(str(sites[-1])), out
    assert out[1] == str(share / 'assets' / 'models' / BUNDLED_MODEL.name), out
    assert out[2] == str(share / 'config' / 'deeplab_mobilenet_cityscapes.yaml'), out
    assert (share / 'assets' / 'data' / BUNDLED_VIDEO.name).is_file()
    assert (share / 'assets' / 'models' /
            'LICENSE.deeplab_mnv_edgetpu_slim_cityscapes-Apache-2.0.txt').is_file()


def test_setup_py_ships_config_launch_and_assets_as_share_data() -> None:
    text = (REPO / 'setup.py').read_text()
    assert "data_files=_share_files('config', 'launch', 'assets')" in text


@pytest.mark.ros
def test_node_with_no_model_path_reaches_active_and_publishes_masks(tmp_path, ros_domain,
                                                                    street_frames_bgr) -> None:
    pytest.importorskip('rclpy')
    pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')
    from benchmarks.processes import RosProcess, loopback_env, node_command, params_file
    from ros_helpers import NodeClient, image_msg, ros_context

    # What the launch file passes with no arguments: segformer.yaml, autostart by lifecycle
    # events (here the node's own autostart), camera remapped to /camera/image_raw.
    extra = params_file({'autostart': True, 'warmup_iterations': 0}, str(tmp_path))
    node = RosProcess(node_command([str(REPO / 'config' / 'segformer.yaml'), extra],
                                   {'image': '/camera/image_raw'}),
                      loopback_env(ros_domain), tmp_path / 'node.log', cwd=tmp_path)
    try:
        with ros_context(ros_domain) as context, \
                NodeClient(context, camera_topic='/camera/image_raw') as client:
            assert node.wait_for_log('active: segmenting', 60.0), node.log()[-3000:]
            assert client.state() == 'active', node.log()[-3000:]
            assert client.wait_for_camera_match(), node.log()[-3000:]
            frame = street_frames_bgr[1]
            stamp = 1_700_000_000_123_000_000
            mask = client.send_until_mask(lambda: image_msg(frame, 'bgr8', stamp), stamp)
            assert mask is not None, node.log()[-3000:]
            assert (mask.height, mask.width) == frame.shape[:2]
            ids = np.frombuffer(bytes(mask.data), np.uint8)
            assert ids.max() < 19 and np.bincount(ids).argmax() in (0, 2, 8, 10, 13)
    finally:
        code = node.stop()
    log = (tmp_path / 'node.log').read_text(errors='replace')
    assert code == 0, log[-3000:]
    warnings = [line for line in log.splitlines() if '[WARN]' in line]
    assert len(warnings) == 1 and 'bundled demo model' in warnings[0], warnings
    assert 'model_path:=' in warnings[0]
    assert not [line for line in log.splitlines() if '[ERROR]' in line], log[-3000:]
