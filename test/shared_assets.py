"""Where the tests' model and video files come from, and how a missing one is reported.

The bundled demo assets (assets/: the Cityscapes DeepLab and the driving clip) are in every
clone: tests that need them use them and never skip. Only tests that need the extra assets of
``../shared`` (the random SegFormer, the trained logits model, Cityscapes frames) may skip, through
:func:`require_shared_asset`, whose reason starts with :data:`MISSING_SHARED_ASSET`; conftest
counts those skips, and fails the run when CI=true and ../shared exists (a lost asset must not
turn the suite green).
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('SEGFORMER_ROS_SHARED') or REPO.parent / 'shared')
BUNDLED_MODEL = REPO / 'assets' / 'models' / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
BUNDLED_VIDEO = REPO / 'assets' / 'data' / 'solidWhiteRight.mp4'
MISSING_SHARED_ASSET = 'missing shared asset'


def missing_shared_asset_reason(relative: str) -> str:
    """Skip reason for an absent ``../shared/<relative>`` (recognised by conftest)."""
    return f'{MISSING_SHARED_ASSET}: {relative} (not in {SHARED}; only CI and the team have it)'


def shared_asset(relative: str) -> Path:
    """Path of ``../shared/<relative>``, present or not."""
    return SHARED / relative


def require_shared_asset(relative: str) -> Path:
    """Return ``../shared/<relative>``, or skip the test with a missing-asset reason."""
    path = shared_asset(relative)
    if not path.exists():
        pytest.skip(missing_shared_asset_reason(relative))
    return path


def skip_unless_shared_asset(relative: str) -> pytest.MarkDecorator:
    """Mark form of :func:`require_shared_asset` (decided at collection)."""
    return pytest.mark.skipif(not shared_asset(relative).exists(),
                              reason=missing_shared_asset_reason(relative))
