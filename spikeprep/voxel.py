"""The voxelization stage: one packed spike window -> ``(C, H, W)`` voxels of a representation.

A window is ``(L, H*W/8)`` uint8 packed frames (the zero-copy view from `SpikeStream.packed`);
the output is in image orientation (``flipud=True``: output row ``r`` is stored row ``H-1-r``).

Representations (``voxelize(..., repr=...)``; dataclasses in `spikeprep.representations.catalog`):

============  ==========  ===========================  =========================================
repr          channels    dtype                        channel ``c`` of a window of L frames
============  ==========  ===========================  =========================================
bins          S           uint8 / uint16 / uint32 (*)  spikes in frames ``[c*L//S, (c+1)*L//S)``
count         1           uint8 / uint16 / uint32 (*)  spikes in all L frames
temporal4     4           int16 (lossless, L <= 32767) first half, second half, first - second,
                                                       total (halves ``[0, L//2)``, ``[L//2, L)``)
ema           S (even)    float32                      c < S/2: fast trace, c >= S/2: slow trace,
                                                       sampled at the end of ema bin ``c % (S/2)``
tfp           S           uint8 / uint16 / uint32 (*)  spikes in a ``tfp_window``-frame window
                                                       centred on bin ``c``, clipped to ``[0, L)``
                                                       (not S-VRT's: see svrt-tfp)
svrt-tfp      S           uint8 (grey levels)          S-VRT's TFP: mean of ``2*hw+1`` frames around
                                                       clamped segment centres, x255, truncated
raw           N (S)       uint8 0/1, bit-packed        frame ``L//2 - N//2 + c`` (Spike-Zoo's centred
                                                       N frames; S=0: the whole window)
tfi           S (1)       float32                      SpikeCV's TFI ``255 / interval`` at the
                                                       centre of bin c, on the stream around it
tfp-ls        2           float32                      S-SDM's cal_tfp: mean of the window (long),
                                                       of the centred ``short`` frames (short)
svrt-encod..  25*S        uint8 0/1, bit-packed        S-VRT's encoding25: 25 frames around each
                                                       of S centres (prepare_scflow_encoding25.py)
============  ==========  ===========================  =========================================

(*) the narrowest unsigned type holding the longest counted frame range (<= 255 frames: uint8,
<= 65535: uint16, else uint32); counts are exact, never saturated. ``out=`` may supply any wider type.

The kernels (SWAR design, the JIT switch) are in `spikeprep.representations.kernels`; the representation
dataclasses in `spikeprep.representations.catalog`. Imports go one way: voxel -> representations -> kernels.
"""

from __future__ import annotations

import numpy as np

from .representations.catalog import make_representation

# the stage's kernels, re-exported so `spikeprep.voxel` keeps naming them
from .representations.kernels import (  # noqa: F401
    JIT_DISABLED,
    bin_edges,
    count_ranges,
    count_ranges_kernel,
    ema_kernel,
    uint_dtype_for,
)

__all__ = ["voxelize", "JIT_DISABLED", "bin_edges", "count_ranges", "count_ranges_kernel", "ema_kernel",
           "uint_dtype_for"]


def voxelize(packed, height: int, width: int, S: int, repr: str = "bins", flipud: bool = True,
             out=None, **repr_params) -> np.ndarray:
    """One packed window ``(L, H*W/8)`` uint8 -> ``(C, H, W)`` voxels of representation ``repr``.

    ``bins`` (default): ``(S, H, W)`` uint8 counts, bin ``k`` = frames ``[k*L//S, (k+1)*L//S)``
    (uint16 when a bin is longer than 255 frames). Other representations and their dtypes are
    tabled in the module docstring; ``repr_params`` go to `make_representation`. ``out``: a
    preallocated C-contiguous array of the output shape and a dtype wide enough, filled and
    returned. Raises VoxelError for fewer frames than the representation needs (L < S for bins)
    or a malformed window, UsageError for a bad ``out``.
    """
    return make_representation(repr, S, **repr_params).compute(packed, height, width,
                                                               flipud=flipud, out=out)
