"""Raw spike frames as network inputs: the bits themselves, stored bit-packed.

* `Raw` (``--repr raw[:N]``): the centred N frames of each window (Spike-Zoo's centring).
* `SvrtEncoding25` (``--repr svrt-encoding25``): S-VRT's SCFlow input, 25-frame windows at the
  centres of ``prepare_scflow_encoding25.py``.

Both give ``(C, H, W)`` uint8 0/1 in image orientation (``flipud=True``: output row ``r`` is
stored row ``H-1-r``), exactly the bits SpikeCV's reader gives; the cache stores them 8 pixels
per byte (``storage = "bitpacked"``, `spikeprep.cache.records.pack_bits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import VoxelError
from .base import Named, OneChannelPerBin
from .kernels import check_out, check_packed


def unpack_frames(packed: np.ndarray, height: int, width: int, flipud: bool = True) -> np.ndarray:
    """``(n, H*W/8)`` packed frames -> ``(n, H, W)`` uint8 0/1 (bit order little, rows bottom-up
    on disk: flipped to image orientation when ``flipud``)."""
    bits = np.unpackbits(packed, axis=1, bitorder="little").reshape(len(packed), height, width)
    return bits[:, ::-1] if flipud else bits


class _Bits(Named):
    """Shared by the 0/1 representations: uint8 storage, bit-packed, values need no scaling."""

    S: int
    name: ClassVar[str]
    storage: ClassVar[str] = "bitpacked"

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return np.dtype(np.uint8)

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(C,)`` float64 ones: the values are already spikes per frame (0 or 1)."""
        return np.ones(self.channels)


@dataclass(frozen=True)
class Raw(OneChannelPerBin, _Bits):
    """``(N, H, W)`` uint8 0/1: frames ``[L//2 - N//2, L//2 - N//2 + N)`` of an L-frame window
    (Spike-Zoo's centring), N = S. ``S=0`` means the whole window (``N = L``); a cache build
    resolves it to the dataset's one window length (`spikeprep.cache.repr_specs.resolve`)."""

    S: int = 0
    name: ClassVar[str] = "raw"

    def frames(self, n_frames: int) -> tuple[int, int]:
        """``(start, stop)``: the window frames kept of an ``n_frames``-frame window."""
        n = self.S or n_frames
        if n > n_frames:
            raise VoxelError(f"spike window too short for --repr raw:{n}", found=f"L={n_frames} spike frames",
                             expected=f"L >= {n} (the centred {n} frames of each window)",
                             fix=f"use --repr raw:{n_frames} or less, or lengthen the spike windows")
        start = n_frames // 2 - n // 2
        return start, start + n

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        start, stop = self.frames(len(packed))
        out = check_out(out, (stop - start, height, width), np.uint8, max_value=1)
        np.copyto(out, unpack_frames(packed[start:stop], height, width, flipud), casting="unsafe")
        return out


#: S-VRT's SCFlow window: 25 frames, centred (``data/spike_recc/encoding25.py``)
ENCODING25 = 25
SHORT_POLICIES = ("pad_edge", "pad_zero", "strict")


@dataclass(frozen=True)
class SvrtEncoding25(_Bits):
    """``(25*S, H, W)`` uint8 0/1: S-VRT's ``encoding25`` flow input of
    ``prepare_scflow_encoding25.py --subframes S`` (channels ``25*s .. 25*s+24``: subframe s).

    S > 1: centres ``int(round(c))`` for ``c`` in ``np.linspace(12, L - 13, S)`` (Python's
    rounding, half to even); subframe s is frames ``[c - 12, c + 13)``; needs L >= 25. S = 1:
    frames ``[(L-25)//2, (L-25)//2 + 25)``; a shorter window is padded as ``short_policy`` says
    (``pad_edge``, S-VRT's default: the first/last frame repeated, ``(25-L)//2`` before;
    ``pad_zero``; ``strict``: refused). S-VRT reads the whole ``.dat``: voxelize the windows
    ``spikeprep import s-vrt`` writes (whole files) to get its artifacts bit for bit.
    """

    S: int = 4
    short_policy: str = "pad_edge"
    name: ClassVar[str] = "svrt-encoding25"

    @property
    def channels(self) -> int:
        return ENCODING25 * self.S

    @property
    def min_frames(self) -> int:
        return 1 if self.S == 1 and self.short_policy != "strict" else ENCODING25

    def starts(self, n_frames: int) -> list[int]:
        """First frame of each subframe's 25 (negative/short only for S = 1 with padding)."""
        half = ENCODING25 // 2
        if n_frames < self.min_frames:
            raise VoxelError(f"spike window too short for --repr svrt-encoding25 with S={self.S}",
                             found=f"L={n_frames} spike frames", expected=f"L >= {self.min_frames} "
                             "(S-VRT's prepare_scflow_encoding25.py refuses shorter files)",
                             fix="use S=1 (padded as --repr-param short_policy says) or longer windows")
        if self.S == 1:
            return [(n_frames - ENCODING25) // 2]
        centres = np.linspace(half, n_frames - half - 1, self.S)
        return [int(round(float(c))) - half for c in centres]

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        n_frames = len(packed)
        out = check_out(out, (self.channels, height, width), np.uint8, max_value=1)
        for s, start in enumerate(self.starts(n_frames)):
            target = out[ENCODING25 * s:ENCODING25 * (s + 1)]
            if start >= 0:
                np.copyto(target, unpack_frames(packed[start:start + ENCODING25], height, width, flipud),
                          casting="unsafe")
                continue
            left = (ENCODING25 - n_frames) // 2  # S = 1, L < 25: pad as S-VRT does
            bits = unpack_frames(packed, height, width, flipud)
            mode = "edge" if self.short_policy == "pad_edge" else "constant"
            np.copyto(target, np.pad(bits, ((left, ENCODING25 - n_frames - left), (0, 0), (0, 0)), mode=mode),
                      casting="unsafe")
        return out
