"""Turning an `ImportPlan` into DATA_ROOT: links to SOURCE's files, config.yaml, sync.json.

Only DATA_ROOT is written, never through a link into SOURCE (`check_not_into_source`: a
DATA_ROOT/spike, a blur/SEQ linked into the download is refused). Big files are symlinks
(absolute, to SOURCE); config.yaml,
sync.json and ``import.json`` (what was imported from where, with a fingerprint of the
source files) are real files. Re-importing the same SOURCE is idempotent ("unchanged"); a
sequence whose source files changed, or whose DATA_ROOT folders hold something else, is only
replaced with ``force``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import LayoutError, UsageError
from ..inputs.files import write_text_atomic
from ..sync import FrameWindow, SyncFile, dump_sync
from .base import ImportPlan, SequencePlan

RECORD = "import.json"
RECORD_FORMAT = "spikeprep.import"
OWNED_FILES = ("config.yaml", "sync.json")


@dataclass(frozen=True)
class Outputs:
    """What one sequence puts in DATA_ROOT: links (relative path -> absolute target) and texts."""

    links: dict[str, Path]
    texts: dict[str, str]

    @property
    def folders(self) -> list[str]:
        return sorted({str(Path(p).parent) for p in [*self.links, *self.texts]})


def sync_of(seq: SequencePlan, preset: str) -> SyncFile:
    """The sync.json of a planned sequence (paths relative to DATA_ROOT, split and names added)."""
    frames = tuple(
        FrameWindow(f"blur/{seq.name}/{f.name}{f.blur.suffix}" if f.blur else None,
                    f"sharp/{seq.name}/{f.name}{f.sharp.suffix}" if f.sharp else None,
                    f"spike/{seq.name}/{f.spike.name}", f.begin, f.end, f.name,
                    f.pad_before, f.pad_after, seq.pad_value if (f.pad_before or f.pad_after) else 0)
        for f in seq.frames)
    source = {"mode": "import", "preset": preset, "rule": seq.rule}
    return SyncFile(seq.name, seq.spike_h, seq.spike_w, seq.flipud, frames, source, split=seq.split,
                    T=min(seq.T, len(frames)) if seq.T else None)


def outputs_of(seq: SequencePlan, preset: str) -> Outputs:
    links: dict[str, Path] = {}
    for f in seq.frames:
        if f.blur is not None:
            links[f"blur/{seq.name}/{f.name}{f.blur.suffix}"] = f.blur
        if f.sharp is not None:
            links[f"sharp/{seq.name}/{f.name}{f.sharp.suffix}"] = f.sharp
        links[f"spike/{seq.name}/{f.spike.name}"] = f.spike
    config = {"spike_h": seq.spike_h, "spike_w": seq.spike_w, "flipud": seq.flipud, **seq.config_extra}
    texts = {f"spike/{seq.name}/config.yaml": yaml.safe_dump(config, sort_keys=False),
             f"spike/{seq.name}/sync.json": dump_sync(sync_of(seq, preset))}
    return Outputs(links, texts)


def _sequence_folders(seq: SequencePlan) -> list[str]:
    return [f"{kind}/{seq.name}" for kind in ("blur", "sharp", "spike")]


def fingerprint(seq: SequencePlan) -> str:
    """sha256 of (path, size, mtime) of every source file the sequence uses."""
    paths = sorted({str(p) for f in seq.frames for p in (f.blur, f.sharp, f.spike) if p is not None})
    digest = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def check_roots(source: Path, data_root: Path) -> None:
    """DATA_ROOT must not lie inside SOURCE (we never write there), nor be SOURCE."""
    src, dst = source.resolve(), data_root.resolve()
    if dst == src or src in dst.parents:
        raise UsageError("DATA_ROOT lies inside SOURCE, and nothing may be written inside SOURCE",
                         found=f"DATA_ROOT {dst}", expected=f"a folder outside {src}",
                         fix="choose a DATA_ROOT outside the downloaded dataset")
    for folder in ("blur", "sharp", "spike"):
        if dst / folder == src or (dst / folder) in src.parents:
            raise UsageError("SOURCE lies inside DATA_ROOT's own folders", found=str(src),
                             expected=f"outside {dst / folder}", fix="move SOURCE or choose another DATA_ROOT")
    check_not_into_source(source, data_root, ("blur", "sharp", "spike"))


def check_not_into_source(source: Path, data_root: Path, folders) -> None:
    """A folder import writes into (``blur``, ``spike/SEQ``, ...) must not be, or lie under, a
    link whose resolved target is inside SOURCE: writing there would write into the download."""
    src, root = source.resolve(), Path(data_root)
    for rel in folders:
        path = root / rel
        if not (path.exists() or path.is_symlink()):
            continue
        resolved = path.resolve()
        if resolved != src and src not in resolved.parents:
            continue
        link = next((root.joinpath(*Path(rel).parts[:i + 1]) for i in range(len(Path(rel).parts))
                     if root.joinpath(*Path(rel).parts[:i + 1]).is_symlink()), path)
        name = link.relative_to(root).as_posix()
        raise LayoutError(f"DATA_ROOT/{name} is a link into SOURCE, and nothing may be written inside SOURCE",
                          path=link, found=f"{name} -> {link.resolve()}",
                          expected=f"a real folder (or a link to a folder outside {src})",
                          fix=f"make DATA_ROOT/{name} a real folder: remove the link (only the link: "
                              f"'rm {link}', SOURCE is untouched) and import again")


def _matches(root: Path, out: Outputs) -> bool:
    for rel, target in out.links.items():
        link = root / rel
        if not link.is_symlink() or Path(os.readlink(link)) != target:
            return False
    for rel, text in out.texts.items():
        path = root / rel
        if path.is_symlink() or not path.is_file() or path.read_text() != text:
            return False
    return all(_extra_entries(root / folder, out, root) == [] for folder in out.folders)


def _extra_entries(folder: Path, out: Outputs, root: Path) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return []
    wanted = {root / p for p in [*out.links, *out.texts]}
    return [p for p in folder.iterdir() if p not in wanted]


def _exists(root: Path, out: Outputs) -> bool:
    return any((root / folder).exists() or (root / folder).is_symlink() for folder in out.folders)


def load_record(data_root: Path) -> dict:
    path = data_root / RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LayoutError("import record is not valid JSON", path=path, found=str(exc), expected="JSON",
                          fix="delete it and re-import with --force") from exc
    return record if isinstance(record, dict) and record.get("format") == RECORD_FORMAT else {}


def decide(plan: ImportPlan, data_root: Path, force: bool) -> list[tuple[SequencePlan, Outputs, str, str]]:
    """Per sequence: its outputs, fingerprint and what to do ("write", "unchanged", "replace").

    Raises before anything is written when a sequence needs ``force`` (naming all of them).
    """
    known = load_record(data_root).get("sequences", {})
    decisions, blocked = [], []
    for seq in plan.sequences:
        out, fp = outputs_of(seq, plan.preset), fingerprint(seq)
        entry = known.get(seq.name, {})
        same_origin = (entry.get("source"), entry.get("preset")) == (str(plan.source), plan.preset)
        previous = entry.get("fingerprint") if same_origin else None
        if not _exists(data_root, out):
            action = "write"
        elif previous == fp and _matches(data_root, out):
            action = "unchanged"
        elif force:
            action = "replace"
            foreign = _foreign(data_root, out)
            if foreign:
                raise LayoutError("sequence folder holds files spikeprep did not create", path=foreign[0].parent,
                                  found=", ".join(p.name for p in foreign[:5]),
                                  expected="only links and config.yaml/sync.json",
                                  fix="move them away, then re-import (nothing was changed)")
        else:
            action = "blocked"
            why = ("SOURCE changed since it was imported" if previous not in (None, fp) else
                   "DATA_ROOT holds other files for it (another import, other options, or edits)")
            blocked.append(f"{seq.name} ({why})")
        decisions.append((seq, out, fp, action))
    if blocked:
        raise LayoutError(f"{len(blocked)} sequences would be replaced", path=data_root,
                          found="; ".join(blocked[:5]) + (" ..." if len(blocked) > 5 else ""),
                          expected="an empty DATA_ROOT, or the same SOURCE unchanged",
                          fix="pass --force to replace them (SOURCE itself is never modified)")
    return decisions


def _ours(entry: Path) -> bool:
    return entry.is_symlink() or entry.name in OWNED_FILES or entry.name.endswith(".partial")


def _foreign(root: Path, out: Outputs) -> list[Path]:
    """Entries of the sequence's (real) folders that a replace would have to delete but that
    spikeprep did not create."""
    folders = [root / f for f in out.folders]
    return [e for f in folders if f.is_dir() and not f.is_symlink() for e in sorted(f.iterdir()) if not _ours(e)]


def _clear(root: Path, out: Outputs) -> None:
    """Remove what a previous import left in the sequence's folders: links and our own files only
    (`decide` has checked that nothing else is there)."""
    for folder in (root / f for f in out.folders):
        if folder.is_symlink():
            folder.unlink()
        elif folder.is_dir():
            for entry in folder.iterdir():
                if _ours(entry):
                    entry.unlink()


def write_sequence(root: Path, out: Outputs, replace: bool) -> None:
    if replace:
        _clear(root, out)
    for rel, target in out.links.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    for rel, text in out.texts.items():
        write_text_atomic(root / rel, text)


def save_record(data_root: Path, plan: ImportPlan, done: list[tuple[SequencePlan, str]]) -> None:
    """``DATA_ROOT/import.json``: per sequence its preset, SOURCE, split, frames and fingerprint."""
    record = load_record(data_root) or {"format": RECORD_FORMAT, "version": 1, "sequences": {}}
    for seq, fp in done:
        record["sequences"][seq.name] = {"preset": plan.preset, "source": str(plan.source), "split": seq.split,
                                         "frames": len(seq.frames), "fingerprint": fp}
    record["sequences"] = dict(sorted(record["sequences"].items()))
    write_text_atomic(data_root / RECORD, json.dumps(record, indent=1) + "\n")


def apply(plan: ImportPlan, data_root: str | os.PathLike, force: bool = False) -> dict[str, str]:
    """Write DATA_ROOT for ``plan``; returns ``{sequence: "written" | "unchanged" | "replaced"}``."""
    root = Path(data_root)
    check_roots(plan.source, root)
    root.mkdir(parents=True, exist_ok=True)
    check_not_into_source(plan.source, root, [f for seq in plan.sequences for f in _sequence_folders(seq)])
    decisions = decide(plan, root, force)
    status = {}
    for seq, out, fp, action in decisions:
        if action != "unchanged":
            write_sequence(root, out, replace=action == "replace")
        status[seq.name] = {"write": "written", "replace": "replaced"}.get(action, action)
    save_record(root, plan, [(seq, fp) for seq, _, fp, _ in decisions])
    return status

