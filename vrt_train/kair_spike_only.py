"""Spike-only samples of the KAIR drop-in datasets (`vrt_train.kair`, option ``use_rgb: false``).

``L`` ``(T, 3 + S, h, w)`` float32: the TFP guide of `vrt_train.spike_only` (mean over channels
of ``value / normalizer``, clipped to [0, 1]) in the 3 RGB slots, then the S spike channels
normalised as the trainer does; ``H`` ``(T, G, h, w)`` float32 in [0, 1], G = ``gt_channels``
(default 1: luma of RGB sharp frames, grayscale records as they are). Feed it to
`vrt_train.model.SpikeOnlyVRT` (``gt_chans = G``), whose output has G channels.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeprep import ConfigError

from .spike_only import to_channels


def gt_channels(opt) -> int:
    """``opt.gt_channels`` (a `KairDatasetOptions`), or 1."""
    return opt.gt_channels if opt.gt_channels is not None else 1


def check_options(opt) -> None:
    """Refuse ``use_rgb: false`` without spikes, and a ``gt_channels`` other than 1 or 3."""
    if opt.gt_channels not in (None, 1, 3):
        raise ConfigError("KAIR dataset option gt_channels is invalid", found=opt.gt_channels, expected="1 or 3")
    if not opt.use_rgb and not opt.use_spike:
        raise ConfigError("KAIR dataset options use_rgb and use_spike are both false", found="no input",
                          fix="set use_spike: true (spike-only input) or use_rgb: true")


def sample(ds, seq: str, frames, top: int, left: int, h: int, w: int, flips,
           geom) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, H)`` of a crop for `vrt_train.kair._KairBase` ``ds`` (module docstring); ``geom``:
    kair's ``_geom`` (flips and transpose of ``(..., h, w)`` arrays)."""
    _geom = geom
    T, S, f, G = len(frames), ds.spike_chans, ds.items.f, gt_channels(ds.opt)
    hh, ww = (w, h) if flips[2] else (h, w)
    L = np.empty((T, 3 + S, hh, ww), np.float32)
    H = np.empty((T, G, hh, ww), np.float32)
    divisor = ds.items._divisor  # the rate divisors of the items' spike input (None: unknown)
    read = getattr(ds.items, "read", None) or ds.items.cache.read  # data.inputs where supported
    for t, i in enumerate(frames):
        rec = read(seq, int(i))
        if rec.sharp is None:
            raise ConfigError("cache has no sharp frames for the KAIR dataset's H", found=f"{seq} frame {i}",
                              fix="build the cache from a dataset with sharp (ground-truth) frames")
        gt = to_channels(np.asarray(rec.sharp)[top:top + h, left:left + w], G)
        H[t] = _geom(gt.transpose(2, 0, 1), flips) / np.float32(255.0)
        whole = ds._spike(rec) if hasattr(ds, "_spike") else np.asarray(rec.spike)
        spike = whole[:, top // f:(top + h) // f, left // f:(left + w) // f]
        if f > 1:
            spike = spike.repeat(f, axis=1).repeat(f, axis=2)
        spike = _geom(spike, flips)
        window_len = int(rec.spike_end) - int(rec.spike_begin)
        d = divisor(window_len) if divisor else np.ones(S, np.float32)
        L[t, :3] = np.clip((spike / d[:, None, None]).mean(axis=0), 0.0, 1.0)
        ds._spike_into(spike, window_len, L[t, 3:])
    return torch.from_numpy(L), torch.from_numpy(H)
