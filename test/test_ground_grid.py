"""The drivable grid's geometry against closed-form ground projection, and its properties."""

import math
from typing import Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segformer_ros.errors import ConfigError, ImageFormatError
from segformer_ros.ground_grid import (FREE, OCCUPIED, UNKNOWN, CameraModel, CameraPose,
                                       GridSpec, GroundProjection, MountingPose,
                                       banded_boundary, contact_samples, drivable_lut,
                                       free_samples, grid_settings_from_params,
                                       ground_points)
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


def _image_coords(gx: np.ndarray, gy: np.ndarray, x0: float = 0.0, y0: float = 0.0,
                  yaw: float = 0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project ground points to the image: camera at (x0, y0, h), pitched down by theta.

    In the camera's yawed frame a ground point lies ``f`` ahead and ``l`` left; its optical
    coordinates are x = -l, y = h cos(theta) - f sin(theta), z = f cos(theta) + h sin(theta).
    Returns (u, v, in front, horizontal distance from the camera's foot).
    """
    dx, dy = gx - x0, gy - y0
    f = math.cos(yaw) * dx + math.sin(yaw) * dy
    left = -math.sin(yaw) * dx + math.cos(yaw) * dy
    z = f * math.cos(PITCH) + HEIGHT * math.sin(PITCH)
    with np.errstate(divide='ignore', invalid='ignore'):
        u = CX + FX * (-left) / z
        v = CY + FY * (HEIGHT * math.cos(PITCH) - f * math.sin(PITCH)) / z
    return u, v, z > 1e-9, np.hypot(f, left)


def _cell_points(offsets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Points of every cell at fractional ``offsets`` (both axes): (cells, points) arrays."""
    jj, ii = np.meshgrid(np.arange(GRID.width), np.arange(GRID.height))
    a, b = np.meshgrid(offsets, offsets)
    gx = GRID.origin_x + (jj.ravel()[:, None] + a.ravel()[None, :]) * GRID.resolution
    gy = GRID.origin_y + (ii.ravel()[:, None] + b.ravel()[None, :]) * GRID.resolution
    return gx, gy


def _footprint(v_top: float, pose: Tuple[float, float, float] = (0.0, 0.0, 0.0)
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Cells wholly inside / touching the ground footprint of image rows below ``v_top``.

    The footprint: points that image inside the columns, between v_top and the bottom
    edge, in front of the camera and within the range. ``must``: all 81 points of the cell
    inside it; ``may``: some point inside it grown by a pixel and a cell.
    """
    u, v, front, dist = _image_coords(*_cell_points(np.linspace(0.0, 1.0, 9)), *pose)
    with np.errstate(invalid='ignore'):
        strict = ((u > -0.5) & (u < W - 0.5) & (v > v_top) & (v < H - 0.5) & front
                  & (dist <= GRID.max_range))
        loose = ((u > -1.5) & (u < W + 0.5) & (v > v_top - 1) & (v < H + 0.5) & front
                 & (dist <= GRID.max_range + GRID.resolution))
    return strict.all(axis=1), loose.any(axis=1)


def _contact_line(v_line: float, pose: Tuple[float, float, float] = (0.0, 0.0, 0.0)
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Cells the contact line v = v_line crosses through the middle / at all."""
    u, v, front, dist = _image_coords(*_cell_points(np.linspace(0.0, 1.0, 9)), *pose)
    ui, vi, fi, di = _image_coords(*_cell_points(np.linspace(0.25, 0.75, 5)), *pose)
    with np.errstate(invalid='ignore'):
        must = ((vi.min(axis=1) < v_line) & (vi.max(axis=1) > v_line) & fi.all(axis=1)
                & ((u > -0.5) & (u < W - 0.5) & (dist <= GRID.max_range)).all(axis=1))
        near = front & (u > -1.5) & (u < W + 0.5) & (dist <= GRID.max_range + GRID.resolution)
        may = ((np.where(near, v, np.inf).min(axis=1) <= v_line + 0.5)
               & (np.where(near, v, -np.inf).max(axis=1) >= v_line - 0.5))
    return must, may


def _check(actual: np.ndarray, must: np.ndarray, may: np.ndarray, what: str,
           expect_some: bool = True) -> None:
    actual = actual.ravel()
    missing = np.flatnonzero(must & ~actual)
    extra = np.flatnonzero(actual & ~may)
    assert missing.size == 0, f'{missing.size} cells should be {what}, e.g. {missing[:5]}'
    assert extra.size == 0, f'{extra.size} cells are {what} outside the footprint, ' \
                            f'e.g. {extra[:5]}'
    if expect_some:
        assert must.sum() > 10, 'the case must have cells wholly inside'


def test_all_drivable_image_frees_exactly_its_ground_footprint() -> None:
    pose = MountingPose(z=HEIGHT, pitch=PITCH).camera_pose()
    projection = GroundProjection(_camera(), pose, GRID)
    grid = projection.occupancy(np.full((H, W), ROAD, np.uint8), LUT)
    must, may = _footprint(-0.5)
    _check(grid == FREE, must, may, 'free')
    assert not (grid == OCCUPIED).any()   # the run fills every column: no contact
    assert ((grid == UNKNOWN).ravel() == ~(grid == FREE).ravel()).all()
    # Rows above the horizon (cy - fy tan(theta)) see no ground and are not even read.
    assert projection.row0 > CY - FY * math.tan(PITCH)
    # Far cells are free too: a pixel votes for every cell its footprint touches, so the
    # rows' footprints leave no unknown stripes between them.
    assert (grid[100, 150:195] == FREE).all()


@pytest.mark.parametrize('row', [H - 1, 199, 149, 136])   # contact mid-cell
def test_boundary_row_maps_to_its_closed_form_distance(row: int) -> None:
    pose = MountingPose(z=HEIGHT, pitch=PITCH).camera_pose()
    projection = GroundProjection(_camera(), pose, GRID)
    mask = np.full((H, W), WALL, np.uint8)
    mask[row:] = ROAD
    grid = projection.occupancy(mask, LUT)
    # The wall's ground contact: the bottom edge of its lowest pixel, v = row - 0.5, at
    # distance h / tan(theta + atan((v - cy) / fy)) on the optical axis' column.
    edge = row - 0.5
    distance = HEIGHT / math.tan(PITCH + math.atan((edge - CY) / FY))
    centre_cell = (int(math.floor((0.0 - GRID.origin_y) / GRID.resolution)),
                   int(math.floor(distance / GRID.resolution)))
    assert grid[centre_cell] == OCCUPIED
    must_occ, may_occ = _contact_line(edge)
    _check(grid == OCCUPIED, must_occ, may_occ, 'occupied')
    must_free, may_free = _footprint(edge)
    _check(grid == FREE, must_free & ~may_occ, may_free, 'free', expect_some=row < H - 1)
    # Nothing beyond the wall is known.
    assert (grid[:, int(distance / GRID.resolution) + 2:] == UNKNOWN).all()


@pytest.mark.parametrize('x0, y0, yaw', [(0.0, 0.0, 0.3), (0.0, 1.37, 0.0),
                                         (0.73, -2.11, -0.45)])
def test_yaw_and_offsets_move_the_grid_as_expected(x0: float, y0: float, yaw: float) -> None:
    pose = MountingPose(x=x0, y=y0, z=HEIGHT, pitch=PITCH, yaw=yaw).camera_pose()
    projection = GroundProjection(_camera(), pose, GRID)
    row = 161   # with yaw 0 the contact line runs mid-cell
    mask = np.full((H, W), WALL, np.uint8)
    mask[row:] = ROAD
    grid = projection.occupancy(mask, LUT)
    must_occ, may_occ = _contact_line(row - 0.5, (x0, y0, yaw))
    _check(grid == OCCUPIED, must_occ, may_occ, 'occupied')
    must_free, may_free = _footprint(row - 0.5, (x0, y0, yaw))
    _check(grid == FREE, must_free & ~may_occ, may_free, 'free')


def test_roi_excludes_a_hood_without_blocking_the_road() -> None:
    pose = MountingPose(z=HEIGHT, pitch=PITCH).camera_pose()
    hood = 200
    mask = np.full((H, W), ROAD, np.uint8)
    mask[hood:] = WALL          # the vehicle's own hood, not drivable
    roi = ((0.0, 0.0), (1.0, 0.0), (1.0, (hood - 1) / (H - 1)), (0.0, (hood - 1) / (H - 1)))
    blocked = GroundProjection(_camera(), pose, GRID).occupancy(mask, LUT)
    assert not (blocked == FREE).any(), 'without the ROI the hood stops every column'
    grid = GroundProjection(_camera(), pose, GRID, roi).occupancy(mask, LUT)
    must, may = _footprint(-0.5)
    # Only rows above the hood vote: the footprint of rows < hood (v < hood - 0.5).
    _, v, _, _ = _image_coords(*_cell_points(np.linspace(0.0, 1.0, 9)))
    with np.errstate(invalid='ignore'):
        above_hood_all = (v < hood - 0.5).all(axis=1)
        above_hood_any = (v < hood + 0.5).any(axis=1)
    _check(grid == FREE, must & above_hood_all, may & above_hood_any, 'free')
    assert not (grid == OCCUPIED).any()


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
    """Apply the voting rule sample by sample: no tables, deduplication, bands or row0."""
    out = np.full(grid.width * grid.height, UNKNOWN, np.int8)
    rows, cols, cells = free_samples(camera, pose, grid)
    out[cells[rows >= boundary[cols]]] = FREE
    b, cols, cells = contact_samples(camera, pose, grid)
    out[cells[b == boundary[cols]]] = OCCUPIED
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
