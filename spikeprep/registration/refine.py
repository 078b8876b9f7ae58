"""Refinement and scoring of a spike -> RGB matrix (pure numpy/cv2).

`ecc` refines a starting matrix on one frame with cv2.findTransformECC: the template is the
spike count image (spike px), the input the RGB luma, the warp maps template to input, i.e.
spike px -> RGB px, exactly the registration convention. It runs coarse to fine: an affine
warp on the spike image at half size, then the model's own motion type at full size
(similarity: the affine result projected onto the closest similarity). The input luma is
brought near the spike resolution first (INTER_AREA), its mask keeps ECC inside the RGB frame.

`ncc` scores a matrix on one frame: the luma seen through it at every spike pixel against the
spike count image, Pearson correlation over the spike pixels that land inside the RGB frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import apply, normalised, resize_matrix, scale_of, to_affine, to_similarity

MOTIONS = {"similarity": cv2.MOTION_AFFINE, "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}
MODELS = tuple(MOTIONS)
#: ECC stops after this many iterations or when the update is below `ECC_EPS`.
ECC_ITERATIONS, ECC_EPS = 60, 1e-5
#: Fewest spike pixels that must land inside the RGB frame for a score (fraction of the frame).
MIN_SEEN = 0.1


def smooth_spikes(count: np.ndarray) -> np.ndarray:
    """A spike count image ``(h, w)`` as float32, smoothed by a Gaussian of 1 spike px (shot noise)."""
    return cv2.GaussianBlur(np.asarray(count, np.float32), (0, 0), 1.0)


def luma_for(luma: np.ndarray, matrix: np.ndarray, spike_size) -> np.ndarray:
    """The RGB luma ``(H, W)`` blurred to a spike pixel's footprint (Gaussian, sigma 0.4 x the
    scale of ``matrix``), so that sampling it at spike pixels does not alias."""
    h, w = spike_size
    sigma = 0.4 * scale_of(matrix, ((w - 1) / 2, (h - 1) / 2))
    return cv2.GaussianBlur(luma, (0, 0), sigma) if sigma > 0.5 else luma


def seen_through(luma: np.ndarray, matrix: np.ndarray, spike_size) -> tuple[np.ndarray, np.ndarray]:
    """``(h, w)`` luma at every spike pixel's RGB position, and the mask of those inside the frame."""
    h, w = spike_size
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(luma, matrix, (w, h), flags=flags)
    inside = cv2.warpPerspective(np.ones_like(luma), matrix, (w, h), flags=flags) > 0.999
    return warped, inside


def ncc(spike: np.ndarray, luma: np.ndarray, matrix: np.ndarray) -> float:
    """Correlation of a smoothed spike image with the (footprint-blurred) luma through ``matrix``,
    over the spike pixels that see the RGB frame; NaN when fewer than `MIN_SEEN` of them do."""
    warped, inside = seen_through(luma, matrix, spike.shape)
    if inside.mean() < MIN_SEEN:
        return math.nan
    a = spike[inside].astype(np.float64)
    b = warped[inside].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def mean_ncc(spikes, lumas, matrix: np.ndarray) -> float:
    """`ncc` averaged over frames (NaN frames count as 0)."""
    values = [ncc(s, luma, matrix) for s, luma in zip(spikes, lumas)]
    return float(np.mean([0.0 if math.isnan(v) else v for v in values]))


def _ecc_level(template, image, matrix, motion) -> np.ndarray:
    """One findTransformECC run; ``matrix`` maps template px -> image px (3x3 in, 3x3 out)."""
    mask = np.zeros(image.shape, np.uint8)
    mask[2:-2, 2:-2] = 1
    start = normalised(matrix).astype(np.float32)
    warp = start if motion == cv2.MOTION_HOMOGRAPHY else start[:2].copy()
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ECC_ITERATIONS, ECC_EPS)
    _, warp = cv2.findTransformECC(template, image, warp, motion, criteria, mask, 5)
    out = np.vstack([warp, [0, 0, 1]]) if warp.shape[0] == 2 else warp
    return out.astype(np.float64)


def ecc(spike: np.ndarray, luma: np.ndarray, matrix: np.ndarray, model: str) -> np.ndarray:
    """Refine ``matrix`` (spike px -> RGB px) on one frame: smoothed spike image ``(h, w)``,
    luma ``(H, W)`` float32. Raises cv2.error when ECC does not converge."""
    h, w = spike.shape
    H, W = luma.shape
    levels = [((h // 2, w // 2), cv2.MOTION_AFFINE)] if min(h, w) >= 64 else []
    levels.append(((h, w), MOTIONS[model]))
    for size, motion in levels:
        scale = scale_of(matrix, ((w - 1) / 2, (h - 1) / 2)) * size[1] / w  # RGB px per level spike px
        factor = max(1.0, scale / 1.5)
        image_size = (max(8, round(H / factor)), max(8, round(W / factor)))
        to_image = resize_matrix((H, W), image_size)
        to_template = resize_matrix((h, w), size)
        template = cv2.resize(spike, (size[1], size[0]), interpolation=cv2.INTER_AREA) if size != (h, w) else spike
        image = cv2.resize(luma, (image_size[1], image_size[0]), interpolation=cv2.INTER_AREA) \
            if image_size != (H, W) else luma
        start = to_image @ matrix @ np.linalg.inv(to_template)
        found = _ecc_level(template, image, start, motion)
        matrix = normalised(np.linalg.inv(to_image) @ found @ to_template)
        if model == "similarity":
            matrix = to_similarity(matrix, (h, w))
        elif motion == cv2.MOTION_AFFINE and model == "affine":
            matrix = to_affine(matrix, (h, w))
    return matrix


def corner_rms(matrices, chosen: np.ndarray, points: np.ndarray) -> float:
    """RMS (RGB px) over ``matrices`` and ``points`` (RGB px, e.g. the overlap box's corners) of
    the distance between each point and where the matrix puts the spike pixel that ``chosen``
    puts there: how much the per-frame estimates disagree with the chosen one where it counts."""
    if not matrices:
        return math.nan
    spike_points = apply(np.linalg.inv(chosen), points)
    d = [apply(m, spike_points) - points for m in matrices]
    return float(math.sqrt(np.mean(np.square(d).sum(axis=-1))))
