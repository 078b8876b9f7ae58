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
(window | quantile | standardize | none), ``use_spike`` (False: RGB only), ``use_rgb`` (False:
spike-only, `vrt_train.kair_spike_only`; ``gt_channels`` 1 or 3), ``split`` (default
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

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeprep import ConfigError

from .augment import SpikeNorm
from .config import SPIKE_NORMS
from .data import _CacheItems, effective_spike_norm, window_divisor_fn

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
    #: the cache's representations to append to RGB, concatenated in order (None: the first only)
    inputs: Optional[tuple] = None
    use_rgb: bool = True                  # False: spike-only (vrt_train.kair_spike_only)
    gt_channels: Optional[int] = None     # spike-only target channels (default 1)

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
        if kwargs.get("inputs") is not None:
            kwargs["inputs"] = tuple(kwargs["inputs"]) if isinstance(kwargs["inputs"], (list, tuple)) \
                else (kwargs["inputs"],)
        if kwargs.get("spike_norm", "window") not in SPIKE_NORMS:
            raise ConfigError("KAIR dataset option spike_norm is invalid", found=repr(kwargs["spike_norm"]),
                              expected=" | ".join(SPIKE_NORMS))
        if not kwargs["interval_list"] or min(kwargs["interval_list"]) < 1:
            raise ConfigError("KAIR dataset option interval_list is invalid", found=kwargs["interval_list"],
                              expected="positive integers")
        options = cls(**{k: str(v) if k == "dataroot" else v for k, v in kwargs.items()})
        from .kair_spike_only import check_options
        check_options(options)
        return options


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
        inputs = self.opt.inputs
        self.items = _CacheItems(self.opt.dataroot, self.opt.split, self.opt.use_spike, inputs,
                                 use_rgb=self.opt.use_rgb)
        manifest = self.items.manifest
        self.norm = SpikeNorm.from_manifest(manifest, effective_spike_norm(manifest.params, self.opt.spike_norm,
                                                                           inputs), inputs)
        self.spike_chans = self.items.channels if self.opt.use_spike else 0
        self.names = {seq: frame_names(self.items.cache, seq) for seq in self.items.seqs}
        self.divisor = window_divisor_fn(self.items.params, inputs) if self.norm.mode == "window" else None

    def _sample(self, seq: str, frames, top: int, left: int, h: int, w: int,
                flips=(False, False, False)) -> tuple[torch.Tensor, torch.Tensor]:
        """``L (T, 3+S, h', w')`` and ``H (T, 3, h', w')`` float32 of a crop, flipped/transposed.

        One pass per array: each record's crop is a zero-copy view (flips and the HWC -> CHW
        transpose are strides), and one ufunc converts and normalises it into the output.
        """
        if not self.opt.use_rgb:
            from .kair_spike_only import sample
            return sample(self, seq, frames, top, left, h, w, flips, _geom)
        T, S, f = len(frames), self.spike_chans, self.items.f
        hh, ww = (w, h) if flips[2] else (h, w)
        L = np.empty((T, 3 + S, hh, ww), np.float32)
        H = np.empty((T, 3, hh, ww), np.float32)
        for t, i in enumerate(frames):
            rec = self.items.read(seq, int(i))
            if rec.sharp is None:
                raise ConfigError("cache has no sharp frames for the KAIR dataset's H", found=f"{seq} frame {i}",
                                  fix="build the cache from a dataset with sharp (ground-truth) frames")
            crop = (slice(top, top + h), slice(left, left + w))
            np.divide(_chw(np.asarray(rec.blur)[crop], flips), _255, out=L[t, :3])
            np.divide(_chw(np.asarray(rec.sharp)[crop], flips), _255, out=H[t])
            if S:
                spike = self._spike(rec)[:, top // f:(top + h) // f, left // f:(left + w) // f]
                if f > 1:
                    spike = spike.repeat(f, axis=1).repeat(f, axis=2)
                self._spike_into(_geom(spike, flips), int(rec.spike_end) - int(rec.spike_begin), L[t, 3:])
        return torch.from_numpy(L), torch.from_numpy(H)

    def _spike(self, rec) -> np.ndarray:
        """A record's ``(S, h, w)`` spike input: ``spike``, or the ``inputs`` concatenated."""
        if self.opt.inputs is None:
            return np.asarray(rec.spike)
        return np.concatenate([np.asarray(rec.spikes[n], self.items.spike_dtype) for n in self.opt.inputs])

    def _spike_into(self, spike: np.ndarray, window_len: int, out: np.ndarray) -> None:
        """The trainer's `SpikeNorm` of one frame's ``(S, h, w)`` counts, written into ``out``
        (converted first, then normalised in place: faster than a mixed-type broadcast ufunc)."""
        norm, col = self.norm, (slice(None), None, None)
        out[...] = spike
        if norm.mode == "window":
            np.divide(out, self.divisor(window_len)[col], out=out)
        elif norm.mode == "quantile":
            np.divide(out, np.maximum(np.asarray(norm.q995, np.float32), np.float32(1e-6))[col], out=out)
            np.clip(out, 0.0, 1.0, out=out)
        elif norm.mode == "standardize":
            np.subtract(out, np.asarray(norm.mean, np.float32)[col], out=out)
            np.divide(out, np.maximum(np.asarray(norm.std, np.float32), np.float32(1e-6))[col], out=out)


_255 = np.float32(255.0)


def _geom(x: np.ndarray, flips) -> np.ndarray:
    """`vrt_train.augment.geometric` on ``(..., h, w)`` as numpy views: hflip, vflip, transpose."""
    hflip, vflip, transpose = flips
    if hflip:
        x = x[..., ::-1]
    if vflip:
        x = x[..., ::-1, :]
    return x.swapaxes(-1, -2) if transpose else x


def _chw(hwc: np.ndarray, flips) -> np.ndarray:
    return _geom(hwc.transpose(2, 0, 1), flips)


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
