"""Texture images of other projects, reproduced exactly.

* `Tfi` (``--repr tfi[:S]``): SpikeCV's Texture From Interval, ``TFI.spikes2frame``
  (``SpikeCV/spkProc/reconstruction/tfi.py``), computed on the stream around the window.
* `TfpLs` (``--repr tfp-ls``): S-SDM's long and short TFP pair, ``cal_tfp`` of
  ``train_deblur.py`` (chenkang455/S-SDM).

Both give ``(C, H, W)`` float32 in image orientation (``flipud=True``: output row ``r`` is
stored row ``H-1-r``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import VoxelError
from .base import Named, OneChannelPerBin
from .context import stream_window
from .kernels import bin_edges, check_out, check_packed, count_ranges, tfi_kernel


@dataclass(frozen=True)
class Tfi(OneChannelPerBin):
    """``(S, H, W)`` float32: SpikeCV's ``TFI.spikes2frame(stream, key_ts, half_window)`` at S
    instants of the window ``[b, e)``: the midpoints ``(e0 + e1) // 2`` of its S bins
    ``[b + k*L//S, b + (k+1)*L//S)`` (S = 1: ``key_ts = (b + e) // 2``), in stream frames.

    Per pixel: ``former`` = the last spike frame in ``[max(key - hw + 1, 1), key]`` (frame 0 of
    the stream is never looked at, as in SpikeCV), ``latter`` = the first in
    ``[key + 1, key + hw]``; value ``float32(255) / (latter - former)``, or ``255 / (2*hw)`` when
    either is missing. SpikeCV returns ``value.astype(uint8)`` (truncated): ``np.uint8(ours)``
    equals it bit for bit; ``value / 255`` is 1/interval, spikes per frame.

    Stream ends: SpikeCV raises for ``key < hw // 2`` (its ValueError) and for
    ``key + hw >= T`` (its IndexError, reading frame T); so do we, a VoxelError naming the frame.
    Computed on a plain window (`spikeprep.voxelize`), the window is the whole stream.
    """

    S: int = 1
    half_window: int = 20
    name: ClassVar[str] = "tfi"

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return np.dtype(np.float32)

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(S,)`` float64 255s: value / 255 = 1 / interval (spikes per frame)."""
        return np.full(self.S, 255.0)

    def keys(self, begin: int, end: int) -> np.ndarray:
        """``(S,)`` int64 stream frames where the S images are taken for the window ``[begin, end)``."""
        edges = begin + bin_edges(end - begin, self.S)
        return (edges[:-1] + edges[1:]) // 2

    def context(self, begin: int, end: int, stream_len: int) -> tuple[int, int]:
        """Stream frames ``[lo, hi)`` read for the window ``[begin, end)``; VoxelError where
        SpikeCV cannot compute an instant (too close to the stream's start or end)."""
        if end - begin < self.min_frames:
            raise VoxelError(f"spike window too short for --repr tfi with S={self.S}",
                             found=f"L={end - begin} spike frames", expected=f"L >= {self.S}",
                             fix="lengthen the spike window or lower S")
        keys, hw = self.keys(begin, end), self.half_window
        first, last = int(keys.min()), int(keys.max())
        if first < hw // 2:
            raise VoxelError("SpikeCV's TFI cannot be computed this close to the stream's start",
                             found=f"key_ts={first} (window [{begin}, {end}))",
                             expected=f"key_ts >= half_window // 2 = {hw // 2} (SpikeCV raises ValueError)",
                             fix="Drop the frame from sync.json or lower --repr-param half_window")
        if last + hw >= stream_len:
            raise VoxelError("SpikeCV's TFI cannot be computed this close to the stream's end",
                             found=f"key_ts={last} (window [{begin}, {end})), stream of {stream_len} frames",
                             expected=f"key_ts + half_window < {stream_len} (SpikeCV reads frame "
                                      f"key_ts + {hw} and raises IndexError past the end)",
                             fix="Drop the frame from sync.json or lower --repr-param half_window")
        return max(first - hw + 1, 0), last + hw + 1

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        """``packed``: a `StreamWindow` (the stream around the window, from the cache) or a plain
        ``(L, H*W/8)`` window (then the window is the whole stream)."""
        window = stream_window(packed)
        check_packed(window.packed, height, width)
        lo, hi = self.context(window.begin, window.end, window.stream_len)
        if lo < window.lo or hi > window.hi:
            raise VoxelError("--repr tfi got fewer stream frames than it reads",
                             found=f"frames [{window.lo}, {window.hi})", expected=f"[{lo}, {hi}) at least")
        out = check_out(out, (self.S, height, width), np.float32, kind="float")
        flat = np.ascontiguousarray(window.packed).reshape(-1)
        return tfi_kernel(flat, height * width // 8, window.lo, self.keys(window.begin, window.end),
                          self.half_window, height, width, bool(flipud), out)


@dataclass(frozen=True)
class TfpLs(Named):
    """``(2, H, W)`` float32: S-SDM's TFP pair, ``cal_tfp(spike, idx, n)`` = the mean of frames
    ``[idx - n//2, idx + n//2 + 1)``. Channel 0, the long TFP: the mean of the whole window (S-SDM's
    ``cal_tfp(spike, L//2, 97)`` over its 137-frame files is the 97 frames ``[20, 117)`` that
    ``spikeprep import s-sdm`` makes the window). Channel 1, the short TFP: ``cal_tfp`` at the
    window's centre, frames ``[L//2 - short//2, L//2 + short//2 + 1)`` (``short`` frames when odd,
    ``short + 1`` when even, as S-SDM slices; ``--repr-param short=7``, S-SDM's range 7-11).
    Values ``float32(count / frames)``, as S-SDM's float32 mean; in [0, 1].
    """

    S: int = 2
    short: int = 7
    name: ClassVar[str] = "tfp-ls"
    channels: ClassVar[int] = 2

    @property
    def min_frames(self) -> int:
        return 2 * (self.short // 2) + 1

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return np.dtype(np.float32)

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(2,)`` float64 ones: the values are already spikes per frame."""
        return np.ones(2)

    def windows(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """``(2,)`` int64 starts and ends of the long and short TFP of an L-frame window."""
        centre, half = n_frames // 2, self.short // 2
        return np.array([0, centre - half]), np.array([n_frames, centre + half + 1])

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        n_frames = len(packed)
        if n_frames < self.min_frames:
            raise VoxelError(f"spike window too short for --repr tfp-ls with short={self.short}",
                             found=f"L={n_frames} spike frames", expected=f"L >= {self.min_frames}",
                             fix="lower --repr-param short or use longer windows")
        out = check_out(out, (2, height, width), np.float32, kind="float")
        starts, ends = self.windows(n_frames)
        counts = count_ranges(packed, height, width, starts, ends, flipud)
        np.copyto(out, counts / (ends - starts).astype(np.float64)[:, None, None], casting="unsafe")
        return out
