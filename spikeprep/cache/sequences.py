"""The build steps shared by a whole build (`spikeprep.cache.build`) and a build in parts
(`spikeprep.cache.parts`): start or resume a journal, write one sequence in one transaction,
run a list of sequences, and assemble the manifest from the journal."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CacheError
from ..inputs.files import write_text_atomic
from ..lmdb_writer import ShardWriter
from . import stats
from .frames import dat_sources, hot_pixel_record, sequence_mask
from .inputs import merge_conversions, sequence_warnings, windows_have_spikes
from .interrupt import check_stop
from .journal import Journal, done_sequences
from .manifest import Manifest, SequenceEntry, SpikeStats, write_manifest
from .manifest_params import diff_params
from .plan import BuildPlan
from .records import (
    FORMAT,
    FORMAT_VERSION,
    JOURNAL_NAME,
    META_INFO_NAME,
    RECORD_CHECKSUMS,
    checksum,
    shard_name,
    shard_path,
)
from .repr_specs import more_stats
from .runner import FrameRunner, RunOptions
from .safety import is_empty, wipe_cache
from .staleness import plan_changed_error, source_paths, stat_sources

#: Representations whose channels partition the window, so voxel sums count spikes.
COUNT_REPRS = ("bins", "count")


@dataclass(frozen=True)
class BuildProgress:
    """Where a build stands: ``label`` the sequence being written (``SEQ -> shard-00000.lmdb``),
    ``frames_done`` of ``frames_total`` (this run), ``bytes_written`` and ``seconds`` since start."""

    label: str
    frames_done: int
    frames_total: int
    bytes_written: int
    seconds: float


#: Called with a `BuildProgress` at each sequence start and after every frame.
ProgressCallback = Callable[[BuildProgress], None]


def progress_reporter(progress: "bool | ProgressCallback") -> ProgressCallback:
    """The callback for ``progress``: a callable as given (the CLI passes a progress bar from
    `spikeprep.report`), True a line per sequence on stderr, False nothing."""
    if callable(progress):
        return progress
    if not progress:
        return lambda state: None
    last = [None]

    def print_sequence_starts(state: BuildProgress) -> None:
        if state.label != last[0]:
            last[0] = state.label
            print(f"voxelize {state.label} ({state.frames_done}/{state.frames_total} frames)",
                  file=sys.stderr, flush=True)

    return print_sequence_starts


@dataclass
class BuildSummary:
    """What a build did; ``frames``/``bytes_written`` count this run's work only."""

    cache: str
    sequences: int
    sequences_skipped: int
    frames: int
    bytes_written: int
    seconds: float
    shards: int
    map_grows: int
    workers: int
    per_sequence: list = field(default_factory=list)
    #: sequences built again because their sources changed since they were cached
    rebuilt: list = field(default_factory=list)
    #: lines for the user (a stale write lock taken over, one broken with --break-lock, ...)
    notices: list = field(default_factory=list)
    #: input warnings of the sequences built in this run (converted pngs, all-zero spikes)
    warnings: list = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_written / 1e6 / self.seconds if self.seconds else 0.0



# -- journal / cache directory ---------------------------------------------------------------

def prepare_cache(cache: Path, plan: BuildPlan, force: bool) -> dict[str, dict]:
    """Start, or check and resume, a build in ``cache`` (the caller holds its write lock);
    return journaled sequences by name. ``force`` wipes only a spikeprep cache (`safety`)."""
    journal = Journal(cache)
    if force:
        wipe_cache(cache)
    cache.mkdir(parents=True, exist_ok=True)
    if is_empty(cache):
        journal.start({"format": FORMAT, "version": FORMAT_VERSION, "identity": plan.identity(),
                       "plan": {s.name: s.shard for s in plan.sequences},
                       "record_checksum": plan.config.checksum_algorithm})
        return {}
    entries = journal.read(repair=True)
    if not entries or entries[0].get("kind") != "start":
        raise CacheError("CACHE is not empty and holds no build journal", path=cache,
                         found="files without progress.jsonl", expected="an empty directory or a "
                         "spikeprep cache", fix="pass --force to rebuild, or choose another CACHE")
    start = entries[0]
    found, expected = start.get("identity", {}), plan.identity()
    if start.get("version") != FORMAT_VERSION or found != expected:
        differ = diff_params(found, expected) or [f"format version: found {start.get('version')}, "
                                                  f"expected {FORMAT_VERSION}"]
        raise CacheError("CACHE was built with other parameters", path=cache,
                         found="; ".join(differ),
                         expected="the same parameters to resume",
                         fix="pass --force to wipe and rebuild it, or choose another CACHE")
    done = done_sequences(entries)
    if start.get("plan") != {s.name: s.shard for s in plan.sequences}:
        raise plan_changed_error(cache, plan, start.get("plan", {}), done)
    return done


# -- one sequence -----------------------------------------------------------------------------

def build_sequence(seq, plan: BuildPlan, writer: ShardWriter, runner: FrameRunner, on_frame) -> dict:
    """Write one sequence in one transaction; return its journal entry."""
    cfg = plan.config
    root = Path(cfg.data_root)
    source_stats, stats_taken_ns = stat_sources(root, source_paths(seq))  # before anything reads them
    synced = seq.sync_source
    if synced is not None:  # sync.json as the plan read it: the bytes the windows came from
        source_stats[seq.sync_path] = synced.stat
        stats_taken_ns = min(stats_taken_ns, synced.stat_ns)
    mask = sequence_mask(root, seq.sync, plan.params)
    sources = dat_sources(root, seq.sync_path, seq.sync,
                          sync_fingerprint=None if synced is None else synced.fingerprint)
    has_spikes = windows_have_spikes(root, seq.sync)
    state: dict = {}

    def produce():
        state.update(records={}, sources={}, hists=None, spike_frames=0, conversions={}, more={})
        for result in runner.map(seq.jobs(), mask):
            merge_conversions(state["conversions"], result.conversions)
            state["records"].update(result.checksums)
            state["sources"].update(result.sources)
            state["hists"] = stats.merge(state["hists"], result.hists)
            for name, hists in result.more_hists.items():  # further representations
                state["more"][name] = stats.merge(state["more"].get(name), hists)
            state["spike_frames"] += result.window_len
            for key, value in result.records:
                yield key, value
            on_frame(sum(len(v) for _, v in result.records))
            check_stop()  # a stop signal: at this frame boundary (the transaction is aborted)
        if mask is not None:
            key, value = hot_pixel_record(seq.name, mask, cfg, seq.warp)
            state["records"][key] = checksum(value, cfg.checksum_algorithm)
            yield key, value

    nbytes = writer.write_sequence(seq.shard, seq.nbytes, produce, clear_prefix=f"{seq.name}/")
    float_dtype = cfg.spike_dtype.kind == "f"
    rate = None
    if plan.params.repr in COUNT_REPRS:
        _, h, w = cfg.spike_shape
        rate = stats.voxel_sum(state["hists"], float_dtype) / (state["spike_frames"] * h * w)
    hot = ({"mode": "off", "count": None} if mask is None else
           {"mode": plan.params.hot_pixels, "count": int(mask.sum()), "fraction": float(mask.mean())})
    entry = SequenceEntry(shard=seq.shard, num_frames=len(seq.sync.frames), split=seq.split,
                          has_sharp=seq.has_sharp,
                          sources=dict(sorted({**sources, **state["sources"]}.items())),
                          records=dict(sorted(state["records"].items())), hot_pixels=hot,
                          bytes=nbytes, spike_frames=state["spike_frames"], firing_rate=rate,
                          T=seq.sync.T, frame_names=tuple(f.source_name for f in seq.sync.frames),
                          source_stats=source_stats, registration=seq.registration,
                          warnings=tuple(sequence_warnings(seq.name, seq.sync, state["conversions"],
                                                           has_spikes)))
    more = {"more_hists": {k: stats.to_json(v) for k, v in state["more"].items()}} if state["more"] else {}
    return {"kind": "sequence", "name": seq.name, **entry.to_dict(),
            "hists": stats.to_json(state["hists"]), "stats_taken_ns": stats_taken_ns, **more}


# -- manifest ---------------------------------------------------------------------------------

def assemble_manifest(plan: BuildPlan, done: dict[str, dict]) -> Manifest:
    """The manifest from journal entries alone (deterministic apart from ``created``)."""
    float_dtype = np.dtype(plan.params.spike_dtype).kind == "f"
    sequences, hists, over = {}, None, []
    for name in sorted(done):
        entry = done[name]
        sequences[name] = SequenceEntry.from_dict(entry, f"journal entry {name!r}")
        if entry["split"] == "train":
            hists = stats.merge(hists, stats.from_json(entry["hists"]))
            over.append(name)
    final = stats.finalize(hists, float_dtype)
    spike_stats = final.to_dict(over) if final else {"mean": [], "std": [], "q995": [], "over": []}
    spike_stats["method"] = ("exact (value histograms)" if not float_dtype
                             else "float16-rounded value histograms")
    shards = sorted({shard_name(e.shard) for e in sequences.values()})
    return Manifest.new(plan.params, sequences, SpikeStats.from_dict(spike_stats, "spike_stats"),
                        shards, version("spikeprep"), RECORD_CHECKSUMS[plan.config.checksum_algorithm],
                        import_record=import_record(Path(plan.config.data_root), plan, sorted(done)),
                        representation_stats=more_stats(plan.params, done))


def import_record(data_root: Path, plan: BuildPlan, names) -> dict | None:
    """The manifest's optional ``import`` key: DATA_ROOT/import.json (``spikeprep import``)
    limited to the cache's sequences ``names``, each with ``blur_folder``, the name of the
    source folder its first blurred frame links into (spk-gopro: ``blur_gamma`` or ``blur``);
    None when DATA_ROOT has no import.json or it is unreadable (the build does not depend on it)."""
    import json

    try:
        record = json.loads((data_root / "import.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sequences"), dict):
        return None
    syncs = {s.name: s.sync for s in plan.sequences}
    sequences = {}
    for name in names:
        entry = record["sequences"].get(name)
        if not isinstance(entry, dict):
            continue
        entry = dict(entry)
        frames = syncs[name].frames if name in syncs else ()
        if frames and frames[0].blur and (data_root / frames[0].blur).is_symlink():
            entry["blur_folder"] = Path(os.path.realpath(data_root / frames[0].blur)).parent.name
        sequences[name] = entry
    if not sequences:
        return None
    return {"format": record.get("format"), "version": record.get("version"), "sequences": sequences}


def with_journal_checksum(cache: Path, plan: BuildPlan, journal: str = JOURNAL_NAME) -> BuildPlan:
    """``plan`` with the record checksum algorithm its journal started with (journals written
    before spikeprep 0.2 name none: blake2b), so a resumed cache names one algorithm."""
    algorithm = Journal(cache, journal).header().get("record_checksum", "blake2b")
    if algorithm == plan.config.checksum_algorithm:
        return plan
    return dataclasses.replace(plan, config=dataclasses.replace(plan.config, checksum_algorithm=algorithm))


def run_sequences(plan: BuildPlan, cache: Path, journal: Journal, todo, done: dict,
                  options: RunOptions, t0: float, lock=None) -> tuple[list, int, list]:
    """Build the sequences ``todo`` (each one transaction, then one journal line; ``done`` gets
    their entries); return ``([(name, frames, bytes, seconds)], map grows, input warnings)``.
    ``lock``: the held `spikeprep.cache.lock.WriteLock`, checked still ours before each
    sequence and before each journal line."""
    if not todo:
        return [], 0, []
    check_lock = lock.check if lock is not None else (lambda: None)
    writer = ShardWriter(partial(shard_path, cache), options.initial_map_size, flush_bytes=options.flush_bytes)
    total_frames = sum(len(s.sync.frames) for s in todo)
    counters = {"frames": 0, "bytes": 0}
    per_sequence, warnings = [], []
    runner = options.runner(plan.config)
    report = progress_reporter(options.progress)
    label = ""
    try:
        def on_frame(nbytes: int) -> None:
            counters["frames"] += 1
            counters["bytes"] += nbytes
            report(BuildProgress(label, counters["frames"], total_frames, counters["bytes"],
                                 time.perf_counter() - t0))

        for seq in todo:
            check_stop()
            check_lock()
            label = f"{seq.name} -> {shard_name(seq.shard)}"
            report(BuildProgress(label, counters["frames"], total_frames, counters["bytes"],
                                 time.perf_counter() - t0))
            ts = time.perf_counter()
            entry = build_sequence(seq, plan, writer, runner, on_frame)
            check_lock()  # another writer let in by a deleted lock file: stop before journaling
            journal.append(entry)
            done[seq.name] = entry
            per_sequence.append((seq.name, entry["num_frames"], entry["bytes"],
                                 time.perf_counter() - ts))
            warnings.extend(entry.get("warnings", ()))
    finally:
        runner.close()
        writer.close()
    return per_sequence, writer.grows, warnings


def finish(cache: Path, plan: BuildPlan, done: dict) -> Manifest:
    """Write the manifest and meta_info.txt from the journal entries ``done``."""
    manifest = assemble_manifest(plan, done)
    write_manifest(cache, manifest)
    write_text_atomic(cache / META_INFO_NAME, "\n".join(manifest.meta_info_lines()) + "\n")
    return manifest


def summarize(cache: Path, plan: BuildPlan, per_sequence: list, skipped: int, shards: int,
              grows: int, options: RunOptions, t0: float, warnings=()) -> BuildSummary:
    return BuildSummary(str(cache), len(plan.sequences), skipped, sum(f for _, f, _, _ in per_sequence),
                        sum(b for _, _, b, _ in per_sequence), time.perf_counter() - t0, shards, grows,
                        options.workers, per_sequence, warnings=list(warnings))
