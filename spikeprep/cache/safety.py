"""What a build may touch: CACHE must not be (or contain) DATA_ROOT, and ``--force`` removes only
a spikeprep cache, and in it only the entries spikeprep writes.

A directory is a spikeprep cache when its ``manifest.json`` parses as ours, or (an interrupted
first build) its ``progress.jsonl`` starts with our ``start`` line. The entries spikeprep writes
there are `OWNED_ENTRIES` (shards, manifest, meta_info, the journal, the lock folder, their temp
files); anything else (a ``thesis.tex``, a symlink, a stray file inside a shard folder) makes
``--force`` refuse, listing what it found. Everything here only reads, except `wipe_cache`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import CacheError
from .lock_holders import LOCK_DIR
from .manifest import manifest_from_dict
from .records import FORMAT, JOURNAL_NAME, MANIFEST_NAME, META_INFO_NAME

#: Names of the entries a build writes in CACHE (regular expressions, full match); a name
#: followed by ``.partial`` is that entry's temp file (`spikeprep.inputs.files.write_text_atomic`).
OWNED_ENTRIES = (
    re.escape(MANIFEST_NAME), re.escape(META_INFO_NAME), re.escape(JOURNAL_NAME),
    r"shard-\d{5,}\.lmdb",
    r"progress\.part-\d+-of-\d+\.jsonl",  # journals of `voxelize --part I/N`
    r"progress\.add-repr\.jsonl",  # journal of `voxelize --add-repr` (spikeprep.cache.add_repr)
)
#: Files LMDB keeps in a shard directory.
SHARD_FILES = ("data.mdb", "lock.mdb")
_OWNED = re.compile("|".join(f"(?:{p})" for p in OWNED_ENTRIES) + r"(?:\.partial)?")
_SHARD = re.compile(r"shard-\d{5,}\.lmdb")
_PART_JOURNAL = re.compile(r"progress\.part-\d+-of-\d+\.jsonl")


def check_locations(cache: Path, data_root: Path) -> None:
    """CacheError when CACHE is DATA_ROOT or contains it (paths resolved, symlinks followed).
    A CACHE inside DATA_ROOT (``data/cache``) is fine."""
    cache_real, data_real = Path(os.path.realpath(cache)), Path(os.path.realpath(data_root))
    if cache_real == data_real or data_real.is_relative_to(cache_real):
        raise CacheError("CACHE would hold the sources: it is DATA_ROOT or a folder above it",
                         path=cache, found=f"CACHE {cache_real}, DATA_ROOT {data_real}",
                         expected="a CACHE outside DATA_ROOT, or a new folder inside it (e.g. DATA_ROOT/cache)",
                         fix="choose another CACHE directory")
    if cache.exists() and not cache.is_dir():
        raise CacheError("CACHE is not a directory", path=cache, found="a file",
                         expected="a directory (created if missing)", fix="choose another CACHE")


def _journal_is_ours(path: Path) -> bool:
    """Whether ``path`` starts with the ``start`` line of a spikeprep build journal."""
    try:
        with open(path, "rb") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and first.get("kind") == "start" and first.get("format") == FORMAT


def _parses_as_ours(cache: Path) -> str | None:
    """Why ``cache`` is a spikeprep cache (the file that says so: ``manifest.json``, or the build
    journal of an unfinished build, ``progress.jsonl`` or a part's journal), or None."""
    try:
        manifest_from_dict(json.loads((cache / MANIFEST_NAME).read_text(encoding="utf-8")))
        return MANIFEST_NAME
    except (OSError, ValueError, TypeError, KeyError, AttributeError, CacheError):
        pass
    journals = [JOURNAL_NAME] + sorted(p.name for p in cache.iterdir() if _PART_JOURNAL.fullmatch(p.name))
    return next((name for name in journals if _journal_is_ours(cache / name)), None)


def foreign_entries(cache: Path) -> list[str]:
    """Entries of ``cache`` that spikeprep did not write (symlinks count as foreign), sorted;
    a foreign file inside a shard folder is listed as ``shard-00000.lmdb/NAME``."""
    out = []
    for entry in sorted(os.scandir(cache), key=lambda e: e.name):
        if entry.is_symlink():
            out.append(f"{entry.name} (a symlink)")
        elif entry.name == LOCK_DIR:
            if not entry.is_dir(follow_symlinks=False):
                out.append(entry.name)
        elif not _OWNED.fullmatch(entry.name):
            out.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
        elif _SHARD.fullmatch(entry.name):
            if not entry.is_dir(follow_symlinks=False):
                out.append(entry.name)
                continue
            out += [f"{entry.name}/{inner.name}" for inner in sorted(os.scandir(entry.path), key=lambda e: e.name)
                    if inner.name not in SHARD_FILES or not inner.is_file(follow_symlinks=False)]
        elif entry.is_dir(follow_symlinks=False):
            out.append(entry.name + "/")
    return out


def _listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_empty(cache: Path) -> bool:
    """No entries besides the lock folder (a new or freshly wiped CACHE)."""
    return not cache.exists() or all(p.name == LOCK_DIR for p in cache.iterdir())


def check_wipe(cache: Path) -> None:
    """CacheError unless ``--force`` may wipe ``cache``: missing or empty, or a spikeprep cache
    holding only entries spikeprep writes. Reads only."""
    if is_empty(cache):
        return
    why = _parses_as_ours(cache)
    if why is None:
        raise CacheError("refusing --force: CACHE is not a spikeprep cache", path=cache,
                         found=f"entries {_listing(sorted(p.name for p in cache.iterdir()))}; no manifest.json "
                               "or progress.jsonl written by 'spikeprep voxelize'",
                         expected="an empty folder or a CACHE written by 'spikeprep voxelize'",
                         fix="nothing was deleted; choose an empty or new CACHE directory")
    foreign = foreign_entries(cache)
    if foreign:
        raise CacheError("refusing --force: CACHE holds entries spikeprep did not write", path=cache,
                         found=_listing(foreign),
                         expected="only shard-NNNNN.lmdb/, manifest.json, meta_info.txt, progress.jsonl, "
                                  ".locks/",
                         fix="nothing was deleted; move those entries out of CACHE, or choose another CACHE")


def check_resumable(cache: Path) -> None:
    """CacheError unless a build may write into ``cache`` without --force: missing or empty, or
    a spikeprep cache. Reads only."""
    if is_empty(cache) or _parses_as_ours(cache):
        return
    raise CacheError("CACHE is not empty and is not a spikeprep cache", path=cache,
                     found=f"entries {_listing(sorted(p.name for p in cache.iterdir()))}",
                     expected="an empty folder or a CACHE written by 'spikeprep voxelize'",
                     fix="choose an empty or new CACHE directory (--force only wipes spikeprep caches)")


def wipe_cache(cache: Path) -> None:
    """Remove the entries spikeprep writes in ``cache`` (`check_wipe` first, under the write
    lock); the folder itself and its lock folder stay."""
    check_wipe(cache)
    if not cache.exists():
        return
    for entry in sorted(cache.iterdir()):
        if entry.name == LOCK_DIR:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
