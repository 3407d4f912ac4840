"""The skip account `make test` prints, and the CI guard against skips for a missing asset.

Runs pytest in a subprocess on a throw-away test file with this suite's conftest as a plugin.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

HERE = Path(__file__).resolve().parent

TESTS = '''
import pytest
from shared_assets import require_shared_asset

def test_needs_an_extra_asset():
    require_shared_asset('models/not_there.onnx')

def test_needs_an_extra_asset_by_path():
    from shared_assets import SHARED, require
    require(SHARED / 'models' / 'gone.onnx')

@pytest.mark.skipif(True, reason='TensorRT is not installed here')
def test_needs_tensorrt():
    pass

def test_runs():
    assert True
'''


def _run(tmp_path: Path, **env_changes: str) -> Tuple[int, str]:
    (tmp_path / 'test_probe.py').write_text(TESTS)
    env: Dict[str, str] = dict(os.environ)
    env.pop('CI', None)
    env.update(env_changes)
    env['PYTHONPATH'] = os.pathsep.join([str(HERE), env.get('PYTHONPATH', '')])
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           '-p', 'conftest', '--rootdir', str(tmp_path), '-c', os.devnull,
                           str(tmp_path / 'test_probe.py')],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_account_lists_skips_by_reason(tmp_path) -> None:
    shared = tmp_path / 'shared'
    code, out = _run(tmp_path, SEGFORMER_ROS_SHARED=str(shared))
    assert code == 0, out
    (line,) = [ln for ln in out.splitlines() if ln.startswith('skip account:')]
    assert line.startswith('skip account: 3 skipped: '), line
    assert '1 x missing shared asset: models/not_there.onnx' in line
    assert '1 x missing shared asset: models/gone.onnx' in line
    assert '1 x TensorRT is not installed here' in line


def test_ci_fails_on_a_missing_asset_skip_when_shared_exists(tmp_path) -> None:
    shared = tmp_path / 'shared'
    shared.mkdir()
    code, out = _run(tmp_path, CI='true', SEGFORMER_ROS_SHARED=str(shared))
    assert code == 1, out
    assert 'FAILED (CI asset guard): 2 test(s) skipped for a missing asset' in out
    assert 'test_needs_an_extra_asset' in out


def test_ci_without_shared_does_not_fail_on_asset_skips(tmp_path) -> None:
    code, out = _run(tmp_path, CI='true', SEGFORMER_ROS_SHARED=str(tmp_path / 'absent'))
    assert code == 0, out


ROS_TOOLS_PROBE = '''
from ros2_tools import require_ros_tools

def test_needs_ros2_launch():
    require_ros_tools('no_such_ros_tool_module')
'''


def test_missing_ros_tools_are_a_missing_shared_asset(tmp_path) -> None:
    """A skip for want of ros2 / launch_ros / tf2_ros (../shared/ros-src) counts as an asset.

    It shows in the skip account, and fails CI where ../shared exists.
    """
    (tmp_path / 'test_ros_probe.py').write_text(ROS_TOOLS_PROBE)

    def run(**env_changes: str) -> Tuple[int, str]:
        env: Dict[str, str] = dict(os.environ)
        env.pop('CI', None)
        env.update(env_changes)
        env['PYTHONPATH'] = os.pathsep.join([str(HERE), str(HERE.parent),
                                             env.get('PYTHONPATH', '')])
        proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                               '-p', 'conftest', '--rootdir', str(tmp_path), '-c', os.devnull,
                               str(tmp_path / 'test_ros_probe.py')],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = run(SEGFORMER_ROS_SHARED=str(tmp_path / 'absent'))
    assert code == 0, out
    (line,) = [ln for ln in out.splitlines() if ln.startswith('skip account:')]
    assert '1 x missing shared asset: ros-src (no_such_ros_tool_module not found' in line, line
    (tmp_path / 'shared').mkdir()
    code, out = run(CI='true', SEGFORMER_ROS_SHARED=str(tmp_path / 'shared'))
    assert code == 1, out
    assert 'FAILED (CI asset guard): 1 test(s) skipped for a missing asset' in out, out
