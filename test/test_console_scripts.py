"""The console scripts of setup.py exist in the dev venv after `make setup` and answer --help.

Twice: from the `make shell` environment (PATH finds them), and from a bare environment
(only the launcher's own path; it sources tools/ros_env.sh itself). image_source also exits
non-zero with a clear message when its source is not set.
"""

import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get('SEGFORMER_ROS_VENV') or REPO / '.venv')
NAMES: List[str] = re.findall(r"'([\w.-]+)=[\w.]+:\w+'", (REPO / 'setup.py').read_text())


def test_readme_names_are_console_scripts() -> None:
    assert {'segformer-ros-eval', 'segformer-ros-selfcheck', 'segformer-ros-export',
            'segformer-ros-build-engine', 'image_source', 'segformer_node'} <= set(NAMES)


def _bare_env() -> Dict[str, str]:
    return {'PATH': '/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/tmp')}


@pytest.mark.parametrize('name', NAMES)
def test_help_from_the_make_shell_environment(name: str, tmp_path) -> None:
    proc = subprocess.run([name, '--help'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f'usage: {name}'), proc.stdout[:300]


@pytest.mark.parametrize('name', ['segformer-ros-eval', 'image_source'])
def test_help_from_a_bare_shell(name: str, tmp_path) -> None:
    proc = subprocess.run([str(VENV / 'bin' / name), '--help'], cwd=tmp_path, env=_bare_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f'usage: {name}'), proc.stdout[:300]


def test_image_source_without_source_fails_clearly(tmp_path) -> None:
    proc = subprocess.run(['image_source'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "parameter 'source' is not set: expected a video file or an image folder" in \
        proc.stdout + proc.stderr


def test_image_source_with_a_missing_file_exits_1(tmp_path) -> None:
    proc = subprocess.run(['image_source', '--ros-args', '-p',
                           f'source:={tmp_path / "nope.mp4"}'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'does not exist' in proc.stdout + proc.stderr
