"""Planning a cache build: read every ``spike/SEQ/sync.json`` and one blur png, fix the
`CacheParams` (what changes the output), the stored shapes and dtypes, the train/val split and a
deterministic shard per sequence.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import CacheError, LayoutError, SyncError, UsageError
from ..inputs import fingerprint
from ..inputs.files import is_utf8, require_utf8_name
from ..inputs.images import read_image
from ..inputs.layout import _sequence_folders as sequence_folders
from ..sync import SyncFile, find_sync_files, load_sync, parse_sync
from . import hot_list, registered
from .frames import FrameConfig, FrameJob
from .manifest import CacheParams, SequenceRegistration
from .records import MATCH_MODES, record_nbytes
from .registered import Warp
from .repr_specs import build_spec, parse_requests

#: Per-record LMDB overhead allowance (key, node header, page slack) for shard planning.
_RECORD_OVERHEAD = 64


@dataclass(frozen=True)
class SyncSource:
    """A sync.json as read for a plan: ``fingerprint`` of the bytes parsed, ``stat`` (size,
    mtime_ns, ino) taken before reading them, at ``stat_ns`` (ns since the epoch)."""

    fingerprint: dict
    stat: dict
    stat_ns: int


def read_sync(path: Path) -> tuple[SyncFile, SyncSource]:
    """Read sync.json once: parse and fingerprint the same bytes (a file rewritten while a build
    runs can then never be fingerprinted as the windows that were built). Errors as `load_sync`."""
    path = Path(path)
    try:
        taken = time.time_ns()
        st = os.stat(path)
        data = path.read_bytes()
    except OSError:
        return load_sync(path), None  # load_sync raises the usual error (missing, unreadable)
    try:
        text = data.decode("utf-8-sig")
        if "\x00" in text:
            raise ValueError("NUL")
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        load_sync(path)  # raises the usual error (encoding named, JSON position) on these bytes' file
        raise SyncError("sync.json changed while it was read", path=path, found="other contents on a "
                        "second read", expected="a sync.json that is not being rewritten",
                        fix="wait until whatever rewrites it (build-sync, an import) has finished, "
                            "then re-run") from None
    source = SyncSource(fingerprint.hash_bytes(data),
                        {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}, taken)
    return parse_sync(raw, path), source


@dataclass(frozen=True)
class SequencePlan:
    """One sequence of a build: its sync file, shard, planned bytes and split."""

    name: str
    sync: SyncFile
    sync_path: str  # relative to DATA_ROOT
    shard: int
    nbytes: int
    split: str
    has_sharp: bool
    #: what sync.json was when its windows were read (`read_sync`): its fingerprint (of exactly
    #: the bytes parsed), its stat record taken before the read, and when that stat was taken.
    #: None (a plan made elsewhere): the build fingerprints the file on disk.
    sync_source: "SyncSource | None" = field(default=None, compare=False)
    #: a registered sequence: its manifest entry's registration and the frames' `Warp`
    registration: SequenceRegistration | None = None
    warp: Warp | None = None

    def jobs(self) -> list[FrameJob]:
        return [FrameJob.of(self.name, i, f, self.warp) for i, f in enumerate(self.sync.frames)]


@dataclass(frozen=True)
class BuildPlan:
    """A whole build: params, the per-frame config, the sequences in order, shard size, split."""

    params: CacheParams
    config: FrameConfig
    sequences: tuple[SequencePlan, ...]
    shard_size: int
    val: tuple[str, ...]
    #: N of a partitioned build (``voxelize --part I/N``; shards planned per part, see
    #: `spikeprep.cache.parts`), None for a single-process plan
    parts: int | None = None
    #: sequences of DATA_ROOT without a sync.json, left out (``--skip-unsynced``)
    unsynced: tuple[str, ...] = ()

    def identity(self) -> dict:
        """What must be equal for a build to resume: params, shard size, split (and parts)."""
        out = {**self.params.to_dict(), "shard_size": self.shard_size, "val": list(self.val)}
        return out if self.parts is None else {**out, "parts": self.parts}


def _image_shape(path: Path, keep_gray: bool = False) -> tuple[int, int, int]:
    """``(H, W, 3)`` of a frame as it will be stored (decoded, converted to RGB; ``keep_gray``:
    a grayscale png stays ``(H, W, 1)``)."""
    image, _, _ = read_image(path, keep_gray=keep_gray)
    return image.shape


def native_rgb_shape(root: Path, syncs: list[SyncFile], paths: list[Path]) -> tuple[int, int, int]:
    """The stored image shape before ``--match``: the first blur frame's; spike-only data (no blur
    frames, every sequence alike): its ground truth's as it is (gray: ``(H, W, 1)``), else the
    spike frame's ``(h, w, 1)`` (real recordings: the output size of inference)."""
    first = syncs[0]
    for s, p in zip(syncs, paths):
        if s.spike_only != first.spike_only:
            raise CacheError("spike-only sequences (no blur frames) and sequences with blur frames in one "
                             "DATA_ROOT", path=p, found=f"{s.sequence}: " + ("spike-only" if s.spike_only
                                                                             else "with blur frames"),
                             expected=f"all like {first.sequence} (" + ("spike-only" if first.spike_only
                                                                         else "with blur frames") + ")",
                             fix="cache them separately (voxelize --sequence, or separate DATA_ROOTs)")
    frame = first.frames[0]
    if not first.spike_only:
        return _image_shape(root / frame.blur)
    if frame.sharp is not None:
        return _image_shape(root / frame.sharp, keep_gray=True)
    return first.height, first.width, 1


def stored_shapes(rgb: tuple, spike_hw: tuple, channels: int, match: str) -> tuple[tuple, tuple]:
    """Stored ``(H, W, 3)`` RGB (``(H, W, 1)`` gray ground truth) and ``(C, h, w)`` spike shapes
    for a match mode (checks ratios)."""
    (H, W, c), (h, w) = rgb, spike_hw
    if match not in MATCH_MODES:
        raise UsageError("unknown --match mode", found=match, expected=" | ".join(MATCH_MODES))
    if match == "rgb":
        return (H, W, c), (channels, H, W)
    if match == "spike":
        return (h, w, c), (channels, h, w)
    if H % h or W % w or H // h != W // w:
        raise CacheError("RGB and spike sizes are not an integer multiple of each other",
                         found=f"RGB {H}x{W}, spike {h}x{w} (HxW)",
                         expected="RGB = k * spike in both axes for --match none",
                         fix="use --match rgb (resize spikes) or --match spike (resize RGB)")
    return (H, W, c), (channels, h, w)


def assign_shards(sizes: list[int], shard_size: int) -> list[int]:
    """Greedy, in order: a sequence goes to the current shard unless it would overflow it."""
    shards, current, used = [], 0, 0
    for size in sizes:
        if used and used + size > shard_size:
            current, used = current + 1, 0
        shards.append(current)
        used += size
    return shards


def check_unique_sequences(syncs: list[SyncFile], paths: list[Path]) -> None:
    """SyncError naming both files when two sync.json files claim the same ``"sequence"`` (e.g.
    one copied into another folder as a template): one would overwrite the other's records."""
    first: dict[str, Path] = {}
    for sync, path in zip(syncs, paths):
        if sync.sequence in first:
            raise SyncError("two sync.json files name the same sequence", path=path,
                            found=f'"sequence": "{sync.sequence}" in both {first[sync.sequence]} and {path}',
                            expected="one sync.json per sequence, named after its folder "
                                     f"(spike/{path.parent.name}/sync.json -> \"{path.parent.name}\")",
                            fix="fix the copied sync.json or re-create it with "
                                "'spikeprep build-sync DATA_ROOT --force'")
        first[sync.sequence] = path


def _check_names(sync: SyncFile, path: Path) -> None:
    """SyncError when sync.json holds a sequence name or path that is not valid UTF-8 (a cache
    key and the manifest need text)."""
    names = [sync.sequence] + [p for f in sync.frames for p in (f.blur, f.sharp, f.spike_file) if p]
    bad = next((n for n in names if not is_utf8(n)), None)
    if bad is not None:
        raise SyncError("sync.json holds a name that is not valid UTF-8", path=path,
                        found=repr(bad.encode("utf-8", "surrogateescape")),
                        expected="UTF-8 sequence and file names",
                        fix="rename the folders/files to UTF-8 names, then run 'spikeprep build-sync "
                            "DATA_ROOT --force'")


def split_val(syncs: list[SyncFile]) -> list[str]:
    """Validation sequences from the sync files' ``split`` (written by ``spikeprep import``):
    every sequence whose split is not ``train`` (the datasets' ``test``/``val``)."""
    return [s.sequence for s in syncs if s.split not in (None, "train")]


def unsynced_sequences(data_root, synced=()) -> list[str]:
    """Sequences of DATA_ROOT that have no ``spike/SEQ/sync.json``, sorted: folders of
    ``blur/`` (nested levels joined with ``_``, as build-sync names them) and folders of
    ``spike/`` holding a ``.dat`` (spike-only datasets have no blur/). ``synced``: names that
    have one (sync.json folder names or the sequences they name)."""
    root = Path(data_root)
    names = set()
    if (root / "blur").is_dir():
        try:
            names.update(sequence_folders(root / "blur"))
        except LayoutError:
            pass  # an odd blur/ (clashing nested names): build-sync reports it
    spike = root / "spike"
    if spike.is_dir():
        for folder in spike.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and \
                    any(p.is_file() for p in folder.glob("*.dat")):
                names.add(folder.name)
    have = set(synced) | {p.parent.name for p in find_sync_files(root)}
    return sorted(n for n in names if n not in have)


def name_list(names, limit: int = 20) -> str:
    """``a, b, c`` (at most ``limit`` names, then ``and K more``)."""
    names = list(names)
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def _registered(layout, sync: SyncFile, params: CacheParams) -> tuple:
    """``(SequenceRegistration, Warp)`` of a registered sequence, ``(None, None)`` otherwise."""
    if layout is None:
        return None, None
    entry = layout.entry(sync.sequence)
    return entry, registered.warp_of(entry, params, layout.registrations[sync.sequence].rgb_size)


def plan_build(data_root, *, S=None, repr="bins", repr_params=None, match=None,
               hot_pixels="off", val=(), shard_size: int, skip_unsynced: bool = False,
               hot_pixel_list=None) -> BuildPlan:
    """Read the sync files and fix params, shapes, split and shards of a build. Sequences of
    DATA_ROOT without a sync.json (`unsynced_sequences`) are a LayoutError naming them, unless
    ``skip_unsynced`` (then the plan lists them in ``unsynced``). ``match`` None: ``rgb`` for
    registered sequences (`spikeprep.cache.registered`), ``none`` otherwise."""
    root = Path(data_root)
    if not root.is_dir():
        raise UsageError("DATA_ROOT not found", path=root, found="no such directory",
                         expected="a dataset root with blur/, sharp/, spike/")
    if hot_pixel_list is not None:
        hot_pixels = "list"
    if hot_pixels not in ("off", "detect", "list") or (hot_pixels == "list" and hot_pixel_list is None):
        raise UsageError("unknown --hot-pixels mode", found=hot_pixels,
                         expected="off | detect (or --hot-pixel-list QC.json)")
    paths = find_sync_files(root)
    if not paths:
        raise LayoutError("no sync.json files under DATA_ROOT", path=root / "spike",
                          found="no spike/SEQ/sync.json", expected="one per sequence",
                          fix="run 'spikeprep build-sync DATA_ROOT' first")
    for p in paths:
        require_utf8_name(p.parent, LayoutError, "sequence folder")
    read = [read_sync(p) for p in paths]
    syncs = [sync for sync, _ in read]
    unsynced = tuple(unsynced_sequences(root, [s.sequence for s in syncs]))
    if unsynced and not skip_unsynced:
        raise LayoutError(f"{len(unsynced)} sequence{'s' if len(unsynced) > 1 else ''} of DATA_ROOT "
                          "have no sync.json, so the cache would silently lack them", path=root / "spike",
                          found=name_list(unsynced), expected="spike/SEQ/sync.json for every sequence "
                          "of blur/ and spike/",
                          fix="run 'spikeprep build-sync DATA_ROOT' (it writes the missing ones), or pass "
                              "--skip-unsynced to build the cache without them")
    check_unique_sequences(syncs, paths)
    for s, p in zip(syncs, paths):
        _check_names(s, p)
    names = [s.sequence for s in syncs]
    unknown = sorted(set(val) - set(names))
    if unknown:
        raise UsageError("--val names sequences that are not in DATA_ROOT", found=", ".join(unknown),
                         expected="one of: " + ", ".join(names))
    val = tuple(sorted(set(val) if val else split_val(syncs)))
    first = syncs[0]
    for s, p in zip(syncs, paths):
        if (s.height, s.width, s.flipud, s.with_head) != (first.height, first.width, first.flipud, first.with_head):
            raise CacheError("sequences disagree on spike geometry", path=p,
                             found=f"{s.height}x{s.width} flipud={s.flipud}",
                             expected=f"{first.height}x{first.width} flipud={first.flipud} "
                                      f"(as {first.sequence})", fix="cache them separately")
    requests = parse_requests(repr, S, repr_params)  # several: --repr bins:8 --repr raw:41 (repr_specs)
    lengths = [f.length for s in syncs for f in s.frames]
    rgb_native = native_rgb_shape(root, syncs, paths)
    match, layout = registered.plan_layout(syncs, paths, match, rgb_native[:2])
    if layout is None:
        rgb_shape, (_, *spike_hw) = stored_shapes(rgb_native, (first.height, first.width), 1, match)
    else:
        rgb_shape, (_, *spike_hw) = layout.shapes(1)
    specs = [build_spec(r, lengths, spike_hw, first=k == 0) for k, r in enumerate(requests)]
    if layout is not None:  # resampled representations are stored in one float dtype
        specs = [replace(p, spike_dtype=layout.spike_dtype(p.spike_dtype)) if p.storage == "array" else p
                 for p in specs]
    one = specs[0]
    listed = {}
    if hot_pixels == "list":
        qc = hot_list.read_qc_lists(hot_pixel_list)
        listed = hot_list.sequence_lists(qc, {s.sequence: s.spike_files for s in syncs},
                                         (first.height, first.width), hot_pixel_list)
    params = CacheParams(S=one.S, channels=one.channels, repr=one.repr, repr_params=one.repr_params,
                         flipud=first.flipud, match=match, hot_pixels=hot_pixels, spike_dtype=one.spike_dtype,
                         rgb_shape=tuple(rgb_shape), spike_shape=one.spike_shape, hot_pixel_list=listed,
                         storage=one.storage, more_representations=tuple(specs[1:]),
                         has_blur=not first.spike_only)
    if layout is not None:
        params = replace(params, registration=layout.params(one.spike_dtype, registered.bit_exact(params)))
        registered.check_storage(params)
    cfg = FrameConfig(str(root), first.height, first.width, params, with_head=first.with_head)
    sizes, sharps = [], []
    for s, p in zip(syncs, paths):
        sharp = [f.sharp is not None for f in s.frames]
        if any(sharp) and not all(sharp):
            raise LayoutError("some frames of a sequence have a sharp frame and some do not",
                              path=p, found=f"{sum(sharp)} of {len(sharp)} with sharp",
                              expected="all or none")
        per_frame = (record_nbytes(rgb_shape, np.uint8) * (int(params.has_blur) + int(sharp[0]))
                     + sum(record_nbytes(spec.record_shape, spec.dtype) + _RECORD_OVERHEAD for spec in specs)
                     + 2 * _RECORD_OVERHEAD)
        sizes.append(per_frame * len(s.frames) + record_nbytes(spike_hw, np.uint8))
        sharps.append(sharp[0])
    shards = assign_shards(sizes, shard_size)
    seqs = tuple(SequencePlan(s.sequence, s, os.path.relpath(p, root), shard, size,
                              "val" if s.sequence in val else "train", hs, src, *_registered(layout, s, params))
                 for (s, src), p, shard, size, hs in zip(read, paths, shards, sizes, sharps))
    return BuildPlan(params, cfg, seqs, int(shard_size), tuple(sorted(set(val))), unsynced=unsynced)
