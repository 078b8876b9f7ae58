"""3x3 matrices between pixel grids (pure numpy).

Convention everywhere: a matrix maps pixel coordinates ``(x, y, 1)`` of one image (x right,
y down, pixel centres at integers) to pixel coordinates of another, up to scale. A registration
matrix maps the spike frame (image orientation, as `SpikeStream.read` returns it with the
sequence's flipud) to the full-size RGB frame.
"""

from __future__ import annotations

import math

import numpy as np


def resize_matrix(src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """The map from pixels of an image of ``src_size`` (h, w) to the same image resized to
    ``dst_size`` (h, w) (cv2.resize: pixel areas kept, ``x' = (x + 0.5) * w'/w - 0.5``)."""
    fy, fx = dst_size[0] / src_size[0], dst_size[1] / src_size[1]
    return np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]], np.float64)


def similarity(scale: float, degrees: float, tx: float = 0.0, ty: float = 0.0) -> np.ndarray:
    """``x' = scale * R(degrees) x + t``: positive degrees turn x towards y, i.e. clockwise as
    seen on screen (y down)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty], [0, 0, 1]], np.float64)


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)


def normalised(matrix: np.ndarray) -> np.ndarray:
    """``matrix / matrix[2, 2]`` (float64)."""
    matrix = np.asarray(matrix, np.float64)
    return matrix / matrix[2, 2]


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(n, 2)`` points through a 3x3 matrix -> ``(n, 2)`` (inf where the point goes to infinity)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    out = np.column_stack([points, np.ones(len(points))]) @ np.asarray(matrix, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return out[:, :2] / out[:, 2:]


def frame_corners(size: tuple[int, int]) -> np.ndarray:
    """``(4, 2)`` outer corners of an (h, w) frame's pixel area: clockwise from the top left."""
    h, w = size
    return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])


def centre_corners(size: tuple[int, int]) -> np.ndarray:
    """``(4, 2)`` centres of an (h, w) frame's four corner pixels, clockwise from the top left."""
    h, w = size
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)


def jacobian(matrix: np.ndarray, point) -> np.ndarray:
    """The 2x2 derivative of the map at ``point`` (x, y)."""
    m = normalised(matrix)
    x, y = point
    d = m[2, 0] * x + m[2, 1] * y + 1.0
    u = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    v = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    return np.array([[m[0, 0] * d - u * m[2, 0], m[0, 1] * d - u * m[2, 1]],
                     [m[1, 0] * d - v * m[2, 0], m[1, 1] * d - v * m[2, 1]]]) / d ** 2


def linear_det(matrix: np.ndarray) -> float:
    """Determinant of the 2x2 linear part ``matrix[:2, :2] / matrix[2, 2]`` (< 0: a mirror)."""
    m = normalised(matrix)
    return float(np.linalg.det(m[:2, :2]))


def scale_of(matrix: np.ndarray, point) -> float:
    """Local scale (RGB px per spike px) at ``point``: sqrt of the Jacobian's |determinant|."""
    return math.sqrt(abs(float(np.linalg.det(jacobian(matrix, point)))))


def degeneracy(matrix: np.ndarray, spike_size: tuple[int, int]) -> str | None:
    """Why a spike -> RGB matrix cannot be a camera's view (None when it can): not finite,
    singular, a mirror, the horizon inside the spike frame, a fold or a strong shear."""
    m = np.asarray(matrix, np.float64)
    if m.shape != (3, 3) or not np.isfinite(m).all() or abs(m[2, 2]) < 1e-12:
        return "the matrix is not finite"
    m = normalised(m)
    corners = frame_corners(spike_size)
    w = np.column_stack([corners, np.ones(4)]) @ m[2]
    if (w <= 1e-6).any():
        return "the spike frame crosses the horizon (perspective too strong)"
    dets = [np.linalg.det(jacobian(m, c)) for c in corners]
    if any(d < 0 for d in dets) or linear_det(m) < 0:
        return "the map mirrors the spike image (negative determinant)"
    if min(dets) < 1e-6:
        return "the matrix is singular"
    h, w_ = spike_size
    svals = np.linalg.svd(jacobian(m, ((w_ - 1) / 2, (h - 1) / 2)), compute_uv=False)
    if svals[0] / svals[1] > 2.0 or max(dets) / min(dets) > 4.0:
        return "the map shears or stretches the spike frame too much"
    return None


def to_similarity(matrix: np.ndarray, spike_size: tuple[int, int]) -> np.ndarray:
    """The similarity (scale, rotation, shift) closest to ``matrix`` in the least-squares sense
    over a grid of spike pixels."""
    return _fit(matrix, spike_size, similarity_only=True)


def to_affine(matrix: np.ndarray, spike_size: tuple[int, int]) -> np.ndarray:
    """The affine map closest to ``matrix`` (least squares over a grid of spike pixels)."""
    return _fit(matrix, spike_size, similarity_only=False)


def _fit(matrix: np.ndarray, spike_size: tuple[int, int], similarity_only: bool) -> np.ndarray:
    h, w = spike_size
    xs, ys = np.meshgrid(np.linspace(0, w - 1, 9), np.linspace(0, h - 1, 9))
    src = np.column_stack([xs.ravel(), ys.ravel()])
    dst = apply(matrix, src)
    if similarity_only:  # x' = a x - b y + tx, y' = b x + a y + ty
        rows = np.block([[src[:, :1], -src[:, 1:], np.ones((81, 1)), np.zeros((81, 1))],
                         [src[:, 1:], src[:, :1], np.zeros((81, 1)), np.ones((81, 1))]])
        a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
        return np.array([[a, -b, tx], [b, a, ty], [0, 0, 1]])
    design = np.column_stack([src, np.ones(81)])
    top = np.linalg.lstsq(design, dst, rcond=None)[0].T
    return np.vstack([top, [0, 0, 1]])


def overlap_box(matrix: np.ndarray, spike_size: tuple[int, int],
                rgb_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The largest axis-aligned RGB box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) every pixel of
    which the spike camera sees: its centre maps (inverse matrix) into ``[0, w-1] x [0, h-1]``
    of the spike frame, so resampling the spikes there needs no extrapolation. None when empty.

    The seen set is convex, so each row's seen pixels form one run ``[l(y), r(y)]``; for every
    pair of rows the widest box between them is found with running max/min of l and r.
    """
    H, W = rgb_size
    h, w = spike_size
    inverse = np.linalg.inv(np.asarray(matrix, np.float64))
    ys, xs = np.mgrid[0:H, 0:W]
    spike = apply(inverse, np.column_stack([xs.ravel(), ys.ravel()]))
    eps = 1e-9
    seen = ((spike[:, 0] >= -eps) & (spike[:, 0] <= w - 1 + eps) & (spike[:, 1] >= -eps)
            & (spike[:, 1] <= h - 1 + eps)).reshape(H, W)
    any_row = seen.any(axis=1)
    if not any_row.any():
        return None
    left = np.where(any_row, seen.argmax(axis=1), W)
    right = np.where(any_row, W - 1 - seen[:, ::-1].argmax(axis=1), -1)
    best, box = 0, None
    for y0 in np.flatnonzero(any_row):
        lo = np.maximum.accumulate(left[y0:])
        hi = np.minimum.accumulate(right[y0:])
        area = np.maximum(hi - lo + 1, 0) * np.arange(1, H - y0 + 1)
        k = int(area.argmax())
        if area[k] > best:
            best, box = int(area[k]), (int(lo[k]), int(y0), int(hi[k]) + 1, int(y0 + k + 1))
    return box
