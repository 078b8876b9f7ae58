"""`spikeprep check-sync --fix`: write what check-sync measured into each sequence's config.yaml.

An ``offset`` verdict sets the ``window_shift`` key (spike frames; build-sync applies it after
any window source) to the measured sync.json's shift plus the best offset; an ``orientation``
verdict of ``flipud`` sets ``flipud`` to the opposite of the measured sync.json's. Both are
absolute values computed from what was measured, written under DATA_ROOT's lock
(``spike/.check-sync-fix.lock``, `fix_lock`), so two --fix runs at once shift once: the second
finds the fix in place ("already fixed"), and a measurement older than the current sync.json is
not applied. Then build-sync runs again for the fixed sequences (``--force``: the old sync.json
is replaced; what import wrote is kept). Other orientations (``fliplr``, ``rot180``) have no config key: they are
reported with advice. Only our own ``DATA_ROOT/spike/SEQ/config.yaml`` is ever written: the
recipe layout's ``spike_raw/SEQ/config.yaml`` is the recipe's file, and nothing is written through
a symbolic link: a config.yaml, a ``spike/SEQ`` or ``spike`` folder that is a link (into a download,
a preset's SOURCE, or another folder of DATA_ROOT) is refused, naming the link and its target.
config.yaml keeps its comments and other keys (`spikeprep.inputs.yaml_edit`, as ``register --fix``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpikeprepError
from ..inputs.files import output_error, write_text_atomic
from ..inputs.sequence_config import load_config, parse_config, read_raw
from ..inputs.yaml_edit import set_keys
from ..sync import load_sync, sync_path
from .build import SyncOptions, build_sync
from .check import SequenceCheck

#: DATA_ROOT/spike/LOCK_NAME: the file --fix runs lock (`fix_lock`).
LOCK_NAME = ".check-sync-fix.lock"

_ADVICE = {
    "fliplr": "the spike image is mirrored left-right (a mirror or beam splitter in the rig?); "
              "config.yaml has no key for it: mirror the stream or the RGB frames at the source",
    "rot180": "the spike image is turned 180 degrees: toggling flipud fixes the rows only; "
              "the columns must be mirrored at the source too",
}


@dataclass(frozen=True)
class Fix:
    """What --fix did for one sequence: ``status`` fixed / already fixed (by another run, with
    the same measurement) / not fixed / nothing to fix."""

    sequence: str
    status: str
    change: str
    config: str | None = None


def _config_path(data_root: Path, check: SequenceCheck) -> Path:
    sync = load_sync(sync_path(data_root, check.sequence))
    return data_root / Path(sync.frames[0].spike_file).parent / "config.yaml"


def refusal(data_root: Path, path: Path) -> str | None:
    """Why ``path`` (a config.yaml under DATA_ROOT) must not be written by a --fix, or None."""
    rel = path.relative_to(data_root).as_posix() if path.is_relative_to(data_root) else str(path)
    if not rel.startswith("spike/"):
        return f"{rel} belongs to the recipe's layout; spikeprep does not edit it (copy the data " \
               "into our layout, DATA_ROOT/spike/SEQ/, to calibrate it)"
    parts = Path(rel).parts
    for i in range(len(parts) - 1):  # spike/, spike/SEQ/: folders we would write into
        folder = data_root.joinpath(*parts[:i + 1])
        if folder.is_symlink():
            name = folder.relative_to(data_root).as_posix()
            return f"{name} is a link to {folder.resolve()}; spikeprep does not write through a link " \
                   f"you made (into config.yaml and sync.json there): make {name} a real folder (e.g. " \
                   f"'rm {folder} && mkdir {folder}', copy config.yaml into it and link the .dat files), " \
                   "then run --fix again"
    if path.is_symlink() or not path.resolve().is_relative_to(data_root.resolve()):
        return f"{rel} is a link to {path.resolve()} (a download or a preset's source); " \
               "spikeprep does not write through it: replace the link with a copy and run --fix again"
    if not path.is_file():
        return f"{rel} does not exist"
    return None


def _target(check: SequenceCheck) -> tuple[int, bool]:
    """The ``(window_shift, flipud)`` the measured sync.json should have had: absolute values
    computed from the windows check-sync measured, never ``config.yaml's value + offset`` (which
    a second run, or a config edited since the last build, would shift twice)."""
    if check.verdict == "orientation":
        return check.measured_shift, not check.measured_flipud
    return check.measured_shift + check.judgement.best_offset, check.measured_flipud


def _describe(check: SequenceCheck, target: tuple[int, bool]) -> str:
    if check.verdict == "orientation":
        return f"flipud: {target[1]}"
    return f"window_shift: {target[0]} ({check.judgement.best_offset:+d})"


def _edit(path: Path, target: tuple[int, bool]) -> None:
    """Set window_shift and flipud in config.yaml, keeping its comments and other keys
    (`spikeprep.inputs.yaml_edit`)."""
    text = path.read_text()
    raw = read_raw(path)
    parse_config(raw, path)  # only edit a valid file
    values = {}
    if int(raw.get("window_shift") or 0) != target[0]:
        values["window_shift"] = target[0]
    if raw.get("flipud", True) != target[1]:
        values["flipud"] = target[1]
    edited = set_keys(text, values, path)
    parse_config({**raw, **values}, path)
    write_text_atomic(path, edited)


@contextmanager
def fix_lock(data_root: Path):
    """Hold DATA_ROOT's --fix lock (``fcntl.flock`` on ``spike/.check-sync-fix.lock``; the empty
    file is left in place, harmlessly): two --fix runs edit and rebuild one at a time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; the absolute values still shift once
        yield
        return
    path = data_root / "spike" / LOCK_NAME
    try:
        handle = open(path, "a")
    except OSError as exc:
        raise output_error(exc, path) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def options_of(data_root: Path, sequence: str) -> SyncOptions:
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
        refusal_ = refusal(root, path)
        if refusal_:
            fixes.append(Fix(check.sequence, "not fixed", refusal_, str(path)))
            continue
        fixes.append(_fix_and_rebuild(root, path, check))
    return fixes


def _fix_and_rebuild(root: Path, path: Path, check: SequenceCheck) -> Fix:
    """Under DATA_ROOT's --fix lock: compare sync.json with what was measured (already fixed by
    another run? changed since?), edit config.yaml, validate the new windows (dry run), then
    rewrite sync.json; on a validation error the old config.yaml is put back and the error is
    the reason."""
    with fix_lock(root):
        return _fix_locked(root, path, check)


def _fix_locked(root: Path, path: Path, check: SequenceCheck) -> Fix:
    target = _target(check)
    change = _describe(check, target)
    try:
        current = load_sync(sync_path(root, check.sequence))
        config = load_config(path, path.parent.parent / "config.yaml")
    except SpikeprepError as err:
        return Fix(check.sequence, "not fixed", f"{change}: {err}", str(path))
    now = (int(current.source.get("window_shift") or 0), current.flipud)
    if now == target and (config.window_shift, config.flipud) == target:
        return Fix(check.sequence, "already fixed", f"{change} is already written (by another --fix run?)",
                   str(path))
    if now != (check.measured_shift, check.measured_flipud):
        return Fix(check.sequence, "not fixed",
                   f"sync.json changed since check-sync measured it (now window_shift {now[0]}, flipud "
                   f"{now[1]}; measured {check.measured_shift}, {check.measured_flipud}): another --fix "
                   "or build-sync ran meanwhile; run check-sync again", str(path))
    options = options_of(root, check.sequence)
    before = path.read_text()
    _edit(path, target)
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
