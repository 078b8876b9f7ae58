"""Small file helpers shared by every stage."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a
    half-written one: temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_real_dir(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Make ``root/relative`` a real directory owned by ``root``, creating it if needed.

    A component that is a symlink to a directory (a sequence folder linked into a download)
    is replaced by a real directory holding one symlink per entry of the link's target, so
    files written there afterwards land in ``root``, never inside the linked source. Only the
    link itself is removed; nothing is written to the target.
    """
    current = Path(root)
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            target = current.resolve()
            entries = sorted(target.iterdir()) if target.is_dir() else []
            staging = current.with_name(current.name + ".linking")
            staging.mkdir(exist_ok=True)
            for entry in entries:
                link = staging / entry.name
                if not link.is_symlink():
                    link.symlink_to(entry)
            current.unlink()
            staging.rename(current)
        else:
            current.mkdir(exist_ok=True)
    return current
