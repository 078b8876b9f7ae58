"""The completion of a partitioned build: ``voxelize`` without ``--part`` on a CACHE holding part
journals checks every part (done, missing, running, failed, other parameters: `part_states`,
summarised by `describe_states`), builds the missing ones when asked, and merges the part journals
into ``progress.jsonl`` and the manifest (`complete`). Building one part: `spikeprep.cache.parts`."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheError
from ..inputs.files import write_text_atomic
from ..parts import Part
from .interrupt import check_stop, stop_on_signals
from .journal import Journal, done_sequences
from .lock import acquire_write_lock
from .lock_holders import lock_files
from .parts import (
    Split,
    header_differences,
    journal_header,
    part_journal_name,
    part_journals,
    prepare_part,
    split,
)
from .plan import BuildPlan
from .records import JOURNAL_NAME
from .sequences import finish, run_sequences, summarize, with_journal_checksum
from .staleness import describe as describe_stale
from .staleness import describe_lost, refresh_lost, refresh_stale, stale_sequences

# -- completion -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartState:
    """Where part ``part`` stands: ``state`` is done | missing | running | failed | other
    parameters; ``detail`` says why (for the user)."""

    part: Part
    state: str
    detail: str = ""

    def describe(self) -> str:
        return f"part {self.part} {self.state}" + (f" ({self.detail})" if self.detail else "")


def part_count(cache: Path) -> int:
    """N of the parts in ``cache`` (journals and live part locks); CacheError when they disagree."""
    counts = {n: f"progress.part-{i}-of-{n}.jsonl" for i, n in part_journals(cache)}
    for lock in lock_files(cache):
        if lock.holder is not None and lock.holder.part is not None and lock.holder.is_alive() is not False:
            counts.setdefault(lock.holder.part[1], lock.path.name)
    if len(counts) != 1:
        raise CacheError("CACHE holds parts of different splits", path=cache,
                         found=", ".join(f"N={n} ({name})" for n, name in sorted(counts.items())),
                         expected="parts I/N of one N",
                         fix="parts of different N number their shards alike, so no journal or shard "
                             "of either split can be removed safely (each shard may hold the other "
                             "split's records): start again in a new CACHE, or wipe this one with "
                             "'spikeprep voxelize DATA_ROOT CACHE --force' (without --part), then run "
                             "the parts of one N")
    return next(iter(counts))


def _running(cache: Path, break_lock: bool) -> dict[tuple[int, int], object]:
    """Part locks whose holder runs (or, on another host, may run; not with ``break_lock``)."""
    out = {}
    for lock in lock_files(cache):
        holder = lock.holder
        if holder is None or holder.part is None:
            continue
        alive = holder.is_alive()
        if alive or (alive is None and not break_lock):
            out[holder.part] = holder
    return out


def part_states(cache: Path, plan: "BuildPlan | Split", count: int, break_lock: bool = False) -> list[PartState]:
    """The state of each of the ``count`` parts of ``plan`` (or its `Split`) in ``cache``."""
    parts = plan if isinstance(plan, Split) else split(plan, count)
    journals, running, states = part_journals(cache), _running(cache, break_lock), []
    for index in range(count):
        part = Part(index, count)
        mine = parts.part(part)
        if part.as_tuple in running:
            states.append(PartState(part, "running", running[part.as_tuple].describe()))
            continue
        if part.as_tuple not in journals:
            states.append(PartState(part, "missing", f"no {part_journal_name(part)}; it never started"))
            continue
        entries = Journal(cache, part_journal_name(part)).read()
        differ = header_differences(entries[0] if entries else {}, journal_header(mine, part))
        if differ:
            states.append(PartState(part, "built with other parameters", "; ".join(differ)))
            continue
        done = done_sequences(entries)
        left = [s.name for s in mine.sequences if s.name not in done]
        states.append(PartState(part, "failed", f"{len(mine.sequences) - len(left)} of "
                                f"{len(mine.sequences)} sequences done, stopped before {left[0]}")
                      if left else PartState(part, "done"))
    return states


def _refuse_unfinished(cache: Path, states: list[PartState], build_missing: bool) -> None:
    unfinished = [s for s in states if s.state != "done"]
    blocking = [s for s in unfinished
                if s.state in ("running", "built with other parameters") or not build_missing]
    if blocking:
        count = states[0].part.count
        raise CacheError(f"cannot complete the cache: {len(unfinished)} of {count} parts not done",
                         path=cache, found=describe_states(unfinished),
                         expected=f"all {count} parts done",
                         fix="wait for running parts; re-run failed or missing ones with "
                             "'spikeprep voxelize ... --part I/N' (or pass --build-missing to build "
                             "missing and failed parts here); rebuild parts with other parameters "
                             "with the same parameters as the others")


def ranges(indices, limit: int = 8) -> str:
    """``3-17, 40, 52-3999`` for sorted ints (at most ``limit`` runs, then ``and K more``)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    shown = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:limit]]
    more = len(runs) - limit
    return ", ".join(shown) + (f" and {more} more range{'s' if more > 1 else ''}" if more > 0 else "")


def describe_states(states: list[PartState], details: int = 3) -> str:
    """A short summary of unfinished parts, whatever N: per state the count and the part ranges,
    and the details of the first few (``missing: 5 parts (3-7): part 3/20 missing (...); ...;
    and 2 more; failed: 1 part (9): part 9/20 failed (...)``)."""
    by_state: dict[str, list[PartState]] = {}
    for state in states:
        by_state.setdefault(state.state, []).append(state)
    out = []
    for name, group in by_state.items():
        count = len(group)
        text = f"{name}: {count} part{'s' if count > 1 else ''} ({ranges(s.part.index for s in group)}): "
        text += "; ".join(s.describe() for s in group[:details]) + (
            f"; and {count - details} more" if count > details else "")
        out.append(text)
    return "; ".join(out)


def complete(plan: BuildPlan, cache: Path, options, *, build_missing: bool = False,
             break_lock: bool = False, notice=lambda line: None):
    """Complete a partitioned CACHE (see the module docstring); return a `BuildSummary`.
    Sequences whose sources changed since their part built them count as not done: named and
    refused, or rebuilt with ``build_missing``."""

    t0 = time.perf_counter()
    count = part_count(cache)
    parts = split(plan, count)  # once: linear in N (most parts of a large N are empty)
    _refuse_unfinished(cache, part_states(cache, parts, count, break_lock), build_missing)
    whole = parts.whole
    per_sequence, grows, warnings, rebuilt = [], 0, [], []
    with stop_on_signals(), acquire_write_lock(cache, break_lock=break_lock) as lock:
        for line in lock.notices():
            notice(line)
        states = part_states(cache, parts, count)  # again, under the lock
        _refuse_unfinished(cache, states, build_missing)
        _refuse_stale(cache, parts, states, build_missing)
        for state in states:
            check_stop()
            name = part_journal_name(state.part)
            mine = parts.part(state.part)
            if not mine.sequences and state.state == "done":
                continue  # an empty part: nothing to resume or rebuild
            done, _ = prepare_part(cache, mine, state.part)
            mine = with_journal_checksum(cache, mine, name)
            lost = refresh_lost(cache, done, Journal(cache, name))
            if lost:
                notice(f"cache shards lost since part {state.part} built them, rebuilding their sequences: "
                       f"{describe_lost(lost)}")
            stale = refresh_stale(cache, mine, done, Journal(cache, name))
            rebuilt += sorted(stale)
            todo = [s for s in mine.sequences if s.name not in done]
            built, more, said = run_sequences(mine, cache, Journal(cache, name), todo, done,
                                              options, t0, lock)
            per_sequence, grows, warnings = per_sequence + built, grows + more, warnings + said
        lock.check()
        whole, done = _merge(cache, whole, count)
        manifest = finish(cache, whole, done)
    summary = summarize(cache, whole, per_sequence, len(whole.sequences) - len(per_sequence),
                               len(manifest.shards), grows, options, t0, warnings)
    summary.rebuilt = rebuilt
    return summary


def _refuse_stale(cache: Path, parts: Split, states: list[PartState], build_missing: bool) -> None:
    """CacheError naming the parts' done sequences whose sources changed (unless ``build_missing``)."""
    if build_missing:
        return
    found = []
    for state in states:
        mine = parts.part(state.part)
        if not mine.sequences:
            continue
        entries = Journal(cache, part_journal_name(state.part)).read()
        done = done_sequences(entries) if entries else {}
        stale = stale_sequences(Path(mine.config.data_root), mine.sequences, done)
        if stale:
            found.append(f"part {state.part}: {describe_stale(stale)}")
    if found:
        raise CacheError("cannot complete the cache: sources changed since parts built them", path=cache,
                         found="; ".join(found[:5]) + (f"; and {len(found) - 5} more parts" if len(found) > 5 else ""),
                         expected="sources as they were when the parts read them",
                         fix="re-run those parts with --part I/N (they rebuild what changed), or pass "
                             "--build-missing to rebuild here")


def _merge(cache: Path, whole: BuildPlan, count: int) -> tuple[BuildPlan, dict]:
    """Write ``progress.jsonl`` from the part journals (atomically), then remove them."""
    done, algorithms = {}, {}
    for index in range(count):
        journal = Journal(cache, part_journal_name(Part(index, count)))
        entries = journal.read()
        algorithms.setdefault(entries[0].get("record_checksum", "blake2b"), []).append(index)
        done.update(done_sequences(entries))
    if len(algorithms) > 1:
        raise CacheError("parts were built with different record checksums (different spikeprep "
                         "versions)", path=cache,
                         found=", ".join(f"{a}: parts {ranges(v)}" for a, v in algorithms.items()),
                         expected="one algorithm", fix="rebuild the older parts with this spikeprep")
    algorithm = next(iter(algorithms))
    whole = dataclasses.replace(whole, config=dataclasses.replace(whole.config, checksum_algorithm=algorithm))
    lines = [journal_header(whole, None)] + [done[s.name] for s in whole.sequences]
    lines[0] = {"kind": "start", **lines[0]}
    write_text_atomic(cache / JOURNAL_NAME, "".join(
        json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in lines))
    for index in range(count):
        Journal(cache, part_journal_name(Part(index, count))).path.unlink()
    return whole, done
