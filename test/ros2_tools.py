"""The user's own ROS 2 commands in tests: ``ros2 <verb> ...`` and ``ros2 launch``.

They come from a real ROS 2 installation where one is sourced, else from the sources in
``../shared/ros-src`` that ``make setup`` builds into the venv and the colcon install
(tools/setup_ros_tools.sh). Where neither provides them, tests skip with a
``missing shared asset: ros-src ...`` reason: counted by the skip account, and a failure
in CI when ../shared exists (conftest's asset guard).
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import pytest

from benchmarks.processes import loopback_env
from shared_assets import MISSING_SHARED_ASSET, SHARED

#: What `ros2 launch` and the CLI verbs need; tf2_ros for the grid's TF pose.
CLI_MODULES = ('ros2cli', 'ros2launch', 'launch', 'launch_ros', 'ros2lifecycle', 'ros2param',
               'ros2topic', 'ros2run')


def missing_ros_tools_reason(*modules: str) -> Optional[str]:
    """Skip reason when ``modules`` (or the ``ros2`` command) are missing, else None."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if shutil.which('ros2') is None:
        missing.append('the ros2 command')
    if not missing:
        return None
    return (f'{MISSING_SHARED_ASSET}: ros-src ({", ".join(missing)} not found; make setup '
            f'builds them from {SHARED}/ros-src, or source a ROS 2 installation)')


def require_ros_tools(*modules: str) -> None:
    """Skip the test (with a reason the CI asset guard counts) unless ``modules`` import."""
    reason = missing_ros_tools_reason(*(modules or CLI_MODULES))
    if reason:
        pytest.skip(reason)


def ros2_env(domain: int) -> Dict[str, str]:
    """Environment of a ``ros2`` command: loopback DDS on ``domain``, unbuffered output."""
    return loopback_env(domain)


def ros2(args: Sequence[str], domain: int, timeout: float = 60.0,
         cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Run ``ros2 <args>`` to its end; stdout and stderr together in ``.stdout``."""
    return subprocess.run(['ros2', *args], env=ros2_env(domain), cwd=cwd, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# What a verb prints while its graph view has not yet discovered the node or topic.
NOT_DISCOVERED = ('Node not found', 'does not appear to be published yet',
                  'Could not determine the type', 'Unable to find node')


def ros2_until_discovered(args: Sequence[str], domain: int,
                          timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``ros2 <args>``, again while it says it has not discovered its target yet.

    A fresh ``--no-daemon`` verb sees the graph after 0.5 s of discovery, and a new daemon
    only once it has discovered it: "Node not found" then says nothing about the node.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = ros2(args, domain)
        if not any(text in result.stdout for text in NOT_DISCOVERED) \
                or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def daemon_pids(domain: int) -> List[int]:
    """Return the pids of ros2 CLI daemons on ``domain``.

    A verb run without ``--no-daemon`` starts one, detached, and it lives on after the test:
    the tests pass ``--no-daemon`` and check that none was left.
    """
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f'/proc/{entry}/cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if b'ros2cli.daemon' in b' '.join(cmd) and f'{domain}'.encode() in cmd:
            pids.append(int(entry))
    return pids


@contextmanager
def ros2_daemon(domain: int) -> Iterator[None]:
    """Run the ros2 daemon of ``domain`` (as users have it); stop it, and check it is gone."""
    started = ros2(['daemon', 'start'], domain).stdout
    assert daemon_pids(domain), started
    try:
        yield
    finally:
        stopped = ros2(['daemon', 'stop'], domain).stdout
        deadline = time.monotonic() + 10.0
        while daemon_pids(domain) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = daemon_pids(domain)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f'ros2 daemon stop left the daemon running: {stopped}'


def session_pids(sid: int) -> List[int]:
    """Return the pids of the live processes of session ``sid`` (a command and all it started)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) == sid and not _is_zombie(int(entry)):
                pids.append(int(entry))
        except (ProcessLookupError, PermissionError):
            continue
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return True
    return stat[stat.rindex(')') + 2] == 'Z'


class Ros2Process:
    """A long-running ``ros2 ...`` (launch, run, topic hz) in a session of its own.

    Its own session, like a command started in a terminal: :meth:`interrupt` is Ctrl-C
    (SIGINT to the whole process group), and :meth:`leftovers` finds any process it
    started that is still alive.
    """

    def __init__(self, args: Sequence[str], domain: int, log_path: Path,
                 cwd: Optional[Path] = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.proc = subprocess.Popen(['ros2', *self.args], env=ros2_env(domain), cwd=cwd,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.sid = self.proc.pid

    def output(self) -> str:
        """Return everything the command printed so far."""
        return self.log_path.read_text(errors='replace')

    def wait_for_output(self, predicate: Callable[[str], bool], timeout: float) -> bool:
        """Wait until ``predicate(output)`` holds (False on timeout or an early exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.output()):
                return True
            if self.proc.poll() is not None:
                return predicate(self.output())
            time.sleep(0.1)
        return False

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the process group (the command and what it started)."""
        try:
            os.killpg(self.sid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def leftovers(self) -> List[int]:
        """Return the processes of this command's session still alive (itself included)."""
        return session_pids(self.sid)

    def close(self) -> None:
        """Kill whatever is left (a failed test must not leave processes behind)."""
        if self.proc.poll() is None or self.leftovers():
            try:
                os.killpg(self.sid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
