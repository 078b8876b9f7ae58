"""Planning a cache build and computing one frame's records (shared by the builder and `verify`).

`plan_build` reads every ``spike/SEQ/sync.json`` and one blur png, fixes the parameters that change
the output (the manifest's ``params``), the stored shapes and dtypes, the train/val split and a
deterministic shard per sequence. `compute_frame` turns one `FrameJob` into its encoded records;
it is a pure function of the files it reads and the `FrameConfig`, so workers, a resumed run
and ``verify --data`` all produce the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from importlib.metadata import version
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .cache_format import (MATCH_MODES, encode_record, frame_key, hot_pixels_key, record_nbytes,
                           checksum)
from .dat import SpikeStream
from .errors import CacheError, LayoutError, UsageError
from .hotpixels import detect_hot_pixels, firing_rate, repair_hot_pixels
from .representations import default_S, make_representation
from .stats import channel_histograms
from .sync import SyncFile, find_sync_files, load_sync
from .voxel import voxelize

HASH_CHUNK = 1 << 20
#: Per-record LMDB overhead allowance (key, node header, page slack) for shard planning.
_RECORD_OVERHEAD = 64


def hash_bytes(data: bytes) -> dict:
    return {"size": len(data), "blake2b": hashlib.blake2b(data, digest_size=16).hexdigest()}


def hash_file(path: Path) -> dict:
    """``{"size", "blake2b"}`` of a file, read in 1 MiB chunks (O(1) memory)."""
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "blake2b": digest.hexdigest()}


# -- representations and hot pixels -----------------------------------------------------------

def representation_info(name: str, S: int | None, params: dict) -> tuple[int, dict, int, object]:
    """``(S, repr_params dict, channels, rep)``; S None means the representation's default."""
    rep = make_representation(name, default_S(name) if S is None else S, **params)
    return int(rep.S), rep.to_dict(), int(rep.channels), rep


def sequence_hot_pixels(data_root: Path, sync: SyncFile) -> np.ndarray:
    """``(h, w)`` bool hot-pixel mask of a sequence: firing rate over all of its streams."""
    total, frames = None, 0
    for rel in sync.spike_files:
        with SpikeStream(filepath=data_root / rel, spike_h=sync.height, spike_w=sync.width,
                         print_dat_detail=False) as stream:
            rate = np.asarray(firing_rate(stream), np.float64) * len(stream)
            total = rate if total is None else total + rate
            frames += len(stream)
    mask = np.asarray(detect_hot_pixels(total / max(frames, 1)), bool)
    return mask if sync.flipud else np.ascontiguousarray(mask[::-1])  # firing_rate is flipud=True


# -- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameConfig:
    """Everything `compute_frame` needs besides the frame itself (picklable, sent to workers)."""

    data_root: str
    spike_h: int
    spike_w: int
    flipud: bool
    S: int
    repr: str
    repr_params: dict
    spike_dtype: str
    match: str
    rgb_shape: tuple[int, int, int]   # stored (H, W, 3)
    spike_shape: tuple[int, int, int]  # stored (C, h, w)
    voxel_kwargs: dict = field(default_factory=dict)  # repr params as voxelize() takes them


@dataclass(frozen=True)
class FrameJob:
    sequence: str
    index: int
    blur: str
    sharp: str | None
    spike_file: str
    spike_begin: int
    spike_end: int


@dataclass
class FrameResult:
    index: int
    records: list[tuple[str, bytes]]
    checksums: dict[str, str]
    sources: dict[str, dict]
    hists: list
    window_len: int


@dataclass(frozen=True)
class SequencePlan:
    name: str
    sync: SyncFile
    sync_path: str  # relative to DATA_ROOT
    shard: int
    nbytes: int
    split: str
    has_sharp: bool

    def jobs(self) -> list[FrameJob]:
        return [FrameJob(self.name, i, f.blur, f.sharp, f.spike_file, f.spike_begin, f.spike_end)
                for i, f in enumerate(self.sync.frames)]


@dataclass(frozen=True)
class BuildPlan:
    params: dict
    config: FrameConfig
    sequences: tuple[SequencePlan, ...]
    shard_size: int
    val: tuple[str, ...]

    def identity(self) -> dict:
        """What must be equal for a build to resume: params, shard size, split."""
        return {**self.params, "shard_size": self.shard_size, "val": list(self.val)}


# -- per-frame computation ------------------------------------------------------------------

def read_rgb(path: Path) -> tuple[np.ndarray, dict]:
    """A png as ``(H, W, 3)`` uint8 RGB plus its fingerprint (one read of the bytes)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LayoutError("RGB frame not found", path=path, found="no such file",
                          expected="the png named in sync.json", fix="check DATA_ROOT") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise LayoutError("RGB frame cannot be decoded", path=path, found=f"{len(data)} bytes",
                          expected="a png/jpg image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), hash_bytes(data)


def match_rgb(image: np.ndarray, cfg: FrameConfig, path) -> np.ndarray:
    """Resize to the stored RGB shape (``--match spike``: INTER_AREA); check the shape."""
    h, w, _ = cfg.rgb_shape
    if cfg.match == "spike" and image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    if image.shape != tuple(cfg.rgb_shape):
        raise LayoutError("RGB frame size differs from the dataset's", path=path,
                          found=f"{image.shape}", expected=f"{tuple(cfg.rgb_shape)} (from the first frame)")
    return image


def match_spike(voxels: np.ndarray, cfg: FrameConfig) -> np.ndarray:
    """``--match rgb``: each channel resized to the RGB size with INTER_NEAREST (dtype kept)."""
    _, h, w = cfg.spike_shape
    if voxels.shape[1:] == (h, w):
        return voxels
    out = np.empty((voxels.shape[0], h, w), voxels.dtype)
    for c, channel in enumerate(voxels):
        out[c] = cv2.resize(channel, (w, h), interpolation=cv2.INTER_NEAREST)
    return out


def compute_voxels(job: FrameJob, cfg: FrameConfig, mask: np.ndarray | None) -> np.ndarray:
    """The stored ``(C, h, w)`` voxels of one frame: voxelize, repair hot pixels, match size."""
    out = np.empty((cfg.spike_shape[0], cfg.spike_h, cfg.spike_w), np.dtype(cfg.spike_dtype))
    # a fresh memory map per frame: unmapped right after, so pages of earlier windows never
    # accumulate in this process's RSS however long the stream is
    with SpikeStream(filepath=Path(cfg.data_root) / job.spike_file, spike_h=cfg.spike_h,
                     spike_w=cfg.spike_w, print_dat_detail=False) as stream:
        voxels = voxelize(stream.packed(job.spike_begin, job.spike_end), cfg.spike_h, cfg.spike_w,
                          cfg.S, repr=cfg.repr, flipud=cfg.flipud, out=out, **cfg.voxel_kwargs)
    if mask is not None:
        voxels = repair_hot_pixels(voxels, mask)
    return match_spike(np.asarray(voxels, np.dtype(cfg.spike_dtype)), cfg)


def compute_frame(job: FrameJob, cfg: FrameConfig, mask: np.ndarray | None = None,
                  with_stats: bool = True) -> FrameResult:
    """Encode one frame's records (blur, sharp, spike), their checksums, png fingerprints, stats."""
    root = Path(cfg.data_root)
    records, sources = [], {}
    for kind, rel in (("blur", job.blur), ("sharp", job.sharp)):
        if rel is None:
            continue
        image, fingerprint = read_rgb(root / rel)
        sources[rel] = fingerprint
        records.append((frame_key(job.sequence, job.index, kind),
                        encode_record(match_rgb(image, cfg, root / rel))))
    voxels = compute_voxels(job, cfg, mask)
    records.append((frame_key(job.sequence, job.index, "spike"),
                    encode_record(voxels, job.spike_begin, job.spike_end)))
    hists = channel_histograms(voxels) if with_stats else []
    return FrameResult(job.index, records, {k: checksum(v) for k, v in records}, sources, hists,
                       job.spike_end - job.spike_begin)


# -- planning ---------------------------------------------------------------------------------

def _image_shape(path: Path) -> tuple[int, int, int]:
    image, _ = read_rgb(path)
    return image.shape


def stored_shapes(rgb: tuple, spike_hw: tuple, channels: int, match: str) -> tuple[tuple, tuple]:
    """Stored ``(H, W, 3)`` RGB and ``(C, h, w)`` spike shapes for a match mode (checks ratios)."""
    (H, W, _), (h, w) = rgb, spike_hw
    if match not in MATCH_MODES:
        raise UsageError("unknown --match mode", found=match, expected=" | ".join(MATCH_MODES))
    if match == "rgb":
        return (H, W, 3), (channels, H, W)
    if match == "spike":
        return (h, w, 3), (channels, h, w)
    if H % h or W % w or H // h != W // w:
        raise CacheError("RGB and spike sizes are not an integer multiple of each other",
                         found=f"RGB {H}x{W}, spike {h}x{w} (HxW)",
                         expected="RGB = k * spike in both axes for --match none",
                         fix="use --match rgb (resize spikes) or --match spike (resize RGB)")
    return (H, W, 3), (channels, h, w)


def assign_shards(sizes: list[int], shard_size: int) -> list[int]:
    """Greedy, in order: a sequence goes to the current shard unless it would overflow it."""
    shards, current, used = [], 0, 0
    for size in sizes:
        if used and used + size > shard_size:
            current, used = current + 1, 0
        shards.append(current)
        used += size
    return shards


def plan_build(data_root, *, S=None, repr="bins", repr_params=None, match="none",
               hot_pixels="off", val=(), shard_size: int) -> BuildPlan:
    """Read the sync files and fix params, shapes, split and shards of a build."""
    root = Path(data_root)
    if not root.is_dir():
        raise UsageError("DATA_ROOT not found", path=root, found="no such directory",
                         expected="a dataset root with blur/, sharp/, spike/")
    if hot_pixels not in ("off", "detect"):
        raise UsageError("unknown --hot-pixels mode", found=hot_pixels, expected="off | detect")
    paths = find_sync_files(root)
    if not paths:
        raise LayoutError("no sync.json files under DATA_ROOT", path=root / "spike",
                          found="no spike/SEQ/sync.json", expected="one per sequence",
                          fix="run 'spikeprep build-sync DATA_ROOT' first")
    syncs = [load_sync(p) for p in paths]
    names = [s.sequence for s in syncs]
    unknown = sorted(set(val) - set(names))
    if unknown:
        raise UsageError("--val names sequences that are not in DATA_ROOT", found=", ".join(unknown),
                         expected="one of: " + ", ".join(names))
    first = syncs[0]
    for s, p in zip(syncs, paths):
        if (s.height, s.width, s.flipud) != (first.height, first.width, first.flipud):
            raise CacheError("sequences disagree on spike geometry", path=p,
                             found=f"{s.height}x{s.width} flipud={s.flipud}",
                             expected=f"{first.height}x{first.width} flipud={first.flipud} "
                                      f"(as {first.sequence})", fix="cache them separately")
    S, rparams, channels, rep = representation_info(repr, S, dict(repr_params or {}))
    max_len = max(f.length for s in syncs for f in s.frames)
    spike_dtype = np.dtype(rep.dtype_for(max_len)).name
    rgb_native = _image_shape(root / first.frames[0].blur)
    rgb_shape, spike_shape = stored_shapes(rgb_native, (first.height, first.width), channels, match)
    params = {"S": S, "channels": channels, "repr": repr, "repr_params": rparams,
              "flipud": first.flipud, "match": match, "hot_pixels": hot_pixels,
              "spike_dtype": spike_dtype, "rgb_shape": list(rgb_shape), "spike_shape": list(spike_shape)}
    voxel_kwargs = dict(repr_params or {})
    cfg = FrameConfig(str(root), first.height, first.width, first.flipud, S, repr, rparams,
                      spike_dtype, match, rgb_shape, spike_shape, voxel_kwargs)
    sizes, sharps = [], []
    for s, p in zip(syncs, paths):
        sharp = [f.sharp is not None for f in s.frames]
        if any(sharp) and not all(sharp):
            raise LayoutError("some frames of a sequence have a sharp frame and some do not",
                              path=p, found=f"{sum(sharp)} of {len(sharp)} with sharp",
                              expected="all or none")
        per_frame = (record_nbytes(rgb_shape, np.uint8) * (2 if sharp[0] else 1)
                     + record_nbytes(spike_shape, spike_dtype) + 3 * _RECORD_OVERHEAD)
        sizes.append(per_frame * len(s.frames) + record_nbytes(spike_shape[1:], np.uint8))
        sharps.append(sharp[0])
    shards = assign_shards(sizes, shard_size)
    seqs = tuple(SequencePlan(s.sequence, s, os.path.relpath(p, root), shard, size,
                              "val" if s.sequence in val else "train", hs)
                 for s, p, shard, size, hs in zip(syncs, paths, shards, sizes, sharps))
    return BuildPlan(params, cfg, seqs, int(shard_size), tuple(sorted(set(val))))


def spikeprep_version() -> str:
    """The installed package's version (pyproject.toml is its only source)."""
    return version("spikeprep")


def hot_pixel_record(sequence: str, mask: np.ndarray, cfg: FrameConfig) -> tuple[str, bytes]:
    """``SEQ/hot_pixels``: the ``(h, w)`` uint8 mask at the stored spike size (INTER_NEAREST
    upsampled with ``--match rgb``), aligned with the stored voxels."""
    mask = match_spike(mask.astype(np.uint8)[None], cfg)[0]
    return hot_pixels_key(sequence), encode_record(mask)


def dat_sources(root: Path, seq: SequencePlan) -> dict[str, dict]:
    """Fingerprints of a sequence's spike files and its sync.json (hashed in chunks)."""
    out = {seq.sync_path: hash_file(root / seq.sync_path)}
    for rel in seq.sync.spike_files:
        out[rel] = hash_file(root / rel)
    return out
