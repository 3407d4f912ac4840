"""``ros2 launch segformer_ros segformer.launch.py`` as users type it, over real DDS.

The real ``ros2`` command (ros2launch, launch, launch_ros: a sourced ROS 2 installation, or
built from ../shared/ros-src by make setup), the package's installed launch file and
executables (the ament index of the colcon install), and the package's own ``image_source``
started with ``ros2 run`` as the camera. Ctrl-C is SIGINT to the launch's process group, as
a terminal sends it.
"""

import os
import re
import signal
import time
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest
import yaml

from ros2_tools import daemon_pids, require_ros_tools, ros2, Ros2Process, ros2_until_discovered
from shared_assets import BUNDLED_MODEL, REPO

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PRESET = REPO / 'config' / 'deeplab_mobilenet_cityscapes.yaml'
README = REPO / 'README.md'
ACTIVE = 'active: segmenting'
# Ctrl-C to exit: the node's shutdown is bounded by 5 s (node_main), launch's SIGTERM
# escalation comes after 5 s more; a clean shutdown takes well under both.
EXIT_BUDGET_S = 10.0


@pytest.fixture(autouse=True)
def _ros_tools(ros_domain: int) -> Iterator[None]:
    require_ros_tools()
    yield
    left = daemon_pids(ros_domain)
    for pid in left:
        os.kill(pid, signal.SIGTERM)
    assert not left, 'a ros2 verb started a daemon (pass --no-daemon)'


def camera(domain: int, topic: str, tmp_path: Path, rate_hz: float = 5.0) -> Ros2Process:
    """Start the package's image_source on ``topic``: the bundled clip, looped, at ``rate_hz``."""
    return Ros2Process(['run', 'segformer_ros', 'image_source', '--ros-args',
                        # As the README's quickstart: the clip by its package URI.
                        '-p', 'source:=package://segformer_ros/assets/data/solidWhiteRight.mp4',
                        '-p', f'rate_hz:={rate_hz}',
                        '-p', 'loop:=true', '-p', 'width:=320', '-r', f'image:={topic}'],
                       domain, tmp_path / 'camera.log')


@pytest.fixture
def mask_probe(ros_domain: int) -> Iterator[Any]:
    """Yield a function that waits for ``n`` masks on a topic: (height, width, encoding) each."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from ros_helpers import ros_context

    with ros_context(ros_domain) as context:
        node = rclpy.create_node('mask_probe', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def wait_for_masks(topic: str, n: int, timeout: float) -> List[Tuple[int, int]]:
            got: List[Tuple[int, int]] = []
            sub = node.create_subscription(Image, topic, lambda m: got.append(
                (m.height, m.width, m.encoding)), qos_profile_sensor_data)
            deadline = time.monotonic() + timeout
            while len(got) < n and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            node.destroy_subscription(sub)
            return got

        try:
            yield wait_for_masks
        finally:
            executor.shutdown()
            node.destroy_node()


def interrupt_and_check_clean_exit(launch: Ros2Process) -> float:
    """Ctrl-C the launch; assert exit code 0 and nothing left; return the seconds it took."""
    t0 = time.monotonic()
    launch.interrupt()
    code = launch.proc.wait(timeout=EXIT_BUDGET_S + 20)
    # The launch waits for its processes; anything still in its session is a leftover.
    deadline = time.monotonic() + 2.0
    while launch.leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    took = time.monotonic() - t0
    out = launch.output()
    assert code == 0, f'ros2 launch exited {code} after Ctrl-C:\n{out[-3000:]}'
    assert not launch.leftovers(), f'processes left after Ctrl-C: {launch.leftovers()}'
    assert took < EXIT_BUDGET_S, f'Ctrl-C took {took:.1f} s:\n{out[-3000:]}'
    assert 'Traceback' not in out and 'process has died' not in out, out[-3000:]
    return took


def test_show_args_lists_every_argument_with_its_description_as_the_readme(
        ros_domain: int) -> None:
    out = ros2(['launch', 'segformer_ros', 'segformer.launch.py', '--show-args'],
               ros_domain).stdout
    shown = re.findall(r"^    '(\w+)':\n        (\S.*)\n        \(default: '(.*)'\)$", out,
                       re.MULTILINE)
    assert shown, out
    names = [name for name, _, _ in shown]
    assert all(description.strip() for _, description, _ in shown), out
    text = README.read_text()
    start = text.index('Launch arguments (all with descriptions')
    paragraph = text[start:text.index('\n\n', start)]
    listed = re.findall(r'`(\w+)`', paragraph)
    assert names == listed, f'--show-args lists {names}; README says {listed}'
    defaults = {name: default for name, _, default in shown}
    assert defaults['params_file'].endswith('share/segformer_ros/config/segformer.yaml')
    assert defaults['autostart'] == 'true' and defaults['model_path'] == ''


def test_no_arguments_reaches_active_on_the_bundled_model_and_ctrl_c_ends_it(
        ros_domain: int, tmp_path: Path, mask_probe: Any) -> None:
    """``ros2 launch segformer_ros segformer.launch.py``: nothing else typed."""
    launch = Ros2Process(['launch', 'segformer_ros', 'segformer.launch.py'], ros_domain,
                         tmp_path / 'launch.log', cwd=tmp_path)
    cam = None
    try:
        assert launch.wait_for_output(lambda out: ACTIVE in out, 60.0), launch.output()[-3000:]
        out = launch.output()
        assert 'bundled demo model' in out and f'{ACTIVE} /camera/image_raw' in out, out
        cam = camera(ros_domain, '/camera/image_raw', tmp_path)
        masks = mask_probe('/segmentation/mask', 3, 60.0)
        assert len(masks) >= 3, launch.output()[-3000:] + cam.output()[-2000:]
        # The bundled preset: output_resolution input, so the camera's 320-wide frames.
        assert {m[1:] for m in masks} == {(320, 'mono8')}, masks
        took = interrupt_and_check_clean_exit(launch)
        print(f'Ctrl-C to exit: {took:.2f} s')
    finally:
        launch.close()
        if cam is not None:
            cam.interrupt()
            cam.close()


def test_every_launch_argument_takes_effect(ros_domain: int, tmp_path: Path,
                                            mask_probe: Any) -> None:
    """model_path, params_file and the other documented arguments, each observed."""
    preset = yaml.safe_load(PRESET.read_text())
    params = preset[next(iter(preset))]['ros__parameters']
    params['output_resolution'] = '96x64'           # seen on the masks: the file was read
    params['model_path'] = 'not/used/model_path/argument/wins.onnx'
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
    args = {'model_path': str(BUNDLED_MODEL), 'params_file': str(params_file),
            'image_topic': '/front/image', 'backend': 'onnxruntime', 'namespace': 'robot1',
            'node_name': 'seg_front', 'autostart': 'false', 'use_rviz': 'false',
            'log_level': 'debug'}
    launch = Ros2Process(['launch', 'segformer_ros', 'segformer.launch.py',
                          *(f'{k}:={v}' for k, v in args.items())], ros_domain,
                         tmp_path / 'launch.log', cwd=tmp_path)
    cam = None
    node = '/robot1/seg_front'
    try:
        # autostart:=false: the node waits, unconfigured, for a lifecycle manager (here the CLI).
        assert launch.wait_for_output(lambda out: 'process started' in out, 30.0), \
            launch.output()[-3000:]
        state = ''
        deadline = time.monotonic() + 30.0
        while 'unconfigured' not in state and time.monotonic() < deadline:
            state = ros2(['lifecycle', 'get', '--no-daemon', node], ros_domain).stdout
        assert 'unconfigured [1]' in state, state + launch.output()[-3000:]
        for transition in ('configure', 'activate'):
            result = ros2_until_discovered(['lifecycle', 'set', '--no-daemon', node, transition],
                                           ros_domain)
            assert 'Transitioning successful' in result.stdout, \
                result.stdout + launch.output()[-3000:]
        out = launch.output()
        assert f'{ACTIVE} /front/image -> /robot1/segmentation/mask' in out, out[-3000:]
        assert 'onnxruntime' in out and f'model {BUNDLED_MODEL}' in out, out[-3000:]
        assert '[DEBUG]' in out, 'log_level:=debug reaches the node'
        cam = camera(ros_domain, '/front/image', tmp_path)
        masks = mask_probe('/robot1/segmentation/mask', 2, 60.0)
        assert len(masks) >= 2, launch.output()[-3000:] + cam.output()[-2000:]
        assert {m[:2] for m in masks} == {(64, 96)}, masks
        assert 'rviz' not in launch.output()
        interrupt_and_check_clean_exit(launch)
    finally:
        launch.close()
        if cam is not None:
            cam.interrupt()
            cam.close()


def test_wrong_model_path_fails_configure_with_the_reason_in_the_launch_output(
        ros_domain: int, tmp_path: Path) -> None:
    missing = tmp_path / 'no_such_model.onnx'
    launch = Ros2Process(['launch', 'segformer_ros', 'segformer.launch.py',
                          f'model_path:={missing}'], ros_domain, tmp_path / 'launch.log',
                         cwd=tmp_path)
    try:
        assert launch.wait_for_output(lambda out: 'configure failed' in out, 60.0), \
            launch.output()[-3000:]
        lines = [ln for ln in launch.output().splitlines() if 'configure failed:' in ln]
        assert len(lines) == 1, lines
        assert f"model_path '{missing}' does not exist" in lines[0], lines
        assert ACTIVE not in launch.output()
        state = ros2_until_discovered(['lifecycle', 'get', '--no-daemon', '/segformer'],
                                      ros_domain).stdout
        assert 'unconfigured [1]' in state, state
        interrupt_and_check_clean_exit(launch)
    finally:
        launch.close()
