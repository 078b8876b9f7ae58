"""Partitioned builds: ``voxelize --part I/N`` in N independent processes, then one completion.

Who builds what. Every process plans the whole dataset (sync files only) and splits the
sequences with `spikeprep.parts.balanced_partition` over their planned bytes, so each part's
share is known everywhere without communication. N parts share the work whenever there are at
least N sequences, whatever ``--shard-size``, because shards never span parts:

Shard plan of a partitioned build ("part-major"): part 0's sequences (in name order) are packed
into shards greedily exactly like a single-process plan (`spikeprep.cache.plan.assign_shards`),
numbered from 0; part 1's follow from the next number, and so on. Each shard is therefore
written by exactly one process. With N = 1 this *is* the single-process plan. For N > 1 the
records (keys and bytes) and every manifest field equal those of a single-process build except
where a sequence lives (``sequences[*].shard`` and ``shards``): readers find records through the
manifest, so the two caches read identically. (Making every plan equal the union of any N
parts' plans would need one shard per sequence, i.e. thousands of LMDB environments.)

Journals. Part I of N journals to ``CACHE/progress.part-I-of-N.jsonl`` (same format as
``progress.jsonl``; its start line holds the build identity with ``parts: N`` and ``part: I``),
so parts resume independently. Parts take the ``part`` write lock (`spikeprep.cache.lock`):
different parts coexist, the same part twice or anything exclusive conflicts.

The building itself (a list of sequences into their shards and a journal, the manifest) is the
steps in `spikeprep.cache.sequences`, which the whole build runs too.

Completion. ``voxelize`` without ``--part`` on a CACHE holding part journals takes the
exclusive lock, checks every part (missing, still running, failed/interrupted, other parameters:
all named; ``build_missing`` builds missing and failed parts here), merges the part journals into
``progress.jsonl`` (identity with ``parts: N``, the whole part-major plan) and writes the manifest
and meta_info.txt from it: no sequence is recomputed. Later runs see a finished ordinary journal.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheError, UsageError
from ..inputs.files import write_text_atomic
from ..parts import Part, balanced_partition, parse_part
from .interrupt import check_stop, stop_on_signals
from .journal import Journal, done_sequences
from .lock import acquire_write_lock
from .lock_holders import lock_files
from .manifest import diff_params
from .plan import BuildPlan, assign_shards
from .records import FORMAT, FORMAT_VERSION, JOURNAL_NAME
from .safety import check_resumable
from .sequences import finish, run_sequences, summarize, with_journal_checksum
from .staleness import describe as describe_stale
from .staleness import describe_lost, refresh_lost, refresh_stale, stale_sequences

_JOURNAL_RE = re.compile(r"progress\.part-(\d+)-of-(\d+)\.jsonl")


def part_journal_name(part: Part) -> str:
    """``progress.part-I-of-N.jsonl``."""
    return f"progress.part-{part.index}-of-{part.count}.jsonl"


def part_journals(cache: Path) -> dict[tuple[int, int], Path]:
    """``{(I, N): path}`` of the part journals in ``cache``."""
    if not cache.is_dir():
        return {}
    found = {}
    for path in cache.iterdir():
        match = _JOURNAL_RE.fullmatch(path.name)
        if match:
            found[(int(match.group(1)), int(match.group(2)))] = path
    return found


def holds_parts(cache: Path) -> bool:
    """Whether ``cache`` holds parts that were not merged yet (part journals, no progress.jsonl)."""
    return bool(part_journals(cache)) and not (cache / JOURNAL_NAME).exists()


# -- the plan ---------------------------------------------------------------------------------

def owners(plan: BuildPlan, count: int) -> list[int]:
    """The part of each of ``plan.sequences`` (balanced by planned bytes)."""
    return balanced_partition([s.nbytes for s in plan.sequences], count)


@dataclass(frozen=True)
class Split:
    """``plan`` split into ``count`` parts, computed once: ``whole`` (the part-major shard plan)
    and each non-empty part's sequences (most parts are empty when N exceeds the sequences).
    Linear in N and the sequences, so a 20,000-part array plans and completes quickly."""

    whole: BuildPlan
    count: int
    by_part: dict

    def part(self, part: Part) -> BuildPlan:
        """The partitioned plan restricted to the sequences ``part`` builds."""
        return dataclasses.replace(self.whole, sequences=self.by_part.get(part.index, ()))


def split(plan: BuildPlan, count: int) -> Split:
    """`Split` of ``plan`` into ``count`` parts (see the module docstring for the shard plan)."""
    groups: dict[int, list] = {}
    for s, o in zip(plan.sequences, owners(plan, count)):
        groups.setdefault(o, []).append(s)
    shard_of, first = {}, 0
    for part in sorted(groups):  # empty parts take no shard numbers
        mine = groups[part]
        local = assign_shards([s.nbytes for s in mine], plan.shard_size)
        shard_of.update({s.name: first + k for s, k in zip(mine, local)})
        first += max(local) + 1
    seqs = tuple(dataclasses.replace(s, shard=shard_of[s.name]) for s in plan.sequences)
    whole = dataclasses.replace(plan, sequences=seqs, parts=count)
    by_name = {s.name: s for s in seqs}
    return Split(whole, count, {p: tuple(by_name[s.name] for s in mine) for p, mine in groups.items()})


def partitioned(plan: BuildPlan, count: int) -> BuildPlan:
    """``plan`` with the part-major shard plan of ``count`` parts (see the module docstring)."""
    return split(plan, count).whole


def part_of(plan: BuildPlan, part: Part) -> BuildPlan:
    """The partitioned plan restricted to the sequences ``part`` builds."""
    return split(plan, part.count).part(part)


def as_recorded(cache: Path, plan: BuildPlan) -> BuildPlan:
    """``plan`` as a CACHE completed from N parts recorded it (its shards), else unchanged."""
    count = Journal(cache).header().get("identity", {}).get("parts")
    return partitioned(plan, int(count)) if isinstance(count, int) and count >= 1 else plan


def _header(plan: BuildPlan, part: Part | None) -> dict:
    identity = plan.identity() if part is None else {**plan.identity(), "part": part.index}
    return {"format": FORMAT, "version": FORMAT_VERSION, "identity": identity,
            "plan": {s.name: s.shard for s in plan.sequences},
            "record_checksum": plan.config.checksum_algorithm}


# -- one part ---------------------------------------------------------------------------------

def prepare_part(cache: Path, plan: BuildPlan, part: Part) -> tuple[dict, bool]:
    """Start or resume part ``part`` (``plan``: its sequences); ``(done entries, merged)``,
    ``merged`` True when the parts were already completed into ``progress.jsonl``."""
    header = _header(plan, part)
    merged = Journal(cache).header()
    if merged:
        identity = merged.get("identity", {})
        if identity.get("parts") != part.count or diff_params(
                {k: v for k, v in identity.items() if k != "parts"},
                {k: v for k, v in header["identity"].items() if k not in ("parts", "part")}):
            raise CacheError("CACHE holds another build", path=cache / JOURNAL_NAME,
                             found=_describe_identity(identity), expected=f"parts of {part.count} "
                             "with these parameters", fix="choose a new CACHE for a partitioned build, "
                             "or run without --part")
        done = done_sequences(Journal(cache).read())
        return {s.name: done[s.name] for s in plan.sequences if s.name in done}, True
    journal = Journal(cache, part_journal_name(part))
    entries = journal.read(repair=True)
    if not entries:
        journal.start(header)
        return {}, False
    start = entries[0]
    differ = _differences(start, header)
    if differ:
        raise CacheError(f"part {part} of CACHE was started with other parameters", path=journal.path,
                         found="; ".join(differ), expected="the same parameters to resume",
                         fix="use the parameters it was started with, or a new CACHE")
    return done_sequences(entries), False


def _describe_identity(identity: dict) -> str:
    parts = identity.get("parts")
    return "a single-process build" if parts is None else f"a build completed from {parts} parts"


def _differences(start: dict, header: dict) -> list[str]:
    """What differs between a journal's start line and the one this run would write."""
    if start.get("kind") != "start":
        return ["the journal has no start line"]
    differ = diff_params(start.get("identity", {}), header["identity"])
    if start.get("version") != header["version"]:
        differ.append(f"format version: found {start.get('version')}, expected {header['version']}")
    if not differ and start.get("plan") != header["plan"]:
        differ.append(f"sequences: found {sorted(start.get('plan', {}))}, expected {sorted(header['plan'])} "
                      "(the dataset changed)")
    return differ


def build_part(plan: BuildPlan, cache: Path, part, options, *, force: bool = False,
               break_lock: bool = False, notice=lambda line: None):
    """``voxelize --part I/N``: build (or resume) part I's sequences into their own shards;
    sequences of the part whose sources changed since are rebuilt (`refresh_stale`)."""
    part = parse_part(part)
    if force:
        raise UsageError("--force cannot be combined with --part", found=f"--force --part {part}",
                         expected="--part alone (parts run at the same time: one must not wipe the others)",
                         fix="remove CACHE (or run 'spikeprep voxelize --force' without --part) first")
    t0 = time.perf_counter()
    check_resumable(cache)
    cache.mkdir(parents=True, exist_ok=True)
    mine = part_of(plan, part)
    name = part_journal_name(part)
    with stop_on_signals(), acquire_write_lock(cache, part=part.as_tuple, break_lock=break_lock) as lock:
        for line in lock.notices():
            notice(line)
        done, merged = prepare_part(cache, mine, part)
        todo, stale = [], {}
        if not merged:
            mine = with_journal_checksum(cache, mine, name)
            lost = refresh_lost(cache, done, Journal(cache, name))
            if lost:
                notice(f"cache shards lost since they were built, rebuilding their sequences: {describe_lost(lost)}")
            stale = refresh_stale(cache, mine, done, Journal(cache, name))
            if stale:
                notice(f"sources changed since they were cached, rebuilding: {describe_stale(stale)}")
            todo = [s for s in mine.sequences if s.name not in done]
        per_sequence, grows, warnings = run_sequences(mine, cache, Journal(cache, name), todo,
                                                      done, options, t0, lock)
    shards = len({s.shard for s in mine.sequences})
    summary = summarize(cache, mine, per_sequence, len(mine.sequences) - len(todo), shards,
                               grows, options, t0, warnings)
    summary.rebuilt = sorted(stale)
    return summary


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
        differ = _differences(entries[0] if entries else {}, _header(mine, part))
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
    lines = [_header(whole, None)] + [done[s.name] for s in whole.sequences]
    lines[0] = {"kind": "start", **lines[0]}
    write_text_atomic(cache / JOURNAL_NAME, "".join(
        json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in lines))
    for index in range(count):
        Journal(cache, part_journal_name(Part(index, count))).path.unlink()
    return whole, done
