"""`add_representation` (``spikeprep voxelize DATA_ROOT CACHE --add-repr KIND[:N]``): one more
spike representation in a finished cache, without touching its records.

Under the cache's write lock (`spikeprep.cache.lock`, the one voxelize takes), per sequence
(sorted): the sources are checked unchanged (their fingerprints in the manifest), the new
representation's ``SEQ/NNNNNN/spike.NAME`` records are computed (`spikeprep.cache.frames`:
same window, hot-pixel repair and size match as the cache's others) and written in one LMDB
transaction that deletes nothing, then a line goes to ``CACHE/progress.add-repr.jsonl``. A
killed pass resumes from that journal (the same command). At the end the build journal
(``progress.jsonl``: its identity and sequence lines, so a later ``voxelize --repr ... --repr
KIND`` resumes the cache as it now is) and then ``manifest.json`` are rewritten atomically with
the new `ReprSpec`, its records' checksums and its ``representation_stats``; the pass's journal
is removed last.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import CacheError, UsageError
from ..inputs import fingerprint
from ..inputs.files import write_text_atomic
from ..lmdb_writer import ShardWriter
from ..sync import load_sync
from . import registered, stats
from .frames import FrameConfig, FrameJob, compute_voxels, sequence_mask, spike_record
from .interrupt import check_stop, stop_on_signals
from .journal import Journal, done_sequences
from .lock import acquire_write_lock
from .manifest import Manifest, load_manifest, write_manifest
from .manifest_params import ReprSpec
from .records import JOURNAL_NAME, checksum, record_nbytes, shard_path
from .repr_specs import build_spec, parse_requests, stats_of

#: the journal of an ``--add-repr`` pass (`spikeprep.cache.safety.OWNED_ENTRIES` knows it)
ADD_JOURNAL = "progress.add-repr.jsonl"


@dataclass
class AddSummary:
    """What an ``--add-repr`` pass did: the representation, sequences built now and before
    (a resumed pass), frames and bytes written now, seconds."""

    cache: str
    name: str
    sequences: int
    sequences_skipped: int
    frames: int
    bytes_written: int
    seconds: float


def add_representation(data_root, cache, repr, *, S=None, repr_params=None, break_lock=False,
                       progress=False) -> AddSummary:
    """Add representation ``repr`` (``"KIND"`` or ``"KIND:N"``; ``S`` for one without ``:N``;
    ``repr_params``: its parameters, ``KEY`` or ``KIND.KEY``) to the finished ``cache`` built
    from ``data_root``. UsageError when the cache already holds it; CacheError when the cache
    is unfinished or its sources changed; LockError when another process writes it."""
    t0 = time.perf_counter()
    cache, root = Path(cache), Path(data_root)
    if isinstance(repr, (list, tuple)):
        if len(repr) != 1:
            raise UsageError("--add-repr adds one representation per run", found=", ".join(map(str, repr)),
                             expected="one KIND[:N]", fix="run --add-repr once per representation")
        repr = repr[0]
    [request] = parse_requests(repr, S, repr_params)
    _refuse_present(load_manifest(cache), request.name, cache)
    with stop_on_signals("voxelize --add-repr"), acquire_write_lock(cache, break_lock=break_lock) as lock:
        manifest = load_manifest(cache)  # as it is now that no one else writes it
        _refuse_present(manifest, request.name, cache)
        syncs = {seq: _sync_of(root, seq, e) for seq, e in manifest.sequences.items()}
        first = next(iter(syncs.values()))
        lengths = [f.length for s in syncs.values() for f in s.frames]
        spec = build_spec(request, lengths, manifest.params.spike_shape[1:])
        if manifest.params.registration is not None and spec.storage == "array" and manifest.params.match == "rgb":
            spec = dataclasses.replace(spec, spike_dtype=manifest.params.registration.dtype)  # resampled
        params = dataclasses.replace(manifest.params,
                                     more_representations=(*manifest.params.more_representations, spec))
        registered.check_storage(params)  # a registered rig never resamples raw windows
        cfg = FrameConfig(str(root), first.height, first.width, params, with_head=first.with_head)
        journal = Journal(cache, ADD_JOURNAL)
        done = _start_or_resume(journal, manifest, spec)
        todo = [seq for seq in manifest.sequences if seq not in done]
        writer = ShardWriter(partial(shard_path, cache))
        frames = written = 0
        try:
            for seq in todo:
                check_stop()
                lock.check()
                entry = manifest.sequences[seq]
                _check_sources(root, seq, entry)
                if progress:
                    print(f"voxelize --add-repr {spec.name}: {seq}", flush=True)
                line = _build_sequence(seq, syncs[seq], entry, cfg, spec, writer)
                lock.check()
                journal.append(line)
                done[seq] = line
                frames += entry.num_frames
                written += line["bytes"]
        finally:
            writer.close()
        lock.check()
        new = _finish(cache, manifest, params, spec, done)
        write_manifest(cache, new)
        journal.path.unlink(missing_ok=True)
    return AddSummary(str(cache), spec.name, len(todo), len(manifest.sequences) - len(todo), frames, written,
                      time.perf_counter() - t0)


def _refuse_present(manifest: Manifest, name: str, cache: Path) -> None:
    names = [p.name for p in manifest.params.representations()]
    if name in names:
        raise UsageError("the cache already holds this representation", path=cache, found=repr(name),
                         expected="a kind not among " + ", ".join(names),
                         fix="choose another kind, or rebuild the cache ('voxelize --force') to change it")


def _sync_of(root: Path, seq: str, entry):
    """The sequence's sync.json (the path its manifest entry fingerprinted)."""
    rel = entry.sync_path(seq)
    return load_sync(root / rel)


def _check_sources(root: Path, seq: str, entry) -> None:
    """CacheError when the sequence's sync.json or spike files differ from what the cache was
    built from: new records must come from the same windows as the old ones."""
    for rel, stored in entry.sources.items():
        if rel.endswith(".png"):
            continue  # RGB is not read for a spike representation
        try:
            found = fingerprint.hash_file(root / rel, fingerprint.algorithm_of(stored))
        except (OSError, ValueError) as exc:
            found = {"error": str(exc)}
        if found != stored:
            raise CacheError("a source changed since the cache was built", path=root / rel,
                             found=fingerprint.describe(found) if "error" not in found else found["error"],
                             expected=fingerprint.describe(stored),
                             fix="rebuild the cache with the representations you want "
                                 "('spikeprep voxelize DATA_ROOT CACHE --repr ... --repr ...')")


def _start_or_resume(journal: Journal, manifest: Manifest, spec: ReprSpec) -> dict:
    """Sequences done by an earlier, killed pass; a fresh journal when there was none."""
    header = {"kind": "start", "params_hash": manifest.params_hash, "representation": spec.to_dict()}
    entries = journal.read(repair=True)
    if not entries:
        journal.path.unlink(missing_ok=True)
        journal.append(header)
        return {}
    if entries[0] != header:
        found = entries[0].get("representation", {}).get("name", "?")
        raise CacheError("an unfinished --add-repr pass for another representation", path=journal.path,
                         found=f"{found!r} ({entries[0].get('representation')})", expected=spec.to_dict(),
                         fix=f"finish it with the same command ('--add-repr {found}'), or delete "
                             f"{journal.path.name} (its records are then rewritten by the next pass)")
    return done_sequences(entries)


def _build_sequence(seq: str, sync, entry, cfg: FrameConfig, spec: ReprSpec, writer: ShardWriter) -> dict:
    """Write the sequence's new records in one transaction (nothing deleted); its journal line."""
    mask = sequence_mask(Path(cfg.data_root), sync, cfg.params)
    state = {"records": {}, "hists": None}

    def produce():
        state.update(records={}, hists=None)
        warp = registered.job_warp(entry, cfg.params, sync)  # a registered rig: onto the crop's grid
        for i, frame in enumerate(sync.frames[:entry.num_frames]):
            job = FrameJob.of(seq, i, frame, warp)
            voxels = compute_voxels(job, cfg, mask, spec)
            key, value = spike_record(job, spec, voxels)
            state["records"][key] = checksum(value, cfg.checksum_algorithm)
            state["hists"] = stats.merge(state["hists"], stats.channel_histograms(voxels))
            yield key, value
            check_stop()

    planned = entry.num_frames * (record_nbytes(spec.record_shape, spec.dtype) + 64)
    nbytes = writer.write_sequence(entry.shard, planned, produce)
    return {"kind": "sequence", "name": seq, "records": state["records"], "bytes": nbytes,
            "split": entry.split, "hists": stats.to_json(state["hists"])}


def _finish(cache: Path, manifest: Manifest, params, spec: ReprSpec, done: dict) -> Manifest:
    """The manifest with the new representation; the build journal rewritten to match."""
    sequences = {seq: dataclasses.replace(e, records=dict(sorted({**e.records, **done[seq]["records"]}.items())),
                                          bytes=None if e.bytes is None else e.bytes + done[seq]["bytes"])
                 for seq, e in manifest.sequences.items()}
    train = sorted(seq for seq, e in manifest.sequences.items() if e.split == "train")
    hists = None
    for seq in train:
        hists = stats.merge(hists, stats.from_json(done[seq]["hists"]))
    more = {**manifest.representation_stats, spec.name: stats_of(hists, spec, train)}
    new = dataclasses.replace(manifest, params=params, sequences=sequences, params_hash="",
                              representation_stats=dict(sorted(more.items())))  # hash: of the new params
    _rewrite_build_journal(cache, manifest, params, spec, done)
    return new


def _rewrite_build_journal(cache: Path, manifest: Manifest, params, spec: ReprSpec, done: dict) -> None:
    """``progress.jsonl`` as a build with the new representation would have written it:
    identity with the new params, each sequence line with its new records and histograms."""
    journal = Journal(cache, JOURNAL_NAME)
    entries = journal.read()
    if not entries or entries[0].get("kind") != "start":
        return
    old, new = manifest.params.to_dict(), params.to_dict()
    identity = {k: v for k, v in entries[0].get("identity", {}).items() if k not in old}
    lines = [{**entries[0], "identity": {**new, **identity}}]
    for entry in entries[1:]:
        if entry.get("kind") == "sequence" and entry.get("name") in done:
            add = done[entry["name"]]
            entry = {**entry, "records": dict(sorted({**entry.get("records", {}), **add["records"]}.items())),
                     "more_hists": {**entry.get("more_hists", {}), spec.name: add["hists"]},
                     "bytes": None if entry.get("bytes") is None else entry["bytes"] + add["bytes"]}
        lines.append(entry)
    write_text_atomic(journal.path, "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
                                            for e in lines))
