"""`voxelize_dataset`: DATA_ROOT (sync.json + .dat + pngs) -> a sharded LMDB voxel cache.

Order of work: plan (params, shapes, shards; see `spikeprep.cache.plan`), check or start the journal, then
per sequence (sorted): hot-pixel mask (optional), fingerprints of its ``.dat``/sync.json, frames
computed in order (`spikeprep.cache.runner`: in-process, or by ``workers`` processes, at most
``2*workers+1`` frames in flight), records written by this process in one LMDB transaction, journal line. Finally the
manifest and meta_info.txt are assembled from the journal alone, so a resumed build and an
uninterrupted one give the same files (only ``manifest["created"]`` differs).

Memory: a frame's window is read through `SpikeStream.packed` (a memory map), files are hashed
in 1 MiB chunks, and per-sequence state is small (checksums, sparse histograms), so peak RSS is a
few frames per worker, whatever the stream or dataset length.
"""

from __future__ import annotations

import dataclasses
import re
import time
from importlib.metadata import version
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import CacheError, UsageError
from ..files import write_text_atomic
from ..lmdb_writer import DEFAULT_INITIAL_MAP_SIZE, ShardWriter
from . import stats
from .frames import dat_sources, hot_pixel_record, sequence_hot_pixels
from .inputs import merge_conversions, sequence_warnings, windows_have_spikes
from .interrupt import stop_on_signals
from .journal import Journal, done_sequences
from .lock import acquire_write_lock
from .manifest import Manifest, SequenceEntry, SpikeStats, diff_params, write_manifest
from .plan import BuildPlan, plan_build
from .records import (FORMAT, FORMAT_VERSION, JOURNAL_NAME, META_INFO_NAME, RECORD_CHECKSUMS,
                      checksum, shard_name)
from .runner import FrameRunner, RunOptions
from .safety import check_locations, check_resumable, check_wipe, is_empty, wipe_cache
from .staleness import describe as describe_stale
from .staleness import plan_changed_error, refresh_stale, source_paths, stat_sources

DEFAULT_SHARD_SIZE = 4 << 30
#: Representations whose channels partition the window, so voxel sums count spikes.
COUNT_REPRS = ("bins", "count")
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text) -> int:
    """``"512M"``, ``"4G"``, ``"1.5G"``, ``"65536"`` or an int -> bytes (binary units)."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UsageError("cannot read a size", found=text, expected="e.g. 4G, 512M, 65536")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


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
    mask = sequence_hot_pixels(root, seq.sync) if plan.params.hot_pixels == "detect" else None
    sources = dat_sources(root, seq.sync_path, seq.sync)
    has_spikes = windows_have_spikes(root, seq.sync)
    state: dict = {}

    def produce():
        state.update(records={}, sources={}, hists=None, spike_frames=0, conversions={})
        for result in runner.map(seq.jobs(), mask):
            merge_conversions(state["conversions"], result.conversions)
            state["records"].update(result.checksums)
            state["sources"].update(result.sources)
            state["hists"] = stats.merge(state["hists"], result.hists)
            state["spike_frames"] += result.window_len
            for key, value in result.records:
                yield key, value
            on_frame(sum(len(v) for _, v in result.records))
        if mask is not None:
            key, value = hot_pixel_record(seq.name, mask, cfg)
            state["records"][key] = checksum(value, cfg.checksum_algorithm)
            yield key, value

    nbytes = writer.write_sequence(seq.shard, seq.nbytes, produce, clear_prefix=f"{seq.name}/")
    float_dtype = cfg.spike_dtype.kind == "f"
    rate = None
    if plan.params.repr in COUNT_REPRS:
        _, h, w = cfg.spike_shape
        rate = stats.voxel_sum(state["hists"], float_dtype) / (state["spike_frames"] * h * w)
    hot = ({"mode": "off", "count": None} if mask is None else
           {"mode": "detect", "count": int(mask.sum()), "fraction": float(mask.mean())})
    entry = SequenceEntry(shard=seq.shard, num_frames=len(seq.sync.frames), split=seq.split,
                          has_sharp=seq.has_sharp,
                          sources=dict(sorted({**sources, **state["sources"]}.items())),
                          records=dict(sorted(state["records"].items())), hot_pixels=hot,
                          bytes=nbytes, spike_frames=state["spike_frames"], spike_rate=rate,
                          T=seq.sync.T, frame_names=tuple(f.source_name for f in seq.sync.frames),
                          source_stats=source_stats,
                          warnings=tuple(sequence_warnings(seq.name, seq.sync, state["conversions"],
                                                           has_spikes)))
    return {"kind": "sequence", "name": seq.name, **entry.to_dict(),
            "hists": stats.to_json(state["hists"]), "stats_taken_ns": stats_taken_ns}


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
                        shards, version("spikeprep"), RECORD_CHECKSUMS[plan.config.checksum_algorithm])


def _progress(enabled: bool, total: int):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def voxelize_dataset(data_root, cache, *, S=None, repr="bins", repr_params=None, match="none",
                     shard_size=DEFAULT_SHARD_SIZE, workers=0, val=(), hot_pixels="off", force=False,
                     progress=True, initial_map_size=DEFAULT_INITIAL_MAP_SIZE, part=None,
                     build_missing=False, dask=None, break_lock=False, on_notice=None) -> BuildSummary:
    """Build (or resume) the LMDB voxel cache of DATA_ROOT in CACHE; return a `BuildSummary`.

    S: voxel channels parameter (None: the representation's default); repr/repr_params: see
    `spikeprep.representations`; match: "none" | "rgb" | "spike" (see `spikeprep.cache.plan.stored_shapes`);
    shard_size: bytes or "4G"; workers: processes (0/1: in-process); val: validation sequences
    (excluded from spike_stats); hot_pixels: "off" | "detect"; force: wipe an existing CACHE
    (only a spikeprep cache, and only the entries spikeprep writes: `spikeprep.cache.safety`);
    break_lock: remove write locks held from other hosts (`spikeprep.cache.lock`); on_notice:
    called with each line for the user as it happens (also kept in ``summary.notices``).
    part: ``"I/N"`` builds only part I of N (`spikeprep.cache.parts`); without it, a CACHE holding
    parts is completed (``build_missing``: build missing or failed parts here first).
    dask: a Dask scheduler address; frames are computed on its workers (`spikeprep.cache.dask_backend`).

    Safety: CACHE may not be DATA_ROOT or contain it; the write lock is taken before anything is
    written or deleted; done sequences whose sources changed are rebuilt (`refresh_stale`).
    Raises CacheError when CACHE holds a build with other parameters (unless force), LockError
    when another process writes it, BuildInterrupted on SIGTERM/SIGINT/SIGHUP.
    """
    from . import parts as partitioned

    t0 = time.perf_counter()
    if int(workers) < 0:
        raise UsageError("--workers must be >= 0", found=workers, expected="0, 1, 2, ...")
    plan = plan_build(data_root, S=S, repr=repr, repr_params=repr_params, match=match,
                      hot_pixels=hot_pixels, val=tuple(val), shard_size=parse_size(shard_size))
    cache = Path(cache)
    check_locations(cache, Path(data_root))
    options = RunOptions(workers=int(workers), progress=progress, initial_map_size=initial_map_size,
                         dask=dask)
    notices = []

    def notice(line: str) -> None:
        notices.append(line)
        if on_notice is not None:
            on_notice(line)

    if part is not None:
        summary = partitioned.build_part(plan, cache, part, options, ENGINE, force=force,
                                         break_lock=break_lock, notice=notice)
    elif not force and partitioned.holds_parts(cache):
        summary = partitioned.complete(plan, cache, options, ENGINE, build_missing=build_missing,
                                       break_lock=break_lock, notice=notice)
    else:
        (check_wipe if force else check_resumable)(cache)  # reads only: refuse before the lock writes
        with acquire_write_lock(cache, break_lock=break_lock) as lock, stop_on_signals():
            for line in lock.notices():
                notice(line)
            plan = plan if force else partitioned.as_recorded(cache, plan)
            done = prepare_cache(cache, plan, force)
            plan = with_journal_checksum(cache, plan)
            stale = refresh_stale(cache, plan, done)
            if stale:
                notice(f"sources changed since they were cached, rebuilding: {describe_stale(stale)}")
            summary = _build(plan, cache, done, options, t0)
        summary.rebuilt = sorted(stale)
    summary.notices = notices
    return summary


def _build(plan: BuildPlan, cache: Path, done: dict, options: RunOptions, t0: float) -> BuildSummary:
    """Build the sequences not in ``done``, then write the manifest and meta_info.txt."""
    todo = [s for s in plan.sequences if s.name not in done]
    per_sequence, grows, warnings = run_sequences(plan, cache, Journal(cache), todo, done, options, t0)
    manifest = finish(cache, plan, done)
    return summarize(cache, plan, per_sequence, len(plan.sequences) - len(todo), len(manifest.shards),
                     grows, options, t0, warnings)


def with_journal_checksum(cache: Path, plan: BuildPlan, journal: str = JOURNAL_NAME) -> BuildPlan:
    """``plan`` with the record checksum algorithm its journal started with (journals written
    before spikeprep 0.2 name none: blake2b), so a resumed cache names one algorithm."""
    algorithm = Journal(cache, journal).header().get("record_checksum", "blake2b")
    if algorithm == plan.config.checksum_algorithm:
        return plan
    return dataclasses.replace(plan, config=dataclasses.replace(plan.config, checksum_algorithm=algorithm))


def run_sequences(plan: BuildPlan, cache: Path, journal: Journal, todo, done: dict,
                  options: RunOptions, t0: float) -> tuple[list, int, list]:
    """Build the sequences ``todo`` (each one transaction, then one journal line; ``done`` gets
    their entries); return ``([(name, frames, bytes, seconds)], map grows, input warnings)``."""
    if not todo:
        return [], 0, []
    writer = ShardWriter(cache, options.initial_map_size, flush_bytes=options.flush_bytes)
    total_frames = sum(len(s.sync.frames) for s in todo)
    counters = {"frames": 0, "bytes": 0}
    per_sequence, warnings = [], []
    runner = options.runner(plan.config)
    try:
        with _progress(options.progress, total_frames) as bar:
            task = bar.add_task("voxelize", total=total_frames, rate="")

            def on_frame(nbytes: int) -> None:
                counters["frames"] += 1
                counters["bytes"] += nbytes
                dt = max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=1, rate=f"{counters['frames'] / dt:.1f} frames/s "
                                                 f"{counters['bytes'] / 1e6 / dt:.1f} MB/s")

            for seq in todo:
                bar.update(task, description=f"{seq.name} -> {shard_name(seq.shard)}")
                ts = time.perf_counter()
                entry = build_sequence(seq, plan, writer, runner, on_frame)
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


#: The build steps `spikeprep.cache.parts` runs (passed to it, so it never imports this module).
ENGINE = SimpleNamespace(run_sequences=run_sequences, with_journal_checksum=with_journal_checksum,
                         finish=finish, summarize=summarize)
