"""Scoring frame/spike alignment from the data itself (pure functions, no files).

A blurry RGB frame integrates the scene over its exposure, and so does the spike count image of
its spike window; the sharp frame is the scene at mid-exposure. So the Pearson correlation
between the window's spike count image and the frame's luma (both at the spike resolution)
peaks when the window is right, and falls as the window moves or the spike image is flipped.

Orientations (applied to the spike image, each its own inverse):

=========  ==========================
as-is      the image as read
flipud     rows reversed
fliplr     columns reversed
rot180     both (a 180 degree turn)
=========  ==========================

`score_windows` scores many windows of one frame in one pass over the packed bytes: the
windows' distinct ends cut the span into disjoint pieces, the numba kernel
(`spikeprep.voxel.count_ranges_kernel`) counts every piece at once, running sums over the pieces
give each window's count image as a difference of two sums, and one matrix product correlates
every window with every target. `reference_scores` is the same score in plain numpy.
"""

from __future__ import annotations

import numpy as np

from .dat import unpack_frames
from .errors import UsageError, WindowError
from .voxel import check_packed, count_ranges_kernel

ORIENTATIONS = ("as-is", "flipud", "fliplr", "rot180")


def oriented(image: np.ndarray, orientation: str) -> np.ndarray:
    """``image`` (H, W[, ...]) seen in ``orientation`` (a view; see the module table)."""
    if orientation == "as-is":
        return image
    if orientation == "flipud":
        return image[::-1]
    if orientation == "fliplr":
        return image[:, ::-1]
    if orientation == "rot180":
        return image[::-1, ::-1]
    raise UsageError("unknown orientation", found=repr(orientation), expected=", ".join(ORIENTATIONS))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two same-sized arrays (float64); 0.0 when either is constant."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def unit_targets(images: np.ndarray) -> np.ndarray:
    """``(T, H, W)`` images -> ``(T, H*W)`` float64 rows centred and scaled to unit norm.

    A constant image becomes all zeros, so every correlation with it is 0 (no information).
    """
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.sqrt((flat * flat).sum(axis=1, keepdims=True))
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)


def orientation_targets(image: np.ndarray) -> np.ndarray:
    """``(4, H, W)``: ``image`` in every orientation of `ORIENTATIONS`, in that order.

    ``corr(oriented(spikes, o), image) == corr(spikes, oriented(image, o))`` because every
    orientation is its own inverse, so flipping the target scores the flipped spike image.
    """
    return np.stack([oriented(image, o) for o in ORIENTATIONS])


def window_count_images(packed: np.ndarray, height: int, width: int,
                        windows: np.ndarray) -> np.ndarray:
    """Spike count images of several windows of one packed span, in one pass over the span.

    packed: ``(L, H*W/8)`` uint8 frames as stored (`SpikeStream.packed`); windows: ``(n, 2)``
    int frame ranges ``[begin, end)`` relative to the span, inside ``[0, L]``. Returns ``(n, H*W)``
    int32 counts in **stored pixel order** (rows bottom-up for a flipud stream: see
    `stored_order`).
    """
    flat = check_packed(packed, height, width)
    windows = np.asarray(windows, np.int64).reshape(-1, 2)
    if len(windows) == 0 or (windows[:, 0] < 0).any() or (windows[:, 1] < windows[:, 0]).any() \
            or (windows[:, 1] > len(packed)).any():
        raise WindowError("windows do not fit the packed span", found=f"{windows.tolist()[:4]} ...",
                          expected=f"0 <= begin <= end <= {len(packed)} (the span's frames)")
    bounds = np.unique(windows)
    pixels = height * width
    sums = np.zeros((len(bounds), pixels), np.int32)  # sums[m] = spikes in frames [bounds[0], bounds[m])
    if len(bounds) > 1:
        pieces = np.empty((len(bounds) - 1, 1, pixels), np.int32)
        # one "row" of H*W pixels in stored order: the kernel's flush then needs no row mapping
        count_ranges_kernel(flat, pixels // 8, bounds[:-1], bounds[1:], 1, pixels, False, pieces)
        for m in range(1, len(bounds)):
            np.add(sums[m - 1], pieces[m - 1, 0], out=sums[m])
    first = np.searchsorted(bounds, windows[:, 0])
    last = np.searchsorted(bounds, windows[:, 1])
    return sums[last] - sums[first]


def stored_order(images: np.ndarray, flipud: bool) -> np.ndarray:
    """``(T, H, W)`` images in image orientation -> the stream's stored pixel order (T, H*W)."""
    images = np.asarray(images)
    return (images[:, ::-1] if flipud else images).reshape(len(images), -1)


def correlate_counts(counts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(n, P)`` integer count images x ``(T, P)`` `unit_targets` rows -> ``(n, T)`` correlations.

    A window without spikes (or with the same count everywhere) scores 0 against everything.
    """
    counts_f = counts.astype(np.float64)
    sum_x = counts_f.sum(axis=1)
    centred_sq = np.einsum("ij,ij->i", counts_f, counts_f) - sum_x * sum_x / counts.shape[1]
    norms = np.sqrt(np.maximum(centred_sq, 0.0))
    dots = counts_f @ targets.T  # targets are centred, so this is the centred cross product
    return np.divide(dots, norms[:, None], out=np.zeros_like(dots), where=norms[:, None] > 0)


def score_windows(packed: np.ndarray, height: int, width: int, windows: np.ndarray,
                  images: np.ndarray, flipud: bool = True) -> np.ndarray:
    """Correlation of each window's spike count image with each image: ``(n, T)`` float64.

    packed: ``(L, H*W/8)`` uint8 span; windows: ``(n, 2)`` ranges relative to the span;
    images: ``(T, H, W)`` float targets in image orientation at the spike resolution (e.g. the
    blurry frame's luma in every orientation, `orientation_targets`); flipud: the stream's
    row order (True: rows stored bottom-up, SpikeCV's default).
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (height, width):
        raise UsageError("target images must match the spike frame size",
                         found=f"shape {images.shape}", expected=f"(T, {height}, {width})",
                         fix="resize the image to the spike resolution first")
    counts = window_count_images(packed, height, width, windows)
    return correlate_counts(counts, unit_targets(stored_order(images, flipud)))


def reference_scores(packed: np.ndarray, height: int, width: int, windows: np.ndarray,
                     images: np.ndarray, flipud: bool = True) -> np.ndarray:
    """`score_windows` in plain numpy (unpack the bits, sum, `correlation`): the reference."""
    spikes = unpack_frames(np.asarray(packed), height, width, flipud)
    return np.array([[correlation(spikes[b:e].sum(axis=0, dtype=np.int64), image) for image in images]
                     for b, e in np.asarray(windows).reshape(-1, 2)])


def score_orientations(stream, begin: int, end: int, image: np.ndarray,
                       flipud: bool = True) -> dict[str, float]:
    """Score the spike window ``[begin, end)`` of a `SpikeStream` against ``image`` (H, W) (e.g.
    a ground-truth or blurry luma at the spike resolution) in every orientation.

    Returns ``{orientation: correlation}``; the right orientation has the largest value.
    """
    packed = stream.packed(begin, end)
    scores = score_windows(packed, stream.height, stream.width, np.array([[0, end - begin]]),
                           orientation_targets(np.asarray(image, np.float64)), flipud)
    return dict(zip(ORIENTATIONS, scores[0].tolist()))


def best_orientation(scores: dict[str, float]) -> str:
    """The orientation with the largest score (ties: the first in `ORIENTATIONS`)."""
    return max(ORIENTATIONS, key=lambda o: (scores[o], -ORIENTATIONS.index(o)))
