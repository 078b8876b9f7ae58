"""KAIR drop-in: KAIR's video datasets' samples, read from a spikeprep cache.

For users who keep KAIR's own ``main_train_vrt.py``: ``VideoTrainDataset(opt)`` and
``VideoTestDataset(opt)`` take KAIR's dataset options (the ``datasets.train`` / ``datasets.test``
sections of its json) with ``dataroot`` pointing at a spikeprep cache, and return KAIR's
samples, with the spike voxels appended to the RGB channels of ``L``:

=========  ===========================  =====================================================
key        value                        meaning
=========  ===========================  =====================================================
``L``      (T, 3+S, h, w) float32       blurred RGB / 255, then S spike channels normalised as
                                        the trainer does (``spike_norm``, default ``window``:
                                        counts / spike frames per bin, rates in [0, 1])
``H``      (T, 3, h, w) float32         sharp RGB / 255 at the same crop
``key``    str (train)                  ``SEQ/NAME`` of the frame the index names (KAIR's key)
``folder`` str (test)                   the sequence
``lq_path`` list of T str (test)        ``SEQ/NAME`` per frame, NAME the frame's source file
                                        name when the manifest records it, else ``%06d``
=========  ===========================  =====================================================

Options: ``dataroot`` (the cache), ``phase`` (``train``/``test``, as KAIR's option parser sets
it), ``num_frame`` (test: -1 = whole sequence), ``gt_size``, ``use_hflip``, ``use_rot``,
``random_reverse``, ``interval_list``, plus ours: ``spike_norm``
(window | quantile | standardize | none), ``use_spike`` (False: RGB only), ``split`` (default
train for the train set, val for the test set). KAIR's other keys (``dataroot_gt``,
``io_backend``, ``dataloader_*`` ...) are accepted and ignored; unknown keys warn.

Sampling follows KAIR's ``VideoRecurrentTrainDataset``: one index per frame of the training
sequences; the clip starts at that frame (or at a random start when too close to the end),
with a random interval from ``interval_list`` and a random reversal; crop, flips and the
transpose are drawn with Python's ``random`` as KAIR does (DataLoader workers are seeded).
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import Dataset

from spikeprep import ConfigError

from .augment import SpikeNorm, geometric
from .config import SPIKE_NORMS
from .data import _CacheItems, effective_spike_norm

KAIR_IGNORED = {"name", "dataset_type", "dataroot_gt", "dataroot_lq", "meta_info_file", "filename_tmpl",
                "filename_ext", "test_mode", "io_backend", "dataloader_shuffle", "dataloader_num_workers",
                "dataloader_batch_size", "cache_data", "n_channels", "scale", "val_partition", "pad_sequence",
                "sigma_min", "sigma_max", "dataroot_flow", "padding", "num_worker_per_gpu", "batch_size_per_gpu"}


@dataclass(frozen=True)
class KairDatasetOptions:
    """The options `VideoTrainDataset` / `VideoTestDataset` use (validated from KAIR's dict)."""

    dataroot: str
    phase: str = "train"
    num_frame: int = 6
    gt_size: int = 192
    use_hflip: bool = True
    use_rot: bool = True
    random_reverse: bool = False
    interval_list: tuple = (1,)
    spike_norm: str = "window"
    use_spike: bool = True
    split: Optional[str] = None

    @classmethod
    def from_opt(cls, opt: dict, phase: str) -> "KairDatasetOptions":
        opt = dict(opt)
        if not opt.get("dataroot"):
            raise ConfigError("KAIR dataset options have no dataroot", found=sorted(opt),
                              expected="dataroot: the spikeprep cache folder",
                              fix='add "dataroot": "path/to/cache" to the dataset section of the json')
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(opt) - names - KAIR_IGNORED)
        if unknown:
            warnings.warn(f"KAIR dataset options not used by vrt_train.kair: {', '.join(unknown)}", stacklevel=3)
        if opt.get("scale", 1) != 1:
            raise ConfigError("vrt_train.kair datasets are for deblurring (scale 1)", found=f"scale {opt['scale']}",
                              expected="1")
        kwargs = {k: v for k, v in opt.items() if k in names}
        kwargs["phase"] = phase
        kwargs["interval_list"] = tuple(int(i) for i in kwargs.get("interval_list", (1,)))
        kwargs.setdefault("split", "train" if phase == "train" else "val")
        if kwargs.get("spike_norm", "window") not in SPIKE_NORMS:
            raise ConfigError("KAIR dataset option spike_norm is invalid", found=repr(kwargs["spike_norm"]),
                              expected=" | ".join(SPIKE_NORMS))
        if not kwargs["interval_list"] or min(kwargs["interval_list"]) < 1:
            raise ConfigError("KAIR dataset option interval_list is invalid", found=kwargs["interval_list"],
                              expected="positive integers")
        return cls(**{k: str(v) if k == "dataroot" else v for k, v in kwargs.items()})


def frame_names(cache, seq: str) -> list[str]:
    """Per-frame source names of ``seq`` (the blurred frame's file name, without folders) when
    the manifest records them, else the frame indices as ``%06d``."""
    n = cache.num_frames(seq)
    entry = (getattr(cache.manifest, "sequences", None) or {}).get(seq)
    for key in ("frame_names", "frame_sources", "frames"):
        names = entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)
        if isinstance(names, list) and len(names) == n:
            out = [n_.get("blur") if isinstance(n_, dict) else n_ for n_ in names]
            if all(isinstance(x, str) and x for x in out):
                return [x.replace("\\", "/").rsplit("/", 1)[-1] for x in out]
    return [f"{i:06d}" for i in range(n)]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


class _KairBase(Dataset):
    def __init__(self, opt: dict, phase: str):
        self.opt = KairDatasetOptions.from_opt(opt, phase)
        self.items = _CacheItems(self.opt.dataroot, self.opt.split, self.opt.use_spike)
        manifest = self.items.manifest
        self.norm = SpikeNorm.from_manifest(manifest, effective_spike_norm(manifest.params, self.opt.spike_norm))
        self.spike_chans = self.items.channels if self.opt.use_spike else 0
        self.names = {seq: frame_names(self.items.cache, seq) for seq in self.items.seqs}

    def _sample(self, seq: str, frames, top: int, left: int, h: int, w: int,
                flips=(False, False, False)) -> tuple[torch.Tensor, torch.Tensor]:
        """``L (T, 3+S, h', w')`` and ``H (T, 3, h', w')`` float32 of a crop, flipped/transposed."""
        raw = self.items.read_clip(seq, frames, top, left, h, w)
        T, S = len(frames), self.spike_chans
        rgb = geometric(raw["L_rgb"].permute(0, 3, 1, 2), *flips)
        sharp = geometric(raw["H"].permute(0, 3, 1, 2), *flips)
        hh, ww = rgb.shape[-2:]
        L = torch.empty((T, 3 + S, hh, ww), dtype=torch.float32)
        H = torch.empty((T, 3, hh, ww), dtype=torch.float32)
        L[:, :3].copy_(rgb).div_(255.0)
        H.copy_(sharp).div_(255.0)
        if S:
            spike = raw["L_spike"]
            f = self.items.f
            if f > 1:
                spike = spike.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)
            out = L[:, 3:]
            out.copy_(geometric(spike, *flips))
            self._normalise(out, raw["window"])
        return L, H

    def _normalise(self, spike: torch.Tensor, window: torch.Tensor) -> None:
        """In place, the trainer's `SpikeNorm` on ``(T, S, h, w)``."""
        norm, shape = self.norm, (1, -1, 1, 1)
        if norm.mode == "window":
            spike.div_(window[:, :, None, None])
        elif norm.mode == "quantile":
            spike.div_(torch.tensor(norm.q995, dtype=torch.float32).clamp_min(1e-6).view(shape)).clamp_(0.0, 1.0)
        elif norm.mode == "standardize":
            spike.sub_(torch.tensor(norm.mean, dtype=torch.float32).view(shape))
            spike.div_(torch.tensor(norm.std, dtype=torch.float32).clamp_min(1e-6).view(shape))


class VideoTrainDataset(_KairBase):
    """KAIR's ``VideoRecurrentTrainDataset`` sample from a spikeprep cache (module docstring)."""

    def __init__(self, opt: dict):
        super().__init__(opt, "train")
        o, f = self.opt, self.items.f
        self.rgb_hw = tuple(self.items.params.rgb_shape[:2])
        if o.gt_size % f or o.gt_size > min(self.rgb_hw):
            raise ConfigError("KAIR dataset option gt_size does not fit the cache", found=o.gt_size,
                              expected=f"a multiple of {f}, at most {min(self.rgb_hw)}")
        self.keys = [(seq, i) for seq in self.items.seqs for i in range(self.items.cache.num_frames(seq))]
        short = [s for s in self.items.seqs if self.items.cache.num_frames(s) < o.num_frame * max(o.interval_list)]
        if short or not self.keys:
            raise ConfigError(f"training sequences shorter than num_frame x interval ({o.num_frame})",
                              found=short or "no train sequences", fix="lower num_frame/interval_list")

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict:
        o, f = self.opt, self.items.f
        seq, first = self.keys[index]
        interval = random.choice(o.interval_list)
        last_start = self.items.cache.num_frames(seq) - o.num_frame * interval
        start = first if first <= last_start else random.randint(0, last_start)
        frames = list(range(start, start + o.num_frame * interval, interval))
        if o.random_reverse and random.random() < 0.5:
            frames.reverse()
        top = random.randint(0, (self.rgb_hw[0] - o.gt_size) // f) * f  # on the spike grid
        left = random.randint(0, (self.rgb_hw[1] - o.gt_size) // f) * f
        flips = (o.use_hflip and random.random() < 0.5, o.use_rot and random.random() < 0.5,
                 o.use_rot and random.random() < 0.5)
        L, H = self._sample(seq, frames, top, left, o.gt_size, o.gt_size, flips)
        return {"L": L, "H": H, "key": f"{seq}/{_stem(self.names[seq][first])}"}


class VideoTestDataset(_KairBase):
    """KAIR's ``VideoRecurrentTestDataset`` sample (a whole sequence) from a spikeprep cache."""

    def __init__(self, opt: dict):
        opt = {"num_frame": -1, **opt}
        super().__init__(opt, "test")
        self.rgb_hw = tuple(self.items.params.rgb_shape[:2])

    def __len__(self) -> int:
        return len(self.items.seqs)

    def __getitem__(self, index: int) -> dict:
        seq = self.items.seqs[index]
        n = self.items.cache.num_frames(seq)
        n = min(n, self.opt.num_frame) if self.opt.num_frame > 0 else n
        L, H = self._sample(seq, range(n), 0, 0, *self.rgb_hw)
        return {"L": L, "H": H, "folder": seq, "lq_path": [f"{seq}/{name}" for name in self.names[seq][:n]]}


def sample_nbytes(sample: dict) -> int:
    """Bytes of a sample's tensors (benchmarks)."""
    return sum(v.numel() * v.element_size() for v in sample.values() if torch.is_tensor(v))


__all__ = ["VideoTrainDataset", "VideoTestDataset", "KairDatasetOptions", "frame_names"]
