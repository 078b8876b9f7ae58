"""Coarse search: scale, rotation and shift of the spike view inside the RGB view (pure numpy/cv2).

On a downsampled level (the RGB luma at most `COARSE_SIDE` px on its long side) every scale of
a geometric grid over ``[MIN_SCALE, MAX_SCALE]`` (RGB px per spike px) and every rotation of a
grid over ``[-MAX_DEGREES, MAX_DEGREES]`` is tried: the spike count images are turned and scaled
onto a canvas, a central crop of whichever view is smaller at that scale is the template, and
cv2.matchTemplate (TM_CCOEFF_NORMED) of every frame, summed over the frames, gives the shift.
The searched image is padded with its mean so that the template may stick out by up to
`OUTSIDE` of its size: a spike view larger than the RGB view, or only partly overlapping it,
still matches (a position mostly over the flat padding correlates weakly). Every level image is
high-passed (`HIGH_PASS`). `refine` searches again around the best candidate on finer levels
with halved steps. The result is a similarity matrix, spike px -> full-size RGB px (see
`geometry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import resize_matrix, similarity, translation

MIN_SCALE, MAX_SCALE = 0.5, 4.0
#: Ratio between neighbouring scales of the coarse grid, and rotation step (degrees).
SCALE_STEP, DEGREE_STEP, MAX_DEGREES = 1.12, 5.0, 10.0
#: Long side (px) of the RGB luma at the coarse level; `refine` works on a level FINER times larger.
COARSE_SIDE, FINER = 96, 1.5
#: A template is this fraction (per side) of the smaller view's inner part.
CROP = 0.7
MIN_TEMPLATE = 8
#: Sigma (level px) of the Gaussian whose blur is subtracted from every level image.
HIGH_PASS = 3.0
#: Fraction of a template (per side) allowed outside the searched image.
OUTSIDE = 0.5


@dataclass(frozen=True)
class Match:
    """A candidate: ``matrix`` spike px -> full RGB px, its summed-response ``score`` (mean NCC
    over the frames, in [-1, 1]), scale and rotation (degrees)."""

    matrix: np.ndarray
    score: float
    scale: float
    degrees: float


def scale_grid(lo: float = MIN_SCALE, hi: float = MAX_SCALE, step: float = SCALE_STEP) -> np.ndarray:
    n = int(math.ceil(math.log(hi / lo) / math.log(step)))
    return lo * step ** np.arange(n + 1)


def degree_grid(step: float = DEGREE_STEP, most: float = MAX_DEGREES) -> np.ndarray:
    n = int(round(most / step))
    return step * np.arange(-n, n + 1)


def inner_fraction(width: float, height: float, degrees: float) -> float:
    """Largest f such that the centred axis-aligned box f*w x f*h fits inside the w x h
    rectangle turned by ``degrees``."""
    c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    return min(1.0, width / (width * c + height * s), height / (width * s + height * c))


def _filled(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid pixels set to the mean of the valid ones (flat: no false texture at the borders)."""
    mean = float(image[valid].mean()) if valid.any() else 0.0
    return np.where(valid, image, mean).astype(np.float32)


def _padding(tsize) -> tuple[int, int]:
    """Rows and columns added on each side of the searched image: a template may stick out by
    `OUTSIDE` of its size (a view that only partly overlaps the other)."""
    return int(OUTSIDE * tsize[0]), int(OUTSIDE * tsize[1])


def _padded(image: np.ndarray, tsize) -> np.ndarray:
    """``image`` padded with its mean (flat: a template position over the padding correlates
    only through its part inside, so small overlaps score low)."""
    py, px = _padding(tsize)
    return cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=float(image.mean()))


def _centre_crop(image: np.ndarray, centre, size) -> tuple[np.ndarray, tuple[int, int]]:
    th, tw = size
    x0 = int(round(centre[0] - (tw - 1) / 2))
    y0 = int(round(centre[1] - (th - 1) / 2))
    return image[y0:y0 + th, x0:x0 + tw], (x0, y0)


def _peak(response: np.ndarray) -> tuple[float, float, float]:
    """(x, y, value) of the maximum, x/y refined by a parabola through the neighbours."""
    _, value, _, (x, y) = cv2.minMaxLoc(response)
    dx = dy = 0.0
    if 0 < x < response.shape[1] - 1:
        a, b, c = response[y, x - 1], response[y, x], response[y, x + 1]
        dx = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    if 0 < y < response.shape[0] - 1:
        a, b, c = response[y - 1, x], response[y, x], response[y + 1, x]
        dy = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return x + dx, y + dy, float(value)


def match_one(spikes: list[np.ndarray], lumas: list[np.ndarray], gain: float,
              degrees: float) -> tuple[np.ndarray, float] | None:
    """Best shift for (resized, high-passed) spike images turned by ``degrees`` and scaled by
    ``gain`` (level px per resized spike px) against level lumas, summed over the frames.
    Returns (matrix resized-spike px -> level px, mean NCC) or None when a template is too small."""
    h, w = spikes[0].shape
    turn = similarity(gain, degrees)
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
    placed = corners @ turn.T
    lo = np.floor(placed[:, :2].min(axis=0))
    size = np.ceil(placed[:, :2].max(axis=0) - lo).astype(int) + 1
    to_canvas = translation(-lo[0], -lo[1]) @ turn
    centre = (to_canvas @ [(w - 1) / 2, (h - 1) / 2, 1])[:2]
    f = inner_fraction(w, h, degrees)
    inner = (f * gain * h - 2, f * gain * w - 2)
    H, W = lumas[0].shape
    spike_first = inner[0] * inner[1] <= H * W
    if spike_first:
        tsize = (int(min(CROP * inner[0], 0.9 * H)), int(min(CROP * inner[1], 0.9 * W)))
    else:
        tsize = (int(min(CROP * H, 0.9 * inner[0])), int(min(CROP * W, 0.9 * inner[1])))
    if min(tsize) < MIN_TEMPLATE:
        return None
    pad = _padding(tsize)
    total = None
    valid = cv2.warpAffine(np.ones_like(spikes[0]), to_canvas[:2], (int(size[0]), int(size[1]))) > 0.999
    for spike, luma in zip(spikes, lumas):
        canvas = cv2.warpAffine(spike, to_canvas[:2], (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)
        canvas = _filled(canvas, valid)
        if spike_first:
            template, origin = _centre_crop(canvas, centre, tsize)
            response = cv2.matchTemplate(_padded(luma, tsize), template, cv2.TM_CCOEFF_NORMED)
        else:
            template, origin = _centre_crop(luma, ((W - 1) / 2, (H - 1) / 2), tsize)
            response = cv2.matchTemplate(_padded(canvas, tsize), template, cv2.TM_CCOEFF_NORMED)
        cv2.patchNaNs(response, 0.0)  # a flat template or patch has no correlation
        total = response if total is None else total + response
    x, y, value = _peak(total)
    x, y = x - pad[1], y - pad[0]  # response index -> template origin in the unpadded image
    if spike_first:  # canvas origin + p  <->  level (x, y) + p
        shift = translation(x - origin[0], y - origin[1])
    else:  # level origin + p  <->  canvas (x, y) + p
        shift = translation(origin[0] - x, origin[1] - y)
    return shift @ to_canvas, value / len(spikes)


def _level(images: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Images resized to ``size`` (INTER_AREA) and high-passed: minus their Gaussian blur of
    `HIGH_PASS` px (broad shading correlates by chance anywhere; detail pins the shift)."""
    out = []
    for image in images:
        small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA) if image.shape != size else image
        out.append(small - cv2.GaussianBlur(small, (0, 0), HIGH_PASS))
    return out


def search(spikes: list[np.ndarray], lumas: list[np.ndarray], scales=None, degrees=None,
           side: int = COARSE_SIDE) -> Match | None:
    """Best similarity over ``scales`` x ``degrees`` (default: the coarse grids) for ``(h, w)``
    float32 spike count images against ``(H, W)`` float32 lumas of the same frames, matched on
    a level whose long side is ``side`` px. None when no scale gives a usable template."""
    scales = scale_grid() if scales is None else np.asarray(scales, float)
    degrees = degree_grid() if degrees is None else np.asarray(degrees, float)
    h, w = spikes[0].shape
    H, W = lumas[0].shape
    factor = max(1.0, max(H, W) / side)
    level_size = (max(1, round(H / factor)), max(1, round(W / factor)))
    to_level = resize_matrix((H, W), level_size)
    level_lumas = _level(lumas, level_size)
    best = None
    for scale in scales:
        gain = scale * level_size[1] / W  # level px per spike px
        small = (max(2, round(h * min(1.0, gain))), max(2, round(w * min(1.0, gain))))
        pre = resize_matrix((h, w), small)
        resized = _level(spikes, small)
        for angle in degrees:
            found = match_one(resized, level_lumas, gain * w / small[1], angle)
            if found is not None and (best is None or found[1] > best.score):
                matrix = np.linalg.inv(to_level) @ found[0] @ pre
                best = Match(matrix, found[1], float(scale), float(angle))
    return best


def refine(spikes, lumas, coarse: Match, rounds: int = 2) -> Match:
    """`search` again ``rounds`` times, each on a level `FINER` times larger, on a grid of half
    the previous steps around the best so far."""
    best, scale_step, degree_step, side = coarse, SCALE_STEP, DEGREE_STEP, COARSE_SIDE
    for _ in range(rounds):
        scale_step, degree_step, side = math.sqrt(scale_step), degree_step / 2, round(side * FINER)
        scales = best.scale * scale_step ** np.arange(-1, 2)
        degrees = best.degrees + degree_step * np.arange(-1, 2)
        fine = search(spikes, lumas, scales, degrees, side)
        best = fine if fine is not None else best
    return best

