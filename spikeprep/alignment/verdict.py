"""From per-frame alignment scores to a verdict per sequence (pure statistics, no files).

Input: ``scores[i, o, k]``, the score of frame ``i`` (correlation of its window's spike count
image with its blurry luma, averaged with the sharp luma's when there is one) with the spike
image in orientation ``ORIENTATIONS[o]`` and every window moved by ``offsets[k]`` spike frames;
NaN where a moved window leaves its stream.

**When is another candidate "clearly" better?** Scores are compared frame by frame: ``d_i =
candidate_i - current_i``. The gain is ``median(d)``; its noise is the frame-to-frame spread of
``d``, ``spread(d) = max(1.4826 * MAD(d), IQR(d) / 1.349)`` (two robust estimates of a standard
deviation; the larger, so that frames split into two camps are not called consistent), divided
by ``sqrt(n)`` and times 1.2533 (the standard error of a median). The candidate is clearly
better iff

    gain > max(MIN_GAIN, Z * 1.2533 * spread(d) / sqrt(n)),   Z = 4, MIN_GAIN = 0.005,

so noise alone (gain within four standard errors of zero) never gives a verdict, and neither do
negligible gains on a perfectly steady scene.

**Verdicts**: ``orientation`` (another orientation, each at its best offset, is clearly better
than as-is); ``weak`` (fewer than 5 frames keep every moved window inside the stream, the best
score is below 0.2, or the score does not clearly change with the offset: too little texture
or motion to tell); ``offset`` (the best offset is clearly better than 0); else ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .scores import ORIENTATIONS

Z = 4.0
MIN_GAIN = 0.005
MIN_SCORE = 0.2
MIN_FRAMES = 5
#: Standard error of a median of normal samples = 1.2533 * sigma / sqrt(n).
_MEDIAN_SE = 1.2533
#: MAD -> standard deviation for normal samples.
_MAD_SIGMA = 1.4826
#: IQR -> standard deviation for normal samples.
_IQR_SIGMA = 1.349


@dataclass(frozen=True)
class Comparison:
    """Candidate vs current score, frame by frame: median gain and the gain it must exceed."""

    gain: float
    threshold: float
    frames: int

    @property
    def clear(self) -> bool:
        return self.frames > 0 and self.gain > self.threshold


def compare(candidate: np.ndarray, current: np.ndarray) -> Comparison:
    """`Comparison` of two ``(n,)`` per-frame score arrays (rows with a NaN are dropped)."""
    d = np.asarray(candidate, np.float64) - np.asarray(current, np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return Comparison(0.0, math.inf, 0)
    gain = float(np.median(d))
    q25, q75 = np.percentile(d, [25, 75])
    spread = max(_MAD_SIGMA * float(np.median(np.abs(d - gain))), float(q75 - q25) / _IQR_SIGMA)
    noise = _MEDIAN_SE * spread / math.sqrt(len(d))
    return Comparison(gain, max(MIN_GAIN, Z * noise), len(d))


@dataclass(frozen=True)
class Exposure:
    """Window length scaled about its centre: median score per scale and the best one."""

    scales: tuple[float, ...]
    scores: tuple[float, ...]
    best_scale: float
    gain: float
    clear: bool

    def to_dict(self) -> dict:
        return {"scales": list(self.scales), "scores": _rounded(self.scores), "best_scale": self.best_scale,
                "gain": round(self.gain, 4), "clear": self.clear}


@dataclass(frozen=True)
class Judgement:
    """The verdict for one sequence and the numbers behind it (offsets in spike frames)."""

    verdict: str
    reason: str
    score: float
    best_offset: int
    best_score: float
    orientation: str
    gain: float
    threshold: float
    frames: int
    common_frames: int
    offsets: tuple[int, ...]
    curves: dict[str, tuple[float, ...]]
    orientation_scores: dict[str, float]
    exposure: Exposure | None = None


def _median(values: np.ndarray, axis=0) -> np.ndarray:
    return np.median(values, axis=axis) if len(values) else np.full(values.shape[1:], np.nan)


def judge(offsets: np.ndarray, scores: np.ndarray, scales: np.ndarray | None = None,
          scale_scores: np.ndarray | None = None) -> Judgement:
    """Verdict from ``scores`` ``(n, 4, K)`` (see the module docstring) at ``offsets`` ``(K,)``
    (must contain 0); ``scale_scores`` ``(n, 4, S)`` for window lengths scaled by ``scales``
    (must contain 1.0) at offset 0, NaN where a window leaves the stream."""
    offsets = np.asarray(offsets, np.int64)
    zero = int(np.flatnonzero(offsets == 0)[0])
    n = len(scores)
    at_zero = scores[:, :, zero]
    common = scores[np.isfinite(scores).all(axis=(1, 2))]
    searchable = len(common) >= MIN_FRAMES
    rows = common if searchable else scores[:, :, [zero]]
    grid = offsets if searchable else offsets[[zero]]
    medians = _median(rows)  # (4, K)
    best_k = medians.argmax(axis=1)  # best offset index per orientation
    per_o = np.array([medians[o, best_k[o]] for o in range(len(ORIENTATIONS))])
    o_best = int(per_o.argmax())
    flip = compare(rows[:, o_best, best_k[o_best]], rows[:, 0, best_k[0]])
    o_use = o_best if o_best and flip.clear else 0
    k_best = int(best_k[o_use])
    curve = rows[:, o_use]
    shift = compare(curve[:, k_best], curve[:, int(np.flatnonzero(grid == 0)[0])])
    spread = compare(curve[:, k_best], curve[:, int(medians[o_use].argmin())])
    best_score = float(medians[o_use, k_best])
    if o_use:
        verdict, reason, decisive = "orientation", (
            f"{ORIENTATIONS[o_use]} scores {per_o[o_use]:.3f} vs as-is {per_o[0]:.3f}"), flip
    elif not searchable:
        verdict, reason, decisive = "weak", (
            f"only {len(common)} frame(s) keep every moved window inside the stream "
            f"(need {MIN_FRAMES})"), shift
    elif best_score < MIN_SCORE:
        verdict, reason, decisive = "weak", (
            f"best score {best_score:.3f} < {MIN_SCORE}: too little texture to tell"), shift
    elif not spread.clear:
        verdict, reason, decisive = "weak", (
            f"score changes by {spread.gain:.4f} over the offsets (needs > {spread.threshold:.4f}): "
            "too little motion to tell"), spread
    elif shift.clear:
        verdict, reason, decisive = "offset", (
            f"offset {int(grid[k_best]):+d} gains {shift.gain:.4f} (> {shift.threshold:.4f})"), shift
    else:
        verdict, reason, decisive = "ok", (
            f"no offset clearly better than 0 (best {int(grid[k_best]):+d} gains {shift.gain:.4f}, "
            f"needs > {shift.threshold:.4f})"), shift
    return Judgement(
        verdict=verdict, reason=reason,
        score=float(medians[0, int(np.flatnonzero(grid == 0)[0])]),
        best_offset=int(grid[k_best]), best_score=best_score, orientation=ORIENTATIONS[o_use],
        gain=decisive.gain, threshold=decisive.threshold, frames=n, common_frames=len(common),
        offsets=tuple(int(k) for k in grid),
        curves={o: _rounded(medians[i]) for i, o in enumerate(ORIENTATIONS)},
        orientation_scores={o: round(float(v), 4) for o, v in zip(ORIENTATIONS, _median(at_zero))},
        exposure=None if scales is None else judge_exposure(scales, scale_scores, o_use))


def judge_exposure(scales: np.ndarray, scale_scores: np.ndarray, orientation: int = 0) -> Exposure | None:
    """Best window-length scale (about the window centre) on the frames where all fit."""
    scales = np.asarray(scales, np.float64)
    rows = scale_scores[np.isfinite(scale_scores).all(axis=(1, 2)), orientation]
    if len(rows) < MIN_FRAMES:
        return None
    medians = np.median(rows, axis=0)
    one, best = int(np.flatnonzero(scales == 1.0)[0]), int(medians.argmax())
    gain = compare(rows[:, best], rows[:, one])
    return Exposure(tuple(float(s) for s in scales), _rounded(medians), float(scales[best]),
                    gain.gain, best != one and gain.clear)


def _rounded(values) -> tuple[float, ...]:
    return tuple(round(float(v), 4) if np.isfinite(v) else None for v in values)
