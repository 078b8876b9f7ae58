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
