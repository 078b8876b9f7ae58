"""Training and validation data straight from a spikeprep LMDB cache.

Workers only slice records: every item is raw ``uint8`` RGB and raw-dtype spike voxels (no png
or ``.dat`` decoding, no float conversion). Normalisation, the RGB/spike concatenation into
KAIR's ``L (B, T, 3+S, h, w)`` and augmentation run batched on the training device
(`vrt_train.augment.assemble`).

Divergence from KAIR's "L straight from the records": RGB is uint8 while spikes are
uint8/uint16/int16/float32 (per manifest) and may be smaller than the RGB frames by an integer
factor ``f`` (cache built with ``match: none``), so an item carries them separately. RGB stays
channels-last as stored, so a worker only copies whole crop rows (measured: the HWC -> CHW
transpose in the worker took half of an item's time); `assemble` permutes on the device.

=============  ====================  =========================================================
key            shape                 meaning
=============  ====================  =========================================================
``L_rgb``      (T, gt, gt, 3) uint8  blurred RGB crop, channels last as stored (HWC)
``L_spike``    (T, C, gt/f, gt/f)    spike voxels of the same crop (raw dtype); empty if unused
``H``          (T, gt, gt, 3) uint8  sharp RGB crop, channels last
``window``     (T, C) float32        per-frame divisor for ``window`` normalisation (bin lengths)
``seq``        str                   sequence name
``frames``     (T,) int64            frame indices
=============  ====================  =========================================================

Spike-only (``use_rgb=False``, `vrt_train.spike_only`): ``L_rgb`` is ``(T, gt, gt, 0)`` and ``H``
``(T, gt, gt, gt_channels)`` (luma of RGB sharp records, grayscale ones as stored); blur is not read.

Randomness: item ``(epoch, index)`` draws its clip and crop from
``numpy.random.default_rng([seed, epoch, index])``, so the stream does not depend on the worker
count; `ClipSampler` yields such keys, disjoint across ranks, resumable at any position.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from spikeprep import ConfigError, SpikeprepError


def open_any(cache):
    """A Cache object from a path (``spikeprep.open_cache``) or an already opened cache."""
    if isinstance(cache, (str, os.PathLike)):
        from spikeprep import open_cache  # the reader: lazily opened LMDB, picklable
        return open_cache(cache)
    return cache


def spike_factor(params) -> int:
    """Integer factor f with RGB size = f x spike size (1 when the cache matched sizes);
    ``params``: the cache's `spikeprep.CacheParams`."""
    rgb_h, rgb_w = params.rgb_shape[:2]
    _, sp_h, sp_w = params.spike_shape
    f = rgb_h // sp_h if sp_h else 0
    if f < 1 or rgb_h != f * sp_h or rgb_w != f * sp_w:
        raise ConfigError("cache has RGB and spike sizes that are not an integer factor apart",
                          found=f"RGB {rgb_h}x{rgb_w}, spike {sp_h}x{sp_w}",
                          expected="spike size = RGB size / f for an integer f",
                          fix="rebuild the cache with a --match that resizes the spikes")
    return f


class _RepNormalizer:
    """``L -> (C,) float32`` divisor of a representation (picklable for DataLoader workers)."""

    def __init__(self, rep):
        self.rep = rep
        self._by_length: dict[int, np.ndarray] = {}

    def __call__(self, L: int) -> np.ndarray:
        if L not in self._by_length:
            self._by_length[L] = np.asarray(self.rep.normalizer(int(L)), np.float32)
        return self._by_length[L]


class _Concatenated:
    """``L -> (sum C,) float32``: the divisors of several inputs, in order (picklable)."""

    def __init__(self, parts):
        self.parts = parts

    def __call__(self, L: int) -> np.ndarray:
        return np.concatenate([part(L) for part in self.parts])


def input_specs(params, inputs):
    """The cache's representations named by ``data.inputs`` (`spikeprep.CacheParams`
    ``representation_named``), in order; None for ``inputs`` None (the first representation only:
    the single-representation path, unchanged). ConfigError for an empty list, a name twice or a
    name the cache lacks."""
    if inputs is None:
        return None
    names = [inputs] if isinstance(inputs, str) else list(inputs)
    if not names or len(set(names)) != len(names):
        raise ConfigError("data.inputs must name distinct representations of the cache", found=names,
                          expected="e.g. [bins] or [bins, raw]", fix="list each representation once")
    try:
        return [params.representation_named(n) for n in names]
    except SpikeprepError as err:
        raise ConfigError("data.inputs names a representation the cache does not hold", found=err.found,
                          expected=err.expected, fix=err.fix) from None


def window_divisor_fn(params, inputs=None):
    """``L -> (C,) float32`` divisor turning a window's values into rates (spikes per frame),
    from the cache's representation (``normalizer(L)``), or None when it has none (ema).
    ``inputs``: ``data.inputs`` (the divisors of each, concatenated; None if one has none)."""
    specs = input_specs(params, inputs)
    if specs is not None:
        parts = [window_divisor_fn(spec) for spec in specs]
        return None if any(p is None for p in parts) else _Concatenated(parts)
    rep = params.representation()
    return _RepNormalizer(rep) if hasattr(rep, "normalizer") else None


def effective_spike_norm(params, requested: str, inputs=None) -> str:
    """The spike normalisation to use: ``window`` falls back to ``quantile`` (with a warning)
    when the cache's representation (``params``: `spikeprep.CacheParams`; ``inputs``: the
    ``data.inputs`` ones) has no known window normaliser."""
    if requested == "window" and window_divisor_fn(params, inputs) is None:
        warnings.warn(f"spike_norm 'window' is not defined for repr {params.repr!r}; "
                      "using 'quantile' (divide by the training q99.5 per channel)", stacklevel=2)
        return "quantile"
    return requested


def _one_allocation(*specs) -> list[np.ndarray]:
    """Arrays of the given ``(shape, dtype)`` carved out of one buffer, widest itemsize first.

    One ~2 MB allocation per item instead of three smaller ones: glibc then keeps reusing the
    freed block, while three sub-MB blocks are trimmed back to the OS on every free and every
    item pays ~500 fresh page faults (measured: 1.0 ms vs 0.5 ms per 6x192x192 item).
    """
    sizes = [int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in specs]
    order = sorted(range(len(specs)), key=lambda k: -np.dtype(specs[k][1]).itemsize)
    buffer = np.empty(sum(sizes), np.uint8)
    arrays, offset = [None] * len(specs), 0
    for k in order:
        shape, dtype = specs[k]
        arrays[k] = buffer[offset:offset + sizes[k]].view(dtype).reshape(shape)
        offset += sizes[k]
    return arrays


class _CacheItems:
    """What the train and validation datasets share: the cache, sizes, and record slicing."""

    def __init__(self, cache, split: str, use_spike: bool, inputs=None, *, use_rgb: bool = True,
                 gt_channels: int = 3):
        self.use_rgb, self.gt_channels = use_rgb, gt_channels  # False: vrt_train.spike_only
        self.cache = open_any(cache)
        self.manifest = self.cache.manifest
        self.params = self.manifest.params
        self.use_spike = use_spike
        #: `vrt_train.packed_inputs.PackedInputs` with ``data.unpack_on_device`` (set by ShardDataset)
        self.packed = None
        if use_rgb and not getattr(self.params, "has_blur", True):
            raise ConfigError("the cache is spike-only (no blurred RGB frames) but data.use_rgb is true",
                              found="params.has_blur false", expected="a cache with blurred RGB frames",
                              fix="set data.use_rgb: false (spike-only restoration, see docs/guide/training.md)")
        self.f = spike_factor(self.params)
        #: ``data.inputs``: the representations given to the model, concatenated along channels
        #: (None: the first one only, ``Sample.spike``)
        self.inputs = input_specs(self.params, inputs)
        specs = self.inputs or ()
        self.channels = sum(p.channels for p in specs) if specs else self.params.spike_shape[0]
        self.spike_dtype = (np.result_type(*(p.dtype for p in specs)) if specs
                            else np.dtype(self.params.spike_dtype))
        self._names = [p.name for p in specs]
        self._divisor = window_divisor_fn(self.params, self._names or None)
        seqs = [s for s in self.cache.sequences if split is None or self.cache.split(s) == split]
        if not seqs and split == "val":
            seqs = [self.cache.sequences[-1]]
            warnings.warn(f"cache has no val split; validating on its last sequence {seqs[0]!r}",
                          stacklevel=3)
        self.seqs = seqs

    def read_clip(self, seq: str, frames, top: int, left: int, height: int, width: int,
                  need_sharp: bool = True) -> dict:
        """Crops of ``frames`` copied once, straight from the (read-only, mapped) records into
        fresh arrays: ``L_rgb``/``H`` ``(T, height, width, 3)`` uint8, ``L_spike``
        ``(T, C, height/f, width/f)`` in the cache dtype, ``window`` ``(T, C)`` float32.
        Spike-only (``use_rgb`` false; ``gt_channels`` is for it): `vrt_train.spike_only.read_clip`."""
        if self.packed is not None:
            return self.packed.read_clip(self, seq, frames, top, left, height, width, need_sharp)
        if not self.use_rgb:
            from .spike_only import read_clip
            return read_clip(self, seq, frames, top, left, height, width, need_sharp, self.gt_channels)
        f, frames = self.f, [int(i) for i in frames]
        T, (h, w) = len(frames), (height // f, width // f)
        channels = self.channels if self.use_spike else 0
        spikes, rgb, sharp = _one_allocation(
            ((T, channels, h, w), self.spike_dtype),
            ((T, height, width, 3), np.uint8), ((T, height, width, 3), np.uint8))
        divisors = np.ones((T, channels), np.float32)
        for t, i in enumerate(frames):
            s = self.read(seq, i)
            rgb[t] = s.blur[top:top + height, left:left + width]
            if s.sharp is not None:
                sharp[t] = s.sharp[top:top + height, left:left + width]
            elif need_sharp:
                raise ConfigError("cache has no sharp frames to train against", found=f"{seq} frame {i}",
                                  fix="build the cache from a dataset with sharp (ground-truth) frames")
            else:
                sharp[t] = 0
            if self.use_spike:
                self.spike_into(s, (slice(None), slice(top // f, top // f + h), slice(left // f, left // f + w)),
                                spikes[t])
                if self._divisor:
                    divisors[t] = self._divisor(int(s.spike_end) - int(s.spike_begin))
        return {"L_rgb": torch.from_numpy(rgb), "H": torch.from_numpy(sharp),
                "L_spike": torch.from_numpy(spikes if self.use_spike else spikes.astype(np.uint8)),
                "window": torch.from_numpy(divisors), "seq": seq,
                "frames": torch.as_tensor(np.asarray(frames, np.int64))}


    def read(self, seq: str, i: int):
        """Frame ``i``'s `spikeprep.Sample`, with the ``data.inputs`` representations."""
        return self.cache.read(seq, i) if not self._names else self.cache.read(seq, i, names=self._names)

    def spike_into(self, s, crop, out: np.ndarray) -> None:
        """Write the crop ``crop`` (a tuple of slices over ``(C, h, w)``) of the sample's spike
        input into ``out``: ``s.spike``, or the ``data.inputs`` concatenated along channels."""
        if not self._names:
            out[...] = s.spike[crop]
            return
        c = 0
        for name in self._names:
            part = s.spikes[name][crop]
            out[c:c + len(part)] = part
            c += len(part)


def clip_frames(cache, seqs, num_frames: int | None, min_frames: int = 2) -> int:
    """VRT's clip length: ``data.num_frames`` when given, else (None) the smallest ``T`` the
    cache records over the training sequences ``seqs``; VRT needs at least ``min_frames`` (2; 1
    spike-only, where `vrt_train.model.SpikeOnlyVRT` repeats a single frame)."""
    source = "data.num_frames"
    if num_frames is None:
        lengths = {s: cache.clip_length(s) for s in seqs}
        known = [t for t in lengths.values() if t is not None]
        if not known:
            raise ConfigError("data.num_frames is null but the cache records no clip length T",
                              found=f"no T for {', '.join(seqs) or 'any training sequence'}",
                              expected="data.num_frames: N, or a cache of a recipe dataset whose sync.json has T",
                              fix="set data.num_frames (KAIR's GoPro configs use 6)")
        num_frames, source = min(known), "the cache's smallest training T"
    if num_frames < min_frames:
        raise ConfigError(f"VRT needs clips of at least {min_frames} frames", found=f"{num_frames} ({source})",
                          expected=f">= {min_frames}", fix=f"set data.num_frames to {min_frames} or more")
    return num_frames


class ShardDataset(Dataset):
    """Random ``num_frames``-frame clips with a random ``gt_size`` crop, from ``split`` sequences.

    ``len`` is the number of valid clip starts over the split (``samples_per_epoch=None``:
    index ``i`` is clip start ``i``, crop random) or ``samples_per_epoch`` (clip and crop
    random). ``ds[(epoch, index)]`` draws from ``default_rng([seed, epoch, index])``;
    ``ds[index]`` means epoch 0. ``unpack_on_device``: bit-packed inputs are shipped packed and
    unpacked by `vrt_train.packed_inputs.to_device` (same values as the default path).
    """

    def __init__(self, cache, num_frames: int = 6, gt_size: int = 192, split: str = "train",
                 seed: int = 0, samples_per_epoch: int | None = None, use_spike: bool = True,
                 exclude=(), inputs=None, use_rgb: bool = True, gt_channels: int = 3,
                 unpack_on_device: bool = False):
        self.items = _CacheItems(cache, split, use_spike, inputs, use_rgb=use_rgb, gt_channels=gt_channels)
        if unpack_on_device:  # data.unpack_on_device: bit-packed inputs ship packed (vrt_train.packed_inputs)
            from .packed_inputs import PackedInputs
            self.items.packed = PackedInputs.of(self.items)
        self.items.seqs = [s for s in self.items.seqs if s not in set(exclude)]  # data.val_from_train
        num_frames = clip_frames(self.items.cache, self.items.seqs, num_frames, 2 if use_rgb else 1)
        self.num_frames, self.gt_size, self.seed = num_frames, gt_size, seed
        self.samples_per_epoch = samples_per_epoch
        f = self.items.f
        if gt_size % f:
            raise ConfigError("data.gt_size is not divisible by the RGB/spike size factor",
                              found=f"gt_size {gt_size}, factor {f}", expected=f"a multiple of {f}",
                              fix=f"set data.gt_size to a multiple of {f}")
        rgb_h, rgb_w = self.items.params.rgb_shape[:2]
        if gt_size > min(rgb_h, rgb_w):
            raise ConfigError("data.gt_size is larger than the frames", found=gt_size,
                              expected=f"<= {min(rgb_h, rgb_w)} (frames are {rgb_h}x{rgb_w})")
        self.rgb_hw = (rgb_h, rgb_w)
        self.clips = []  # (sequence, first frame)
        for seq in self.items.seqs:
            n = self.items.cache.num_frames(seq)
            self.clips += [(seq, start) for start in range(n - num_frames + 1)]
        if not self.clips:
            raise ConfigError(f"no {split} sequence has {num_frames} frames", found=self.items.seqs,
                              fix="lower data.num_frames or add longer sequences")

    def __len__(self) -> int:
        return self.samples_per_epoch or len(self.clips)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        clip = int(rng.integers(len(self.clips))) if self.samples_per_epoch else int(index)
        seq, start = self.clips[clip]
        f, gt = self.items.f, self.gt_size
        top = int(rng.integers((self.rgb_hw[0] - gt) // f + 1)) * f  # on the spike grid
        left = int(rng.integers((self.rgb_hw[1] - gt) // f + 1)) * f
        return self.items.read_clip(seq, range(start, start + self.num_frames), top, left, gt, gt)


class ValDataset(Dataset):
    """Whole ``split`` sequences (None: all) or their first ``num_frames`` frames, uncropped.

    With ``need_sharp=False`` (inference) frames without a sharp image get a zero ``H``;
    ``sequences`` (a list) replaces the split's sequences (``data.val_from_train``)."""

    def __init__(self, cache, num_frames: int | None = None, use_spike: bool = True, split: str | None = "val",
                 need_sharp: bool = True, sequences=None, inputs=None, use_rgb: bool = True,
                 gt_channels: int = 3):
        self.items = _CacheItems(cache, split if sequences is None else None, use_spike, inputs,
                                 use_rgb=use_rgb, gt_channels=gt_channels)
        if sequences is not None:
            self.items.seqs = list(sequences)
        self.need_sharp = need_sharp
        self.num_frames = num_frames
        self.rgb_hw = tuple(self.items.params.rgb_shape[:2])

    def __len__(self) -> int:
        return len(self.items.seqs)

    def __getitem__(self, index: int) -> dict:
        seq = self.items.seqs[index]
        n = self.items.cache.num_frames(seq)
        n = min(n, self.num_frames) if self.num_frames else n
        return self.items.read_clip(seq, range(n), 0, 0, *self.rgb_hw, need_sharp=self.need_sharp)


@dataclass
class ClipSampler(Sampler):
    """An endless, resumable stream of ``(epoch, index)`` keys for one rank.

    Epoch ``e`` shuffles ``range(dataset_len)`` with ``torch.Generator().manual_seed(seed + e)``
    (as `DistributedSampler` does), pads it by wrapping to a multiple of ``world_size`` and gives
    rank ``r`` positions ``r, r + world_size, ...``: ranks see disjoint items within an epoch.
    The stream starts at ``epoch`` and position ``start_index`` within it; `at` builds the
    sampler that resumes after ``consumed`` items of this rank.
    """

    dataset_len: int
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    epoch: int = 0
    start_index: int = 0

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world_size {self.world_size}")
        self.per_rank = math.ceil(self.dataset_len / self.world_size)

    @classmethod
    def at(cls, consumed: int, dataset_len: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        per_rank = math.ceil(dataset_len / world_size)
        return cls(dataset_len, rank, world_size, seed, consumed // per_rank, consumed % per_rank)

    def epoch_indices(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + epoch)
        perm = torch.randperm(self.dataset_len, generator=g).tolist()
        total = self.per_rank * self.world_size
        perm = (perm * math.ceil(total / len(perm)))[:total]
        return perm[self.rank:total:self.world_size]

    def __iter__(self):
        epoch, start = self.epoch, self.start_index
        while True:
            for index in self.epoch_indices(epoch)[start:]:
                yield (epoch, index)
            epoch, start = epoch + 1, 0

    def __len__(self) -> int:  # one epoch; the stream itself is endless
        return self.per_rank


def make_loader(dataset: Dataset, batch_size: int, workers: int, sampler: ClipSampler,
                pin_memory: bool = False, worker_init_fn=None):
    """DataLoader over the endless sampler (one iterator for the whole run).

    A private generator keeps the loader from drawing on torch's global RNG (which would make
    the model's random stream depend on the worker count). The trainer passes
    `vrt_train.workers.WorkerInit` as ``worker_init_fn`` (workers die with it).
    """
    from torch.utils.data import DataLoader
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0, drop_last=True,
                      generator=torch.Generator().manual_seed(0), worker_init_fn=worker_init_fn,
                      prefetch_factor=4 if workers > 0 else None)
