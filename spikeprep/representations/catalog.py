"""Voxel representations: frozen parameter records + how each is computed from packed bytes.

Each representation is a frozen dataclass (its parameters, saved in the cache manifest via
``to_dict()``) with ``channels`` (output channel count), ``dtype_for(max_window_len)`` (the
dataset-wide storage dtype for windows up to that many frames), ``min_frames`` and
``compute(packed, height, width, flipud=True, out=None) -> (channels, H, W)``. Formulas and
dtypes are tabled in `spikeprep.voxel`. `REPRESENTATIONS` maps ``--repr`` names to classes;
`make_representation` builds and validates one.

Optional parts of the protocol: ``storage = "bitpacked"`` (class attribute: 0/1 arrays the cache
stores 8 per byte, `spikeprep.representations.raw`; default ``array``) and
``context(begin, end, stream_len) -> (lo, hi)``, the stream frames read for a window (default
the window itself; `spikeprep.representations.context`, used by tfi).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import UsageError, VoxelError
from .base import Named, OneChannelPerBin
from .kernels import bin_edges, check_out, check_packed, count_ranges, ema_kernel, uint_dtype_for
from .raw import SHORT_POLICIES, Raw, SvrtEncoding25
from .texture import Tfi, TfpLs


def _check_frames(rep, n_frames: int) -> None:
    if n_frames < rep.min_frames:
        raise VoxelError(f"spike window too short for --repr {rep.name} with S={rep.S}",
                         found=f"L={n_frames} spike frames", expected=f"L >= {rep.min_frames}",
                         fix="lengthen the spike window or lower S")


@dataclass(frozen=True)
class Bins(OneChannelPerBin):
    """``(S, H, W)`` counts; bin ``k`` = spikes in frames ``[k*L//S, (k+1)*L//S)``."""

    S: int
    name: ClassVar[str] = "bins"

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(S,)`` float64 bin lengths in frames (divide counts by it to get spikes per frame)."""
        return np.diff(bin_edges(n_frames, self.S)).astype(np.float64)

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return uint_dtype_for(-(-max_window_len // self.S))  # the longest bin: ceil(L/S)

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        _check_frames(self, len(packed))
        edges = bin_edges(len(packed), self.S)
        return count_ranges(packed, height, width, edges[:-1], edges[1:], flipud, out)


@dataclass(frozen=True)
class Count(Bins):
    """``(1, H, W)`` total spike count of the window."""

    S: int = 1
    name: ClassVar[str] = "count"


@dataclass(frozen=True)
class Temporal4(Named):
    """``(4, H, W)`` int16: first-half sum, second-half sum, first - second, total.

    Halves are ``[0, L//2)`` and ``[L//2, L)``; lossless for L <= 32767.
    """

    S: int = 4
    name: ClassVar[str] = "temporal4"
    channels: ClassVar[int] = 4
    min_frames: ClassVar[int] = 2

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(4,)`` float64: frames behind each channel (the difference's largest magnitude)."""
        half = n_frames // 2
        return np.array([half, n_frames - half, max(half, n_frames - half), n_frames], np.float64)

    def dtype_for(self, max_window_len: int) -> np.dtype:
        if max_window_len > np.iinfo(np.int16).max:
            raise VoxelError("--repr temporal4 stores int16", found=f"windows of {max_window_len} frames",
                             expected="at most 32767 frames per window", fix="use --repr bins")
        return np.dtype(np.int16)

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        n_frames = len(packed)
        _check_frames(self, n_frames)
        dtype = self.dtype_for(n_frames)
        out = check_out(out, (4, height, width), dtype, max_value=n_frames, min_value=-n_frames)
        half = n_frames // 2
        count_ranges(packed, height, width, [0, half], [half, n_frames], flipud, out[:2])
        np.subtract(out[0], out[1], out=out[2])
        np.add(out[0], out[1], out=out[3])
        return out


@dataclass(frozen=True)
class Ema(Named):
    """``(S, H, W)`` float32 exponentially decayed spike integrals.

    Per pixel ``v_t = v_{t-1} * exp(-1/tau) + s_t``, ``v_{-1} = 0`` (t in spike frames), at
    ``tau_fast`` and ``tau_slow``; sampled after the last frame of each of S/2 equal bins
    (``[m*L//(S/2), (m+1)*L//(S/2))``). Channels ``0..S/2-1``: fast trace, ``S/2..S-1``: slow.
    Computed in float64, stored as float32 (relative error <= 6e-8; values <= tau + 1).
    Defaults: 25 and 250 frames (1.25 ms and 12.5 ms at 20 kHz).
    """

    S: int
    tau_fast: float = 25.0
    tau_slow: float = 250.0
    name: ClassVar[str] = "ema"

    @property
    def channels(self) -> int:
        return self.S

    @property
    def min_frames(self) -> int:
        return self.S // 2

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return np.dtype(np.float32)

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        flat = check_packed(packed, height, width)
        _check_frames(self, len(packed))
        out = check_out(out, (self.S, height, width), np.float32, kind="float")
        sample_ends = bin_edges(len(packed), self.S // 2)[1:]
        decays = np.exp(-1.0 / np.array([self.tau_fast, self.tau_slow]))
        return ema_kernel(flat, height * width // 8, sample_ends, decays, height, width,
                          bool(flipud), out)


@dataclass(frozen=True)
class Tfp(OneChannelPerBin):
    """``(S, H, W)`` counts in a ``tfp_window``-frame window centred on each bin centre.

    Bin ``k`` spans ``[b, e) = [k*L//S, (k+1)*L//S)``; its window is
    ``[lo, lo + tfp_window)`` with ``lo = (b + e - tfp_window) // 2``, clipped to ``[0, L)``.
    ``tfp_window=None`` (default) means the bin length ``L // S``. Counts are stored exactly;
    ``normalizer(L)`` gives the clipped window lengths, so ``rate = count / normalizer(L)``
    (spikes per frame), a deterministic function of (L, S, tfp_window).
    """

    S: int
    tfp_window: int | None = None
    name: ClassVar[str] = "tfp"

    def window_len(self, n_frames: int) -> int:
        return self.tfp_window if self.tfp_window is not None else n_frames // self.S

    def windows(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """``(S,)`` int64 starts and ends of the clipped windows for an L-frame window."""
        edges = bin_edges(n_frames, self.S)
        window = self.window_len(n_frames)
        lo = (edges[:-1] + edges[1:] - window) // 2
        return np.clip(lo, 0, n_frames), np.clip(lo + window, 0, n_frames)

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(S,)`` float64 frames counted per channel (divide counts by it to get rates)."""
        starts, ends = self.windows(n_frames)
        return (ends - starts).astype(np.float64)

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return uint_dtype_for(min(self.window_len(max_window_len), max_window_len))

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        _check_frames(self, len(packed))
        starts, ends = self.windows(len(packed))
        if out is None:  # the dtype a dataset of L-frame windows stores, even if clipping shortens all
            out = np.empty((self.S, height, width), self.dtype_for(len(packed)))
        return count_ranges(packed, height, width, starts, ends, flipud, out)


@dataclass(frozen=True)
class SvrtTfp(Named):
    """``(S, H, W)`` uint8: S-VRT's TFP input exactly (its ``voxelize_spikes_tfp`` + the uint8
    artifacts of ``prepare_spike_tfp.py``).

    Centres: the midpoints ``(e0 + e1) // 2`` of the S segments ``np.linspace(0, L, S + 1,
    dtype=int)`` (``L // 2`` for S = 1), clamped to ``[hw, L - hw]``; channel c averages frames
    ``[c - hw, c + hw + 1)`` as a Python slice (one frame shorter at the upper clamp, where it
    stops at L): ``uint8(float32(count) / float32(n) * 255)`` (truncated), grey levels 0..255.
    Needs ``L > 2 * hw`` as S-VRT does. Unlike `Tfp` (counts in ``L // S``-frame windows centred
    with ``(b + e - w) // 2``), edge channels are clamped inward and values are scaled.
    """

    S: int
    half_window: int = 20
    name: ClassVar[str] = "svrt-tfp"

    @property
    def channels(self) -> int:
        return self.S

    @property
    def min_frames(self) -> int:
        return 2 * self.half_window + 1

    def normalizer(self, n_frames: int) -> np.ndarray:
        """``(S,)`` float64 255s: value / 255 is S-VRT's float32 input in [0, 1]."""
        return np.full(self.S, 255.0)

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return np.dtype(np.uint8)

    def windows(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """``(S,)`` int64 starts and ends of the averaged frames of an L-frame window."""
        hw = self.half_window
        if self.S == 1:
            centres = np.array([n_frames // 2])
        else:
            edges = np.linspace(0, n_frames, self.S + 1, dtype=int)
            centres = (edges[:-1] + edges[1:]) // 2
        centres = np.clip(centres, hw, n_frames - hw).astype(np.int64)
        return centres - hw, np.minimum(centres + hw + 1, n_frames)

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        check_packed(packed, height, width)
        n_frames = len(packed)
        if n_frames <= 2 * self.half_window:
            raise VoxelError(f"spike window too short for --repr svrt-tfp with half_window={self.half_window}",
                             found=f"L={n_frames} spike frames", expected=f"L > {2 * self.half_window} "
                             "(S-VRT needs more frames than twice the half window)",
                             fix="lower --repr-param half_window or use longer windows")
        out = check_out(out, (self.S, height, width), np.uint8, max_value=255)
        starts, ends = self.windows(n_frames)
        counts = count_ranges(packed, height, width, starts, ends, flipud,
                              np.empty((self.S, height, width), np.uint16))
        lengths = (ends - starts).astype(np.float32)[:, None, None]
        np.copyto(out, (counts.astype(np.float32) / lengths * np.float32(255)).astype(np.uint8))
        return out


#: ``--repr`` name -> representation class.
REPRESENTATIONS = {cls.name: cls for cls in (Bins, Count, Temporal4, Ema, Tfp, SvrtTfp, Raw, Tfi, TfpLs,
                                              SvrtEncoding25)}

_FIXED_CHANNELS = {"count": 1, "temporal4": 4, "tfp-ls": 2}
#: S when none is given, where it is not 8: raw's 0 is the whole window (resolved by the plan)
_DEFAULT_S = {"raw": 0, "tfi": 1, "svrt-encoding25": 4}


def params_of(record: dict) -> dict:
    """The keyword parameters in a ``to_dict()`` record (a cache manifest's ``repr_params``),
    i.e. without ``repr`` and ``S``: what `voxelize` and `make_representation` take as ``**params``."""
    return {k: v for k, v in record.items() if k not in ("repr", "S")}


def default_S(name: str) -> int:
    """S when none is given: the fixed channel count of count/temporal4/tfp-ls, raw's 0 (the
    whole window), tfi's 1, svrt-encoding25's 4 (S-VRT's subframes), else 8."""
    return _FIXED_CHANNELS.get(name, _DEFAULT_S.get(name, 8))


def split_repr(text: str, S: int | None = None) -> tuple[str, int | None]:
    """``"raw:41"`` -> ``("raw", 41)`` (NAME:S, as ``--repr bins:8`` is ``--repr bins --S 8``);
    ``"raw"`` -> ``("raw", S)``. UsageError for a bad S or one that contradicts ``S``."""
    name, sep, value = str(text).partition(":")
    if not sep:
        return name, S
    if not value.strip().isdigit():
        raise UsageError("--repr NAME:S needs a whole number after the colon", found=repr(text),
                         expected="e.g. raw:41 or bins:8")
    if S is not None and int(S) != int(value):
        raise UsageError("--repr NAME:S and --S disagree", found=f"{text} with --S {S}",
                         expected="one of them, or the same S")
    return name, int(value)


def make_representation(name: str, S: int, **params):
    """Build and validate the representation ``name`` with S channels and its parameters."""
    if name not in REPRESENTATIONS:
        raise UsageError("unknown voxel representation", found=repr(name),
                         expected="one of " + ", ".join(REPRESENTATIONS))
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)) or S < (0 if name == "raw" else 1):
        raise UsageError("S (voxel channels) must be a positive integer", found=repr(S),
                         expected=">= 1" + (" (raw: 0, the whole window)" if name == "raw" else ""))
    S = int(S)
    if name in _FIXED_CHANNELS and S != _FIXED_CHANNELS[name]:
        raise UsageError(f"--repr {name} has {_FIXED_CHANNELS[name]} channel"
                         f"{'s' if _FIXED_CHANNELS[name] > 1 else ''}", found=f"S={S}",
                         expected=f"S={_FIXED_CHANNELS[name]}", fix=f"pass S={_FIXED_CHANNELS[name]} "
                         f"or choose --repr bins")
    cls = REPRESENTATIONS[name]
    allowed = {f.name for f in dataclasses.fields(cls)} - {"S"}
    unknown = set(params) - allowed
    if unknown:
        raise UsageError(f"unknown parameter for --repr {name}", found=", ".join(sorted(unknown)),
                         expected=", ".join(sorted(allowed)) or "no parameters")
    if name == "ema":
        if S % 2:
            raise UsageError("--repr ema needs an even S (fast and slow traces)", found=f"S={S}",
                             expected="S even")
        for key in ("tau_fast", "tau_slow"):
            value = params.get(key, getattr(cls, key))
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UsageError(f"{key} must be a positive number of spike frames",
                                 found=repr(value), expected="> 0")
            params[key] = float(value)
    if name == "svrt-tfp":
        hw = params.get("half_window", cls.half_window)
        if isinstance(hw, bool) or not isinstance(hw, (int, np.integer)) or hw < 0:
            raise UsageError("half_window must be a number of spike frames >= 0", found=repr(hw),
                             expected="an integer >= 0 (S-VRT's default 20)")
        params["half_window"] = int(hw)
    params = _check_new_params(name, cls, params)
    if name == "tfp" and params.get("tfp_window") is not None:
        window = params["tfp_window"]
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise UsageError("tfp_window must be a positive number of spike frames",
                             found=repr(window), expected=">= 1")
        params["tfp_window"] = int(window)
    return cls(S=S, **params)


def _check_new_params(name: str, cls, params: dict) -> dict:
    """Validate the parameters of tfi (half_window >= 1), tfp-ls (short >= 1) and
    svrt-encoding25 (short_policy)."""
    key = {"tfi": "half_window", "tfp-ls": "short"}.get(name)
    if key is not None:
        value = params.get(key, getattr(cls, key))
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UsageError(f"{key} must be a number of spike frames >= 1", found=repr(value),
                             expected="an integer >= 1 (" + ("SpikeCV's default 20" if name == "tfi"
                                                             else "S-SDM uses 7, 9 or 11") + ")")
        params[key] = int(value)
    if name == "svrt-encoding25":
        policy = params.get("short_policy", cls.short_policy)
        if policy not in SHORT_POLICIES:
            raise UsageError("unknown short_policy for --repr svrt-encoding25", found=repr(policy),
                             expected=" | ".join(SHORT_POLICIES) + " (S-VRT's --short-policy; default pad_edge)")
    return params
