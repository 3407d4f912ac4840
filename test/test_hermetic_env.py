"""One install's environment never carries another's (issue 21).

With the Kilted environment sourced and then the Jazzy one (``make shell`` then
``make test-jazzy``), a Python 3.11 build of the generated messages was loaded into the
3.12 Jazzy process and aborted it inside the interpreter. tools/ros_env.sh drops other
installs' paths; segformer_ros refuses to import with another Python's build merged in.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared_assets import REPO

OTHER_PYTHON = '3.9'   # never one this project runs on, so always "another Python"


def test_a_build_for_another_python_on_the_path_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / 'install' / 'lib' / f'python{OTHER_PYTHON}' / 'site-packages'
    (foreign / 'segformer_ros').mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=f'{REPO}:{foreign}')
    done = subprocess.run([sys.executable, '-c', 'import segformer_ros'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert 'ImportError: segformer_ros: expected only builds for Python' in done.stderr
    assert str(foreign / 'segformer_ros') in done.stderr and 'Fix:' in done.stderr
    # Without the foreign directory the same import works.
    ok = subprocess.run([sys.executable, '-c', 'import segformer_ros'],
                        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


def _source(script: str, env: dict) -> dict:
    """Run ``script`` (sourcing ros_env.sh) in bash; return the resulting environment."""
    done = subprocess.run(['bash', '-c', f'{script} > /dev/null && env -0'], env=env,
                          capture_output=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr.decode(errors='replace')
    pairs = [item.split('=', 1) for item in done.stdout.decode().split('\0') if '=' in item]
    result = {k: v for k, v in pairs}
    result['__stderr__'] = done.stderr.decode(errors='replace')
    return result


def test_ros_env_drops_other_installs_paths(tmp_path: Path) -> None:
    if not (REPO / '.venv' / 'bin' / 'python').exists():
        pytest.skip('no .venv: run make setup')
    foreign_site = f'{tmp_path}/ws/lib/python{OTHER_PYTHON}/site-packages'
    env = {'PATH': '/opt/ros/humble/bin:/usr/local/bin:/usr/bin:/bin',
           'HOME': os.environ.get('HOME', '/root'),
           'PYTHONPATH': f'/opt/ros/humble/lib/python3.10/site-packages:{foreign_site}:'
                         f'{tmp_path}/mine',
           'LD_LIBRARY_PATH': f'/opt/ros/humble/lib:{tmp_path}/mylib',
           'AMENT_PREFIX_PATH': '/opt/ros/humble', 'ROS_VERSION': '2',
           'ROS_PYTHON_VERSION': '3', 'COLCON_PREFIX_PATH': f'{tmp_path}/ws'}
    out = _source('source tools/ros_env.sh', env)
    joined = ':'.join(out.get(k, '') for k in
                      ('PYTHONPATH', 'LD_LIBRARY_PATH', 'AMENT_PREFIX_PATH', 'PATH'))
    assert '/opt/ros/' not in joined and f'python{OTHER_PYTHON}' not in joined, joined
    # The user's own entries stay; ours come first.
    assert f'{tmp_path}/mine' in out['PYTHONPATH'].split(':')
    assert f'{tmp_path}/mylib' in out['LD_LIBRARY_PATH'].split(':')
    assert out['PYTHONPATH'].split(':')[0] == str(REPO)
    assert 'ROS_VERSION' not in out and 'COLCON_PREFIX_PATH' not in out
    assert 'dropped' in out['__stderr__'] and 'another ROS / Python install' in out['__stderr__']


def test_kilted_then_jazzy_environment_keeps_only_jazzys_python() -> None:
    """``make shell`` (Kilted, Python 3.11) then the Jazzy leg (3.12) in the same shell."""
    kilted, jazzy = REPO / '.venv' / 'bin' / 'python', REPO / '.venv-jazzy' / 'bin' / 'python'
    if not (kilted.exists() and jazzy.exists()):
        pytest.skip('needs both .venv (make setup) and .venv-jazzy (make test-jazzy builds it; '
                    'the Jazzy leg runs this test)')
    version = subprocess.run([str(jazzy), '-c', 'import sys; print("%d.%d" % '
                              'sys.version_info[:2])'], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    kilted_version = subprocess.run([str(kilted), '-c', 'import sys; print("%d.%d" % '
                                     'sys.version_info[:2])'], capture_output=True, text=True,
                                    timeout=60).stdout.strip()
    env = {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/root')}
    out = _source('source tools/ros_env.sh && '
                  'export SEGFORMER_ROS_DISTRO=jazzy '
                  f'SEGFORMER_ROS_VENV={REPO}/.venv-jazzy '
                  f'SEGFORMER_ROS_INSTALL={REPO}/.build/jazzy/colcon/install && '
                  'source tools/ros_env.sh', env)
    for name in ('PYTHONPATH', 'LD_LIBRARY_PATH', 'AMENT_PREFIX_PATH', 'PATH'):
        entries = out.get(name, '').split(':')
        assert not [e for e in entries if e.startswith(f'{REPO}/.venv/')
                    or e == f'{REPO}/.venv/bin' or e.startswith(f'{REPO}/.build/colcon/')], \
            (name, entries)
        if kilted_version != version:
            assert not [e for e in entries if f'python{kilted_version}/' in e + '/'], \
                (name, entries)
    assert out['ROS_DISTRO'] == 'jazzy'
    assert out['FASTRTPS_DEFAULT_PROFILES_FILE'].endswith('fastdds_loopback_fastdds2.xml')
    # And the Jazzy interpreter imports our messages from the Jazzy build only.
    done = subprocess.run([f'{REPO}/.venv-jazzy/bin/python', '-c',
                           'import segformer_ros, segformer_ros.msg; '
                           'print(segformer_ros.msg.__file__)'],
                          env={k: v for k, v in out.items() if k != '__stderr__'},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '/.build/jazzy/' in done.stdout, done.stdout
