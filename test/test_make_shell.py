"""`make shell`: the checkout's environment wins over ~/.bashrc, and every shell shares a domain.

Runs the shell's rcfile (tools/shell_rc.sh) in an interactive bash with a HOME whose .bashrc
does what pyenv or a sourced /opt/ros setup does: puts another `python` first on PATH and sets
its own ROS_DOMAIN_ID.
"""

import os
import re
import subprocess
from pathlib import Path
from typing import Dict

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get('SEGFORMER_ROS_VENV') or REPO / '.venv')
INSTALL = Path(os.environ.get('SEGFORMER_ROS_INSTALL') or REPO / '.build' / 'colcon' / 'install')
COMMANDS = ('echo "PY=$(command -v python)"; echo "DOM=$ROS_DOMAIN_ID"; '
            'python -c "import rclpy, segformer_ros.msg; print(\'IMPORTS=ok\')"; exit\n')


def _home_with_hostile_bashrc(tmp_path: Path) -> Path:
    home = tmp_path / 'home'
    shims = home / 'shims'
    shims.mkdir(parents=True, exist_ok=True)
    (shims / 'python').write_text('#!/bin/sh\necho "pyenv-like shim python" >&2\nexit 3\n')
    (shims / 'python').chmod(0o755)
    (home / '.bashrc').write_text(f'export PATH="{shims}:$PATH"\nexport ROS_DOMAIN_ID=7\n')
    return home


def _shell(tmp_path: Path, **extra: str) -> Dict[str, str]:
    env = {'HOME': str(_home_with_hostile_bashrc(tmp_path)), 'PATH': '/usr/bin:/bin',
           'SEGFORMER_ROS_VENV': str(VENV), 'SEGFORMER_ROS_INSTALL': str(INSTALL),
           'TERM': 'dumb', **extra}
    proc = subprocess.run(['bash', '--rcfile', str(REPO / 'tools' / 'shell_rc.sh'), '-i'],
                          input=COMMANDS, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    return dict(re.findall(r'^(PY|DOM|IMPORTS)=(.*)$', proc.stdout, re.M)) | {
        'stderr': proc.stderr}


def test_environment_wins_over_bashrc(tmp_path) -> None:
    got = _shell(tmp_path)
    assert got.get('PY') == str(VENV / 'bin' / 'python'), got
    assert got.get('IMPORTS') == 'ok', got


def test_every_shell_shares_the_documented_domain(tmp_path) -> None:
    assert _shell(tmp_path).get('DOM') == '101'
    assert _shell(tmp_path, SEGFORMER_ROS_SHELL_DOMAIN='33').get('DOM') == '33'


def test_make_shell_uses_the_rcfile_and_one_domain() -> None:
    makefile = (REPO / 'Makefile').read_text()
    recipe = makefile[makefile.index('\nshell: setup'):].split('\n\n')[0]
    assert 'bash --rcfile tools/shell_rc.sh -i' in recipe
    assert 'SEGFORMER_ROS_SHELL_DOMAIN="$${ROS_DOMAIN_ID:-$(SHELL_DOMAIN)}"' in recipe
    assert re.search(r'^SHELL_DOMAIN \?= 101$', makefile, re.M)
