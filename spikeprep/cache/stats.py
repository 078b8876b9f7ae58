"""Streaming per-channel statistics of spike voxels: mergeable value histograms.

Each channel's values are counted into a histogram keyed by an integer:

* integer dtypes: the value itself, so mean, std and the 99.5% quantile are **exact** (the
  quantile equals ``numpy.quantile(values, 0.995)``, linear interpolation, up to float rounding);
* float dtypes: the bit pattern of the value rounded to float16, so the quantile is exact for the
  float16-rounded values (relative error <= 2**-11) and mean/std are computed from those rounded
  values too (documented approximation).

Histograms are sparse (``keys``, ``counts``) so they can be journaled per sequence and merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILE = 0.995


def channel_histograms(voxels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(C, h, w)`` voxels -> per channel ``(keys int64, counts int64)``, keys ascending.

    Integer dtypes of <= 16 bits and floats (as float16 bit patterns) are counted in one pass
    (`spikeprep.representations.kernels.value_counts_kernel`); wider integers fall back to ``np.unique`` per channel.
    """
    C = voxels.shape[0]
    flat = voxels.reshape(C, -1)
    if flat.dtype.kind == "f":
        keys, lo, span = flat.astype(np.float16).view(np.uint16), 0, 1 << 16
    elif flat.dtype.itemsize <= 2:
        info = np.iinfo(flat.dtype)
        keys, lo, span = flat, int(info.min), int(info.max) - int(info.min) + 1
    else:
        out = []
        for channel in flat:
            k, n = np.unique(channel.astype(np.int64), return_counts=True)
            out.append((k, n.astype(np.int64)))
        return out
    from ..representations.kernels import value_counts_kernel  # numba: one pass, no int64 copy of the voxels
    counts = value_counts_kernel(np.ascontiguousarray(keys), np.int64(lo), np.zeros((C, span), np.int64))
    out = []
    for row in counts:
        k = np.flatnonzero(row)
        out.append(((k + lo).astype(np.int64), row[k].astype(np.int64)))
    return out


def merge(a: list[tuple[np.ndarray, np.ndarray]] | None,
          b: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sum two per-channel sparse histograms (``a`` may be None)."""
    if a is None:
        return [(k.copy(), n.copy()) for k, n in b]
    merged = []
    for (ka, na), (kb, nb) in zip(a, b):
        keys, inverse = np.unique(np.concatenate([ka, kb]), return_inverse=True)
        counts = np.zeros(len(keys), np.int64)
        np.add.at(counts, inverse, np.concatenate([na, nb]))
        merged.append((keys, counts))
    return merged


def to_json(hists) -> list[dict]:
    return [{"keys": k.tolist(), "counts": n.tolist()} for k, n in hists]


def from_json(raw: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(c["keys"], np.int64), np.asarray(c["counts"], np.int64)) for c in raw]


def _values(keys: np.ndarray, float_dtype: bool) -> np.ndarray:
    if float_dtype:
        return keys.astype(np.uint16).view(np.float16).astype(np.float64)
    return keys.astype(np.float64)


def quantile_from_histogram(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile of the multiset ``values`` x ``counts``."""
    order = np.argsort(values, kind="stable")
    values, counts = values[order], counts[order]
    total = int(counts.sum())
    position = (total - 1) * q
    below = int(np.floor(position))
    cum = np.cumsum(counts)
    lo = values[np.searchsorted(cum, below, side="right")]
    hi = values[np.searchsorted(cum, min(below + 1, total - 1), side="right")]
    t = position - below
    # numpy's _lerp: a + (b-a)*t, computed from the other end when t >= 0.5
    return float(hi - (hi - lo) * (1 - t)) if t >= 0.5 else float(lo + (hi - lo) * t)


@dataclass(frozen=True)
class SpikeStats:
    """Per-channel mean, std (population) and 99.5% quantile, lists of length C."""

    mean: list[float]
    std: list[float]
    q995: list[float]

    def to_dict(self, over: list[str]) -> dict:
        return {"mean": self.mean, "std": self.std, "q995": self.q995, "over": over}


def finalize(hists, float_dtype: bool) -> SpikeStats | None:
    """Mean/std/q995 per channel from merged histograms; None when there are none."""
    if hists is None:
        return None
    mean, std, q = [], [], []
    for keys, counts in hists:
        values = _values(keys, float_dtype)
        keep = np.isfinite(values)
        values, counts = values[keep], counts[keep]
        total = counts.sum()
        m = float((values * counts).sum() / total)
        mean.append(m)
        std.append(float(np.sqrt((counts * (values - m) ** 2).sum() / total)))
        q.append(quantile_from_histogram(values, counts, QUANTILE))
    return SpikeStats(mean, std, q)


def voxel_sum(hists, float_dtype: bool) -> float:
    """Sum of all values over all channels (spike totals for count representations)."""
    return float(sum((_values(k, float_dtype) * n).sum() for k, n in hists))
