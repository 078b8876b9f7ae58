"""`verify_cache`: prove a cache complete and correct.

Checks, in order (each failure is a `Problem`; nothing here raises for a corrupt cache or
damaged sources):

1. the manifest parses, has the schema, and its params_hash matches its params;
2. every shard opens and is not truncated (checked from its meta page before any read);
3. every record the manifest promises is present, with a valid header of the right shape and
   dtype, and its checksum (the manifest's ``record_checksum`` algorithm) matches; no shard
   holds unexpected keys;
4. ``spike_stats`` recomputed from the train sequences' spike records equals the manifest's (up
   to float rounding, `STATS_RTOL`), and ``over`` lists exactly the train sequences; so does
   each further representation's ``representation_stats`` (bit-packed records unpacked first);
5. with ``data_root``: every sequence of DATA_ROOT is in the cache (one without a sync.json,
   or one added since, is a problem); every source file (sync.json, .dat, png) still has its size and hash;
   a sequence that lost frames since the build (sync.json shorter, pngs missing or empty, a
   spike stream shortened) is reported once; re-computing frames from the sources (all, or
   ``sample`` frames drawn with ``seed``) gives the stored bytes (same representation, match
   resize and hot-pixel repair; every representation, ``spike.NAME`` records too); any error
   while re-computing a frame is a problem.

A voxelize run holding CACHE's write lock while it is checked is named in ``report.notes``
(a line for the reader, not a problem: what it writes may show up as problems).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lmdb
import numpy as np

from ..errors import CacheError, DatError, SpikeprepError, UsageError
from ..inputs import fingerprint
from ..inputs.dat import count_frames
from ..sync import load_sync
from . import registered, stats
from .frames import FrameConfig, FrameJob, compute_frame, hot_pixel_record, sequence_mask
from .lock_holders import writers_note
from .manifest import Manifest, load_manifest
from .reader import acquire_env, check_shard_file, release_env
from .records import META_INFO_NAME, checksum, decode_header, decode_record, parse_key, shard_name
from .repr_specs import logical, stats_of

#: ``spike_stats`` agree when every value is within this of the recomputed one (float rounding).
STATS_RTOL, STATS_ATOL = 1e-9, 1e-12


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
    #: lines for the reader that are not problems (a voxelize run writing CACHE right now)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, sequence, frame, key, what) -> None:
        self.problems.append(Problem(sequence, frame, key, what))

    def to_dict(self) -> dict:
        return {"cache": self.cache, "ok": self.ok, "records_checked": self.records_checked,
                "sources_checked": self.sources_checked, "frames_recomputed": self.frames_recomputed,
                "problems": [asdict(p) for p in self.problems], "notes": list(self.notes)}


def _check_records(root: Path, manifest: Manifest, report: VerifyReport) -> None:
    train = {seq for seq, e in manifest.sequences.items() if e.split == "train"}
    specs = {p.kind: p for p in manifest.params.representations()}  # record kind -> ReprSpec
    hists: dict[str, list | None] = {kind: None for kind in specs}
    by_shard: dict[int, dict[str, tuple]] = {}
    owner: dict[str, str] = {}
    for seq, entry in manifest.sequences.items():
        per_frame = 1 + int(manifest.params.has_blur) + int(entry.has_sharp)
        if entry.num_frames * per_frame > len(entry.records) + 1:  # +1: a hot-pixel mask
            report.add(seq, None, None, f"manifest says {entry.num_frames} frames but lists only "
                                        f"{len(entry.records)} records ({per_frame} per frame)")
            continue
        promised = entry.expected_records(manifest.params, seq)
        for key, spec in promised.items():
            by_shard.setdefault(entry.shard, {})[key] = spec
            owner[key] = seq
        for key in set(entry.records) - set(promised):
            report.add(seq, parse_key(key)[1], key, "manifest lists a record the params do not explain")
    algorithm = manifest.record_algorithm
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
                    found = checksum(value, algorithm)
                    if found != stored:
                        report.add(seq, frame, key, f"checksum mismatch: found {found}, "
                                                    f"manifest {stored}")
                    elif seq in train and parse_key(key)[2] in specs:
                        kind = parse_key(key)[2]
                        _, voxels = decode_record(value, key)
                        hists[kind] = stats.merge(hists[kind], stats.channel_histograms(
                            logical(specs[kind], voxels)))
            release_env(path)
        except (lmdb.Error, CacheError) as exc:
            report.add(None, None, shard_name(shard), f"shard unreadable: {exc}")
        for key in sorted(set(expected) - seen):
            seq, frame, _ = parse_key(key)
            report.add(seq, frame, key, f"record missing from {shard_name(shard)}")
    if not any(p.sequence is None or p.sequence in train for p in report.problems):
        _check_stats(manifest, sorted(train), hists["spike"], report)
        _check_more_stats(manifest, sorted(train), hists, report)


def _stats_differ(found, stored) -> bool:
    found, stored = np.asarray(found, np.float64), np.asarray(stored, np.float64)
    return found.shape != stored.shape or not np.allclose(found, stored, rtol=STATS_RTOL,
                                                           atol=STATS_ATOL, equal_nan=True)


def _check_stats(manifest: Manifest, train: list[str], hists, report: VerifyReport) -> None:
    """Recompute ``spike_stats`` from the train sequences' spike records (read above) and
    compare with the manifest; skipped when those records are already known to be bad."""
    float_dtype = np.dtype(manifest.params.spike_dtype).kind == "f"
    final = stats.finalize(hists, float_dtype)
    found = {"mean": final.mean, "std": final.std, "q995": final.q995} if final else \
        {"mean": [], "std": [], "q995": []}
    stored = manifest.spike_stats
    if list(stored.over) != train:
        report.add(None, None, "manifest.json", f"spike_stats.over lists {list(stored.over)}, "
                                                f"the train sequences are {train}")
    for name in ("mean", "std", "q995"):
        if _stats_differ(found[name], getattr(stored, name)):
            report.add(None, None, "manifest.json",
                       f"spike_stats.{name} differs from the one recomputed from the train records: "
                       f"manifest {_fmt(getattr(stored, name))}, recomputed {_fmt(found[name])}")


def _check_more_stats(manifest: Manifest, train: list[str], hists: dict, report: VerifyReport) -> None:
    """``representation_stats`` of each further representation recomputed from its train records."""
    for spec in manifest.params.more_representations:
        found, stored = stats_of(hists[spec.kind], spec, train), manifest.representation_stats.get(spec.name)
        if stored is None:
            report.add(None, None, "manifest.json", f"representation_stats has no {spec.name!r}")
            continue
        for name in ("mean", "std", "q995", "over"):
            a, b = getattr(found, name), getattr(stored, name)
            if (a != b) if name == "over" else _stats_differ(a, b):
                report.add(None, None, "manifest.json",
                           f"representation_stats.{spec.name}.{name} differs from the one recomputed "
                           f"from the train records: manifest {b}, recomputed {a}")


def _fmt(values) -> str:
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


def _check_sources(root: Path, data_root: Path, manifest: Manifest, report: VerifyReport, sample,
                   seed) -> None:
    frames_of: dict[str, list[tuple[str, int]]] = {}
    syncs = {}
    for seq, entry in manifest.sequences.items():
        lost = _check_source_files(seq, entry, data_root, report)
        rel = next((k for k in entry.sources if k.endswith("sync.json")), f"spike/{seq}/sync.json")
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


def _check_meta_info(root: Path, manifest: Manifest, report: VerifyReport) -> None:
    """``meta_info.txt`` (what KAIR-style loaders list) must say exactly what the manifest says,
    one ``SEQ NFRAMES (H,W,3) 0`` line per sequence (a consumer splits each line on whitespace)."""
    path = root / META_INFO_NAME
    expected = manifest.meta_info_lines()
    try:
        found = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        report.add(None, None, META_INFO_NAME, "meta_info.txt is missing (re-run the same voxelize command)")
        return
    except (OSError, UnicodeDecodeError) as exc:
        report.add(None, None, META_INFO_NAME, f"meta_info.txt cannot be read: {exc}")
        return
    if found != expected:
        differ = next(i for i in range(max(len(found), len(expected)))
                      if i >= len(found) or i >= len(expected) or found[i] != expected[i])
        got = found[differ] if differ < len(found) else "(no line)"
        want = expected[differ] if differ < len(expected) else "(no line)"
        report.add(None, None, META_INFO_NAME,
                   f"meta_info.txt differs from the manifest at line {differ + 1}: found {got!r}, "
                   f"expected {want!r} (re-run the same voxelize command to rewrite it)")
    bad = [line for line in found if len(line.split()) != 4]
    if bad:
        report.add(None, None, META_INFO_NAME, f"meta_info.txt line {bad[0]!r} does not split into "
                   "4 fields (SEQ NFRAMES (H,W,3) 0): a sequence name with whitespace")


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
    writing = writers_note(root)
    if writing:
        report.notes.append(writing)
    try:
        manifest = load_manifest(root)
    except CacheError as err:
        report.add(None, None, "manifest.json", str(err))
        return report
    if not manifest.params.has_blur:
        report.notes.append("spike-only cache (no blur records): " + (
            "spike records and the ground truth" if any(e.has_sharp for e in manifest.sequences.values())
            else "spike records only, no ground truth"))
    _check_records(root, manifest, report)
    _check_meta_info(root, manifest, report)
    if data_root is not None:
        _check_sources(root, Path(data_root), manifest, report, sample, seed)
    return report
