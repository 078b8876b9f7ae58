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

from .cache.records import is_cache_dir
from .errors import LayoutError
from .files import is_utf8, require_utf8_name

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
STREAM_NAME = "spikes.dat"
#: Names a sequence's one continuous stream may have (X4K's downloads call it ``spike.dat``).
STREAM_NAMES = (STREAM_NAME, "spike.dat")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...): they hold the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


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


def _sequence_folders(blur_dir: Path) -> dict[str, tuple[str, ...]]:
    """Sequence name -> folder parts under ``blur_dir``. A folder of frames is a sequence; a folder
    holding only folders is a level of nesting, its parts joined with ``_`` (``002/clip`` ->
    ``002_clip``). A folder with neither is a sequence without frames (an error later). A
    spikeprep cache (a CACHE placed inside DATA_ROOT/blur) is skipped."""
    out: dict[str, tuple[str, ...]] = {}

    def walk(folder: Path, parts: tuple[str, ...]) -> None:
        subs = sorted(p for p in folder.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and not is_cache_dir(p))
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


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a PNG or JPEG from its header, without decoding it."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return jpeg_size(path)
    return png_size(path)


def jpeg_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a JPEG from its start-of-frame segment (walks the marker segments)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                raise LayoutError("not a JPEG image", path=path, found="no SOI marker",
                                  expected="a JPEG file (starts with FF D8)")
            while True:
                byte = f.read(1)
                while byte == b"\xff":
                    marker = f.read(1)
                    if marker != b"\xff":
                        break
                else:
                    raise LayoutError("truncated or malformed JPEG", path=path, found="no size segment",
                                      expected="a start-of-frame segment")
                code = marker[0] if marker else -1
                length = struct.unpack(">H", f.read(2))[0]
                if code in _JPEG_SOF:
                    _, height, width = struct.unpack(">BHH", f.read(5))
                    return height, width
                f.seek(length - 2, os.SEEK_CUR)
    except (OSError, struct.error) as exc:
        raise LayoutError("cannot read image", path=path, found=str(exc), expected="a readable .jpg") from exc


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
        size = image_size(root / rel)
        if expected is None:
            expected, first = size, rel
        elif size != expected:
            raise LayoutError("images differ in size", path=root / rel, found=f"{size[0]}x{size[1]} (HxW)",
                              expected=f"{expected[0]}x{expected[1]} like {first}",
                              fix="resize or remove the odd frame")
    return expected
