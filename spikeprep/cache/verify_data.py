"""The ``verify --data`` half of `spikeprep.cache.verify`: the cache against DATA_ROOT. Every
recorded source file still has its fingerprint, every sequence of DATA_ROOT is in the cache, and
a sample of frames (all with ``--sample`` absent) recomputed from the sources gives the stored
records byte for byte (registration warps and hot-pixel masks included)."""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import DatError, SpikeprepError
from ..inputs import fingerprint
from ..inputs.dat import count_frames
from ..sync import load_sync
from . import registered
from .frames import FrameConfig, FrameJob, compute_frame, hot_pixel_record, sequence_mask
from .manifest import Manifest
from .reader import acquire_env, check_shard_file, release_env
from .records import shard_name
from .verify_report import VerifyReport


def check_sources(root: Path, data_root: Path, manifest: Manifest, report: VerifyReport, sample,
                  seed) -> None:
    """Add to ``report`` every recorded source changed or lost, every DATA_ROOT sequence the
    cache lacks, and every recomputed frame (``sample`` of them, seeded; None: all) that differs."""
    frames_of: dict[str, list[tuple[str, int]]] = {}
    syncs = {}
    for seq, entry in manifest.sequences.items():
        lost = _check_source_files(seq, entry, data_root, report)
        rel = entry.sync_path(seq)
        try:
            syncs[seq] = load_sync(data_root / rel)
        except SpikeprepError as err:
            report.add(seq, None, rel, f"cannot re-read: {err}")
            continue
        except (OSError, UnicodeError) as exc:
            report.add(seq, None, rel, f"cannot re-read: {exc}")
            continue
        frames_of[seq] = [(seq, i) for i in _recomputable(seq, entry, syncs[seq], rel, data_root,
                                                            lost, report)]
    _check_complete(data_root, manifest, report)
    registered.rederive(manifest.params, manifest.sequences, syncs, report.add)
    todo = [f for seq in sorted(frames_of) for f in frames_of[seq]]
    if sample is not None and sample < len(todo):
        todo = sorted(random.Random(seed).sample(todo, sample))
    _recompute(root, data_root, manifest, syncs, todo, report)


def _check_complete(data_root: Path, manifest: Manifest, report: VerifyReport) -> None:
    """A problem per sequence of DATA_ROOT that the cache lacks: one without a sync.json (never
    built: `spikeprep.cache.plan.unsynced_sequences`) or with one but not cached."""
    from ..sync import find_sync_files
    from .plan import unsynced_sequences

    cached = set(manifest.sequences)
    for path in find_sync_files(data_root):
        if path.parent.name in cached:
            continue
        try:
            name = load_sync(path).sequence
        except (SpikeprepError, OSError, UnicodeError):
            name = path.parent.name
        if name not in cached:
            report.add(name, None, str(path.relative_to(data_root)),
                       "sequence of DATA_ROOT is not in the cache: re-run 'spikeprep voxelize' to add it")
    for name in unsynced_sequences(data_root, cached):
        report.add(name, None, f"spike/{name}/sync.json",
                   "sequence of DATA_ROOT is not in the cache: it has no sync.json (run 'spikeprep "
                   "build-sync DATA_ROOT', then 'spikeprep voxelize')")


def _check_source_files(seq: str, entry, data_root: Path, report: VerifyReport) -> set[str]:
    """Fingerprint every recorded source; return the ones now missing, empty or unreadable."""
    lost = set()
    for rel, stored in entry.sources.items():
        report.sources_checked += 1
        path = data_root / rel
        if not path.is_file():
            report.add(seq, _png_frame(rel), rel, "source file missing")
            lost.add(rel)
            continue
        if not isinstance(stored, dict) or not isinstance(stored.get("size"), int):
            report.add(seq, _png_frame(rel), rel, f"manifest fingerprint is malformed: {stored!r}")
            continue
        try:
            found = fingerprint.hash_file(path, fingerprint.algorithm_of(stored))
        except (OSError, ValueError) as exc:
            report.add(seq, _png_frame(rel), rel, f"source cannot be read: {exc}")
            lost.add(rel)
            continue
        if found["size"] == 0 and stored.get("size"):
            report.add(seq, _png_frame(rel), rel, f"source file is now empty (0 bytes), cache built "
                                                  f"from {fingerprint.describe(stored)}")
            lost.add(rel)
        elif found != stored:
            report.add(seq, _png_frame(rel), rel, f"source changed: {fingerprint.describe(found)}, "
                       f"cache built from {fingerprint.describe(stored)}")
    return lost


def _recomputable(seq: str, entry, sync, sync_rel: str, data_root: Path, lost: set[str],
                  report: VerifyReport) -> list[int]:
    """Frames that can still be recomputed; reports, once per sequence, frames lost since the
    build (sync.json shorter, pngs missing or empty, a spike stream shortened)."""
    if sync.sequence != seq:
        report.add(seq, None, sync_rel, f"sync.json now names sequence {sync.sequence!r}")
    n = min(len(sync.frames), entry.num_frames)
    if len(sync.frames) != entry.num_frames:
        change = "lost" if len(sync.frames) < entry.num_frames else "gained"
        report.add(seq, None, sync_rel, f"sequence {change} frames since the build: sync.json lists "
                                        f"{len(sync.frames)} frames, the cache holds {entry.num_frames}")
    frames = range(n)
    gone = [i for i in frames if {sync.frames[i].blur, sync.frames[i].sharp} & lost]
    if gone:
        first = sync.frames[gone[0]].blur or sync.frames[gone[0]].sharp
        report.add(seq, None, None, f"sequence lost frames since the build: {len(gone)} of {n} frames "
                                    f"have a missing or empty png (first: frame {gone[0]}, {first})")
    short = set()
    for rel in sync.spike_files:
        mine = [i for i in frames if sync.frames[i].spike_file == rel]
        need = max((sync.frames[i].spike_end for i in mine), default=0)
        try:
            length = count_frames(data_root / rel, sync.height, sync.file_width, allow_partial=True)
        except DatError as err:
            report.add(seq, None, rel, f"spike stream cannot be read: {err}")
            short.update(mine)
            continue
        cut = [i for i in mine if sync.frames[i].spike_end > length]
        if cut:
            report.add(seq, None, rel, f"spike stream lost frames since the build: {length} spike "
                                       f"frames now, the windows need {need}; {len(cut)} frame(s) "
                                       f"(first: frame {cut[0]}) cannot be recomputed")
            short.update(cut)
    return [i for i in frames if i not in short and i not in gone]


def _png_frame(rel: str) -> int | None:
    stem = Path(rel).stem
    return int(stem) if rel.endswith(".png") and stem.isdigit() else None


def _recompute(root, data_root, manifest, syncs, todo, report) -> None:
    params = manifest.params
    envs, masks = {}, {}
    try:
        for seq, i in todo:
            entry, sync = manifest.sequences[seq], syncs[seq]
            shard = entry.shard
            if shard not in envs:
                if check_shard_file(root / shard_name(shard)):
                    continue  # already reported
                envs[shard] = acquire_env(root / shard_name(shard))
            cfg = FrameConfig(str(data_root), sync.height, sync.width, params, with_head=sync.with_head)
            mask = None
            if params.hot_pixels != "off":
                if seq not in masks:
                    masks[seq] = _redetect_mask(seq, data_root, sync, cfg, envs[shard], report, entry)
                if masks[seq] is None:
                    continue  # reported once
                mask = masks[seq]
            f = sync.frames[i]
            job = FrameJob.of(seq, i, f, registered.job_warp(entry, params, sync))
            try:
                result = compute_frame(job, cfg, mask, with_stats=False)
            except SpikeprepError as err:
                report.add(seq, i, None, f"cannot recompute from sources: {err}")
                continue
            except Exception as exc:  # verify reports, never crashes (e.g. a decoder's own error)
                report.add(seq, i, None, f"cannot recompute from sources: {type(exc).__name__}: {exc}")
                continue
            report.frames_recomputed += 1
            with envs[shard].begin() as txn:
                for key, value in result.records:
                    if txn.get(key.encode()) != value:
                        report.add(seq, i, key, "stored record differs from the one recomputed "
                                                "from the sources")
    finally:
        for shard in envs:
            release_env(root / shard_name(shard))


def _redetect_mask(seq, data_root, sync, cfg, env, report, entry):
    """Detect a sequence's hot pixels from its streams again and compare with the stored mask;
    None (reported) when the streams cannot be read."""
    try:
        mask = sequence_mask(data_root, sync, cfg.params)
    except SpikeprepError as err:
        report.add(seq, None, None, f"cannot re-detect hot pixels: {err}")
        return None
    key, value = hot_pixel_record(seq, mask, cfg, registered.job_warp(entry, cfg.params, sync))
    with env.begin() as txn:
        if txn.get(key.encode()) != value:
            report.add(seq, None, key, "hot-pixel mask differs from the one detected from the "
                                       "source streams")
    return mask
