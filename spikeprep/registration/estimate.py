"""One sequence's registration from its frames (pure: images in, an `Estimate` out).

1. texture: flat RGB frames cannot be registered (verdict weak);
2. coarse: the search (`search.search`) on `COARSE_FRAMES` frames for the spike image as-is
   and flipped up-down, left-right and both; a match clearly better only flipped means the
   config's flipud is wrong or the view is mirrored (verdict failed); else the as-is match is
   refined on finer levels (`search.refine`);
3. refine: ECC per frame from the coarse matrix (`refine.ecc`); the candidate (per-frame results
   and the coarse matrix) with the best mean NCC over all frames is chosen;
4. judge: NCC before (naive: the spike image resized onto the whole RGB frame) and after,
   ``rms_px`` (`refine.corner_rms` at the overlap box's corners), the overlap box, the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..alignment.scores import ORIENTATIONS, oriented
from .geometry import centre_corners, degeneracy, normalised, overlap_box, resize_matrix, to_affine, to_similarity
from .refine import MODELS, corner_rms, ecc, luma_for, mean_ncc, smooth_spikes
from .search import refine, search

COARSE_FRAMES = 4
#: Luma std (0-255) below which a frame has no texture.
MIN_TEXTURE = 2.0
#: Verdict thresholds: mean NCC after registration, and frame disagreement (RGB px).
FAILED_NCC, WEAK_NCC, WEAK_RMS = 0.15, 0.35, 1.5
#: A flipped orientation wins when its coarse score beats as-is by this much.
ORIENTATION_MARGIN = 0.1
#: The as-is coarse score must beat every flipped one (chance level) by this much.
MIN_GAIN = 0.1
#: Smallest overlap box (fraction of the RGB frame's area).
MIN_OVERLAP = 0.02


@dataclass(frozen=True)
class Estimate:
    """A sequence's registration: matrix spike px -> RGB px (3x3, [2][2] == 1) or None, scores
    (NCC in [-1, 1]), ``rms_px`` (RGB px), overlap box (x0, y0, x1, y1) or None, verdict, reason."""

    model: str
    matrix: np.ndarray | None
    rms_px: float | None
    ncc_before: float | None
    ncc_after: float | None
    overlap: tuple[int, int, int, int] | None
    frames_used: int
    verdict: str
    reason: str
    orientation_scores: dict | None = None

    def to_dict(self) -> dict:
        def rounded(v, n=4):
            return None if v is None or not math.isfinite(v) else round(float(v), n)
        return {"model": self.model,
                "matrix": None if self.matrix is None else [[float(v) for v in row] for row in self.matrix],
                "rms_px": rounded(self.rms_px, 3), "ncc_before": rounded(self.ncc_before),
                "ncc_after": rounded(self.ncc_after), "overlap": None if self.overlap is None else list(self.overlap),
                "frames_used": self.frames_used, "verdict": self.verdict, "reason": self.reason}


def _spread(items: list, n: int) -> list:
    return [items[i] for i in np.unique(np.round(np.linspace(0, len(items) - 1, min(n, len(items)))).astype(int))]


def coarse_matches(spikes, lumas, names=ORIENTATIONS) -> dict:
    """`search.search` then `search.refine` for the spike images in each orientation ``names``
    (of `ORIENTATIONS`); None for an orientation without a usable template."""
    out = {}
    for name in names:
        turned = [np.ascontiguousarray(oriented(s, name)) for s in spikes]
        found = search(turned, lumas)
        out[name] = None if found is None else refine(turned, lumas, found)
    return out


def _model_matrix(matrix: np.ndarray, model: str, spike_size) -> np.ndarray:
    if model == "similarity":
        return to_similarity(matrix, spike_size)
    return to_affine(matrix, spike_size) if model == "affine" else matrix


def _orientation_reason(name: str, scores: dict) -> str:
    what = {"flipud": "flipped up-down: flipud in config.yaml is likely wrong",
            "fliplr": "mirrored left-right (a mirrored view cannot be registered by a camera's map)",
            "rot180": "turned 180 degrees (flipud wrong and mirrored, or a camera upside down)"}[name]
    return f"the spike image matches only {what} (coarse score {scores[name]:.2f} vs {scores['as-is']:.2f} as-is)"


def _failed(model, reason, frames, ncc_before=None, scores=None, verdict="failed") -> Estimate:
    return Estimate(model, None, None, ncc_before, None, None, frames, verdict, reason, scores)


def estimate(counts: list[np.ndarray], lumas: list[np.ndarray], model: str = "homography",
             check_orientation: bool = True) -> Estimate:
    """Register spike count images ``(h, w)`` (one exposure window each, image orientation)
    against the lumas ``(H, W)`` (0-255) of the same RGB frames; see the module docstring."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}")
    spikes = [smooth_spikes(c) for c in counts]
    lumas = [np.asarray(luma, np.float32) for luma in lumas]
    spike_size, rgb_size = spikes[0].shape, lumas[0].shape
    naive = resize_matrix(spike_size, rgb_size)
    before = mean_ncc(spikes, [luma_for(luma, naive, spike_size) for luma in lumas], naive)
    if np.median([cv2.GaussianBlur(luma, (0, 0), 2.0).std() for luma in lumas]) < MIN_TEXTURE:
        return _failed(model, "too little texture in the RGB frames to register", 0, before, verdict="weak")
    few_spikes, few_lumas = _spread(spikes, COARSE_FRAMES), _spread(lumas, COARSE_FRAMES)
    found = coarse_matches(few_spikes, few_lumas, ORIENTATIONS if check_orientation else ("as-is",))
    scores = {name: -1.0 if m is None else round(m.score, 4) for name, m in found.items()}
    best = max(scores, key=scores.get)
    if best != "as-is" and scores[best] > scores["as-is"] + ORIENTATION_MARGIN:
        return _failed(model, _orientation_reason(best, scores), 0, before, scores)
    flipped = max((v for k, v in scores.items() if k != "as-is"), default=None)
    if flipped is not None and scores["as-is"] < flipped + MIN_GAIN:
        return _failed(model, f"no match: the coarse score as-is ({scores['as-is']:.2f}) is no better than "
                              f"flipped or mirrored ({flipped:.2f}), i.e. chance", 0, before, scores)
    coarse = found["as-is"]
    if coarse is None:
        return _failed(model, "no scale in 0.5-4 gives a usable template", 0, before, scores)
    start = _model_matrix(coarse.matrix, model, spike_size)
    blurred = [luma_for(luma, start, spike_size) for luma in lumas]
    results = []
    for spike, luma in zip(spikes, blurred):
        try:
            results.append(ecc(spike, luma, start, model))
        except cv2.error:
            continue
    candidates = [start] + [m for m in results if degeneracy(m, spike_size) is None]
    values = [mean_ncc(spikes, blurred, m) for m in candidates]
    matrix = normalised(candidates[int(np.argmax(values))])
    return judge(model, matrix, max(values), before, results, spike_size, rgb_size, scores)


def judge(model, matrix, after, before, results, spike_size, rgb_size, scores=None) -> Estimate:
    """The verdict on a chosen matrix (see `Estimate` and the module docstring)."""
    problem = degeneracy(matrix, spike_size)
    box = None if problem else overlap_box(matrix, spike_size, rgb_size)
    area = 0 if box is None else (box[2] - box[0]) * (box[3] - box[1])
    corners = centre_corners((box[3] - box[1], box[2] - box[0])) + box[:2] if box else None
    rms = corner_rms(results, matrix, corners) if corners is not None else None
    if problem:
        verdict, reason = "failed", problem
    elif area < MIN_OVERLAP * rgb_size[0] * rgb_size[1]:
        verdict, reason = "failed", "no overlap: the spike view does not cover enough of the RGB frame"
    elif after < FAILED_NCC:
        verdict, reason = "failed", f"no match: NCC {after:.2f} after registration (below {FAILED_NCC})"
    elif not results:
        verdict, reason = "weak", "ECC did not converge on any frame"
    elif after < WEAK_NCC:
        verdict, reason = "weak", f"low NCC {after:.2f} after registration (below {WEAK_NCC}): too little texture?"
    elif rms is not None and rms > WEAK_RMS:
        verdict, reason = "weak", f"frames disagree by {rms:.2f} RGB px RMS (above {WEAK_RMS})"
    else:
        verdict, reason = "ok", ""
    return Estimate(model, matrix, rms, before, after, box, len(results), verdict, reason, scores)
