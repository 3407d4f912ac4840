"""A drivable-area occupancy grid on the ground plane from one camera's class mask (no ROS).

The summary's free-space boundary (per image column, the top of the unbroken run of
drivable pixels from the bottom row) and the drivable pixels below it are projected onto
the ground plane ``z = 0`` of the grid frame through the camera's intrinsics and mounting
pose. The projection is a lookup table built once per (intrinsics, pose, mask size, grid,
ROI) by :class:`GroundProjection`; a frame then costs the drivable LUT, the boundary, and
a gather plus one scatter over the table, never a projection.

Conventions:

* Pixel ``(u, v)`` has its centre at image coordinates ``(u, v)`` (OpenCV / CameraInfo).
  A pixel votes where the ray through its centre meets the ground. The boundary of a
  column whose first non-drivable pixel (from the bottom) is row ``b - 1`` is the ground
  contact of that pixel's bottom edge, image row ``v = b - 0.5``: for a camera at height
  ``h`` pitched down by ``theta`` it lies at distance ``h / tan(theta + atan((v - cy) / fy))``.
* Cells: ``(i, j)`` (row i along grid y, column j along grid x) covers
  ``[origin_x + j * res, origin_x + (j + 1) * res) x [origin_y + i * res, ...)``, row-major
  as in nav_msgs/OccupancyGrid.
* Values: :data:`FREE` (0) for cells reached by the drivable run of some column,
  :data:`OCCUPIED` (100) for cells holding some column's boundary contact, :data:`UNKNOWN`
  (-1) elsewhere: beyond every column's boundary, outside the field of view, above the
  horizon, beyond ``max_range`` (horizontal distance from the point below the camera).
* Voting rule: a column votes free once for every cell its drivable run reaches and
  occupied once for every cell its boundary contact touches. One occupied vote makes a
  cell 100 whatever the free votes (an obstacle contact seen by any column blocks the
  cell: a planner must not be sent through it); else one free vote makes it 0; no vote
  leaves it -1. Votes sample the ground at most half a cell apart: a pixel votes for the
  cells its footprint touches (sub-sampled), and near the camera, where a cell spans
  dozens of columns, only every few columns cast free votes (every column casts its
  boundary vote), which can only leave a cell unknown that a skipped column alone saw.
* ROI (optional): pixels outside the region are not looked at: they neither vote nor stop
  a column's run (a vehicle's hood excluded by the ROI does not block the road above it).
* Mounting pose: see :class:`MountingPose` (REP-103 body axes; the optical frame follows).
"""

import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from .camera_info import scale_intrinsics
from .errors import ConfigError, ImageFormatError
from .summary import free_space_boundary, roi_mask

FREE = 0
OCCUPIED = 100
UNKNOWN = -1

#: The optical frame's axes (x right, y down, z forward) in the camera body frame
#: (REP-103: x forward, y left, z up): the fixed rotation rpy = (-pi/2, 0, -pi/2).
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0],
                              [-1.0, 0.0, 0.0],
                              [0.0, -1.0, 0.0]])

_MAX_CELLS = 1 << 24
_BAND = 16   # rows per band of the two-level boundary search
_MAX_SUBSAMPLES = 32   # per pixel and axis
_MAX_COLUMN_STEP = 64
_SUPPORTED_DISTORTION = ('', 'plumb_bob', 'rational_polynomial', 'equidistant')


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Return the rotation Rz(yaw) Ry(pitch) Rx(roll) (fixed axes x, y, z, as tf2/URDF)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Return the rotation matrix of a quaternion (normalized here), as in geometry_msgs."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n == 0.0:
        raise ValueError('expected a non-zero quaternion, got (0, 0, 0, 0)')
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@dataclass(frozen=True)
class CameraPose:
    """Pose of the camera's optical frame in the grid frame: ``p_grid = R p_optical + t``.

    ``rotation`` is the 3x3 matrix row-major (9 floats), ``translation`` the optical
    centre in the grid frame (metres). Frozen and hashable: it keys the lookup tables.
    """

    rotation: Tuple[float, ...]
    translation: Tuple[float, float, float]

    @classmethod
    def from_matrix(cls, rotation: np.ndarray, translation: Sequence[float]) -> 'CameraPose':
        """Build from a 3x3 rotation and a translation."""
        r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
        t = tuple(float(v) for v in translation)
        if len(t) != 3:
            raise ValueError(f'expected a translation of 3 values, got {len(t)}')
        return cls(tuple(float(v) for v in r.ravel()), (t[0], t[1], t[2]))

    @classmethod
    def from_transform(cls, translation: Sequence[float], quaternion: Sequence[float],
                       decimals: int = 5) -> 'CameraPose':
        """Build from a TF transform grid <- optical (x, y, z), (qx, qy, qz, qw).

        Values are rounded (``decimals``) so that a static transform read again gives the
        same key and the lookup table is reused.
        """
        r = np.round(rotation_from_quaternion(*quaternion), decimals)
        return cls.from_matrix(r, [round(float(v), decimals) for v in translation])

    def matrix(self) -> np.ndarray:
        """Return the 3x3 rotation grid <- optical."""
        return np.array(self.rotation, dtype=np.float64).reshape(3, 3)


@dataclass(frozen=True)
class MountingPose:
    """Where the camera sits on the robot, in the grid frame (the node's parameters).

    ``x, y, z``: the optical centre in the grid frame (metres; ``z`` = height above the
    ground plane). ``roll, pitch, yaw`` (radians, fixed axes x, y, z as in tf2/URDF): the
    orientation of the camera *body* frame (REP-103: x forward, y left, z up; the
    ``camera_link`` of a URDF). The optical frame (REP-103 ``*_optical`` frame: z forward,
    x right, y down; the frame_id of the image and CameraInfo) is that frame rotated by
    rpy = (-pi/2, 0, -pi/2). So all angles zero is a level camera looking along grid +x,
    ``pitch > 0`` tilts it down, ``yaw > 0`` turns it left.
    """

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def camera_pose(self) -> CameraPose:
        """Return the optical frame's pose in the grid frame."""
        r = rotation_from_rpy(self.roll, self.pitch, self.yaw) @ BODY_FROM_OPTICAL
        return CameraPose.from_matrix(r, (self.x, self.y, self.z))


@dataclass(frozen=True)
class GridSpec:
    """The grid's geometry in its frame (nav_msgs/MapMetaData): cells of ``resolution`` m."""

    resolution: float = 0.1
    width: int = 200
    height: int = 200
    origin_x: float = 0.0
    origin_y: float = -10.0
    max_range: float = 20.0

    def validate(self) -> 'GridSpec':
        """Return self, or raise ConfigError naming the bad value."""
        if not (self.resolution > 0 and math.isfinite(self.resolution)):
            raise ConfigError(f'grid_resolution must be > 0 m, got {self.resolution}')
        if self.width < 1 or self.height < 1 or self.width * self.height > _MAX_CELLS:
            raise ConfigError(f'grid size must be at least 1x1 and at most {_MAX_CELLS} cells, '
                              f'got {self.width}x{self.height}')
        if not (self.max_range > 0):
            raise ConfigError(f'grid_max_range must be > 0 m, got {self.max_range}')
        if not (math.isfinite(self.origin_x) and math.isfinite(self.origin_y)):
            raise ConfigError(f'grid origin must be finite, got ({self.origin_x}, '
                              f'{self.origin_y})')
        return self


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics (and lens distortion) of the mask, at the mask's size."""

    width: int
    height: int
    k: Tuple[float, ...]                 # 3x3 row-major, as CameraInfo.k
    d: Tuple[float, ...] = ()
    distortion_model: str = ''

    @classmethod
    def from_camera_info(cls, k: Sequence[float], d: Sequence[float], distortion_model: str,
                         info_wh: Tuple[int, int], mask_wh: Tuple[int, int]) -> 'CameraModel':
        """Intrinsics of a CameraInfo (of ``info_wh`` images) scaled to the mask's size.

        Distortion coefficients act on normalized coordinates, so they do not scale.
        Raises ImageFormatError on an uncalibrated or unsupported CameraInfo.
        """
        k = [float(v) for v in k]
        if len(k) != 9 or not (k[0] > 0 and k[4] > 0):
            raise ImageFormatError(f'expected a calibrated CameraInfo (K with fx, fy > 0), got '
                                   f'K = {k}')
        if min(info_wh) <= 0:
            raise ImageFormatError(f'expected CameraInfo width and height > 0, got '
                                   f'{info_wh[0]}x{info_wh[1]}')
        coeffs = tuple(float(v) for v in d)
        model = distortion_model if any(coeffs) else ''
        if model not in _SUPPORTED_DISTORTION:
            raise ImageFormatError(f'expected distortion_model one of '
                                   f'{list(_SUPPORTED_DISTORTION[1:])} (or all-zero D), got '
                                   f'{distortion_model!r}')
        k2, _ = scale_intrinsics(k, k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0],
                                 info_wh, mask_wh)
        return cls(int(mask_wh[0]), int(mask_wh[1]), tuple(k2), coeffs, model)

    def normalized_rays(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Return the undistorted normalized coordinates (x/z, y/z) of image points (u, v)."""
        k = np.array(self.k, dtype=np.float64).reshape(3, 3)
        if not self.distortion_model:
            yn = (v - k[1, 2]) / k[1, 1]
            xn = (u - k[0, 2] - k[0, 1] * yn) / k[0, 0]
            return xn, yn
        import cv2
        pts = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64).reshape(-1, 1, 2)
        d = np.array(self.d, dtype=np.float64)
        # Iterate to convergence (OpenCV's default of 5 iterations leaves pixels of error
        # at the corners of wide lenses); the table is built once, so precision is cheap.
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        if self.distortion_model == 'equidistant':
            out = cv2.fisheye.undistortPoints(pts, k, d[:4], criteria=criteria)
        else:
            out = cv2.undistortPoints(pts, k, d, R=None, P=None, criteria=criteria)
        out = out.reshape(-1, 2)
        return out[:, 0].reshape(u.shape), out[:, 1].reshape(u.shape)


def ground_points(camera: CameraModel, pose: CameraPose, u: np.ndarray,
                  v: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return where the rays through image points (u, v) meet the ground plane z = 0.

    Returns ``(x, y, hits)``: grid-frame coordinates and whether the ray goes down to the
    ground in front of the camera (False above the horizon; x, y are then NaN).
    """
    xn, yn = camera.normalized_rays(np.asarray(u, np.float64), np.asarray(v, np.float64))
    r = pose.matrix()
    tx, ty, tz = pose.translation
    dx = r[0, 0] * xn + r[0, 1] * yn + r[0, 2]
    dy = r[1, 0] * xn + r[1, 1] * yn + r[1, 2]
    dz = r[2, 0] * xn + r[2, 1] * yn + r[2, 2]
    hits = (dz < -1e-12) & (tz > 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        t = np.where(hits, -tz / np.where(hits, dz, -1.0), np.nan)
    return tx + t * dx, ty + t * dy, hits


def cell_index(grid: GridSpec, pose: CameraPose, x: np.ndarray, y: np.ndarray,
               hits: np.ndarray) -> np.ndarray:
    """Return the flat cell index (row-major) of ground points; -1 outside grid or range."""
    tx, ty, _ = pose.translation
    with np.errstate(invalid='ignore'):
        j = np.floor((x - grid.origin_x) / grid.resolution)
        i = np.floor((y - grid.origin_y) / grid.resolution)
        inside = (hits & (j >= 0) & (j < grid.width) & (i >= 0) & (i < grid.height)
                  & (np.hypot(x - tx, y - ty) <= grid.max_range))
    cells = np.full(np.shape(x), -1, dtype=np.int64)
    cells[inside] = i[inside].astype(np.int64) * grid.width + j[inside].astype(np.int64)
    return cells


def _subsamples(camera: CameraModel, pose: CameraPose,
                grid: GridSpec) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image row: sub-samples per pixel (vertical, horizontal) and the voting column step.

    All three keep the ground spacing of free-vote samples at most half a cell.

    The ground size of a pixel row is the largest distance, over the columns, between the
    ground points of its top and bottom edges (vertical) or left and right edges
    (horizontal); edges beyond the range, and rows wholly beyond it, do not count, and a
    row holding the horizon counts up to the range circle.
    """
    h, w = camera.height, camera.width
    step = grid.resolution / 2
    reach = grid.max_range + grid.resolution
    tx, ty, _ = pose.translation

    def extents(a_uv: Tuple[np.ndarray, np.ndarray],
                b_uv: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        ax, ay, a_hit = ground_points(camera, pose, *a_uv)
        bx, by, b_hit = ground_points(camera, pose, *b_uv)
        with np.errstate(invalid='ignore'):
            da = np.where(a_hit, np.hypot(ax - tx, ay - ty), np.inf)
            db = np.where(b_hit, np.hypot(bx - tx, by - ty), np.inf)
            near = np.minimum(da, db)
            length = np.where(np.isfinite(da) & np.isfinite(db), np.hypot(ax - bx, ay - by),
                              reach - near)
            length = np.where(near <= reach, np.minimum(length, 2 * reach), 0.0)
        return np.nan_to_num(length, nan=0.0, posinf=0.0).max(axis=1)

    cols = np.arange(w, dtype=np.float64)
    rows = np.arange(h, dtype=np.float64)
    vu, vv = np.meshgrid(cols, rows)
    vertical = extents((vu, vv - 0.5), (vu, vv + 0.5))
    hu, hv = np.meshgrid(cols, rows)
    horizontal = extents((hu - 0.5, hv), (hu + 0.5, hv))
    k_v = np.clip(np.ceil(vertical / step), 1, _MAX_SUBSAMPLES).astype(int)
    k_h = np.clip(np.ceil(horizontal / step), 1, _MAX_SUBSAMPLES).astype(int)
    # Near the camera a cell spans dozens of columns: every column_step-th column still
    # puts voting samples at most half a cell apart (see GroundProjection).
    with np.errstate(divide='ignore'):
        column_step = np.where(horizontal > 0, np.floor(step / horizontal), 1.0)
    column_step = np.clip(column_step, 1, _MAX_COLUMN_STEP).astype(int)
    return k_v, k_h, column_step


def _row_groups(rows: np.ndarray, k_v: np.ndarray, k_h: np.ndarray, width: int,
                column_step: Optional[np.ndarray] = None
                ) -> Iterator[Tuple[np.ndarray, int, int, int]]:
    """Split ``rows`` (kept in order; the arrays aligned with them) into bounded runs.

    Each run has one sub-sampling and column step, so its sample points are built in one
    vectorized step.
    """
    budget = 1 << 22   # sample points per run
    steps = np.ones(len(rows), int) if column_step is None else column_step
    start, n = 0, len(rows)
    while start < n:
        kv, kh, cs = int(k_v[start]), int(k_h[start]), int(steps[start])
        per_row = max(1, width * kv * kh // cs)
        stop = start + 1
        while (stop < n and int(k_v[stop]) == kv and int(k_h[stop]) == kh
               and int(steps[stop]) == cs and (stop - start + 1) * per_row <= budget):
            stop += 1
        yield rows[start:stop], kv, kh, cs
        start = stop


def free_samples(camera: CameraModel, pose: CameraPose, grid: GridSpec,
                 inside: Optional[np.ndarray] = None,
                 k: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (row, column, cell) of every free-vote sample that lands in the grid.

    Rows come bottom-up. In row ``r`` the voting columns are every ``column_step[r]``-th
    one and the last. ``inside`` (H, W bool) drops pixels outside an ROI; ``k`` is
    :func:`_subsamples`' result (computed when not given).
    """
    h, w = camera.height, camera.width
    k_v, k_h, column_step = _subsamples(camera, pose, grid) if k is None else k
    cols_l, cells_l, rows_l = [], [], []
    bottom_up = np.arange(h - 1, -1, -1)
    for rows, kv, kh, cs in _row_groups(bottom_up, k_v[bottom_up], k_h[bottom_up], w,
                                        column_step[bottom_up]):
        voting = np.unique(np.append(np.arange(0, w, cs), w - 1))
        sub_u = (np.arange(kh) + 0.5) / kh - 0.5
        sub_v = (np.arange(kv) + 0.5) / kv - 0.5
        # (rows, kv, columns, kh) sample points of the run's voting pixels
        v = (rows[:, None, None, None] + sub_v[None, :, None, None]
             + np.zeros((1, 1, voting.size, kh)))
        u = voting[None, None, :, None] + sub_u[None, None, None, :] + np.zeros_like(v)
        cells = cell_index(grid, pose, *ground_points(camera, pose, u, v))
        row_of = np.broadcast_to(rows[:, None, None, None], cells.shape)
        col_of = np.broadcast_to(voting[None, None, :, None], cells.shape)
        ok = cells >= 0
        if inside is not None:
            ok &= inside[row_of, col_of]
        cols_l.append(col_of[ok])
        cells_l.append(cells[ok])
        rows_l.append(row_of[ok])
    empty = np.zeros(0, np.int64)
    return (np.concatenate(rows_l) if rows_l else empty,
            np.concatenate(cols_l) if cols_l else empty,
            np.concatenate(cells_l) if cells_l else empty)


def contact_samples(camera: CameraModel, pose: CameraPose, grid: GridSpec,
                    inside: Optional[np.ndarray] = None, k_h: Optional[np.ndarray] = None
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (b, column, cell) of every sample of the bottom edges ``v = b - 0.5``, b >= 1.

    Edge ``b`` is the bottom edge of pixel ``(b - 1, column)``: the ground contact of a
    column whose drivable run starts at row ``b``.
    """
    h, w = camera.height, camera.width
    if k_h is None:
        k_h = _subsamples(camera, pose, grid)[1]
    # Edge b lies between pixel rows b - 1 and b: sample it as finely as the finer one.
    k_edge = np.maximum(k_h, np.append(k_h[1:], 1))
    b_l, cols_l, cells_l = [], [], []
    for edges, _, kh, _ in _row_groups(np.arange(1, h + 1), np.ones(h, int), k_edge, w):
        sub_u = (np.arange(kh) + 0.5) / kh - 0.5
        v = edges[:, None, None] - 0.5 + np.zeros((1, w, kh))
        u = np.arange(w)[None, :, None] + sub_u[None, None, :] + np.zeros_like(v)
        cells = cell_index(grid, pose, *ground_points(camera, pose, u, v))
        b_of = np.broadcast_to(edges[:, None, None], cells.shape)
        col_of = np.broadcast_to(np.arange(w)[None, :, None], cells.shape)
        ok = cells >= 0
        if inside is not None:
            ok &= inside[b_of - 1, col_of]
        b_l.append(b_of[ok])
        cols_l.append(col_of[ok])
        cells_l.append(cells[ok])
    empty = np.zeros(0, np.int64)
    return (np.concatenate(b_l) if b_l else empty, np.concatenate(cols_l) if cols_l else empty,
            np.concatenate(cells_l) if cells_l else empty)


class GroundProjection:
    """The pixel-to-cell lookup tables of one (camera, pose, grid, ROI); immutable.

    A pixel votes for every cell its ground footprint touches, not only for the cell of
    its centre: far from the camera one pixel row spans several cells, and centre-only
    votes would leave stripes of unknown cells between rows. Each pixel is sampled on a
    ``k_v x k_h`` sub-grid whose ground spacing is at most half a cell (``k`` per image row,
    from the ground size of that row's pixels, capped at :data:`_MAX_SUBSAMPLES`); the
    boundary contact likewise along the blocked pixel's bottom edge. Rows whose pixels are
    much narrower than a cell cast free votes from every ``column_step``-th column only
    (spacing still at most half a cell): the table, and a frame's work, shrink several
    times near the camera.

    Tables:

    * free entries, one per (column, cell) pair: ``entry_cell``, ``entry_col`` and
      ``entry_row``, the lowest image row (the nearest pixel) of that column touching that
      cell, sorted by column. The drivable run of column ``c`` reaches the cell iff
      ``entry_row >= boundary[c]``.
    * contacts, one per (boundary row ``b``, column ``c``, cell), sorted by ``b * W + c``:
      the cells touched by the bottom edge ``v = b - 0.5`` of pixel ``(b - 1, c)``, the
      first blocked pixel of a column whose drivable run starts at row ``b``.

    Only rows from ``row0`` down can vote, so a frame looks at ``mask[row0:]`` only.
    """

    def __init__(self, camera: CameraModel, pose: CameraPose, grid: GridSpec,
                 roi_polygon: Optional[Tuple[Tuple[float, float], ...]] = None) -> None:
        grid.validate()
        h, w = camera.height, camera.width
        if h < 1 or w < 1:
            raise ConfigError(f'expected a mask of at least 1x1 pixels, got {w}x{h}')
        self.camera, self.pose, self.grid = camera, pose, grid
        self.shape = (h, w)
        inside = (None if roi_polygon is None
                  else roi_mask(tuple(roi_polygon), h, w).astype(bool))
        k_v, k_h, column_step = _subsamples(camera, pose, grid)
        n_cells = grid.width * grid.height

        row_of, col_of, cell_of = free_samples(camera, pose, grid, inside,
                                               (k_v, k_h, column_step))
        # Rows come bottom-up: the first occurrence of a (column, cell) key in the stable
        # sort of np.unique is its lowest row.
        _, first = np.unique(col_of * n_cells + cell_of, return_index=True)
        # intp cells index without a conversion; int16 rows halve the compare's traffic.
        self.entry_cell = cell_of[first].astype(np.intp)
        self.entry_col = col_of[first].astype(np.int32)
        self.entry_row = row_of[first].astype(np.int16 if h < 32767 else np.int32)
        # Entries are sorted by column: a frame spreads boundary[c] over them with np.repeat.
        self._entries_per_column = np.bincount(self.entry_col, minlength=w)

        b_of, col_of, cells = contact_samples(camera, pose, grid, inside, k_h)
        pairs = np.sort((b_of * w + col_of) * n_cells + cells)   # np.unique hashes: slower
        unique_pairs = pairs[np.append(True, pairs[1:] != pairs[:-1])] if pairs.size else pairs
        self.contact_key = (unique_pairs // n_cells).astype(np.int64)
        self.contact_cell = (unique_pairs % n_cells).astype(np.intp)
        # Dense start offsets per key b * W + c: a frame reads 2 x W of them instead of
        # binary-searching the contact list (cache misses cost more than the table).
        self._contact_start = np.zeros((h + 1) * w + 1, dtype=np.int32)
        np.cumsum(np.bincount(self.contact_key, minlength=(h + 1) * w),
                  out=self._contact_start[1:])

        first_free = int(self.entry_row.min()) if self.entry_row.size else h
        first_contact_pixel = (int(self.contact_key[0] // w) - 1 if self.contact_key.size
                               else h)
        self.row0 = min(first_free, first_contact_pixel)
        # A frame reads whole bands of _BAND rows from the bottom, starting at or above
        # row0 (rows above row0 cannot vote, so reading a few more changes nothing).
        bands = -(-(h - self.row0) // _BAND)
        self._read_from = max(0, h - bands * _BAND)
        self._outside_roi = None if inside is None else ~inside[self._read_from:]
        self._columns = np.arange(w, dtype=np.int64)

    @property
    def empty(self) -> bool:
        """True when no pixel of the mask can reach the grid (camera or grid misplaced)."""
        return self.row0 >= self.shape[0]

    def boundary(self, mask: np.ndarray, drivable_lut: np.ndarray) -> np.ndarray:
        """Return per column the free-space boundary row of a (H, W) uint8 class mask.

        ``drivable_lut`` is a 256-entry uint8 table (1 = drivable), as :func:`drivable_lut`
        returns. Rows above ``row0`` cannot vote, so only ``mask[row0:]`` is read; a run
        reaching ``row0`` reads as boundary ``row0`` (no contact), which votes as any
        higher boundary would.
        """
        import cv2
        mask = np.asarray(mask)
        if mask.shape != self.shape or mask.dtype != np.uint8:
            raise ImageFormatError(f'expected a {self.shape[1]}x{self.shape[0]} uint8 mask '
                                   f'(the size the grid table was built for), got '
                                   f'{mask.dtype} {mask.shape[::-1]}')
        if self.empty:
            return np.full(self.shape[1], self.shape[0], dtype=np.int64)
        passable = cv2.LUT(mask[self._read_from:], drivable_lut).view(bool)
        if self._outside_roi is not None:
            np.logical_or(passable, self._outside_roi, out=passable)
        return banded_boundary(passable) + self._read_from

    def grid_from_boundary(self, boundary: np.ndarray) -> np.ndarray:
        """Return the (height, width) int8 occupancy grid of one frame's per-column boundary."""
        b = np.asarray(boundary)
        if b.shape != (self.shape[1],):
            raise ImageFormatError(f'expected one boundary row per mask column '
                                   f'({self.shape[1]}), got shape {b.shape}')
        grid = np.full(self.grid.width * self.grid.height, UNKNOWN, dtype=np.int8)
        if self.entry_cell.size:
            per_entry = np.repeat(b.astype(self.entry_row.dtype), self._entries_per_column)
            grid[self.entry_cell[self.entry_row >= per_entry]] = FREE
        keys = np.clip(b, 0, self.shape[0]).astype(np.int64) * self.shape[1] + self._columns
        lo = self._contact_start[keys]
        counts = self._contact_start[keys + 1] - lo
        total = int(counts.sum())
        if total:
            starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
            grid[self.contact_cell[starts + np.arange(total)]] = OCCUPIED
        return grid.reshape(self.grid.height, self.grid.width)

    def occupancy(self, mask: np.ndarray, drivable_lut: np.ndarray) -> np.ndarray:
        """Return the (height, width) int8 occupancy grid of one class mask."""
        return self.grid_from_boundary(self.boundary(mask, drivable_lut))


def banded_boundary(passable: np.ndarray, band: int = _BAND) -> np.ndarray:
    """Compute :func:`~segformer_ros.summary.free_space_boundary` of a (H, W) bool map, faster.

    The same result in two levels of the summary's own search: first over bands of
    ``band`` rows (a band continues the run when all its pixels are passable), then inside
    the one band per column that stops the run. The full-size search walks every column
    through a transposed copy; here only a (H / band, W) map and a (band, W) gather are
    searched.
    """
    h, w = passable.shape
    if h % band or h == 0:
        return free_space_boundary(passable)
    bands = h // band
    band_run = free_space_boundary(passable.reshape(bands, band, w).all(axis=1))
    stopping = np.maximum(band_run - 1, 0)              # band holding the lowest blocked pixel
    rows = stopping * band + np.arange(band)[:, None]
    inside = free_space_boundary(passable[rows, np.arange(w)])
    return np.where(band_run > 0, stopping * band + inside, 0)


def drivable_lut(drivable_ids: Sequence[int]) -> np.ndarray:
    """Return the 256-entry uint8 table that marks drivable class ids with 1."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[[int(i) for i in drivable_ids if 0 <= int(i) < 256]] = 1
    return lut


@dataclass(frozen=True)
class GridSettings:
    """The grid's parameters, validated (see :func:`grid_settings_from_params`)."""

    frame: str
    grid: GridSpec
    #: None: take the pose from TF (grid_camera_z = 0); else the parameters' pose.
    mounting: Optional[MountingPose]
    use_roi: bool


def grid_settings_from_params(params: Mapping[str, Any]) -> GridSettings:
    """Read the ``grid_*`` parameters; raise ConfigError naming a bad value."""
    frame = str(params.get('grid_frame', 'base_link')).strip()
    if not frame:
        raise ConfigError('grid_frame must name the grid\'s frame (e.g. base_link), got an '
                          'empty string')
    grid = GridSpec(float(params.get('grid_resolution', 0.1)),
                    int(params.get('grid_width', 200)), int(params.get('grid_height', 200)),
                    float(params.get('grid_origin_x', 0.0)),
                    float(params.get('grid_origin_y', -10.0)),
                    float(params.get('grid_max_range', 20.0))).validate()
    values = [float(params.get(f'grid_camera_{n}', 0.0))
              for n in ('x', 'y', 'z', 'roll', 'pitch', 'yaw')]
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f'grid_camera_* must be finite, got {values}')
    if values[2] < 0:
        raise ConfigError(f'grid_camera_z is the camera height above the ground (> 0), or 0 '
                          f'to read the pose from TF; got {values[2]}')
    mounting = MountingPose(*values) if values[2] > 0 else None
    return GridSettings(frame, grid, mounting, bool(params.get('grid_use_roi', False)))
