"""Reading RGB input frames, and saying so when one is converted.

Every blur/sharp frame is stored as ``(H, W, 3)`` uint8 RGB (the grayscale ground truth of
spike-only data, without blur frames, stays ``(H, W, 1)``: ``read_image(keep_gray=True)``).
A png that is not 8-bit RGB is converted, never silently: `read_image` returns the conversion it
applied (a `CONVERSIONS` key) and the cache build turns those into one warning per sequence and
kind (`conversion_warnings`).

==============  ============================================================================
png input       stored as
==============  ============================================================================
8-bit RGB       as is
grayscale       the gray value copied into R, G and B (1/2/4-bit gray first scaled to 0..255)
gray + alpha    the gray value copied into R, G and B; alpha dropped (not composited)
RGBA            R, G, B kept; alpha dropped (not composited)
palette         each index replaced by its palette colour; palette transparency dropped
16-bit          each sample's high byte, ``v >> 8`` (65535 -> 255, 4095 -> 15): 12-bit data
                stored in the low bits of a 16-bit png comes out 16x too dark; when a frame's
                largest sample is below 4096 the warning says so
==============  ============================================================================

An empty (zero-byte), truncated or undecodable file is a `LayoutError` naming it. Other formats
OpenCV decodes (jpg) are read as colour without a conversion note.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from ..errors import LayoutError
from . import fingerprint

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Image files every stage reads as frames.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: PNG IHDR colour types (PNG spec, table 11.1).
_GRAY, _RGB, _PALETTE, _GRAY_ALPHA, _RGBA = 0, 2, 3, 4, 6
#: A 16-bit frame whose largest sample is below this uses at most 12 bits.
LOW_BITS_LIMIT = 4096

#: What each conversion does, as printed in the warning.
CONVERSIONS = {
    "grayscale": "grayscale png: the gray value is copied into R, G and B",
    "grayscale-alpha": "grayscale png with alpha: gray copied into R, G and B, alpha dropped (not composited)",
    "rgba": "RGBA png: alpha dropped (not composited), R, G, B kept",
    "palette": "palette (indexed-colour) png: each index replaced by its palette colour"
               " (any palette transparency dropped)",
    "16-bit": "16-bit png: each sample stored as its high byte, v >> 8 (65535 -> 255)",
    "16-bit-low": "16-bit png whose samples stay below 4096 (12 bits or fewer used): stored as the"
                  " high byte v >> 8, so the frame comes out 16x or more too dark; rescale these"
                  " pngs to 8 bits yourself if the data is 12-bit",
}


def png_header(data: bytes) -> tuple[int, int] | None:
    """``(bit_depth, colour_type)`` from a png's IHDR, or None when ``data`` is not a png."""
    if len(data) < 26 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def conversion_of(header: tuple[int, int] | None) -> str | None:
    """The `CONVERSIONS` key a png with this IHDR needs (16-bit before colour), None for 8-bit RGB."""
    if header is None:
        return None
    depth, colour = header
    if depth == 16:
        return "16-bit"
    return {_GRAY: "grayscale", _GRAY_ALPHA: "grayscale-alpha", _RGBA: "rgba",
            _PALETTE: "palette"}.get(colour)


def _sixteen_bit_max(data: bytes) -> int:
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return int(raw.max()) if raw is not None and raw.size else 0


def decode_rgb(data: bytes, path: Path) -> tuple[np.ndarray, str | None]:
    """Encoded image bytes -> ``(H, W, 3)`` uint8 RGB and the conversion applied (or None)."""
    if not data:
        raise LayoutError("RGB frame is an empty file", path=path, found="0 bytes",
                          expected="a png/jpg image",
                          fix="restore the frame from the original data (the copy was interrupted?)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        conversion = conversion_of(png_header(data))
        if conversion == "16-bit" and _sixteen_bit_max(data) < LOW_BITS_LIMIT:
            conversion = "16-bit-low"
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV's limit
        raise LayoutError("RGB frame cannot be decoded", path=path,
                          found=f"{len(data)} bytes; OpenCV: {_last_line(exc)}",
                          expected="a png/jpg image", fix="the file is corrupt: restore it") from None
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise LayoutError("RGB frame cannot be decoded", path=path, found=f"{len(data)} bytes",
                          expected="a png/jpg image", fix="the file is truncated or corrupt: restore it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), conversion


def _last_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][-160:] if lines else type(exc).__name__


def imread(path: str | Path, flags: int) -> np.ndarray | None:
    """``cv2.imread(path, flags)`` for any path: the file's bytes decoded with ``flags``
    (cv2.imread cannot open a path with non-UTF-8 bytes); None when the file cannot be read or
    decoded, as cv2.imread returns."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    except cv2.error:
        return None


def decode_gray(data: bytes, path: Path) -> tuple[np.ndarray, str | None] | None:
    """A grayscale png (with or without alpha) as ``(H, W, 1)`` uint8 and the conversion applied
    beyond keeping it gray (``16-bit``, alpha dropped), or None when ``data`` is not a gray png."""
    header = png_header(data)
    if header is None or header[1] not in (_GRAY, _GRAY_ALPHA):
        return None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        image = None
    if image is None or image.ndim != 2:
        return None  # decode_rgb names the problem
    conversion = "16-bit" if header[0] == 16 else None
    if conversion and _sixteen_bit_max(data) < LOW_BITS_LIMIT:
        conversion = "16-bit-low"
    return image[:, :, None], conversion


def read_image(path: str | Path, keep_gray: bool = False) -> tuple[np.ndarray, dict, str | None]:
    """A frame as ``(H, W, 3)`` uint8 RGB, its fingerprint (one read of the bytes) and the
    `CONVERSIONS` key applied (None for 8-bit RGB and non-png files). ``keep_gray``: a grayscale
    png stays one channel, ``(H, W, 1)`` (the ground truth of spike-only data)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LayoutError("RGB frame not found", path=path, found="no such file",
                          expected="the png named in sync.json", fix="check DATA_ROOT") from None
    except OSError as exc:
        raise LayoutError("RGB frame cannot be read", path=path, found=exc.strerror or str(exc),
                          expected="a readable png/jpg file", fix="check the file and its permissions") from None
    gray = decode_gray(data, path) if keep_gray else None
    image, conversion = gray if gray is not None else decode_rgb(data, path)
    return image, fingerprint.hash_bytes(data), conversion


def conversion_warnings(sequence: str, seen: dict[str, tuple[int, str]]) -> list[str]:
    """One warning per conversion kind of a sequence; ``seen``: kind -> (frames, first file)."""
    out = []
    for kind in sorted(seen):
        count, first = seen[kind]
        out.append(f"sequence {sequence}: {count} frame(s) converted, {CONVERSIONS[kind]} "
                   f"(first: {first})")
    return out


def merge_conversions(seen: dict[str, tuple[int, str]], found: dict[str, str]) -> None:
    """Count one frame's conversions (``found``: kind -> file) into ``seen`` (kind -> (n, first))."""
    for kind, rel in found.items():
        count, first = seen.get(kind, (0, rel))
        seen[kind] = (count + 1, first)


# -- listing and sizes without decoding -------------------------------------------------------
def list_images(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
                hidden: bool = False) -> list[Path]:
    """Image files of ``folder`` (by suffix, case-insensitive), sorted by name; dot-files are
    skipped unless ``hidden``."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in suffixes and (hidden or not p.name.startswith("."))
                  and p.is_file())


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file, decoded as colour (no conversion notes)."""
    image = imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise LayoutError("cannot read image", path=path, found="missing or not an image",
                          expected="a readable .png")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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
