"""Paths of the ../shared assets the trained-model tests use; skip clearly when absent."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
ESPNETV2 = SHARED / 'models' / 'espnetv2_cityscapes_512x1024_logits.onnx'
DEEPLAB = SHARED / 'models' / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
CITYSCAPES = SHARED / 'data' / 'cityscapes'


def require(path: Path) -> Path:
    """Return ``path``, or skip the test saying which shared asset is missing."""
    if not path.exists():
        pytest.skip(f'missing asset: {path} (../shared beside the checkout; CI has it)')
    return path


def espnetv2_model() -> Path:
    """Return the trained ESPNetv2 Cityscapes logits model (MIT)."""
    return require(ESPNETV2)


def deeplab_model_path() -> Path:
    """Return the trained DeepLab MobileNet-EdgeTPU Cityscapes id-map model (Apache-2.0)."""
    return require(DEEPLAB)


def cityscapes_root() -> Path:
    """Return the three Cityscapes val frames with fine labels (tests/evaluation only)."""
    root = require(CITYSCAPES)
    require(root / 'leftImg8bit')
    require(root / 'gtFine')
    return root
