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

from pathlib import Path

import lmdb
import numpy as np

from ..errors import CacheError, UsageError
from . import stats
from .lock_holders import writers_note
from .manifest import Manifest, load_manifest
from .reader import acquire_env, check_shard_file, release_env
from .records import META_INFO_NAME, checksum, decode_header, decode_record, parse_key, shard_name
from .repr_specs import logical, stats_of
from .verify_data import check_sources
from .verify_report import VerifyReport

#: ``spike_stats`` agree when every value is within this of the recomputed one (float rounding).
STATS_RTOL, STATS_ATOL = 1e-9, 1e-12



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
        check_sources(root, Path(data_root), manifest, report, sample, seed)
    return report
