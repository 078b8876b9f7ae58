"""Sources changed since a sequence was cached: found on resume, never "already done".

Every journaled sequence records the fingerprints of its sources (sync.json, ``.dat``, blur and
sharp pngs; `spikeprep.inputs.fingerprint`) and, per file, ``{"size", "mtime_ns", "ino"}`` as stat'ed
*before* the file was read (`stat_sources`). On resume, `stale_sequences` compares each done
sequence with the files now: a file whose size, mtime (ns) and inode are all unchanged is taken
as unchanged without reading it (the cheap pre-check); any other file is hashed again with the
algorithm its fingerprint names. A file missing, added (the sync.json now names other files) or
with another digest makes the sequence stale. `refresh_stale` sends stale sequences back to be
built (the shard plan still holding); `plan_changed_error` refuses, naming them, otherwise.

A stat record is trusted only for a file whose mtime was at least `RACY_NS` older than the
moment it was stat'ed (``stats_taken_ns`` in the journal entry): a file modified just before
(or while) it was read could be modified again within the clock's granularity, keeping size and
mtime, so it is always hashed again ("racy" files, as git calls them).

Shards are checked too before the journal is trusted (`refresh_lost`): a done sequence whose
shard lost its data.mdb is built again; a shard that is there but truncated or unreadable is an
error naming it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CacheError
from ..inputs import fingerprint
from .journal import Journal
from .records import MANIFEST_NAME, META_INFO_NAME, shard_name, shard_path

if TYPE_CHECKING:
    from .plan import BuildPlan

#: A file whose mtime is this close to the moment it was stat'ed is always re-hashed.
RACY_NS = 2_000_000_000


def source_paths(seq) -> list[str]:
    """DATA_ROOT-relative paths a sequence is built from (`spikeprep.cache.plan.SequencePlan`):
    its sync.json, spike files and blur/sharp pngs, sorted."""
    rels = {seq.sync_path, *seq.sync.spike_files}
    for frame in seq.sync.frames:
        rels.update(p for p in (frame.blur, frame.sharp) if p is not None)
    return sorted(rels)


def _stat_record(st: os.stat_result) -> dict:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def stat_sources(root: Path, rels) -> tuple[dict[str, dict], int]:
    """``({rel: {"size", "mtime_ns", "ino"}}, when in ns since the epoch)`` of the files that
    exist. Call it *before* the files are read for the build."""
    now, out = time.time_ns(), {}
    for rel in rels:
        try:
            out[rel] = _stat_record(os.stat(Path(root) / rel))
        except OSError:
            continue
    return out, now


def changed_file(path: Path, stored: dict, stat: dict | None, taken_ns: int = 0) -> bool:
    """Whether the file at ``path`` differs from its stored fingerprint (``stat``: its stored
    stat record, if any, taken at ``taken_ns``, for the cheap pre-check)."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    if stat is not None and _stat_record(st) == stat and stat["mtime_ns"] <= taken_ns - RACY_NS:
        return False
    if st.st_size != stored.get("size"):
        return True
    try:
        algorithm = fingerprint.algorithm_of(stored)
        return fingerprint.hash_file(path, algorithm)[algorithm] != stored[algorithm]
    except (OSError, ValueError):
        return True


def changed_sources(root: Path, seq, entry: dict) -> list[str]:
    """Sources of ``seq`` (its plan now) that differ from journal ``entry``: changed, missing,
    or no longer / newly used. Sorted."""
    recorded = entry.get("sources", {})
    stats, taken_ns = entry.get("source_stats", {}), entry.get("stats_taken_ns", 0)
    now = set(source_paths(seq))
    changed = set(now ^ set(recorded))
    for rel in sorted(now & set(recorded)):
        if changed_file(Path(root) / rel, recorded[rel], stats.get(rel), taken_ns):
            changed.add(rel)
    return sorted(changed)


def stale_sequences(root: Path, sequences, done: dict[str, dict]) -> dict[str, list[str]]:
    """``{name: changed sources}`` for every sequence of ``sequences`` (plans) that is in ``done``
    (journal entries by name) but whose sources changed."""
    out = {}
    for seq in sequences:
        if seq.name in done:
            changed = changed_sources(root, seq, done[seq.name])
            if changed:
                out[seq.name] = changed
    return out


def describe(stale: dict[str, list[str]], limit: int = 3) -> str:
    """``a (spike/a/sync.json, ...), b (blur/b/000001.png)`` for messages."""
    parts = []
    for name, rels in sorted(stale.items()):
        shown = ", ".join(rels[:limit]) + (f" and {len(rels) - limit} more" if len(rels) > limit else "")
        parts.append(f"{name} ({shown})")
    return "; ".join(parts)


# -- on resume ----------------------------------------------------------------------------------

def plan_changed_error(cache: Path, plan: BuildPlan, cached: dict, done: dict) -> CacheError:
    """The error for a dataset whose shard plan (``{name: shard}``) no longer matches the one
    the cache was started with (``cached``): names the changed sequences and files, suggests --force."""
    now = {s.name: s.shard for s in plan.sequences}
    stale = stale_sequences(Path(plan.config.data_root), plan.sequences, done)
    moved = sorted(n for n in set(now) & set(cached) if now[n] != cached[n])
    found = []
    if stale:
        found.append(f"sources changed since they were cached: {describe(stale)}")
    if set(now) != set(cached):
        found.append(f"sequences now {sorted(now)}, cached {sorted(cached)}")
    if moved:
        found.append("shard plan moved " + ", ".join(f"{n} (shard {cached[n]} -> {now[n]})" for n in moved))
    return CacheError("CACHE was planned for other sequences or sizes, so changed sequences cannot "
                      "be rebuilt in place", path=cache, found="; ".join(found) or "another shard plan",
                      expected=f"the cached plan {cached}",
                      fix="the dataset changed: pass --force to rebuild the cache")


def refresh_stale(cache: Path, plan: BuildPlan, done: dict[str, dict],
                  journal: Journal | None = None) -> dict[str, list[str]]:
    """Find done sequences whose sources changed (`stale_sequences`); drop them from
    ``done`` so they are built again, journal their invalidation first (in ``journal``, default
    ``progress.jsonl``; a part passes its own) and remove the manifest, so the cache reads as
    unfinished until they are rebuilt. Returns ``{name: changed files}``. Call it after the
    shard plan was checked equal to the journal's (`prepare_cache`): then they fit their shards."""
    stale = stale_sequences(Path(plan.config.data_root), plan.sequences, done)
    if not stale:
        return {}
    journal = journal or Journal(cache)
    for name in sorted(stale):
        journal.append({"kind": "invalidate", "name": name, "changed": stale[name]})
        del done[name]
    for name in (MANIFEST_NAME, META_INFO_NAME):
        (cache / name).unlink(missing_ok=True)
    return stale


# -- shards lost since they were journaled ------------------------------------------------------

def shard_problem(path: Path, nbytes: int) -> tuple[str, bool] | None:
    """What is wrong with shard ``path`` that journaled sequences of ``nbytes`` record bytes
    live in: ``(problem, missing)``, ``missing`` True when its data.mdb is gone (it can be
    rebuilt in place); None when it looks whole. Cheap: a stat and the meta page."""
    from .reader import check_shard_file

    data = Path(path) / "data.mdb"
    try:
        size = data.stat().st_size
    except FileNotFoundError:
        return "its data.mdb is missing", True
    except OSError as exc:
        return f"its data.mdb cannot be read ({exc.strerror or exc})", False
    if size < nbytes:
        return f"its data.mdb holds {size} bytes, less than the {nbytes} bytes of records journaled in it", False
    problem = check_shard_file(Path(path))
    return None if problem is None else (problem, False)


def refresh_lost(cache: Path, done: dict[str, dict], journal: Journal | None = None) -> dict[str, str]:
    """Never trust the journal for a shard that is gone: done sequences whose shard lost its
    data.mdb are invalidated (journaled, dropped from ``done``, manifest removed) so they are
    built again; ``{name: why}``. A shard that is there but truncated or unreadable is a
    CacheError naming it (it is not removed here)."""
    by_shard: dict[int, list[str]] = {}
    for name, entry in done.items():
        by_shard.setdefault(int(entry["shard"]), []).append(name)
    lost: dict[str, str] = {}
    for shard, names in sorted(by_shard.items()):
        path = shard_path(cache, shard)
        found = shard_problem(path, sum(int(done[n].get("bytes") or 0) for n in names))
        if found is None:
            continue
        problem, missing = found
        if not missing:
            raise CacheError("a cache shard is damaged, so sequences journaled as done are lost", path=path,
                             found=f"{problem} (it holds {', '.join(sorted(names))})",
                             expected="every shard the journal names, whole",
                             fix=f"remove {path} (only sequences {', '.join(sorted(names))} of this cache "
                                 "live there) and re-run the same command: they are rebuilt")
        for name in names:
            lost[name] = f"{shard_name(shard)} {problem}"
    if not lost:
        return {}
    journal = journal or Journal(cache)
    for name in sorted(lost):
        journal.append({"kind": "invalidate", "name": name, "changed": [lost[name]]})
        del done[name]
    for name in (MANIFEST_NAME, META_INFO_NAME):
        (cache / name).unlink(missing_ok=True)
    return lost


def describe_lost(lost: dict[str, str]) -> str:
    """``shard-00001.lmdb its data.mdb is missing: b, c`` for messages."""
    by_reason: dict[str, list[str]] = {}
    for name, why in sorted(lost.items()):
        by_reason.setdefault(why, []).append(name)
    return "; ".join(f"{why}: {', '.join(names)}" for why, names in by_reason.items())
