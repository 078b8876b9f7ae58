"""Reading a downloaded dataset (SOURCE) without writing to it: folders, frames, sizes, lengths.

Only listings, file sizes and image headers are read; nothing here opens a file for writing.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError, SyncError
from ..inputs.dat import count_frames
from ..inputs.images import IMAGE_SUFFIXES, image_size, list_images


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted by name (``.DS_Store`` and other hidden entries ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def images(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Visible image files of ``folder``, sorted by name."""
    return list_images(folder, suffixes)


def find_dir(source: Path, name: str, depth: int = 2) -> Path | None:
    """The folder called ``name`` at SOURCE or up to ``depth`` levels below it (first by name)."""
    if source.name == name and source.is_dir():
        return source
    level = [source]
    for _ in range(depth):
        for folder in level:
            if (folder / name).is_dir():
                return folder / name
        level = [d for folder in level for d in subdirs(folder)]
    return None


def require_dir(source: Path, name: str, what: str, depth: int = 2) -> Path:
    found = find_dir(source, name, depth)
    if found is None:
        raise LayoutError(f"SOURCE does not look like {what}", path=source, found=f"no folder {name!r}",
                          expected=f"{name}/ at SOURCE or up to {depth} levels below it",
                          fix="pass the folder the dataset was unpacked into, or choose another preset")
    return found


def leaf_sequences(root: Path) -> list[tuple[tuple[str, ...], Path]]:
    """Folders under ``root`` that hold images, with their path parts relative to ``root``
    (nested levels kept, e.g. ``("002", "occ008.320_f2881")``), sorted."""
    found = []
    for folder in subdirs(root):
        if images(folder):
            found.append(((folder.name,), folder))
        for parts, leaf in leaf_sequences(folder):
            found.append(((folder.name, *parts), leaf))
    return sorted(found)


def one_size(paths: list[Path], where: Path) -> tuple[int, int]:
    """All images must share one ``(height, width)``; returns it."""
    expected = first = None
    for path in paths:
        size = image_size(path)
        if expected is None:
            expected, first = size, path
        elif size != expected:
            raise LayoutError("images differ in size", path=path, found=f"{size[0]}x{size[1]} (HxW)",
                              expected=f"{expected[0]}x{expected[1]} like {first.name}",
                              fix="remove or resize the odd frame")
    if expected is None:
        raise LayoutError("sequence has no frames", path=where, found="no .png/.jpg files",
                          expected="at least one frame")
    return expected


def stream_length(path: Path, height: int, width: int) -> int:
    """Whole spike frames in a `.dat` (its size must be a whole number of frames)."""
    return count_frames(path, height, width)


def require_all(missing: list[str], total: int, folder: Path, what: str, fix: str) -> None:
    """Raise one error naming every frame that lacks ``what`` (first 8 shown, then a count)."""
    if missing:
        shown = ", ".join(missing[:8]) + (f" ... ({len(missing)} in all)" if len(missing) > 8 else "")
        raise SyncError(f"{len(missing)} of {total} frames have no {what}", path=folder,
                        found=f"missing {shown}", expected=f"a {what} for every frame", fix=fix)


def pick_spike_size(fixed: tuple[int, int], rgb_size: tuple[int, int], ratio: int, probe: Path,
                    given: tuple[int, int] | None) -> tuple[int, int]:
    """The spike frame ``(h, w)`` of a sequence: ``given`` (--spike-size) when set; else the
    loader's hard-coded ``fixed`` size, or, when ``probe`` (one of its .dat files) is not a whole
    number of such frames, the RGB size / ``ratio`` (the loaders' paired-crop scale, which a
    scaled-down copy of the dataset keeps). Falls back to ``fixed`` (then reported as a size error)."""
    if given:
        return given
    derived = (rgb_size[0] // ratio, rgb_size[1] // ratio)
    size = probe.stat().st_size if probe.is_file() else 0
    for h, w in (fixed, derived):
        frame = h * w // 8
        if h * w % 8 == 0 and frame and size and size % frame == 0:
            return h, w
    return fixed
