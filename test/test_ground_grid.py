"""The drivable grid's geometry against closed-form ground projection, and its properties."""

import math
from typing import Iterable, Set, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segformer_ros.errors import ConfigError, ImageFormatError
from segformer_ros.ground_grid import (FREE, OCCUPIED, UNKNOWN, CameraModel, CameraPose,
                                       GridSpec, GroundProjection, MountingPose,
                                       banded_boundary, cell_index, drivable_lut,
                                       grid_settings_from_params, ground_points)
from segformer_ros.summary import free_space_boundary

W, H = 320, 240
FX = FY = 250.0
CX, CY = 159.5, 119.5
HEIGHT = 1.5
PITCH = math.radians(12.0)
GRID = GridSpec(resolution=0.1, width=200, height=200, origin_x=0.0, origin_y=-10.0,
                max_range=20.0)
ROAD, WALL = 0, 5
LUT = drivable_lut([ROAD])


def _camera(w: int = W, h: int = H) -> CameraModel:
    return CameraModel(w, h, (FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0))


def _closed_form(u: np.ndarray, v: np.ndarray, x0: float = 0.0, y0: float = 0.0,
                 yaw: float = 0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground point of image point (u, v) for a camera at height h pitched down by theta.

    Forward distance h / tan(theta + atan((v - cy) / fy)); lateral (left) distance
    -h * xn / (sin(theta) + yn cos(theta)); then yaw about the camera's foot and offset.
    """
    xn = (u - CX) / FX
    yn = (v - CY) / FY
    angle = PITCH + np.arctan(yn)
    below = angle > 1e-9
    with np.errstate(divide='ignore', invalid='ignore'):
        forward = np.where(below, HEIGHT / np.tan(angle), np.nan)
        left = np.where(below, -HEIGHT * xn / (math.sin(PITCH) + yn * math.cos(PITCH)),
                        np.nan)
    x = x0 + math.cos(yaw) * forward - math.sin(yaw) * left
    y = y0 + math.sin(yaw) * forward + math.cos(yaw) * left
    in_range = below & (np.hypot(forward, left) <= GRID.max_range)
    return x, y, in_range


def _cells(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> Set[int]:
    j = np.floor((x[ok] - GRID.origin_x) / GRID.resolution).astype(int)
    i = np.floor((y[ok] - GRID.origin_y) / GRID.resolution).astype(int)
    inside = (j >= 0) & (j < GRID.width) & (i >= 0) & (i < GRID.height)
    return set((i[inside] * GRID.width + j[inside]).tolist())


def _near_edge(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> Set[int]:
    """Cells next to a point that lies within 1e-6 m of a cell edge (either answer is right)."""
    out: Set[int] = set()
    for dx in (-1e-6, 1e-6):
        for dy in (-1e-6, 1e-6):
            out |= _cells(x + dx, y + dy, ok)
    return out - (_cells(x, y, ok) & _cells(x + 1e-6, y + 1e-6, ok)
                  & _cells(x - 1e-6, y - 1e-6, ok))


def _assert_same(actual: Iterable[int], expected: Set[int], ambiguous: Set[int]) -> None:
    diff = set(actual) ^ expected
    assert diff <= ambiguous, f'{len(diff - ambiguous)} cells differ, e.g. ' \
                              f'{sorted(diff - ambiguous)[:5]}'


def _where(grid: np.ndarray, value: int) -> Set[int]:
    return set(np.flatnonzero(grid.ravel() == value).tolist())


def _pixel_centres(rows: range) -> Tuple[np.ndarray, np.ndarray]:
    uu, vv = np.meshgrid(np.arange(W, dtype=float), np.asarray(list(rows), dtype=float))
    return uu.ravel(), vv.ravel()


def test_all_drivable_image_frees_exactly_its_ground_footprint() -> None:
    pose = MountingPose(z=HEIGHT, pitch=PITCH).camera_pose()
    projection = GroundProjection(_camera(), pose, GRID)
    grid = projection.occupancy(np.full((H, W), ROAD, np.uint8), LUT)
    u, v = _pixel_centres(range(H))
    x, y, ok = _closed_form(u, v)
    _assert_same(_where(grid, FREE), _cells(x, y, ok), _near_edge(x, y, ok))
    assert not _where(grid, OCCUPIED)   # the run fills every column: no contact
    # The horizon: rows above cy - fy tan(theta) see no ground and cost nothing to read.
    horizon = CY - FY * math.tan(PITCH)
    assert projection.row0 > horizon
    # Cells behind the camera, beyond the range, or outside the field of view are unknown.
    assert (grid[:, :5] == UNKNOWN).all()           # x < 0.5 m: below the lowest ray
    jj, ii = np.meshgrid(np.arange(GRID.width), np.arange(GRID.height))
    cx = GRID.origin_x + (jj + 0.5) * GRID.resolution
    cy = GRID.origin_y + (ii + 0.5) * GRID.resolution
    assert (grid[np.hypot(cx, cy) > GRID.max_range + 0.08] == UNKNOWN).all()
    # Azimuth of a ground point: atan(|xn| / (cos(theta) - yn sin(theta))), widest at the
    # bottom corners of the image.
    yn_bottom = (H - 0.5 - CY) / FY
    half_fov = math.atan(((W / 2) / FX) / (math.cos(PITCH) - yn_bottom * math.sin(PITCH)))
    assert (grid[np.abs(np.arctan2(cy, cx)) > half_fov + 0.05] == UNKNOWN).all()


@pytest.mark.parametrize('row', [H - 1, 200, 150, 130])
def test_boundary_row_maps_to_its_closed_form_distance(row: int) -> None:
    pose = MountingPose(z=HEIGHT, pitch=PITCH).camera_pose()
    projection = GroundProjection(_camera(), pose, GRID)
    mask = np.full((H, W), WALL, np.uint8)
    mask[row:] = ROAD
    grid = projection.occupancy(mask, LUT)
    # The wall's ground contact: the bottom edge of its lowest pixel, v = row - 0.5.
    edge = row - 0.5
    distance = HEIGHT / math.tan(PITCH + math.atan((edge - CY) / FY))
    centre_cell = (int(math.floor((0.0 - GRID.origin_y) / GRID.resolution)) * GRID.width
                   + int(math.floor(distance / GRID.resolution)))
    assert grid.ravel()[centre_cell] == OCCUPIED
    u = np.arange(W, dtype=float)
    x, y, ok = _closed_form(u, np.full(W, edge))
    occupied = _cells(x, y, ok)
    _assert_same(_where(grid, OCCUPIED), occupied, _near_edge(x, y, ok))
    uf, vf = _pixel_centres(range(row, H))
    xf, yf, okf = _closed_form(uf, vf)
    _assert_same(_where(grid, FREE), _cells(xf, yf, okf) - occupied,
                 _near_edge(xf, yf, okf) | _near_edge(x, y, ok))
    # Nothing beyond the wall is known.
    assert (grid[:, int(distance / GRID.resolution) + 2:] == UNKNOWN).all()


@pytest.mark.parametrize('x0, y0, yaw', [(0.0, 0.0, 0.3), (0.0, 1.37, 0.0),
                                         (0.73, -2.11, -0.45)])
def test_yaw_and_offsets_move_the_grid_as_expected(x0: float, y0: float, yaw: float) -> None:
    pose = MountingPose(x=x0, y=y0, z=HEIGHT, pitch=PITCH, yaw=yaw).camera_pose()
    projection = GroundProjection(_camera(), pose, GRID)
    row = 160
    mask = np.full((H, W), WALL, np.uint8)
    mask[row:] = ROAD
    grid = projection.occupancy(mask, LUT)
    x, y, ok = _closed_form(np.arange(W, dtype=float), np.full(W, row - 0.5), x0, y0, yaw)
    occupied = _cells(x, y, ok)
    assert occupied, 'the test pose must see the contact line'
    _assert_same(_where(grid, OCCUPIED), occupied, _near_edge(x, y, ok))
    uf, vf = _pixel_centres(range(row, H))
    xf, yf, okf = _closed_form(uf, vf, x0, y0, yaw)
    _assert_same(_where(grid, FREE), _cells(xf, yf, okf) - occupied,
                 _near_edge(xf, yf, okf) | _near_edge(x, y, ok))


def test_roi_excludes_a_hood_without_blocking_the_road() -> None:
    pose = MountingPose(z=HEIGHT, pitch=PITCH).camera_pose()
    hood = 200
    mask = np.full((H, W), ROAD, np.uint8)
    mask[hood:] = WALL          # the vehicle's own hood, not drivable
    roi = ((0.0, 0.0), (1.0, 0.0), (1.0, (hood - 1) / (H - 1)), (0.0, (hood - 1) / (H - 1)))
    blocked = GroundProjection(_camera(), pose, GRID).occupancy(mask, LUT)
    assert not _where(blocked, FREE), 'without the ROI the hood stops every column'
    grid = GroundProjection(_camera(), pose, GRID, roi).occupancy(mask, LUT)
    u, v = _pixel_centres(range(hood))
    x, y, ok = _closed_form(u, v)
    _assert_same(_where(grid, FREE), _cells(x, y, ok), _near_edge(x, y, ok))
    assert not _where(grid, OCCUPIED)


def test_mask_must_match_the_table() -> None:
    projection = GroundProjection(_camera(), MountingPose(z=1.0, pitch=0.2).camera_pose(), GRID)
    with pytest.raises(ImageFormatError, match='320x240 uint8 mask'):
        projection.occupancy(np.zeros((H, W + 1), np.uint8), LUT)
    with pytest.raises(ImageFormatError, match='one boundary row per mask column'):
        projection.grid_from_boundary(np.zeros(W - 1, np.int64))


def test_camera_looking_up_reaches_no_cell() -> None:
    projection = GroundProjection(_camera(), MountingPose(z=1.0, pitch=-1.0).camera_pose(),
                                  GRID)
    assert projection.empty
    grid = projection.occupancy(np.zeros((H, W), np.uint8), LUT)
    assert (grid == UNKNOWN).all()


def test_camera_info_scaling_and_distortion() -> None:
    import cv2

    k = [800.0, 0.0, 639.5, 0.0, 810.0, 359.5, 0.0, 0.0, 1.0]
    d = [-0.2, 0.05, 0.001, -0.002, 0.0]
    model = CameraModel.from_camera_info(k, d, 'plumb_bob', (1280, 720), (640, 360))
    assert model.k[0] == 400.0 and model.k[2] == 319.5 and model.k[5] == 179.5
    pose = MountingPose(x=0.2, y=-0.1, z=1.2, roll=0.02, pitch=0.25, yaw=0.1).camera_pose()
    u = np.array([10.0, 320.0, 600.0, 100.0])
    v = np.array([300.0, 350.0, 340.0, 200.0])
    x, y, hits = ground_points(model, pose, u, v)
    assert hits.all()
    r = pose.matrix()
    world = np.stack([x, y, np.zeros_like(x)], axis=1)
    optical = (world - np.array(pose.translation)) @ r      # R^T (p - t), row vectors
    back, _ = cv2.projectPoints(optical, np.zeros(3), np.zeros(3),
                                np.array(model.k).reshape(3, 3), np.array(d))
    assert np.allclose(back.reshape(-1, 2), np.stack([u, v], axis=1), atol=1e-3)
    fisheye = CameraModel.from_camera_info(k, [0.1, -0.02, 0.003, 0.0], 'equidistant',
                                           (1280, 720), (640, 360))
    x, y, hits = ground_points(fisheye, pose, u, v)
    optical = (np.stack([x, y, np.zeros_like(x)], axis=1) - np.array(pose.translation)) @ r
    back, _ = cv2.fisheye.projectPoints(optical.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                                        np.array(fisheye.k).reshape(3, 3),
                                        np.array([0.1, -0.02, 0.003, 0.0]))
    assert np.allclose(back.reshape(-1, 2), np.stack([u, v], axis=1), atol=1e-3)
    with pytest.raises(ImageFormatError, match='calibrated'):
        CameraModel.from_camera_info([0.0] * 9, [], '', (640, 480), (640, 480))
    with pytest.raises(ImageFormatError, match='distortion_model'):
        CameraModel.from_camera_info(k, [0.1], 'weird', (1280, 720), (640, 360))


def test_settings_from_parameters() -> None:
    settings_ = grid_settings_from_params({'grid_camera_z': 1.4, 'grid_camera_pitch': 0.2,
                                           'grid_frame': 'base_footprint'})
    assert settings_.mounting == MountingPose(z=1.4, pitch=0.2)
    assert settings_.frame == 'base_footprint' and settings_.grid == GridSpec()
    assert grid_settings_from_params({}).mounting is None   # z = 0: the pose comes from TF
    for bad, match in (({'grid_camera_z': -1.0}, 'height'), ({'grid_frame': ' '}, 'grid_frame'),
                       ({'grid_resolution': 0.0}, 'grid_resolution'),
                       ({'grid_width': 0}, 'grid size')):
        with pytest.raises(ConfigError, match=match):
            grid_settings_from_params(bad)


def test_quaternion_pose_equals_rpy_pose() -> None:
    # The REP-103 optical rotation as TF publishes it: q = (-0.5, 0.5, -0.5, 0.5).
    level = CameraPose.from_transform((0.0, 0.0, 1.0), (-0.5, 0.5, -0.5, 0.5))
    assert np.allclose(level.matrix(), MountingPose(z=1.0).camera_pose().matrix())


# ------------------------------------------------------------------ properties
_poses = st.builds(MountingPose,
                   x=st.floats(-3, 3), y=st.floats(-3, 3), z=st.floats(0.2, 4.0),
                   roll=st.floats(-0.3, 0.3), pitch=st.floats(-0.2, 1.2),
                   yaw=st.floats(-math.pi, math.pi))
_small_grid = GridSpec(resolution=0.25, width=60, height=50, origin_x=-5.0, origin_y=-6.0,
                       max_range=12.0)


def _reference(camera: CameraModel, pose: CameraPose, grid: GridSpec,
               boundary: np.ndarray) -> np.ndarray:
    """Apply the voting rule pixel by pixel: no table, no deduplication, no bands, no row0."""
    h, w = camera.height, camera.width
    out = np.full(grid.width * grid.height, UNKNOWN, np.int8)
    uu, vv = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
    cells = cell_index(grid, pose, *ground_points(camera, pose, uu, vv))
    free = (vv >= boundary[None, :]) & (cells >= 0)
    out[cells[free]] = FREE
    contact_u = np.arange(w, dtype=float)[boundary > 0]
    contact_v = boundary[boundary > 0] - 0.5
    contact = cell_index(grid, pose, *ground_points(camera, pose, contact_u, contact_v))
    out[contact[contact >= 0]] = OCCUPIED
    return out.reshape(grid.height, grid.width)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mounting=_poses, fx=st.floats(40, 200), cx=st.floats(10, 50), cy=st.floats(8, 40),
       seed=st.integers(0, 2**31 - 1), wall=st.floats(0.0, 1.0))
def test_fast_grid_equals_the_pixel_by_pixel_rule(mounting: MountingPose, fx: float, cx: float,
                                                  cy: float, seed: int, wall: float) -> None:
    w, h = 64, 48
    camera = CameraModel(w, h, (fx, 0.0, cx, 0.0, fx * 1.1, cy, 0.0, 0.0, 1.0))
    pose = mounting.camera_pose()
    rng = np.random.default_rng(seed)
    mask = np.where(rng.random((h, w)) < wall * 0.05, WALL, ROAD).astype(np.uint8)
    mask[: rng.integers(0, h)] = WALL
    projection = GroundProjection(camera, pose, _small_grid)
    grid = projection.occupancy(mask, LUT)
    boundary = free_space_boundary(mask == ROAD)
    assert np.array_equal(grid, _reference(camera, pose, _small_grid, boundary))
    # The GPU pipeline hands over the full-image boundary (same as the summary's): same grid.
    assert np.array_equal(projection.grid_from_boundary(boundary), grid)


@settings(max_examples=60, deadline=None)
@given(mounting=_poses, u=st.floats(0, 63), v=st.floats(0, 47))
def test_ground_points_project_back_to_their_pixel(mounting: MountingPose, u: float,
                                                   v: float) -> None:
    camera = CameraModel(64, 48, (50.0, 0.0, 31.5, 0.0, 55.0, 23.5, 0.0, 0.0, 1.0))
    pose = mounting.camera_pose()
    x, y, hit = ground_points(camera, pose, np.array([u]), np.array([v]))
    if not hit[0]:
        return
    optical = pose.matrix().T @ (np.array([x[0], y[0], 0.0]) - np.array(pose.translation))
    assert optical[2] > 0, 'the ground point must lie in front of the camera'
    assert math.isclose(50.0 * optical[0] / optical[2] + 31.5, u, abs_tol=1e-6)
    assert math.isclose(55.0 * optical[1] / optical[2] + 23.5, v, abs_tol=1e-6)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), bands=st.integers(1, 8), width=st.integers(1, 40),
       density=st.floats(0.0, 0.3))
def test_banded_boundary_equals_the_summary_boundary(seed: int, bands: int, width: int,
                                                     density: float) -> None:
    rng = np.random.default_rng(seed)
    passable = rng.random((bands * 16, width)) >= density
    assert np.array_equal(banded_boundary(passable), free_space_boundary(passable))
