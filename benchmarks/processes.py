"""Start and stop the package's ROS processes on loopback-only DDS (demo, benchmarks, tests).

Every process gets the Fast DDS loopback profile (which alone sets the transports:
ROS_AUTOMATIC_DISCOVERY_RANGE by distro, see discovery_range) and the domain id chosen
by the caller, so runs never leave this host and never see each other.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence

import yaml

from segformer_ros.ros_compat import localhost_env

REPO_ROOT = Path(__file__).resolve().parents[1]


# Distributions that ship Fast DDS 2.x, whose XML spells the writer-timing tags in
# camelCase; Fast DDS 3 (Kilted on) rejects those and 2.x rejects the 3.x spelling.
FASTDDS2_DISTROS = ('humble', 'iron', 'jazzy')


def fastdds_profile_name(ros_distro: Optional[str] = None) -> str:
    """Name the loopback profile file for ``ros_distro`` (default: $ROS_DISTRO)."""
    distro = os.environ.get('ROS_DISTRO', '') if ros_distro is None else ros_distro
    if distro.lower() in FASTDDS2_DISTROS:
        return 'fastdds_loopback_fastdds2.xml'
    return 'fastdds_loopback.xml'


def fastdds_profile(ros_distro: Optional[str] = None) -> Path:
    """Locate the loopback Fast DDS profile (source tree, else the installed share dir)."""
    name = fastdds_profile_name(ros_distro)
    candidate = REPO_ROOT / 'config' / name
    if candidate.is_file():
        return candidate
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('segformer_ros')) / 'config' / name


# The environment variable naming the default XML profile file: Fast DDS 3 reads
# FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2 (Humble 2.6, Jazzy 2.14) only
# FASTRTPS_DEFAULT_PROFILES_FILE (renamed in 3.0; Kilted's rmw_fastrtps still reads the old name
# but logs a deprecation warning in every process, so it is set only for Fast DDS 2).
# With only the 3.x name, a Jazzy process silently ran on Fast DDS's built-in transports, whose
# 512 KB shared-memory segment loses best-effort frames above ~0.5 MB (issue 21: the "silent
# node" on Jazzy; test_dds_profile.py sends such a frame across processes).
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


def profile_env(profile: Path, ros_distro: Optional[str] = None) -> Dict[str, str]:
    """Variables that make the distro's Fast DDS load ``profile`` ('' = unset that one)."""
    distro = os.environ.get('ROS_DISTRO', '') if ros_distro is None else ros_distro
    fastdds2 = distro.lower() in FASTDDS2_DISTROS
    return {'FASTDDS_DEFAULT_PROFILES_FILE': str(profile),
            'FASTRTPS_DEFAULT_PROFILES_FILE': str(profile) if fastdds2 else ''}


def apply_profile_env(env: Dict[str, str], profile: Path,
                      ros_distro: Optional[str] = None) -> None:
    """Set (or remove) the profile variables of ``profile_env`` in ``env`` (in place)."""
    for name, value in profile_env(profile, ros_distro).items():
        if value:
            env[name] = value
        else:
            env.pop(name, None)


def pick_domain_id(offset: int = 0) -> int:
    """Pick a domain id for this process (1..100), distinct between concurrent processes."""
    return 1 + (os.getpid() * 7 + offset) % 100


# SYSTEM_DEFAULT on every distro, so rmw_fastrtps takes the transports from the profile as they
# are and every socket binds 127.0.0.1. With LOCALHOST, rmw_fastrtps (Jazzy and Kilted) adds a
# UDP transport of its own (and, on Jazzy, a default 512 KB shared-memory one) next to the
# profile's, and every process then also binds a socket on 0.0.0.0 and one on the machine's
# address (measured with rclpy Kilted 9.1 and Jazzy 7.1.6; traffic still went to 127.0.0.1
# only). Jazzy used LOCALHOST until issue 21: its sockets seemed to bind 0.0.0.0 whatever the
# profile said, because Fast DDS 2 never loaded the profile (see PROFILE_VARIABLES).
# Humble's rcl reads ROS_LOCALHOST_ONLY instead (segformer_ros.ros_compat.localhost_env).
# test_dds_profile.py checks the sockets a real process binds.
DISCOVERY_RANGE = 'SYSTEM_DEFAULT'


def discovery_range(ros_distro: Optional[str] = None) -> str:
    """ROS_AUTOMATIC_DISCOVERY_RANGE for ``ros_distro`` (the same on every distro; see above)."""
    return DISCOVERY_RANGE


def loopback_env(domain_id: int, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Environment for a child ROS process confined to loopback on ``domain_id``."""
    # The profile (both variable names), SYSTEM_DEFAULT, ROS_LOCALHOST_ONLY=1 only on Humble.
    env = localhost_env(os.environ if base is None else base)
    apply_profile_env(env, fastdds_profile(env.get('ROS_DISTRO', '')), env.get('ROS_DISTRO', ''))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = discovery_range(env.get('ROS_DISTRO', ''))
    env['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def confine_this_process(domain_id: int) -> None:
    """Apply the loopback settings to this process (before rclpy.init)."""
    env = loopback_env(domain_id)
    os.environ.update({k: v for k, v in env.items()
                       if k in (*PROFILE_VARIABLES, 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                'ROS_LOCALHOST_ONLY', 'RMW_IMPLEMENTATION', 'ROS_DOMAIN_ID')})
    for name in ('ROS_LOCALHOST_ONLY', *PROFILE_VARIABLES):
        if name not in env:
            os.environ.pop(name, None)


def params_file(values: Mapping[str, Any], directory: Optional[str] = None) -> str:
    """Write ``values`` as a params file applying to any node name; return its path."""
    fd, path = tempfile.mkstemp(prefix='segformer_params_', suffix='.yaml', dir=directory)
    with os.fdopen(fd, 'w') as f:
        yaml.safe_dump({'/**': {'ros__parameters': dict(values)}}, f)
    return path


def node_command(params_files: Sequence[str] = (), remaps: Mapping[str, str] = {},
                 name: str = 'segformer', namespace: str = '') -> List[str]:
    """Command line of the segformer node with params files and remappings."""
    cmd = [sys.executable, '-m', 'segformer_ros.node_main', '--ros-args', '-r', f'__node:={name}']
    if namespace:
        cmd += ['-r', f'__ns:={namespace}']
    for path in params_files:
        cmd += ['--params-file', str(path)]
    for src, dst in remaps.items():
        cmd += ['-r', f'{src}:={dst}']
    return cmd


def image_source_command(source: str, topic: str = '/camera/image_raw', rate_hz: float = 30.0,
                         encoding: str = 'rgb8', width: int = 0, height: int = 0,
                         max_frames: int = 0, loop: bool = False, frame_id: str = 'camera',
                         wait_for_subscribers: int = 1) -> List[str]:
    """Command line of the image_source node."""
    params = {'source': source, 'rate_hz': float(rate_hz), 'encoding': encoding,
              'width': int(width), 'height': int(height), 'max_frames': int(max_frames),
              'loop': bool(loop), 'frame_id': frame_id,
              'wait_for_subscribers': int(wait_for_subscribers)}
    cmd = [sys.executable, '-m', 'segformer_ros.image_source_main', '--ros-args',
           '-r', f'image:={topic}']
    for key, value in params.items():
        cmd += ['-p', f'{key}:={_param_literal(value)}']
    return cmd


def _param_literal(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return yaml.safe_dump(value, default_style="'").strip()
    return str(value)


class RosProcess:
    """A child process with its log in a file; stopped with SIGINT like Ctrl-C."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], log_path: Path,
                 cwd: Optional[Path] = None) -> None:
        self.cmd = list(cmd)
        self.log_path = Path(log_path)
        self._log: IO[bytes] = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(self.cmd, env=dict(env), stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=str(cwd or REPO_ROOT))

    @property
    def pid(self) -> int:
        """Process id."""
        return self.proc.pid

    def running(self) -> bool:
        """Tell whether the process is still running."""
        return self.proc.poll() is None

    def wait(self, timeout_s: float) -> Optional[int]:
        """Wait for exit; the return code, or None when still running after the timeout."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT, then SIGKILL after ``timeout_s``; return the exit code.

        Before the kill, SIGUSR1: the node (node_main) prints its threads' stacks into the
        log, so a shutdown that hangs says where.
        """
        if self.running():
            self.proc.send_signal(signal.SIGINT)
            if self.wait(timeout_s) is None:
                self.proc.send_signal(signal.SIGUSR1)
                self.wait(1.0)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        """Everything the process printed so far (also after stop())."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def wait_for_log(self, text: str, timeout_s: float) -> bool:
        """Poll the log until ``text`` appears (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.running():
                return text in self.log()
            time.sleep(0.1)
        return False
