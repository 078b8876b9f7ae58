"""Spike-only restoration (``data.use_rgb: false``): what replaces RGB, and the target's channels.

VRT uses its RGB input in two places: SpyNet estimates the optical flow from it, and the
network's global residual adds it back to the output. Spike-only data has no RGB frame, so a
**guide image** takes its place in both: the TFP-like image (texture from playback) of each
frame's spike window, i.e. the mean over the representation's channels of ``value / normalizer``
(the spike rate, spikes per spike frame, for count representations: ``bins``, a ``raw`` 0/1
stack, ``tfp``), clipped to ``[0, 1]`` and copied into the three RGB slots. Why this guide:

- it is a real image of the scene (brightness ~ firing rate), so SpyNet, trained on RGB, gets a
  picture it can match (a blank or noisy slot would give it nothing to align), and a pretrained
  SpyNet or a KAIR RGB checkpoint (``--init-from``) loads unchanged: the network, its
  parameters and checkpoint format stay VRT's (``spike_chans`` spike channels after 3 RGB);
- as the residual base the net starts from the TFP reconstruction and learns the correction,
  which is what the RGB residual does for deblurring;
- it is computed on the fly from the spike input in `vrt_train.augment.assemble` (after spike
  gain/Poisson augmentation, before normalisation), so any cache works, nothing is stored.

The target: ``data.gt_channels`` 1 (the default spike-only: spike cameras are monochrome, the
Spike-Zoo GT is grayscale) or 3. RGB sharp records become BT.601 luma (cv2's RGB2GRAY:
``round(0.299 R + 0.587 G + 0.114 B)``), one-channel records are used as they are (repeated for
3). The model's 3 output channels are averaged to one (`vrt_train.model.SpikeOnlyVRT`).

Single-sample data (one frame per sequence, as Spike-Zoo's caches): clips of length 1
(``data.num_frames: 1``). VRT's temporal parts need 2 frames (mutual attention pairs frames,
parallel warping aligns neighbours): `SpikeOnlyVRT` repeats the frame up to the frames VRT needs
and keeps the first output. Chosen over pseudo-clips of sub-windows because the cache's
representation is fixed per frame window (sub-windows would need other voxels and another
normalisation than inference sees) and the target belongs to the whole window; a repeated
frame gives zero true motion, so the temporal layers reduce to what the frame itself holds.
"""

from __future__ import annotations

import numpy as np

from spikeprep import ConfigError

LUMA = (0.299, 0.587, 0.114)  # BT.601, as cv2.cvtColor(RGB2GRAY)


def gt_channels(cfg) -> int:
    """The target's channels: ``data.gt_channels``, or 3 with RGB input and 1 spike-only."""
    d = cfg.data
    return d.gt_channels if d.gt_channels is not None else (3 if d.use_rgb else 1)


def check_spike_only(cfg, bad) -> None:
    """Config rules of ``data.use_rgb`` / ``data.gt_channels`` (``bad(key, found, expected)`` raises)."""
    d, a = cfg.data, cfg.data.augment
    if d.gt_channels not in (None, 1, 3):
        bad("data.gt_channels", d.gt_channels, "null, 1 (grayscale) or 3 (RGB)")
    if d.use_rgb:
        if d.gt_channels == 1:
            bad("data.gt_channels", 1, "3 (or null) with data.use_rgb true: the residual adds the RGB input")
        return
    if not d.use_spike:
        bad("data.use_spike", False, "true with data.use_rgb false: the spikes are the only input")
    if a.brightness or a.contrast:
        bad("data.augment.brightness / contrast", (a.brightness, a.contrast),
            "0 with data.use_rgb false (they jitter RGB; use spike_gain for the spikes)")
    if cfg.netG.get("pa_frames", 2) == 0:
        bad("netG.pa_frames", 0, "2, 4 or 6 with data.use_rgb false (frame interpolation is RGB-only)")


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """``(h, w, c)`` or ``(h, w)`` uint8 -> ``(h, w, channels)`` uint8 (luma for 3 -> 1)."""
    if img.ndim == 2:
        img = img[:, :, None]
    c = img.shape[2]
    if c == channels:
        return img
    if c == 1:
        return np.repeat(img, channels, axis=2)
    if c == 3 and channels == 1:
        y = img[:, :, 0] * LUMA[0] + img[:, :, 1] * LUMA[1] + img[:, :, 2] * LUMA[2]
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)[:, :, None]
    raise ConfigError("sharp frames have a channel count the target cannot be made from",
                      found=f"{c} channels", expected="1 or 3")


def read_clip(items, seq: str, frames, top: int, left: int, height: int, width: int, need_sharp: bool,
              channels: int) -> dict:
    """`vrt_train.data._CacheItems.read_clip` without RGB input: ``L_rgb`` ``(T, h, w, 0)``
    (empty: `guide` fills the slot), ``H`` ``(T, h, w, channels)`` uint8 (zeros where a frame
    has no sharp image and ``need_sharp`` is false), ``L_spike``/``window`` as with RGB."""
    import torch
    f, frames = items.f, [int(i) for i in frames]
    T, (h, w) = len(frames), (height // f, width // f)
    # items.read / spike_into / spike_dtype: the data.inputs selection where the items have it
    read = getattr(items, "read", None) or items.cache.read
    spike_into = getattr(items, "spike_into", None)
    crop = (slice(None), slice(top // f, top // f + h), slice(left // f, left // f + w))
    spikes = np.empty((T, items.channels, h, w), getattr(items, "spike_dtype", np.dtype(items.params.spike_dtype)))
    sharp = np.zeros((T, height, width, channels), np.uint8)
    divisors = np.ones((T, items.channels), np.float32)
    for t, i in enumerate(frames):
        s = read(seq, i)
        if s.sharp is not None:
            sharp[t] = to_channels(np.asarray(s.sharp)[top:top + height, left:left + width], channels)
        elif need_sharp:
            raise ConfigError("cache has no sharp frames to train against", found=f"{seq} frame {i}",
                              fix="build the cache from a dataset with sharp (ground-truth) frames")
        if spike_into:
            spike_into(s, crop, spikes[t])
        else:
            spikes[t] = s.spike[crop]
        if items._divisor:
            divisors[t] = items._divisor(int(s.spike_end) - int(s.spike_begin))
    return {"L_rgb": torch.zeros((T, height, width, 0), dtype=torch.uint8), "H": torch.from_numpy(sharp),
            "L_spike": torch.from_numpy(spikes), "window": torch.from_numpy(divisors), "seq": seq,
            "frames": torch.as_tensor(np.asarray(frames, np.int64))}


def guide(spike, window):
    """The TFP-like guide of raw spike values ``(B, T, C, h, w)`` float with per-frame divisors
    ``window`` ``(B, T, C)`` (torch tensors): ``mean_c(spike / window)`` clipped to [0, 1],
    ``(B, T, 3, h, w)``."""
    if spike.shape[2] == 0:
        raise ConfigError("spike-only input (data.use_rgb false) has no spike channels",
                          fix="set data.use_spike: true and use a cache with spikes")
    rate = (spike / window.to(spike.device, spike.dtype)[..., None, None]).mean(dim=2, keepdim=True)
    return rate.clamp(0.0, 1.0).expand(-1, -1, 3, -1, -1)


def dataset_kwargs(cfg) -> dict:
    """``inputs`` / ``use_rgb`` / ``gt_channels`` keywords of `ShardDataset` / `ValDataset` from a config."""
    return {"inputs": cfg.data.inputs, "use_rgb": cfg.data.use_rgb, "gt_channels": gt_channels(cfg)}
