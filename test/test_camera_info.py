"""Intrinsics follow the mask when it is published at another resolution."""

import numpy as np
import pytest

from segformer_ros.camera_info import scale_intrinsics


def _project(k, point):
    x, y, z = point
    return (k[0] * x / z + k[1] * y / z + k[2], k[4] * y / z + k[5])


def test_identity_and_half_size() -> None:
    k = [1000.0, 0.0, 959.5, 0.0, 1000.0, 539.5, 0.0, 0.0, 1.0]
    p = [1000.0, 0.0, 959.5, 0.0, 0.0, 1000.0, 539.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert scale_intrinsics(k, p, (1920, 1080), (1920, 1080)) == (k, p)
    k2, p2 = scale_intrinsics(k, p, (1920, 1080), (960, 540))
    assert k2[0] == 500.0 and k2[4] == 500.0
    # The optical centre stays the image centre: (959.5 + 0.5) / 2 - 0.5 = 479.5.
    assert k2[2] == 479.5 and k2[5] == 269.5
    assert p2[2] == 479.5 and p2[6] == 269.5


def test_projection_lands_on_the_scaled_pixel() -> None:
    k = [700.0, 0.0, 640.0, 0.0, 720.0, 360.0, 0.0, 0.0, 1.0]
    p = k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0]
    k2, _ = scale_intrinsics(k, p, (1280, 720), (513, 513))   # stretch: per axis
    for point in [(1.0, 0.5, 10.0), (-2.0, 1.0, 5.0)]:
        u, v = _project(k, point)
        u2, v2 = _project(k2, point)
        assert np.isclose(u2 + 0.5, (u + 0.5) * 513 / 1280)
        assert np.isclose(v2 + 0.5, (v + 0.5) * 513 / 720)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match='9 and P with 12'):
        scale_intrinsics([1.0] * 4, [0.0] * 12, (2, 2), (1, 1))
