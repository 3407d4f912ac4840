"""Camera intrinsics for the published mask's geometry (no ROS here).

Planners that project the mask onto the ground need the intrinsics of the image the mask
is in. At input resolution that is the camera's own; at model resolution the mask is the
frame scaled (stretch: per axis; letterbox: uniformly, padding removed), so the pinhole
parameters scale with it. Pixel centres follow the package's convention
(``u' + 0.5 = (u + 0.5) * s``), as ROS image_proc's resize does.
"""

from typing import List, Sequence, Tuple


def scale_intrinsics(k: Sequence[float], p: Sequence[float], from_wh: Tuple[int, int],
                     to_wh: Tuple[int, int]) -> Tuple[List[float], List[float]]:
    """Scale a 3x3 K and a 3x4 P (row-major, as in sensor_msgs/CameraInfo) to a new size."""
    if len(k) != 9 or len(p) != 12:
        raise ValueError(f'expected K with 9 and P with 12 values, got {len(k)} and {len(p)}')
    if min(from_wh) <= 0 or min(to_wh) <= 0:
        raise ValueError(f'expected positive sizes, got {from_wh} -> {to_wh}')
    sx = to_wh[0] / from_wh[0]
    sy = to_wh[1] / from_wh[1]
    k2 = [float(v) for v in k]
    k2[0] *= sx                              # fx
    k2[1] *= sx                              # skew
    k2[2] = (k2[2] + 0.5) * sx - 0.5         # cx
    k2[4] *= sy                              # fy
    k2[5] = (k2[5] + 0.5) * sy - 0.5         # cy
    p2 = [float(v) for v in p]
    p2[0] *= sx
    p2[1] *= sx
    p2[2] = (p2[2] + 0.5) * sx - 0.5
    p2[3] *= sx                              # Tx = -fx' * baseline scales with fx
    p2[5] *= sy
    p2[6] = (p2[6] + 0.5) * sy - 0.5
    p2[7] *= sy
    return k2, p2
