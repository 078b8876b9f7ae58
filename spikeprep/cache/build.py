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

import re
import time
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..lmdb_writer import DEFAULT_INITIAL_MAP_SIZE
from . import parts as partitioned
from . import parts_completion
from .interrupt import stop_on_signals
from .journal import Journal
from .lock import acquire_write_lock
from .plan import BuildPlan, name_list, plan_build
from .runner import RunOptions
from .safety import check_locations, check_resumable, check_wipe
from .sequences import (
    BuildSummary,
    ProgressCallback,
    finish,
    prepare_cache,
    run_sequences,
    summarize,
    with_journal_checksum,
)
from .staleness import describe as describe_stale
from .staleness import describe_lost, refresh_lost, refresh_stale

DEFAULT_SHARD_SIZE = 4 << 30
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text) -> int:
    """``"512M"``, ``"4G"``, ``"1.5G"``, ``"65536"`` or an int -> bytes (binary units)."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UsageError("cannot read a size", found=text, expected="e.g. 4G, 512M, 65536")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def voxelize_dataset(data_root, cache, *, S=None, repr="bins", repr_params=None, match=None,
                     shard_size=DEFAULT_SHARD_SIZE, workers=0, val=(), hot_pixels="off", force=False,
                     progress: bool | ProgressCallback = True, initial_map_size=DEFAULT_INITIAL_MAP_SIZE, part=None,
                     build_missing=False, dask=None, break_lock=False, on_notice=None, hot_pixel_list=None,
                     skip_unsynced=False) -> BuildSummary:
    """Build (or resume) the LMDB voxel cache of DATA_ROOT in CACHE; return a `BuildSummary`.

    S: voxel channels parameter (None: the representation's default); repr/repr_params: see
    `spikeprep.representations.catalog` (``repr`` may be a list such as ``["bins:8", "tfp:4"]``:
    several representations in one cache, `spikeprep.cache.repr_specs`);
    match: "none" | "rgb" | "spike" (see `spikeprep.cache.plan.stored_shapes`);
    shard_size: bytes or "4G"; workers: processes (0/1: in-process); val: validation sequences
    (excluded from spike_stats); hot_pixels: "off" | "detect" (``hot_pixel_list``: the JSON of
    ``spikeprep qc`` whose hot pixels are repaired instead, `spikeprep.cache.hot_list`); force: wipe an existing CACHE
    (only a spikeprep cache, and only the entries spikeprep writes: `spikeprep.cache.safety`);
    break_lock: remove write locks held from other hosts (`spikeprep.cache.lock`); on_notice:
    called with each line for the user as it happens (also kept in ``summary.notices``).
    part: ``"I/N"`` builds only part I of N (`spikeprep.cache.parts`); without it, a CACHE holding
    parts is completed (``build_missing``: build missing or failed parts here first).
    skip_unsynced: build without the sequences of DATA_ROOT that have no sync.json (named in a
    notice); by default they are a LayoutError naming them (`spikeprep.cache.plan.unsynced_sequences`).
    dask: a Dask scheduler address; frames are computed on its workers (`spikeprep.cache.dask_backend`).
    progress: True prints a line per sequence on stderr, a callable gets a `BuildProgress` after
    every frame (the CLI draws its bar from it), False is silent.

    Safety: CACHE may not be DATA_ROOT or contain it; the write lock is taken before anything is
    written or deleted; done sequences whose sources changed are rebuilt (`refresh_stale`).
    Raises CacheError when CACHE holds a build with other parameters (unless force), LockError
    when another process writes it, BuildInterrupted on SIGTERM/SIGINT/SIGHUP.
    """
    t0 = time.perf_counter()
    if int(workers) < 0:
        raise UsageError("--workers must be >= 0", found=workers, expected="0, 1, 2, ...")
    plan = plan_build(data_root, S=S, repr=repr, repr_params=repr_params, match=match,
                      hot_pixels=hot_pixels, val=tuple(val), shard_size=parse_size(shard_size),
                      skip_unsynced=skip_unsynced, hot_pixel_list=hot_pixel_list)
    cache = Path(cache)
    check_locations(cache, Path(data_root))
    options = RunOptions(workers=int(workers), progress=progress, initial_map_size=initial_map_size,
                         dask=dask)
    notices = []

    def notice(line: str) -> None:
        notices.append(line)
        if on_notice is not None:
            on_notice(line)

    if plan.unsynced:
        notice(f"building without {len(plan.unsynced)} sequence{'s' if len(plan.unsynced) > 1 else ''} "
               f"that have no sync.json (--skip-unsynced): {name_list(plan.unsynced)}")

    if part is not None:
        summary = partitioned.build_part(plan, cache, part, options, force=force,
                                         break_lock=break_lock, notice=notice)
    elif not force and partitioned.holds_parts(cache):
        summary = parts_completion.complete(plan, cache, options, build_missing=build_missing,
                                       break_lock=break_lock, notice=notice)
    else:
        (check_wipe if force else check_resumable)(cache)  # reads only: refuse before the lock writes
        with stop_on_signals(), acquire_write_lock(cache, break_lock=break_lock) as lock:
            for line in lock.notices():
                notice(line)
            plan = plan if force else partitioned.as_recorded(cache, plan)
            done = prepare_cache(cache, plan, force)
            plan = with_journal_checksum(cache, plan)
            lost = refresh_lost(cache, done)
            if lost:
                notice(f"cache shards lost since they were built, rebuilding their sequences: {describe_lost(lost)}")
            stale = refresh_stale(cache, plan, done)
            if stale:
                notice(f"sources changed since they were cached, rebuilding: {describe_stale(stale)}")
            summary = _build(plan, cache, done, options, t0, lock)
        summary.rebuilt = sorted(stale)
    summary.notices = notices
    return summary


def _build(plan: BuildPlan, cache: Path, done: dict, options: RunOptions, t0: float, lock=None) -> BuildSummary:
    """Build the sequences not in ``done``, then write the manifest and meta_info.txt."""
    todo = [s for s in plan.sequences if s.name not in done]
    per_sequence, grows, warnings = run_sequences(plan, cache, Journal(cache), todo, done, options, t0, lock)
    if lock is not None:
        lock.check()
    manifest = finish(cache, plan, done)
    return summarize(cache, plan, per_sequence, len(plan.sequences) - len(todo), len(manifest.shards),
                     grows, options, t0, warnings)


