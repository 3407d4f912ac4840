"""Shared fixtures; also confines every ROS participant of the test run to loopback."""

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

from benchmarks.processes import apply_profile_env, discovery_range, fastdds_profile
from segformer_ros.ros_compat import localhost_env
from shared_assets import (BUNDLED_MODEL, BUNDLED_VIDEO, MISSING_SHARED_ASSET, REPO,  # noqa: F401
                           SHARED, require_shared_asset)

# Before anything imports rclpy: loopback-only Fast DDS and a domain of this process's own.
# ROS_LOCALHOST_ONLY=1 only where ROS_DISTRO is humble (its rcl reads nothing else); the
# discovery range is benchmarks.processes.discovery_range's (Kilted: SYSTEM_DEFAULT, the
# loopback profile decides the transports; Fast DDS 2 distros: LOCALHOST).
os.environ.update(localhost_env(os.environ))
if 'ROS_LOCALHOST_ONLY' not in localhost_env(os.environ):
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = discovery_range()
os.environ['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
apply_profile_env(os.environ, fastdds_profile())  # type: ignore[arg-type]
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))

DEEPLAB = BUNDLED_MODEL
SEGFORMER_RANDOM_RELATIVE = 'models/segformer_b0_random_1024.onnx'
VIDEO = BUNDLED_VIDEO


@pytest.fixture(scope='session')
def deeplab_model() -> Path:
    """Return the bundled Cityscapes DeepLab ONNX model (in every clone: never skips)."""
    assert DEEPLAB.is_file(), f'bundled model {DEEPLAB} is missing from the checkout'
    return DEEPLAB


@pytest.fixture(scope='session')
def segformer_random_model() -> Path:
    """Return the shared SegFormer-B0 ONNX with random weights (skips when absent)."""
    return require_shared_asset(SEGFORMER_RANDOM_RELATIVE)


@pytest.fixture(scope='session')
def video_path() -> Path:
    """Return the bundled driving clip (in every clone: never skips)."""
    assert VIDEO.is_file(), f'bundled video {VIDEO} is missing from the checkout'
    return VIDEO


@pytest.fixture(scope='session')
def street_frames_bgr(video_path: Path) -> List[np.ndarray]:
    """Five real frames (BGR, 960x540) spread over the clip."""
    import cv2

    cap = cv2.VideoCapture(str(video_path))
    frames = []
    index = 0
    while len(frames) < 5:
        ok, frame = cap.read()
        if not ok:
            break
        if index % 40 == 0:
            frames.append(frame)
        index += 1
    cap.release()
    assert frames, 'could not decode the shared video'
    return frames


_domain_counter = [0]


@pytest.fixture
def ros_domain() -> int:
    """Pick a ROS domain id for one test, distinct from the other tests of this run."""
    _domain_counter[0] += 1
    return 1 + (os.getpid() * 7 + 13 * _domain_counter[0]) % 100


@pytest.fixture
def rclpy_context(ros_domain: int) -> Iterator[object]:
    """Yield an initialised rclpy context on the test's own domain, shut down afterwards."""
    pytest.importorskip('rclpy')
    from ros_helpers import ros_context

    with ros_context(ros_domain) as context:
        yield context


# ------------------------------------------- dead DDS participants' shared memory
# A node or camera process a test kills leaves its Fast DDS segment (~70 MB with our
# loopback profile) in /dev/shm, which is RAM; a day of runs had left 16 GB of 24
# (benchmarks/shm_clean.py). Zombies only: a live participant's files are never touched.
_shm_freed: Dict[str, Tuple[int, int]] = {}


def pytest_sessionstart(session: Any) -> None:
    """Free what dead Fast DDS participants of earlier runs left in /dev/shm."""
    from benchmarks.shm_clean import clean_zombies
    _shm_freed['before this run'] = clean_zombies()


# ------------------------------------------------- skip account and the CI asset guard
_skips: Dict[str, List[str]] = {}


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason[len('Skipped: '):] if reason.startswith('Skipped: ') else reason


def pytest_runtest_logreport(report: Any) -> None:
    """Record each skipped test under its reason."""
    if report.skipped and not hasattr(report, 'wasxfail'):
        _skips.setdefault(_skip_reason(report), []).append(report.nodeid)


def _asset_guard_active() -> bool:
    return os.environ.get('CI', '').lower() == 'true' and SHARED.is_dir()


def _missing_asset_skips() -> List[str]:
    return [test for reason, tests in _skips.items() if reason.startswith(MISSING_SHARED_ASSET)
            for test in tests]


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """In CI, where ../shared exists, a skip for a missing asset fails the run."""
    if _asset_guard_active() and _missing_asset_skips() and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """One line: how many tests skipped, by reason; and the CI asset guard's verdict."""
    from benchmarks.shm_clean import clean_zombies
    _shm_freed['left by this run'] = clean_zombies()
    freed = [f'{when} {files} files, {size / 1e6:.0f} MB'
             for when, (files, size) in _shm_freed.items()]
    terminalreporter.write_line('dead DDS participants\' shared memory freed: ' + ', '.join(freed))
    total = sum(len(tests) for tests in _skips.values())
    if not total:
        terminalreporter.write_line('skip account: no test skipped')
        return
    by_count = sorted(_skips.items(), key=lambda item: (-len(item[1]), item[0]))
    terminalreporter.write_line(f'skip account: {total} skipped: ' + ' | '.join(
        f'{len(tests)} x {reason}' for reason, tests in by_count))
    missing = _missing_asset_skips()
    if missing and _asset_guard_active():
        terminalreporter.write_line(
            f'FAILED (CI asset guard): {len(missing)} test(s) skipped for a missing asset '
            f'although {SHARED} exists: {missing[:5]}', red=True)
