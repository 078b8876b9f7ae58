"""Independent reference implementations that the tests (and benchmarks) compare against.

Nothing here imports spikeprep: these are plain-numpy restatements of how other software
(SpikeCV) or the maths behaves, written the slow, obvious way.
"""

from __future__ import annotations

import numpy as np


def spikecv_decode(raw: np.ndarray, height: int, width: int, begin: int, length: int,
                   flipud: bool = True) -> np.ndarray:
    """SpikeCV's ``get_block_spikes`` algorithm on the file's bytes ``raw`` (1-D uint8).

    Pixel ``p`` of the block (flattened frame-major, row-major) is bit ``p % 8`` of byte
    ``p // 8`` counted from the block's first byte; a bit is on when ``byte & (1 << bit)``
    equals the mask. Frames are flipped vertically when ``flipud``. Raises IndexError where
    SpikeCV does (a block reaching past the end of the file).
    """
    frame_pixels = height * width
    pixel = np.arange(length * frame_pixels).reshape(length, height, width)
    mask = np.left_shift(1, pixel % 8)
    first_byte = begin * frame_pixels // 8
    block = raw[first_byte:first_byte + length * frame_pixels // 8]
    spikes = np.bitwise_and(block[pixel // 8], mask) == mask
    return spikes[:, ::-1, :] if flipud else spikes


def spikecv_matrix(raw: np.ndarray, height: int, width: int, flipud: bool = True) -> np.ndarray:
    """SpikeCV's ``get_spike_matrix``: every whole frame of the file (trailing bytes ignored)."""
    n_frames = len(raw) // (height * width // 8)
    return spikecv_decode(raw, height, width, 0, n_frames, flipud)


# -- voxel representations, the obvious way on unpacked bits ------------------------------------

def unpack_window(packed: np.ndarray, height: int, width: int, flipud: bool = True) -> np.ndarray:
    """``(L, H*W/8)`` uint8 packed frames -> ``(L, H, W)`` uint8 0/1 (LSB-first, rows bottom-up)."""
    bits = np.unpackbits(packed, axis=1, bitorder="little").reshape(len(packed), height, width)
    return bits[:, ::-1] if flipud else bits


def bins_reference(packed, height, width, n_bins, flipud=True) -> np.ndarray:
    """``(S, H, W)`` int64: bin k sums frames ``[k*L//S, (k+1)*L//S)`` (add.reduceat)."""
    bits = unpack_window(packed, height, width, flipud).astype(np.int64)
    starts = np.arange(n_bins) * len(packed) // n_bins
    return np.add.reduceat(bits, starts, axis=0)


def temporal4_reference(packed, height, width, flipud=True) -> np.ndarray:
    """``(4, H, W)`` int64: [first half, second half, first - second, total], halves at L//2."""
    bits = unpack_window(packed, height, width, flipud).astype(np.int64)
    first, second = bits[:len(bits) // 2].sum(0), bits[len(bits) // 2:].sum(0)
    return np.stack([first, second, first - second, first + second])


def ema_reference(packed, height, width, n_channels, tau_fast, tau_slow, flipud=True) -> np.ndarray:
    """``(S, H, W)`` float64: v_t = v_{t-1} exp(-1/tau) + s_t sampled after each of S/2 bins."""
    bits = unpack_window(packed, height, width, flipud).astype(np.float64)
    n_frames, n_samples = len(bits), n_channels // 2
    sample_after = {(m + 1) * n_frames // n_samples - 1: m for m in range(n_samples)}
    out = np.zeros((n_channels, height, width))
    for c, tau in enumerate((tau_fast, tau_slow)):
        v = np.zeros((height, width))
        for t in range(n_frames):
            v = v * np.exp(-1.0 / tau) + bits[t]
            if t in sample_after:
                out[c * n_samples + sample_after[t]] = v
    return out


def tfp_reference(packed, height, width, n_bins, window, flipud=True) -> np.ndarray:
    """``(S, H, W)`` int64: spikes in the ``window`` frames centred on each bin, clipped to [0, L)."""
    bits = unpack_window(packed, height, width, flipud).astype(np.int64)
    n_frames = len(bits)
    out = np.zeros((n_bins, height, width), np.int64)
    for k in range(n_bins):
        begin, end = k * n_frames // n_bins, (k + 1) * n_frames // n_bins
        lo = (begin + end - window) // 2
        out[k] = bits[max(lo, 0):min(max(lo + window, 0), n_frames)].sum(0)
    return out
