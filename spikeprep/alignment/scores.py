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
windows' distinct ends ``b_0 < b_1 < ...`` cut the span into pieces; `prefix_counts_kernel`
(the SWAR counting of `spikeprep.representations.kernels`, keeping running totals) writes the count of frames
``[b_0, b_m)`` for every ``m``, each window's count image is a difference of two of those, and
one matrix product correlates every window with every target. `reference_scores` is the same
score in plain numpy.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError, WindowError
from ..inputs.dat import unpack_frames
from ..representations.kernels import (
    _BLOCK_BYTES,
    _BYTE,
    _MAX_FLUSH_FRAMES,
    _jit,
    add_frame_block,
    check_packed,
    prange,
)

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
    """``(T, H, W)`` images -> ``(T, H*W)`` float32 rows centred and scaled to unit norm.

    A constant image becomes all zeros, so every correlation with it is 0 (no information).
    """
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.sqrt((flat * flat).sum(axis=1, keepdims=True))
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0).astype(np.float32)


def orientation_targets(image: np.ndarray) -> np.ndarray:
    """``(4, H, W)``: ``image`` in every orientation of `ORIENTATIONS`, in that order.

    ``corr(oriented(spikes, o), image) == corr(spikes, oriented(image, o))`` because every
    orientation is its own inverse, so flipping the target scores the flipped spike image.
    """
    return np.stack([oriented(image, o) for o in ORIENTATIONS])


@_jit(parallel=True)
def prefix_counts_kernel(flat, frame_bytes, bounds, out):
    """Running spike counts at frame bounds, straight from packed bytes.

    flat: ``(L*H*W/8,)`` uint8 packed frames back to back; bounds: ``(M,)`` increasing int64
    frame indices in ``[0, L]``; out: ``(M, H*W)`` int32, filled with ``out[m, p]`` = spikes of
    stored pixel ``p`` (``8*j + k``: bit k of byte j) in frames ``[bounds[0], bounds[m])``.
    Each thread owns 512 bytes of the frame: byte-lane SWAR counters
    (`spikeprep.representations.kernels.add_frame_block`, as `count_ranges_kernel` uses them),
    drained into a block-local int32 total every 255 frames and at every bound, where the total
    is copied out (a contiguous 16 KiB row piece).
    Unchecked: callers validate (see `window_count_images`).
    """
    n_blocks = (frame_bytes + _BLOCK_BYTES - 1) // _BLOCK_BYTES
    for block in prange(n_blocks):
        j0 = block * _BLOCK_BYTES
        n_bytes = min(j0 + _BLOCK_BYTES, frame_bytes) - j0
        full_words = n_bytes // 8
        tail_bytes = n_bytes - 8 * full_words
        n_words = full_words + (1 if tail_bytes else 0)
        acc = np.zeros(8 * n_words, np.uint64)
        total = np.zeros(8 * n_bytes, np.int32)
        words = np.empty(8, np.uint64)
        out[0, 8 * j0:8 * (j0 + n_bytes)] = 0
        for m in range(1, len(bounds)):
            frame = bounds[m - 1]
            while frame < bounds[m]:
                chunk_stop = min(frame + _MAX_FLUSH_FRAMES, bounds[m])
                for f in range(frame, chunk_stop):
                    add_frame_block(flat, f * frame_bytes + j0, acc, n_words, full_words, tail_bytes)
                # drain: lane b of acc[k, w] counts pixel 8 * (8w + b) + k of the block
                for w in range(n_words):
                    for k in range(8):
                        words[k] = acc[k * n_words + w]
                        acc[k * n_words + w] = 0
                    for lane in range(min(8, n_bytes - 8 * w)):
                        shift = np.uint64(8 * lane)
                        for k in range(8):  # writes run along the block's pixels
                            total[64 * w + 8 * lane + k] += np.int32((words[k] >> shift) & _BYTE)
                frame = chunk_stop
            out[m, 8 * j0:8 * (j0 + n_bytes)] = total
    return out


def window_count_images(packed: np.ndarray, height: int, width: int, windows: np.ndarray,
                        dtype=np.int32) -> np.ndarray:
    """Spike count images of several windows of one packed span, in one pass over the span.

    packed: ``(L, H*W/8)`` uint8 frames as stored (`SpikeStream.packed`); windows: ``(n, 2)``
    int frame ranges ``[begin, end)`` relative to the span, inside ``[0, L]``. Returns ``(n, H*W)``
    counts (``dtype``: int32, or float32, exact below 2**24) in **stored pixel order** (rows
    bottom-up for a flipud stream: see `stored_order`).
    """
    flat = check_packed(packed, height, width)
    windows = np.asarray(windows, np.int64).reshape(-1, 2)
    if len(windows) == 0 or (windows[:, 0] < 0).any() or (windows[:, 1] < windows[:, 0]).any() \
            or (windows[:, 1] > len(packed)).any():
        raise WindowError("windows do not fit the packed span", found=f"{windows.tolist()[:4]} ...",
                          expected=f"0 <= begin <= end <= {len(packed)} (the span's frames)")
    bounds = np.unique(windows)
    pixels = height * width
    sums = prefix_counts_kernel(flat, pixels // 8, bounds, np.empty((len(bounds), pixels), dtype))
    first = np.searchsorted(bounds, windows[:, 0])
    last = np.searchsorted(bounds, windows[:, 1])
    out = np.empty((len(windows), pixels), dtype)
    for j in range(len(windows)):
        np.subtract(sums[last[j]], sums[first[j]], out=out[j])
    return out


@_jit(parallel=True)
def row_moments_kernel(rows, out):
    """``out[i] = (sum of rows[i], sum of rows[i]**2)``: rows ``(n, P)`` of whole numbers (counts,
    possibly stored as float32) summed exactly in int64 (integer sums vectorize)."""
    for i in prange(rows.shape[0]):
        s1 = 0
        s2 = 0
        for p in range(rows.shape[1]):
            x = np.int64(rows[i, p])
            s1 += x
            s2 += x * x
        out[i, 0] = s1
        out[i, 1] = s2
    return out


def stored_order(images: np.ndarray, flipud: bool) -> np.ndarray:
    """``(T, H, W)`` images in image orientation -> the stream's stored pixel order (T, H*W)."""
    images = np.asarray(images)
    return (images[:, ::-1] if flipud else images).reshape(len(images), -1)


def correlate_counts(counts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(n, P)`` count images x ``(T, P)`` `unit_targets` rows -> ``(n, T)`` correlations.

    The targets are centred, so ``counts @ targets.T`` is already the centred cross product
    (float32 matrix product; counts are exact in float32 below 2**24); the counts' centred
    norms come from their exact integer sums and sums of squares (`row_moments_kernel`). A window
    without spikes (or with the same count everywhere) scores 0 against everything.
    """
    counts = np.ascontiguousarray(counts, np.float32)
    moments = row_moments_kernel(counts, np.empty((len(counts), 2), np.int64)).astype(np.float64)
    centred_sq = moments[:, 1] - moments[:, 0] ** 2 / counts.shape[1]
    norms = np.sqrt(np.maximum(centred_sq, 0.0))
    dots = (counts @ np.asarray(targets, np.float32).T).astype(np.float64)
    return np.divide(dots, norms[:, None], out=np.zeros_like(dots), where=norms[:, None] > 1e-9)


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


def orientation_unit_targets(images: np.ndarray, flipud: bool = True) -> np.ndarray:
    """``(k, H, W)`` images -> ``(4k, H*W)`` float32: each image's `unit_targets` row in stored
    pixel order, in every orientation (image-major: image 0's 4 orientations first). Centring
    and scaling commute with flips, so each image is normalised once."""
    images = np.asarray(images)
    height, width = images.shape[1:]
    units = unit_targets(stored_order(images, flipud)).reshape(len(images), height, width)
    # a flip in image orientation is the same flip in stored order (rows reversed either way)
    return np.stack([oriented(u, o) for u in units for o in ORIENTATIONS]).reshape(4 * len(images), -1)


def score_window_orientations(packed: np.ndarray, height: int, width: int, windows: np.ndarray,
                              images: np.ndarray, flipud: bool = True) -> np.ndarray:
    """`score_windows` against every orientation of each image: ``(n, k, 4)`` for ``(k, H, W)``
    images (e.g. the blurry and the sharp luma) and the 4 `ORIENTATIONS`."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (height, width):
        raise UsageError("target images must match the spike frame size",
                         found=f"shape {images.shape}", expected=f"(k, {height}, {width})",
                         fix="resize the image to the spike resolution first")
    counts = window_count_images(packed, height, width, windows, np.float32)
    scores = correlate_counts(counts, orientation_unit_targets(images, flipud))
    return scores.reshape(len(counts), len(images), len(ORIENTATIONS))


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
