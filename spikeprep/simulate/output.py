"""Where `spikeprep simulate` writes: OUT prepared for a whole run or for one ``--part I/N``."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UsageError
from ..parts import items_of, parse_part


def prepare_part_output(out: Path, force: bool, part, names: list[str], sizes: list[int]) -> list[int]:
    """``--part I/N``: N processes write their own sequences (``names``; split by
    `spikeprep.parts.balanced_partition` over frames x pixels) into one OUT at once, so OUT may
    hold the other parts' sequences. Only this part's OUT/{blur,sharp,spike}/SEQ folders are
    refused when present (or, with ``force``, removed); nothing else in OUT is touched. Each
    sequence's bytes depend on its index only (`sequence_rng`), so the union of the parts equals
    the unpartitioned run byte for byte. Returns the indices (into ``names``) of this part's
    sequences; ``sizes``: each sequence's work (frames x pixels)."""
    indices = items_of(parse_part(part), sizes)
    names = [names[i] for i in indices]
    if out.exists() and not out.is_dir():
        raise UsageError("output path is not a folder", path=out, found="a file", expected="a folder")
    present = [out / kind / name for name in names for kind in ("blur", "sharp", "spike")
               if (out / kind / name).exists()]
    if present and not force:
        raise UsageError("this part's sequences already exist in OUT", path=out,
                         found=", ".join(str(p.relative_to(out)) for p in present[:6]),
                         expected="no OUT/{blur,sharp,spike}/SEQ for this part's sequences",
                         fix="pass --force (with the same --part) to replace only them")
    for folder in present:
        shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return indices


def _prepare_whole(out: Path, force: bool) -> None:
    """Refuse a non-empty ``out`` unless ``force``; with it, remove OUT/{blur,sharp,spike}."""
    if out.exists() and not out.is_dir():
        raise UsageError("output path is not a folder", path=out, found="a file", expected="a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not force:
        raise UsageError("output folder is not empty", path=out, found=", ".join(entries[:5]),
                         expected="a new or empty folder",
                         fix="Pass --force to replace OUT/blur, OUT/sharp and OUT/spike, or pick another OUT")
    for part in ("blur", "sharp", "spike"):
        if (out / part).is_dir():
            shutil.rmtree(out / part)
        elif (out / part).exists():
            (out / part).unlink()
    out.mkdir(parents=True, exist_ok=True)


def prepare(out: Path, force: bool, part, names: list[str], sizes: list[int]) -> list[int]:
    """Prepare OUT for the whole run (``part`` None) or one part; the sequence indices to write."""
    if part is None:
        _prepare_whole(out, force)
        return list(range(len(names)))
    return prepare_part_output(out, force, part, names, sizes)


def refuse_overlap(src: Path, out: Path) -> None:
    """``--force`` removes OUT/{blur,sharp,spike}: the source must not live there."""
    src_abs = src.resolve()
    for part in ("blur", "sharp", "spike"):
        if src_abs.is_relative_to((out / part).resolve()):
            raise UsageError("source frames lie inside the output", path=src, found=f"inside {out / part}",
                             expected="a source folder outside OUT/blur, OUT/sharp and OUT/spike")
