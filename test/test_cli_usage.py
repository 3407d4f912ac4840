"""The executables' command lines as a user types them (issue 25, items 1 and 4).

Real processes (python -m, as the console scripts run them), real rclpy and DDS on loopback.
"""

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

pytest.importorskip('rclpy')

from benchmarks.processes import RosProcess, loopback_env, node_command  # noqa: E402
from shared_assets import BUNDLED_VIDEO  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]
IMAGE_SOURCE = [sys.executable, '-m', 'segformer_ros.image_source_main']
NODE = [sys.executable, '-m', 'segformer_ros.node_main']


def _run(cmd: List[str], domain: int, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=loopback_env(domain), cwd=str(REPO), capture_output=True,
                          text=True, timeout=timeout)


def test_image_source_takes_an_integer_rate(ros_domain) -> None:
    """The --help example's `rate_hz:=10` (an INTEGER to ROS) publishes and exits 0."""
    done = _run(IMAGE_SOURCE + ['--ros-args', '-p', f'source:={BUNDLED_VIDEO}', '-p',
                                'rate_hz:=50', '-p', 'max_frames:=3', '-r',
                                'image:=/camera/image_raw'], ros_domain)
    assert done.returncode == 0, done.stderr
    assert 'source finished after 3 frames' in done.stderr, done.stderr
    assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('args, needle', [
    (['-p', 'rate_hz:=fast'], 'rate_hz must be a number'),
    (['-p', 'rate_hz:=0'], 'rate_hz must be in 0.1..1000'),
    (['-p', 'width:=wide'], 'width'),
    (['-p', 'rate_hz'], 'rate_hz'),   # malformed --ros-args
])
def test_image_source_bad_usage_is_one_line_and_exit_2(ros_domain, args, needle) -> None:
    done = _run(IMAGE_SOURCE + ['--ros-args', '-p', f'source:={BUNDLED_VIDEO}'] + args,
                ros_domain)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert 'Traceback' not in done.stderr, done.stderr
    lines = [x for x in done.stderr.splitlines() if 'image_source: bad usage' in x]
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert '(see image_source --help)' in lines[0]


def test_node_bad_ros_args_is_one_line_and_exit_2(ros_domain, tmp_path) -> None:
    for args in (['-p', 'autostart'], ['--params-file', str(tmp_path / 'missing.yaml')]):
        done = _run(NODE + ['--ros-args'] + args, ros_domain)
        assert done.returncode == 2, (args, done.returncode, done.stderr)
        assert 'Traceback' not in done.stderr, done.stderr
        lines = [x for x in done.stderr.splitlines() if 'segformer_node: bad usage' in x]
        assert len(lines) == 1, done.stderr


def test_params_file_keyed_for_another_node_is_warned(ros_domain, tmp_path) -> None:
    """`segformer_node:` where the node is `segformer`: ROS ignores it silently; we warn."""
    wrong = tmp_path / 'wrong_key.yaml'
    wrong.write_text('segformer_node:\n  ros__parameters:\n    drivable_classes: [road]\n')
    right = tmp_path / 'right_key.yaml'
    right.write_text('segformer:\n  ros__parameters:\n    drivable_classes: [road]\n')
    proc = RosProcess(node_command([str(right), str(wrong)]), loopback_env(ros_domain),
                      tmp_path / 'node.log')
    try:
        assert proc.wait_for_log('has no entry for this node', 30.0), proc.log()
    finally:
        code = proc.stop()
    log = proc.log()
    warnings = [x for x in log.splitlines() if 'has no entry for this node' in x]
    assert len(warnings) == 1 and 'wrong_key.yaml' in warnings[0], log
    assert "'segformer'" in warnings[0] and "['segformer_node']" in warnings[0]
    assert '[WARN]' in warnings[0]
    assert code == 0, log


def test_a_late_ctrl_c_during_shutdown_is_absorbed_once() -> None:
    """A Ctrl-C raising late, inside the shutdown, is absorbed; the next one interrupts.

    The Ctrl-C that stopped spin() can raise there; a second one still forces the exit.
    """
    import os
    import signal
    import time

    from segformer_ros.cli import absorb_late_interrupt

    previous = signal.getsignal(signal.SIGINT)
    try:
        absorb_late_interrupt()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)   # the handler runs here: nothing raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGINT, previous)


def _integer_literal(default, low, high):
    """Return an integer in range near ``default`` (what a user types), or None."""
    import math

    low = -10**6 if low is None else math.ceil(low)
    high = 10**6 if high is None else math.floor(high)
    value = min(max(round(default), low), high)
    return value if low <= value <= high else None


def test_every_float_parameter_takes_an_integer_literal(rclpy_context, capfd) -> None:
    """`-p name:=10` / `-p name:=[0,0,0]` for each float parameter: accepted, read as floats."""
    from rclpy.parameter import Parameter

    from segformer_ros.node import SegformerNode
    from segformer_ros.node_parameters import read_all
    from segformer_ros.parameters import PARAMETERS, is_float_param

    args, expected = [], {}
    for p in PARAMETERS:
        if not is_float_param(p):
            continue
        if isinstance(p.default, list):
            value = [round(v) for v in p.default]
            args += ['-p', f'{p.name}:=[{", ".join(str(v) for v in value)}]']
        else:
            value = _integer_literal(p.default, p.min_value, p.max_value)
            if value is None:
                continue   # no integer in its range: nobody types one
            args += ['-p', f'{p.name}:={value}']
        expected[p.name] = value
    floats = [p.name for p in PARAMETERS if is_float_param(p)]
    assert len(floats) >= 15 and sorted(expected) == sorted(floats), expected   # each of them
    node = SegformerNode(context=rclpy_context, cli_args=['--ros-args'] + args)
    try:
        err = capfd.readouterr().err
        assert 'override rejected' not in err and 'Traceback' not in err, err
        values = read_all(node)
        for name, value in expected.items():
            got = values[name]
            assert got == value, (name, got, value)
            floats = got if isinstance(got, list) else [got]
            assert all(type(v) is float for v in floats), (name, got)
            # As ROS typed it (INTEGER / INTEGER_ARRAY): that is what used to be refused.
            assert node.get_parameter(name).type_ in (
                Parameter.Type.INTEGER, Parameter.Type.INTEGER_ARRAY), name
    finally:
        node.destroy_node()
