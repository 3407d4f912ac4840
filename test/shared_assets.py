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


# ---- the API of issue 12's tests (test_espnetv2, test_eval_cityscapes, test_nav2_contract)
ESPNETV2 = shared_asset('models/espnetv2_cityscapes_512x1024_logits.onnx')
DEEPLAB = BUNDLED_MODEL
CITYSCAPES = shared_asset('data/cityscapes')


def require(path: Path) -> Path:
    """Return ``path`` (inside ../shared), or skip with a missing-asset reason conftest counts."""
    if not path.exists():
        try:
            relative = str(path.relative_to(SHARED))
        except ValueError:
            relative = str(path)
        pytest.skip(missing_shared_asset_reason(relative))
    return path


def espnetv2_model() -> Path:
    """Return the trained ESPNetv2 Cityscapes logits model (MIT; ../shared only)."""
    return require(ESPNETV2)


def deeplab_model_path() -> Path:
    """Return the DeepLab MobileNet-EdgeTPU Cityscapes id-map model: bundled, never skips."""
    assert DEEPLAB.is_file(), f'bundled model {DEEPLAB} is missing from the checkout'
    return DEEPLAB


def cityscapes_root() -> Path:
    """Return the three Cityscapes val frames with fine labels (tests/evaluation only)."""
    root = require(CITYSCAPES)
    require(root / 'leftImg8bit')
    require(root / 'gtFine')
    return root
