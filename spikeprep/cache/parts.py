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
The completion lives in `spikeprep.cache.parts_completion`.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheError, UsageError
from ..parts import Part, balanced_partition, parse_part
from .interrupt import stop_on_signals
from .journal import Journal, done_sequences
from .lock import acquire_write_lock
from .manifest_params import diff_params
from .plan import BuildPlan, assign_shards
from .records import FORMAT, FORMAT_VERSION, JOURNAL_NAME
from .safety import check_resumable
from .sequences import run_sequences, summarize, with_journal_checksum
from .staleness import describe as describe_stale
from .staleness import describe_lost, refresh_lost, refresh_stale

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


def journal_header(plan: BuildPlan, part: Part | None) -> dict:
    identity = plan.identity() if part is None else {**plan.identity(), "part": part.index}
    return {"format": FORMAT, "version": FORMAT_VERSION, "identity": identity,
            "plan": {s.name: s.shard for s in plan.sequences},
            "record_checksum": plan.config.checksum_algorithm}


# -- one part ---------------------------------------------------------------------------------

def prepare_part(cache: Path, plan: BuildPlan, part: Part) -> tuple[dict, bool]:
    """Start or resume part ``part`` (``plan``: its sequences); ``(done entries, merged)``,
    ``merged`` True when the parts were already completed into ``progress.jsonl``."""
    header = journal_header(plan, part)
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
    differ = header_differences(start, header)
    if differ:
        raise CacheError(f"part {part} of CACHE was started with other parameters", path=journal.path,
                         found="; ".join(differ), expected="the same parameters to resume",
                         fix="use the parameters it was started with, or a new CACHE")
    return done_sequences(entries), False


def _describe_identity(identity: dict) -> str:
    parts = identity.get("parts")
    return "a single-process build" if parts is None else f"a build completed from {parts} parts"


def header_differences(start: dict, header: dict) -> list[str]:
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
