"""Batched, on-device normalisation, concatenation and augmentation of loader batches.

``assemble(batch, device, norm, augment, generator)`` turns a collated `vrt_train.data` batch
into KAIR's ``L (B, T, 3+C, h, w)`` float and ``H (B, T, 3, h, w)`` float on ``device``:

1. RGB (channels-last uint8 from the loader) -> channels-first float / 255.
2. Spike (raw counts; optional gain jitter and Poisson resampling first) normalised by
   ``norm.mode``:

   - ``window`` (default): count / bin length in spike frames (the batch's ``window`` divisor,
     per frame and channel) -> spike rate in [0, 1] for count representations;
   - ``quantile``: count / the training set's per-channel q99.5 (manifest ``spike_stats``),
     clipped to [0, 1] (so rare bursts do not dominate);
   - ``standardize``: (count - mean) / std per channel (manifest ``spike_stats``), unclipped;
   - ``none``: raw values as float.

3. Spike upsampled (nearest) to the RGB size when the cache stores it ``f`` times smaller.
4. Geometric augmentation per sample, identical for every frame and for L (RGB and spike) and
   H: hflip, and with ``rot`` vflip and a transpose (KAIR's ``augment``: 8 dihedral variants).
5. Optional photometric jitter of RGB brightness/contrast, applied identically to L's RGB and
   to H (the target is the same scene under the same exposure).

Spike-only batches (``data.use_rgb: false``: ``L_rgb`` has 0 channels, ``H`` 1 or 3) get the
TFP guide of `vrt_train.spike_only` (from the raw spikes after step 2's gain/Poisson jitter, before
normalisation) in the 3 RGB slots of ``L``; photometric jitter is refused for them by the config.

Every random number comes from ``generator`` (a CPU `torch.Generator`), so results do not
depend on the device; Poisson noise uses a device generator seeded from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SpikeNorm:
    """How spike channels are normalised (see the module docstring)."""

    mode: str = "window"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    q995: tuple[float, ...] = ()

    @classmethod
    def from_manifest(cls, manifest, mode: str, inputs=None) -> "SpikeNorm":
        """From a cache's `spikeprep.Manifest` (its training ``spike_stats``; with ``inputs``,
        ``data.inputs``: each named representation's statistics, concatenated in order)."""
        if inputs is None:
            stats = manifest.spike_stats
            return cls(mode, tuple(stats.mean), tuple(stats.std), tuple(stats.q995))
        parts = [manifest.stats_of(name) for name in inputs]
        return cls(mode, *(tuple(v for p in parts for v in getattr(p, key)) for key in ("mean", "std", "q995")))

    def __call__(self, spike: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """spike ``(B, T, C, h, w)`` float, window ``(B, T, C)`` -> normalised (same shape)."""
        if self.mode == "none" or spike.shape[2] == 0:
            return spike
        if self.mode == "window":
            return spike / window.to(spike.device, spike.dtype)[..., None, None]
        shape = (1, 1, -1, 1, 1)
        if self.mode == "quantile":
            q = torch.tensor(self.q995, dtype=spike.dtype, device=spike.device).clamp_min(1e-6)
            return (spike / q.view(shape)).clamp_(0.0, 1.0)
        if self.mode == "standardize":
            mean = torch.tensor(self.mean, dtype=spike.dtype, device=spike.device).view(shape)
            std = torch.tensor(self.std, dtype=spike.dtype, device=spike.device).clamp_min(1e-6).view(shape)
            return (spike - mean) / std
        raise ValueError(f"unknown spike normalisation {self.mode!r}")


def geometric(x: torch.Tensor, hflip: bool, vflip: bool, transpose: bool) -> torch.Tensor:
    """KAIR's ``augment`` on ``(..., h, w)``: hflip, vflip, then swap h and w."""
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if transpose:
        x = x.transpose(-1, -2)
    return x


def _uniform(generator: torch.Generator, n: int, amount: float) -> torch.Tensor:
    return 1.0 + amount * (2.0 * torch.rand(n, generator=generator, dtype=torch.float64) - 1.0)


def _upsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """``(B, T, C, h, w)`` -> ``(B, T, C, h*f, w*f)``, nearest."""
    Bs, T, C, h, w = x.shape
    return F.interpolate(x.reshape(Bs * T, C, h, w), scale_factor=f, mode="nearest").reshape(Bs, T, C, h * f, w * f)


def assemble(batch: dict, device, norm: SpikeNorm, augment=None, generator: torch.Generator | None = None,
             use_spike: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Loader batch -> ``(L (B,T,3+C,h,w), H (B,T,3,h,w))`` float32 on ``device``.

    ``augment``: a `vrt_train.config.AugmentConfig` or None (validation: no augmentation).
    """
    # (B, T, h, w, 3) uint8 channels-last -> (B, T, 3, h, w) float
    rgb = batch["L_rgb"].to(device, non_blocking=True).permute(0, 1, 4, 2, 3).float().div_(255.0)
    target = batch["H"].to(device, non_blocking=True).permute(0, 1, 4, 2, 3).float().div_(255.0)
    B = rgb.shape[0]
    if augment is not None and generator is None:
        raise ValueError("augmentation needs a torch.Generator")
    parts = [rgb]
    spike_only = rgb.shape[2] == 0  # vrt_train.spike_only: a TFP guide takes the RGB slot
    if spike_only or (use_spike and batch["L_spike"].shape[2]):
        spike = batch["L_spike"].to(device, non_blocking=True).float()
        if augment is not None and augment.spike_gain > 0:
            gain = _uniform(generator, B, augment.spike_gain).to(device, torch.float32)
            spike = spike * gain.view(B, 1, 1, 1, 1)
        if augment is not None and augment.spike_poisson:
            seed = int(torch.randint(2**62, (1,), generator=generator))
            dev_gen = torch.Generator(device=spike.device).manual_seed(seed)
            spike = torch.poisson(spike.clamp_min(0), generator=dev_gen)
        if spike_only:
            from .spike_only import guide
            parts = [guide(spike, batch["window"])]
        spike = norm(spike, batch["window"])
        f = rgb.shape[-1] // spike.shape[-1]
        if f > 1:
            parts = [_upsample(p, f) for p in parts] if spike_only else parts
            spike = _upsample(spike, f)
        parts.append(spike)
    L = torch.cat(parts, dim=2) if len(parts) > 1 else rgb
    H = target
    if augment is None:
        return L, H
    if augment.hflip or augment.rot:
        flips = torch.rand((B, 3), generator=generator) < 0.5
        flips[:, 0] &= augment.hflip
        flips[:, 1:] &= augment.rot
        Ls, Hs = [], []
        for b in range(B):
            h, v, t = (bool(z) for z in flips[b])
            Ls.append(geometric(L[b], h, v, t))
            Hs.append(geometric(H[b], h, v, t))
        L, H = torch.stack(Ls), torch.stack(Hs)
    if augment.brightness > 0 or augment.contrast > 0:
        bright = _uniform(generator, B, augment.brightness).to(device, torch.float32).view(B, 1, 1, 1, 1)
        contrast = _uniform(generator, B, augment.contrast).to(device, torch.float32).view(B, 1, 1, 1, 1)
        mean = L[:, :, :3].mean(dim=(1, 2, 3, 4), keepdim=True)

        def jitter(img):
            return ((img - mean) * contrast + mean).mul(bright).clamp(0.0, 1.0)
        L = torch.cat([jitter(L[:, :, :3]), L[:, :, 3:]], dim=2)
        H = jitter(H)
    return L, H
