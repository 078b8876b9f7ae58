"""`spikeprep check-sync --fix`: write what check-sync measured into each sequence's config.yaml.

An ``offset`` verdict adds the best offset to the ``window_shift`` key (spike frames; build-sync
applies it after any window source); an ``orientation`` verdict of ``flipud`` toggles the
``flipud`` key. Then build-sync runs again for the fixed sequences (``--force``: the old
sync.json is replaced). Other orientations (``fliplr``, ``rot180``) have no config key: they are
reported with advice. Only our own ``DATA_ROOT/spike/SEQ/config.yaml`` is ever written: the
recipe layout's ``spike_raw/SEQ/config.yaml`` is the recipe's file, and a config.yaml that is a
symbolic link (into a download or a preset's SOURCE) is not written through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .check import SequenceCheck
from ..errors import SpikeprepError
from ..inputs.files import write_text_atomic
from ..inputs.sequence_config import parse_config
from ..sync import load_sync, sync_path
from .build import SyncOptions, build_sync

_ADVICE = {
    "fliplr": "the spike image is mirrored left-right (a mirror or beam splitter in the rig?); "
              "config.yaml has no key for it: mirror the stream or the RGB frames at the source",
    "rot180": "the spike image is turned 180 degrees: toggling flipud fixes the rows only; "
              "the columns must be mirrored at the source too",
}


@dataclass(frozen=True)
class Fix:
    """What --fix did for one sequence: ``status`` fixed / not fixed / nothing to fix."""

    sequence: str
    status: str
    change: str
    config: str | None = None


def _config_path(data_root: Path, check: SequenceCheck) -> Path:
    sync = load_sync(sync_path(data_root, check.sequence))
    return data_root / Path(sync.frames[0].spike_file).parent / "config.yaml"


def _refusal(data_root: Path, path: Path) -> str | None:
    """Why ``path`` must not be written, or None."""
    rel = path.relative_to(data_root).as_posix() if path.is_relative_to(data_root) else str(path)
    if not rel.startswith("spike/"):
        return f"{rel} belongs to the recipe's layout; spikeprep does not edit it (copy the data " \
               "into our layout, DATA_ROOT/spike/SEQ/, to calibrate it)"
    if path.is_symlink() or not path.resolve().is_relative_to(data_root.resolve()):
        return f"{rel} is a link to {path.resolve()} (a download or a preset's source); " \
               "spikeprep does not write through it: replace the link with a copy and run --fix again"
    if not path.is_file():
        return f"{rel} does not exist"
    return None


def _edit(path: Path, check: SequenceCheck) -> str:
    raw = yaml.safe_load(path.read_text())
    parse_config(raw, path)  # only edit a valid file
    if check.verdict == "orientation":
        raw["flipud"] = not raw.get("flipud", True)
        change = f"flipud: {raw['flipud']}"
    else:
        shift = int(raw.get("window_shift") or 0) + check.judgement.best_offset
        raw["window_shift"] = shift
        change = f"window_shift: {shift} ({check.judgement.best_offset:+d})"
    parse_config(raw, path)
    write_text_atomic(path, yaml.safe_dump(raw, sort_keys=False))
    return change


def _options(data_root: Path, sequence: str) -> SyncOptions:
    """The timing flags the existing sync.json was built with (timing mode), else none."""
    source = load_sync(sync_path(data_root, sequence)).source
    if source.get("mode") != "timing":
        return SyncOptions()
    return SyncOptions(**{k: source[k] for k in ("spike_rate", "frame_rate", "exposure", "offset") if k in source})


def apply_fixes(data_root: str | os.PathLike, checks: list[SequenceCheck]) -> list[Fix]:
    """Fix every ``offset`` / ``flipud`` verdict in config.yaml, then rebuild those sync.json files."""
    root = Path(data_root)
    fixes = []
    for check in checks:
        if check.verdict not in ("offset", "orientation"):
            fixes.append(Fix(check.sequence, "nothing to fix", check.verdict))
            continue
        if check.verdict == "orientation" and check.judgement.orientation != "flipud":
            fixes.append(Fix(check.sequence, "not fixed", _ADVICE[check.judgement.orientation]))
            continue
        path = _config_path(root, check)
        refusal = _refusal(root, path)
        if refusal:
            fixes.append(Fix(check.sequence, "not fixed", refusal, str(path)))
            continue
        fixes.append(_fix_and_rebuild(root, path, check))
    return fixes


def _fix_and_rebuild(root: Path, path: Path, check: SequenceCheck) -> Fix:
    """Edit config.yaml, validate the new windows (dry run), then rewrite sync.json; on a
    validation error the old config.yaml is put back and the error is the reason."""
    options = _options(root, check.sequence)
    before = path.read_text()
    change = _edit(path, check)
    try:
        build_sync(root, options, sequences=(check.sequence,), dry_run=True)
    except SpikeprepError as err:
        write_text_atomic(path, before)
        return Fix(check.sequence, "not fixed", f"{change} would not build: {err}", str(path))
    build_sync(root, options, sequences=(check.sequence,), force=True)
    return Fix(check.sequence, "fixed", change, str(path))


def fixes_exit_code(fixes: list[Fix]) -> int:
    """0 when everything found was fixed (check again to confirm), 3 when something was not."""
    return 3 if any(f.status == "not fixed" for f in fixes) else 0
