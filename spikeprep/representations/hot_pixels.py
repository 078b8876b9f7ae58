"""Hot pixels: per-pixel firing rates of a whole stream, detection, and 3x3 median repair.

A hot pixel fires far more than the scene explains (a leaky or stuck photodiode). Rates are
measured in streaming chunks straight from the packed file with the voxel count kernel, so
a recording of any length costs O(chunk) memory. All images are in image orientation
(``flipud=True``), the orientation of `spikeprep.voxelize`.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError, VoxelError
from .kernels import count_ranges


def firing_rate(stream, chunk_frames: int = 4096) -> np.ndarray:
    """``(H, W)`` float64 spikes per frame of every pixel over the whole `SpikeStream`.

    Reads ``stream.packed(b, b + chunk_frames)`` chunk by chunk (never the whole file).
    """
    if chunk_frames < 1 or chunk_frames > 65535:
        raise UsageError("chunk_frames out of range", found=chunk_frames, expected="1..65535")
    n_frames, height, width = len(stream), stream.height, stream.width
    if n_frames == 0:
        raise VoxelError("cannot measure firing rates of an empty stream",
                         path=getattr(stream, "filename", None), found="0 frames", expected=">= 1 frame")
    total = np.zeros((height, width), np.int64)
    counts = np.empty((1, height, width), np.uint16)
    for begin in range(0, n_frames, chunk_frames):
        packed = stream.packed(begin, min(begin + chunk_frames, n_frames))
        total += count_ranges(packed, height, width, [0], [len(packed)], True, counts)[0]
    return total / n_frames


def detect_hot_pixels(rate: np.ndarray, factor: float = 5.0, floor: float = 0.05,
                      stuck: float = 0.999) -> np.ndarray:
    """``(H, W)`` bool mask of anomalous pixels in an ``(H, W)`` rate image (spikes/frame).

    Hot: ``rate > factor * median(rate)`` and ``rate > floor`` (the floor keeps a dark scene,
    median near 0, from flagging every pixel that saw light), or stuck: ``rate >= stuck``.
    """
    rate = np.asarray(rate, np.float64)
    if rate.ndim != 2:
        raise UsageError("rate must be an (H, W) image", found=f"shape {rate.shape}", expected="2-D")
    return ((rate > factor * np.median(rate)) & (rate > floor)) | (rate >= stuck)


def repair_hot_pixels(voxels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of ``(C, H, W)`` voxels with each masked pixel replaced, in every channel, by the
    median of its (up to 8) 3x3 neighbours that are not masked themselves.

    An even number of neighbours takes the lower of the two middle values, so integer counts
    stay integers of the input dtype. A masked pixel without an unmasked neighbour is left as is.
    """
    voxels = np.asarray(voxels)
    mask = np.asarray(mask, bool)
    if voxels.ndim != 3 or mask.shape != voxels.shape[1:]:
        raise UsageError("hot-pixel mask does not match the voxels",
                         found=f"voxels {voxels.shape}, mask {mask.shape}", expected="(C, H, W) and (H, W)")
    repaired = voxels.copy()
    height, width = mask.shape
    for row, col in zip(*np.nonzero(mask)):
        r0, r1, c0, c1 = max(row - 1, 0), min(row + 2, height), max(col - 1, 0), min(col + 2, width)
        good = ~mask[r0:r1, c0:c1]  # the centre is masked, so never among the neighbours
        if not good.any():
            continue
        neighbours = np.sort(voxels[:, r0:r1, c0:c1][:, good], axis=1)
        repaired[:, row, col] = neighbours[:, (neighbours.shape[1] - 1) // 2]
    return repaired
