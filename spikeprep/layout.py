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
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import LayoutError
from .files import is_utf8, require_utf8_name

IMAGE_SUFFIXES = (".png",)
STREAM_NAME = "spikes.dat"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return tuple(p.relative_to(root).as_posix() for p in files)


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
    names = sorted(p.name for p in blur_dir.iterdir() if p.is_dir())
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise LayoutError("unknown sequence", path=blur_dir, found=", ".join(unknown),
                              expected=f"one of {', '.join(names) or '(none)'}")
        names = [n for n in names if n in only]
    if not names:
        raise LayoutError("no sequences found", path=blur_dir, found="no sub-folders",
                          expected="one folder of frames per sequence")
    sources = [_sequence(root, name, blur_dir, spike_dir, recipe) for name in names]
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


def _sequence(root: Path, name: str, blur_dir: Path, spike_dir: Path, recipe: bool) -> SequenceSource:
    blur = _list_images(blur_dir / name, root)
    if not blur:
        raise LayoutError("sequence has no frames", path=blur_dir / name, found="no .png files",
                          expected="000000.png, 000001.png, ...")
    sharp_dir = root / "sharp" / name
    sharp = _list_images(sharp_dir, root) if sharp_dir.is_dir() else None
    if sharp is not None:
        _check_pairs(blur, sharp, sharp_dir)
    if not (spike_dir / name).is_dir():
        raise LayoutError("sequence has no spike folder", path=spike_dir / name, found="missing",
                          expected=f"{STREAM_NAME} or one .dat per frame, plus config.yaml")
    return SequenceSource(name, blur, sharp, (spike_dir / name).relative_to(root).as_posix(), recipe)


def _check_pairs(blur: tuple[str, ...], sharp: tuple[str, ...], sharp_dir: Path) -> None:
    blur_stems = [Path(p).stem for p in blur]
    sharp_stems = [Path(p).stem for p in sharp]
    if blur_stems != sharp_stems:
        missing = sorted(set(blur_stems) - set(sharp_stems))
        extra = sorted(set(sharp_stems) - set(blur_stems))
        found = "; ".join(part for part in (
            f"missing sharp for {', '.join(missing[:5])}" if missing else "",
            f"sharp without blur: {', '.join(extra[:5])}" if extra else "") if part)
        raise LayoutError("sharp frames do not match blur frames one to one", path=sharp_dir,
                          found=found, expected=f"the same {len(blur_stems)} file names as the blur folder",
                          fix="add or remove frames so both folders hold the same names")


def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a PNG from its header, without decoding it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise LayoutError("cannot read image", path=path, found=exc.strerror, expected="a readable .png") from exc
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise LayoutError("not a PNG image", path=path, found=f"{len(head)} header bytes",
                          expected="a valid PNG (signature + IHDR)")
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def check_image_sizes(root: str | os.PathLike, paths: list[str]) -> tuple[int, int]:
    """All images must have one size; returns it as ``(H, W)``."""
    root = Path(root)
    expected = None
    for rel in paths:
        size = png_size(root / rel)
        if expected is None:
            expected, first = size, rel
        elif size != expected:
            raise LayoutError("images differ in size", path=root / rel, found=f"{size[0]}x{size[1]} (HxW)",
                              expected=f"{expected[0]}x{expected[1]} like {first}",
                              fix="resize or remove the odd frame")
    return expected
