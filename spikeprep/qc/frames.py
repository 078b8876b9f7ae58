"""Per-frame spike counts of a recording, streamed, and what they say about the capture:
empty frames, saturated frames, and jumps of the firing rate that suggest dropped data."""

from __future__ import annotations

import numpy as np

#: Spikes per byte value (popcount of 0..255).
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint16)
#: A frame with at least this fraction of its pixels firing is saturated.
SATURATED_FRACTION = 0.999
#: Frames on each side of the running median a frame's count is compared with.
JUMP_HALF_WINDOW = 8
#: A jump: the count differs from the running median by this many Poisson sigmas and this fraction.
JUMP_SIGMAS, JUMP_FRACTION = 8.0, 0.5


def frame_counts(stream, chunk_frames: int = 1024) -> np.ndarray:
    """``(N,)`` int64 spikes of every frame of a `SpikeStream`, read ``chunk_frames`` at a time."""
    counts = np.empty(len(stream), np.int64)
    for begin in range(0, len(stream), chunk_frames):
        end = min(begin + chunk_frames, len(stream))
        counts[begin:end] = _POPCOUNT[stream.packed(begin, end)].sum(axis=1, dtype=np.int64)
    return counts


def empty_frames(counts: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(counts == 0)]


def saturated_frames(counts: np.ndarray, pixels: int) -> list[int]:
    return [int(i) for i in np.flatnonzero(counts >= SATURATED_FRACTION * pixels)]


def rate_jumps(counts: np.ndarray) -> list[int]:
    """Frames whose count leaves the running median of the ``JUMP_HALF_WINDOW`` frames on each
    side by `JUMP_SIGMAS` Poisson sigmas and `JUMP_FRACTION` of it (empty frames included)."""
    n = len(counts)
    if n < 3:
        return []
    half = JUMP_HALF_WINDOW
    padded = np.pad(counts.astype(np.float64), half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    others = np.delete(windows, half, axis=1)
    median = np.median(others, axis=1)
    deviation = np.abs(counts - median)
    jump = (deviation > JUMP_SIGMAS * np.sqrt(np.maximum(median, 1.0))) & (deviation > JUMP_FRACTION * median)
    return [int(i) for i in np.flatnonzero(jump)]
