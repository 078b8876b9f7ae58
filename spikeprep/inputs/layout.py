"""Discovering sequences in a DATA_ROOT and checking the RGB side of the input layout.

Our layout::

    DATA_ROOT/blur/SEQ/000000.png ...    RGB inputs
    DATA_ROOT/sharp/SEQ/000000.png ...   ground truth (optional)
    DATA_ROOT/spike/SEQ/spikes.dat       one continuous stream, or one .dat per frame (blur stem)
    DATA_ROOT/spike/SEQ/config.yaml      spike_h, spike_w, flipud, timing when known

The recipe's layout (`shared/seed/`) is recognised too::

    DATA_ROOT/gopro_rgb/SEQ/*.png                               RGB inputs (the blur frames)
    DATA_ROOT/spike_raw/SEQ/{spikes.dat, config.yaml, sync.json}  its hand-written sync form
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import LayoutError
from .files import is_utf8, require_utf8_name
from .images import list_images

STREAM_NAME = "spikes.dat"
#: Names a sequence's one continuous stream may have (X4K's downloads call it ``spike.dat``).
STREAM_NAMES = (STREAM_NAME, "spike.dat")
#: JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...): they hold the size.


#: Longest file name (bytes) a folder may hold (ext4, xfs, btrfs, APFS, NTFS: 255).
NAME_MAX = 255
#: What spikeprep appends to a sequence name in a file name it writes: build-sync's staging
#: folder ``SEQ.linking`` (`files.ensure_real_dir`) and check-sync's previews ``SEQ_sheet.png``
#: and ``SEQ_offsets.png``. (``.partial`` only ever follows ``sync.json``/``config.yaml``,
#: inside the sequence's folder.)
NAME_SUFFIXES = (".linking", "_sheet.png", "_offsets.png")
#: Longest sequence name in bytes (UTF-8): every name we derive from it still fits NAME_MAX.
MAX_NAME_BYTES = NAME_MAX - max(len(s.encode()) for s in NAME_SUFFIXES)


def shortened(name: str, keep: int = 40) -> str:
    """``name`` with its middle elided when longer than ``2 * keep`` characters (for messages)."""
    return name if len(name) <= 2 * keep else f"{name[:keep]}...{name[-keep // 2:]}"


def check_name_length(name: str, path: str | os.PathLike | None, fix: str) -> None:
    """LayoutError for a sequence name too long to be a file name once our suffixes are added."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        longest = max(NAME_SUFFIXES, key=len)
        raise LayoutError("sequence name is too long for a file name", path=path,
                          found=f"{shortened(name)!r}: {size} bytes ({len(name)} characters)",
                          expected=f"at most {MAX_NAME_BYTES} bytes (a file name holds {NAME_MAX} bytes, "
                                   f"and names such as SEQ{longest} are written)",
                          fix=fix)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a sequence name in ``meta_info.txt`` (one ``SEQ N (H,W,C)`` line
    per sequence, which KAIR-style readers split on whitespace), or None: the first whitespace
    or control character, with its position."""
    for i, ch in enumerate(name):
        if ch.isspace() or unicodedata.category(ch) == "Cc":
            what = {" ": "a space", "\t": "a tab", "\n": "a newline", "\r": "a carriage return"}.get(
                ch, f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control character')})")
            return f"{what} at character {i}"
    return None


def suggested_name(name: str) -> str:
    """``name`` with every whitespace or control character replaced by ``_`` (for a fix hint)."""
    return "".join("_" if ch.isspace() or unicodedata.category(ch) == "Cc" else ch for ch in name)


def check_sequence_name(name: str, path: str | os.PathLike | None, fix: str) -> None:
    """LayoutError naming a sequence whose name holds whitespace or a control character."""
    problem = name_problem(name)
    if problem is not None:
        raise LayoutError("sequence name contains whitespace or a control character", path=path,
                          found=f"{name!r}: {problem}",
                          expected="a name without spaces, tabs, newlines or control characters "
                                   "(meta_info.txt lines are split on whitespace)",
                          fix=fix)


def stream_name(spike_dir: str | os.PathLike) -> str:
    """The continuous stream's file name in ``spike_dir``: the first of `STREAM_NAMES` present,
    else `STREAM_NAME` (which is then reported as missing)."""
    for name in STREAM_NAMES:
        if (Path(spike_dir) / name).is_file():
            return name
    return STREAM_NAME


@dataclass(frozen=True)
class SequenceSource:
    """Where one sequence's files are. Paths are relative to DATA_ROOT (posix strings)."""

    name: str
    blur: tuple[str, ...]
    sharp: tuple[str, ...] | None
    spike_dir: str
    recipe: bool = False

    @property
    def stems(self) -> list[str]:
        return [Path(p).stem for p in self.blur]


def _list_images(folder: Path, root: Path) -> tuple[str, ...]:
    return tuple(p.relative_to(root).as_posix() for p in list_images(folder, hidden=True))


def is_recipe_layout(root: Path) -> bool:
    return (root / "gopro_rgb").is_dir() and (root / "spike_raw").is_dir() and not (root / "blur").is_dir()


def discover(data_root: str | os.PathLike, only: tuple[str, ...] = ()) -> list[SequenceSource]:
    """All sequences under DATA_ROOT (our layout or the recipe's), sorted by name."""
    root = Path(data_root)
    if not root.is_dir():
        raise LayoutError("DATA_ROOT not found", path=root, found="no such directory",
                          expected="a folder with blur/ and spike/ (or gopro_rgb/ and spike_raw/)")
    recipe = is_recipe_layout(root)
    blur_dir, spike_dir = (root / "gopro_rgb", root / "spike_raw") if recipe else (root / "blur", root / "spike")
    if not blur_dir.is_dir():
        raise LayoutError("no RGB input folder", path=blur_dir, found="missing",
                          expected="DATA_ROOT/blur/SEQ/*.png (or the recipe's gopro_rgb/SEQ/*.png)",
                          fix="see the README's 'Input layout' section")
    nested = _sequence_folders(blur_dir)
    names = sorted(nested)
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise LayoutError("unknown sequence", path=blur_dir, found=", ".join(unknown),
                              expected=f"one of {', '.join(names) or '(none)'}")
        names = [n for n in names if n in only]
    if not names:
        raise LayoutError("no sequences found", path=blur_dir, found="no sub-folders",
                          expected="one folder of frames per sequence")
    sources = [_sequence(root, name, nested[name], blur_dir, spike_dir, recipe) for name in names]
    for source in sources:
        check_utf8_paths(root, source)
    return sources


def check_utf8_paths(root: Path, source: SequenceSource) -> None:
    """LayoutError for a sequence folder or frame whose name is not valid UTF-8 (it could not be
    written to sync.json or used as a cache key)."""
    for rel in (*source.blur, *(source.sharp or ()), source.spike_dir):
        parts = Path(rel).parts
        for i, part in enumerate(parts):
            if not is_utf8(part):
                require_utf8_name(root.joinpath(*parts[:i + 1]), LayoutError,
                                  "sequence folder" if part == source.name else "file")


def holds_lmdb(folder: Path) -> bool:
    """Whether ``folder`` holds LMDB environment folders (``*.lmdb``, as a spikeprep cache's
    shards): that is output, never a sequence of input frames."""
    return any(p.is_dir() for p in folder.glob("*.lmdb"))


def _sequence_folders(blur_dir: Path) -> dict[str, tuple[str, ...]]:
    """Sequence name -> folder parts under ``blur_dir``. A folder of frames is a sequence; a folder
    holding only folders is a level of nesting, its parts joined with ``_`` (``002/clip`` ->
    ``002_clip``). A folder with neither is a sequence without frames (an error later). A
    folder holding LMDB databases (a CACHE placed inside DATA_ROOT/blur) is skipped."""
    out: dict[str, tuple[str, ...]] = {}

    def walk(folder: Path, parts: tuple[str, ...]) -> None:
        subs = sorted(p for p in folder.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and not holds_lmdb(p))
        if parts and (_list_images(folder, folder) or not subs):
            name = "_".join(parts)
            if name in out:
                raise LayoutError("two nested folders give the same sequence name", path=folder,
                                  found=f"{'/'.join(out[name])} and {'/'.join(parts)} -> {name}",
                                  expected="unique names after joining levels with '_'", fix="rename one")
            out[name] = parts
            return
        for sub in subs:
            walk(sub, (*parts, sub.name))

    walk(blur_dir, ())
    return out


def _sequence(root: Path, name: str, parts: tuple[str, ...], blur_dir: Path, spike_dir: Path,
              recipe: bool) -> SequenceSource:
    rel = Path(*parts)
    blur = _list_images(blur_dir / rel, root)
    if not blur:
        raise LayoutError("sequence has no frames", path=blur_dir / rel,
                          found="no .png/.jpg files", expected="000000.png, 000001.png, ... (or .jpg)")
    sharp_dir = root / "sharp" / rel
    sharp = _matching_sharp(blur, _list_images(sharp_dir, root), sharp_dir) if sharp_dir.is_dir() else None
    spike = spike_dir / rel if (spike_dir / rel).is_dir() else spike_dir / name
    if not spike.is_dir():
        raise LayoutError("sequence has no spike folder", path=spike_dir / rel, found="missing",
                          expected=f"{STREAM_NAME} or one .dat per frame, plus config.yaml")
    return SequenceSource(name, blur, sharp, spike.relative_to(root).as_posix(), recipe)


def _matching_sharp(blur: tuple[str, ...], sharp: tuple[str, ...], sharp_dir: Path) -> tuple[str, ...]:
    """The sharp frame named like each blur frame: the sharp folder may hold more frames (all of a
    high-frame-rate sequence, as X4K's fullRGB); every blur frame needs its own."""
    by_stem = {Path(p).stem: p for p in sharp}
    missing = [Path(p).stem for p in blur if Path(p).stem not in by_stem]
    if missing:
        raise LayoutError("sharp frames do not match blur frames one to one", path=sharp_dir,
                          found=f"missing sharp for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""),
                          expected=f"a sharp frame named like each of the {len(blur)} blur frames",
                          fix="add the missing frames (extra sharp frames are ignored)")
    return tuple(by_stem[Path(p).stem] for p in blur)
