"""`verify_cache`: prove a cache complete and correct.

Checks, in order (each failure is a `Problem`; nothing here raises for a corrupt cache):

1. the manifest parses, has the schema, and its params_hash matches its params;
2. every shard opens and is not truncated (checked from its meta page before any read);
3. every record the manifest promises is present, with a valid header of the right shape and
   dtype, and its blake2b checksum matches; no shard holds unexpected keys;
4. with ``data_root``: every source file (sync.json, .dat, png) still has its size and hash,
   and re-computing frames from the sources (all, or ``sample`` frames drawn with ``seed``)
   gives the stored bytes (same representation, match resize and hot-pixel repair).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lmdb

from .. import fingerprint
from ..errors import CacheError, SpikeprepError, UsageError
from ..sync import load_sync
from .frames import FrameConfig, FrameJob, compute_frame, hot_pixel_record, sequence_hot_pixels
from .manifest import Manifest, load_manifest
from .reader import acquire_env, check_shard_file, release_env
from .records import checksum, decode_header, parse_key, shard_name


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (sequence, frame, record key or file) and what."""

    sequence: str | None
    frame: int | None
    key: str | None
    what: str


@dataclass
class VerifyReport:
    cache: str
    problems: list[Problem] = field(default_factory=list)
    records_checked: int = 0
    sources_checked: int = 0
    frames_recomputed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, sequence, frame, key, what) -> None:
        self.problems.append(Problem(sequence, frame, key, what))

    def to_dict(self) -> dict:
        return {"cache": self.cache, "ok": self.ok, "records_checked": self.records_checked,
                "sources_checked": self.sources_checked, "frames_recomputed": self.frames_recomputed,
                "problems": [asdict(p) for p in self.problems]}


def _check_records(root: Path, manifest: Manifest, report: VerifyReport) -> None:
    by_shard: dict[int, dict[str, tuple]] = {}
    owner: dict[str, str] = {}
    for seq, entry in manifest.sequences.items():
        promised = entry.expected_records(manifest.params, seq)
        for key, spec in promised.items():
            by_shard.setdefault(entry.shard, {})[key] = spec
            owner[key] = seq
        for key in set(entry.records) - set(promised):
            report.add(seq, parse_key(key)[1], key, "manifest lists a record the params do not explain")
    for shard, expected in sorted(by_shard.items()):
        path = root / shard_name(shard)
        problem = check_shard_file(path)
        if problem:
            for seq in sorted({owner[k] for k in expected}):
                report.add(seq, None, shard_name(shard), problem)
            continue
        seen = set()
        try:
            env = acquire_env(path)
            with env.begin(buffers=True) as txn:
                for raw_key, value in txn.cursor():
                    key = bytes(raw_key).decode(errors="replace")
                    seq, frame, _ = parse_key(key)
                    if key not in expected:
                        report.add(seq, frame, key, f"unexpected key in {shard_name(shard)}")
                        continue
                    seen.add(key)
                    report.records_checked += 1
                    shape, dtype = expected[key]
                    try:
                        header = decode_header(value, key)
                    except CacheError as err:
                        report.add(seq, frame, key, err.what + (f": found {err.found}" if err.found else ""))
                        continue
                    if header.shape != tuple(shape) or header.dtype != dtype:
                        report.add(seq, frame, key, f"header says {header.dtype} {header.shape}, "
                                                    f"expected {dtype} {tuple(shape)}")
                    stored = manifest.sequences[seq].records.get(key)
                    if checksum(value) != stored:
                        report.add(seq, frame, key, f"checksum mismatch: found {checksum(value)}, "
                                                    f"manifest {stored}")
            release_env(path)
        except (lmdb.Error, CacheError) as exc:
            report.add(None, None, shard_name(shard), f"shard unreadable: {exc}")
        for key in sorted(set(expected) - seen):
            seq, frame, _ = parse_key(key)
            report.add(seq, frame, key, f"record missing from {shard_name(shard)}")


def _check_sources(root: Path, data_root: Path, manifest: Manifest, report: VerifyReport, sample,
                   seed) -> None:
    frames_of: dict[str, list[tuple[str, int]]] = {}
    syncs = {}
    for seq, entry in manifest.sequences.items():
        for rel, stored in entry.sources.items():
            report.sources_checked += 1
            path = data_root / rel
            if not path.is_file():
                report.add(seq, None, rel, "source file missing")
                continue
            found = fingerprint.hash_file(path, fingerprint.algorithm_of(stored))
            if found != stored:
                report.add(seq, _png_frame(rel), rel, f"source changed: {fingerprint.describe(found)}, "
                           f"cache built from {fingerprint.describe(stored)}")
        try:
            rel = next((k for k in entry.sources if k.endswith("sync.json")),
                       f"spike/{seq}/sync.json")
            syncs[seq] = load_sync(data_root / rel)
        except SpikeprepError as err:
            report.add(seq, None, "sync.json", f"cannot re-read: {err}")
            continue
        frames_of[seq] = [(seq, i) for i in range(entry.num_frames)]
    todo = [f for seq in sorted(frames_of) for f in frames_of[seq]]
    if sample is not None and sample < len(todo):
        todo = sorted(random.Random(seed).sample(todo, sample))
    _recompute(root, data_root, manifest, syncs, todo, report)


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
            cfg = FrameConfig(str(data_root), sync.height, sync.width, params)
            if params.hot_pixels == "detect" and seq not in masks:
                masks[seq] = sequence_hot_pixels(data_root, sync)
                key, value = hot_pixel_record(seq, masks[seq], cfg)
                with envs[shard].begin() as txn:
                    if txn.get(key.encode()) != value:
                        report.add(seq, None, key, "hot-pixel mask differs from the one detected "
                                                   "from the source streams")
            f = sync.frames[i]
            job = FrameJob(seq, i, f.blur, f.sharp, f.spike_file, f.spike_begin, f.spike_end)
            try:
                result = compute_frame(job, cfg, masks.get(seq), with_stats=False)
            except SpikeprepError as err:
                report.add(seq, i, None, f"cannot recompute from sources: {err}")
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


def verify_cache(cache, data_root=None, sample: int | None = None, seed: int = 0) -> VerifyReport:
    """Check a cache (see module docstring); returns a `VerifyReport` (``.ok``, ``.problems``).

    Raises UsageError only when ``cache`` (or ``data_root``) is not a directory at all.
    """
    root = Path(cache)
    if not root.is_dir():
        raise UsageError("CACHE directory not found", path=root, found="no such directory",
                         expected="a CACHE written by 'spikeprep voxelize'")
    if data_root is not None and not Path(data_root).is_dir():
        raise UsageError("DATA_ROOT not found", path=data_root, found="no such directory",
                         expected="the dataset the cache was built from")
    if sample is not None and sample < 0:
        raise UsageError("--sample must be >= 0", found=sample, expected="a frame count")
    report = VerifyReport(str(root))
    try:
        manifest = load_manifest(root)
    except CacheError as err:
        report.add(None, None, "manifest.json", str(err))
        return report
    _check_records(root, manifest, report)
    if data_root is not None:
        _check_sources(root, Path(data_root), manifest, report, sample, seed)
    return report
