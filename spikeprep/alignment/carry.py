"""What a rebuild of a sequence's sync.json keeps from the one it replaces (``build-sync --force``,
``check-sync --fix``): an imported sequence's identity (``source.import``: preset and window rule,
from DATA_ROOT/import.json), split, T, frame names and padding. The rest is derived again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..errors import SyncError
from ..inputs import layout
from ..sync import SyncFile, load_sync

# -- what a rebuild keeps from the sync.json it replaces -------------------------------------------

#: ``source`` keys that name where an imported sequence came from (kept under ``source.import``).
IMPORT_IDENTITY = ("preset", "rule")
#: What ``spikeprep import`` records in DATA_ROOT (see `spikeprep.datasets.write.RECORD`).
IMPORT_RECORD = "import.json"


def import_record(root: Path) -> dict:
    """``{sequence: entry}`` of DATA_ROOT/import.json (written by `spikeprep.datasets.write`), or {}."""
    try:
        record = json.loads((root / IMPORT_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    ok = isinstance(record, dict) and record.get("format") == "spikeprep.import"
    return record.get("sequences") or {} if ok and isinstance(record.get("sequences"), dict) else {}


def previous_sync(root: Path, source: layout.SequenceSource) -> SyncFile | None:
    """The sequence's current sync.json (ours, not the recipe's form), or None. An unreadable one
    is None, unless import wrote it (DATA_ROOT/import.json names the sequence): its split and frame
    names would be lost, so that is an error."""
    if source.recipe:
        return None
    path = root / source.spike_dir / "sync.json"
    if not path.is_file():
        return None
    try:
        return load_sync(path)
    except SyncError as err:
        if source.name not in import_record(root):
            return None
        raise SyncError("the sync.json of an imported sequence is unreadable, so a rebuild would lose its "
                        "split, frame names and windows", path=path, found=err.what,
                        expected="the sync.json 'spikeprep import' wrote",
                        fix="re-import the sequence with 'spikeprep import PRESET SOURCE DATA_ROOT --force "
                            f"--sequence {source.name}'") from err


def carry_over(sync: SyncFile, previous: SyncFile | None) -> SyncFile:
    """``sync`` with what it does not recompute taken from ``previous``: the split, the clip length
    T (at most the frame count), each frame's source name (matched by its blur path) and the import's
    identity (``source.import``: preset and window rule)."""
    if previous is None:
        return sync
    names = {f.blur: f.name for f in previous.frames if f.name is not None}
    frames = tuple(replace(f, name=names[f.blur]) if f.name is None and f.blur in names else f
                   for f in sync.frames)
    source = dict(sync.source)
    if previous.source.get("mode") == "import":
        source["import"] = {k: previous.source[k] for k in IMPORT_IDENTITY if k in previous.source}
    elif isinstance(previous.source.get("import"), dict):
        source["import"] = previous.source["import"]
    clip = sync.T if sync.T is not None else (None if previous.T is None else min(previous.T, len(frames)))
    return replace(sync, frames=frames, source=source, T=clip,
                   split=sync.split if sync.split is not None else previous.split)
