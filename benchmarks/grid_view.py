"""Bird's-eye pictures of a drivable occupancy grid (demo, docs/drivable_grid.md; no ROS)."""

from typing import Tuple

import numpy as np

# BGR colours of the cell values: free, boundary (occupied), unknown.
FREE_BGR = (170, 215, 170)
OCCUPIED_BGR = (40, 40, 230)
UNKNOWN_BGR = (70, 70, 70)


def birdseye(grid: np.ndarray, resolution: float, origin_xy: Tuple[float, float],
             height_px: int, camera_xy: Tuple[float, float] = (0.0, 0.0),
             ring_step_m: float = 10.0) -> np.ndarray:
    """Render an int8 (rows along y, columns along x) grid as a BGR picture, x forward = up.

    Left in the picture is +y (REP-103: y left), as seen from above behind the robot.
    Rings every ``ring_step_m`` metres around ``camera_xy`` give the scale.
    """
    import cv2

    grid = np.asarray(grid)
    top_down = grid.T[::-1, ::-1]              # rows: x far..near; columns: y left..right
    picture = np.empty(top_down.shape + (3,), np.uint8)
    picture[:] = UNKNOWN_BGR
    picture[top_down == 0] = FREE_BGR
    picture[top_down == 100] = OCCUPIED_BGR
    scale = height_px / top_down.shape[0]
    width_px = max(1, int(round(top_down.shape[1] * scale)))
    picture = cv2.resize(picture, (width_px, height_px), interpolation=cv2.INTER_NEAREST)

    def pixel(x: float, y: float) -> Tuple[int, int]:
        col = (grid.shape[0] - (y - origin_xy[1]) / resolution) * scale
        row = (grid.shape[1] - (x - origin_xy[0]) / resolution) * scale
        return int(round(col)), int(round(row))

    centre = pixel(*camera_xy)
    max_r = np.hypot(grid.shape[0], grid.shape[1]) * resolution
    r = ring_step_m
    while r <= max_r:
        cv2.circle(picture, centre, int(round(r / resolution * scale)), (200, 200, 200), 1,
                   cv2.LINE_AA)
        cv2.putText(picture, f'{r:g} m', (centre[0] + 4, centre[1] - int(r / resolution * scale)
                                          + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230),
                    1, cv2.LINE_AA)
        r += ring_step_m
    cv2.drawMarker(picture, centre, (255, 255, 0), cv2.MARKER_TRIANGLE_UP, 12, 2)
    return picture


def side_by_side(overlay_bgr: np.ndarray, grid_bgr: np.ndarray) -> np.ndarray:
    """Place the grid picture right of the overlay (same height), with a thin gap."""
    gap = np.full((overlay_bgr.shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([overlay_bgr, gap, grid_bgr], axis=1)
