"""Shared fixtures; also confines every ROS participant of the test run to loopback."""

import os
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest

from segformer_ros.ros_compat import localhost_env
from segformer_ros.tools.processes import fastdds_profile

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'

# Before anything imports rclpy: loopback-only Fast DDS and a domain of this process's own.
# (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; ROS_LOCALHOST_ONLY=1 only where ROS_DISTRO is humble.)
os.environ.update(localhost_env(os.environ))
if 'ROS_LOCALHOST_ONLY' not in localhost_env(os.environ):
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
os.environ['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(fastdds_profile())
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))

DEEPLAB = SHARED / 'models' / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
SEGFORMER_RANDOM = SHARED / 'models' / 'segformer_b0_random_1024.onnx'
VIDEO = SHARED / 'data' / 'solidWhiteRight.mp4'


@pytest.fixture(scope='session')
def deeplab_model() -> Path:
    """Return the shared real Cityscapes DeepLab ONNX model (skips when absent)."""
    if not DEEPLAB.is_file():
        pytest.skip(f'{DEEPLAB} not found (../shared beside the repo)')
    return DEEPLAB


@pytest.fixture(scope='session')
def segformer_random_model() -> Path:
    """Return the shared SegFormer-B0 ONNX with random weights (skips when absent)."""
    if not SEGFORMER_RANDOM.is_file():
        pytest.skip(f'{SEGFORMER_RANDOM} not found')
    return SEGFORMER_RANDOM


@pytest.fixture(scope='session')
def video_path() -> Path:
    """Return the shared driving clip (skips when absent)."""
    if not VIDEO.is_file():
        pytest.skip(f'{VIDEO} not found')
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
