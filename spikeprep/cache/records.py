"""The voxel cache's on-disk layout: the directory's file names and the record bytes (declared once).

A CACHE directory holds::

    manifest.json          what is in the cache (schema below), written last, atomically
    meta_info.txt          KAIR's list: ``SEQ NFRAMES (H,W,3) 0`` per line
    progress.jsonl         build journal (one JSON object per line, fsync'd; see lmdb_writer)
    shard-00000.lmdb/      LMDB environments (``subdir=True``: a directory holding data.mdb)
    shard-00001.lmdb/ ...

Records (LMDB values) are ``HEADER_DTYPE`` (48 bytes, little-endian) followed by the array's raw
C-order bytes, so a reader can ``np.frombuffer`` them without decoding:

=========================  =======================  ==================================================
key                        array                    dtype
=========================  =======================  ==================================================
``SEQ/000000/blur``        ``(H, W, 3)`` RGB        uint8
``SEQ/000000/sharp``       ``(H, W, 3)`` RGB        uint8 (only when the dataset has sharp frames)
``SEQ/000000/spike``       ``(C, h, w)`` voxels     the cache's ``spike_dtype`` (manifest params)
``SEQ/hot_pixels``         ``(h, w)`` 0/1 mask      uint8 (only with ``--hot-pixels detect``)
=========================  =======================  ==================================================

Header fields: ``magic`` = b"SPKC", ``version`` = FORMAT_VERSION, ``dtype_code`` (DTYPE_CODES),
``ndim``, ``shape`` (unused dims 0), ``spike_begin``/``spike_end`` (the spike window
``[begin, end)`` of a spike record; -1 for other records).

Checksums: `checksum` (`spikeprep.inputs.fingerprint`: xxh3_128 for new caches, blake2b for caches
built before 0.2; the algorithm is named first in the manifest's ``record_checksum``) over the
whole LMDB value (header + payload). The manifest's schema is
`spikeprep.cache.manifest`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CacheError
from ..inputs import fingerprint

FORMAT = "spikeprep.cache"
FORMAT_VERSION = 1
MAGIC = b"SPKC"
MANIFEST_NAME = "manifest.json"
META_INFO_NAME = "meta_info.txt"
JOURNAL_NAME = "progress.jsonl"
#: Algorithm of the record checksums new builds write, and how the manifest describes it
#: (``record_checksum``: the algorithm's name first, as `record_checksum_algorithm` parses it).
RECORD_CHECKSUM_ALGORITHM = fingerprint.DEFAULT_ALGORITHM
_CHECKSUM_SUFFIX = " hex of the whole LMDB value (header + payload)"
#: Descriptions by algorithm; ``blake2b-128 ...`` is what caches built before 0.2 hold.
RECORD_CHECKSUMS = {"xxh3_128": "xxh3_128" + _CHECKSUM_SUFFIX, "blake2b": "blake2b-128" + _CHECKSUM_SUFFIX}

#: One record header, declared once; writer and reader both use it. 48 bytes, so payloads start
#: 16-byte aligned within the value.
HEADER_DTYPE = np.dtype([
    ("magic", "S4"),
    ("version", "<u2"),
    ("dtype_code", "u1"),
    ("ndim", "u1"),
    ("shape", "<u4", (4,)),
    ("spike_begin", "<i8"),
    ("spike_end", "<i8"),
    ("reserved", "V8"),
])
HEADER_SIZE = HEADER_DTYPE.itemsize
#: The same header as a `struct` layout, for the reader's hot path (numpy field access costs
#: ~25 us per record, struct ~1 us). Checked against HEADER_DTYPE at import.
_HEADER_STRUCT = struct.Struct("<4sHBB4Iqq8x")
assert _HEADER_STRUCT.size == HEADER_SIZE and all(
    HEADER_DTYPE.fields[name][1] == offset for name, offset in
    (("version", 4), ("dtype_code", 6), ("ndim", 7), ("shape", 8), ("spike_begin", 24), ("spike_end", 32)))

#: dtype code in a header -> numpy dtype (little-endian).
DTYPE_CODES = {1: np.dtype("u1"), 2: np.dtype("<u2"), 3: np.dtype("<u4"), 4: np.dtype("<f4"),
               5: np.dtype("i1"), 6: np.dtype("<i2"), 7: np.dtype("<i4"), 8: np.dtype("<f2")}
_CODE_OF = {dtype: code for code, dtype in DTYPE_CODES.items()}

RECORD_KINDS = ("blur", "sharp", "spike")
HOT_PIXELS = "hot_pixels"
MATCH_MODES = ("none", "rgb", "spike")
#: How a representation's array is stored (manifest version 3): ``array`` as it is; ``bitpacked``
#: 0/1 values packed 8 per byte along the last axis, bit order little (`pack_bits`).
STORAGES = ("array", "bitpacked")


def spike_kind(name: str | None = None) -> str:
    """The record kind of a spike representation: ``spike`` for the cache's first one (``name``
    None), ``spike.NAME`` for each further one (manifest version 3, several representations)."""
    return "spike" if name is None else f"spike.{name}"


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """``(..., w)`` 0/1 uint8 -> ``(..., ceil(w/8))`` uint8, 8 pixels per byte along the last axis,
    bit order little (pixel ``8*j + b`` is bit ``b`` of byte ``j``: the ``.dat`` files' order)."""
    return np.packbits(np.asarray(bits, np.uint8), axis=-1, bitorder="little")


def unpack_bits(packed: np.ndarray, width: int) -> np.ndarray:
    """Inverse of `pack_bits`: ``(..., ceil(w/8))`` uint8 -> ``(..., width)`` 0/1 uint8."""
    return np.unpackbits(np.asarray(packed, np.uint8), axis=-1, count=width, bitorder="little")


def stored_shape(shape, storage: str) -> tuple[int, ...]:
    """The record's array shape for a representation of logical ``shape`` stored as ``storage``."""
    shape = tuple(int(v) for v in shape)
    return shape if storage == "array" else (*shape[:-1], -(-shape[-1] // 8))


def shard_name(index: int) -> str:
    """``shard-00000.lmdb``: the LMDB directory of shard ``index``."""
    return f"shard-{index:05d}.lmdb"


def shard_path(cache: Path, index: int) -> Path:
    """``CACHE/shard-00000.lmdb``: where shard ``index`` of ``cache`` lives."""
    return Path(cache) / shard_name(index)


def frame_key(sequence: str, index: int, kind: str) -> str:
    """``SEQ/000000/blur``: the key of frame ``index``'s ``kind`` record."""
    return f"{sequence}/{index:06d}/{kind}"


def hot_pixels_key(sequence: str) -> str:
    """``SEQ/hot_pixels``: the key of a sequence's hot-pixel mask."""
    return f"{sequence}/{HOT_PIXELS}"


def parse_key(key: str) -> tuple[str, int | None, str]:
    """``"SEQ/000003/spike"`` -> ``("SEQ", 3, "spike")``; ``"SEQ/hot_pixels"`` -> ``("SEQ", None, ...)``."""
    parts = key.rsplit("/", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    seq, _, kind = key.rpartition("/")
    return seq, None, kind


def dtype_code(dtype) -> int:
    dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    if dtype not in _CODE_OF:
        raise CacheError("dtype cannot be stored in a cache record", found=str(dtype),
                         expected=", ".join(str(d) for d in DTYPE_CODES.values()))
    return _CODE_OF[dtype]


def record_nbytes(shape, dtype) -> int:
    """Bytes of one LMDB value holding an array of ``shape`` and ``dtype`` (header included)."""
    return HEADER_SIZE + int(np.prod(shape)) * np.dtype(dtype).itemsize


def encode_record(array: np.ndarray, spike_begin: int = -1, spike_end: int = -1) -> bytes:
    """Header + raw C-order bytes of ``array`` (at most 4-D)."""
    array = np.ascontiguousarray(array)
    if array.ndim > 4:
        raise CacheError("record arrays have at most 4 dimensions", found=array.shape, expected="<= 4-D")
    header = np.zeros((), HEADER_DTYPE)
    header["magic"] = MAGIC
    header["version"] = FORMAT_VERSION
    header["dtype_code"] = dtype_code(array.dtype)
    header["ndim"] = array.ndim
    header["shape"][:array.ndim] = array.shape
    header["spike_begin"], header["spike_end"] = spike_begin, spike_end
    little = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
    return b"".join((header.tobytes(), memoryview(little).cast("B")))  # one copy of the payload


@dataclass(frozen=True)
class RecordHeader:
    """A decoded record header."""

    dtype: np.dtype
    shape: tuple[int, ...]
    spike_begin: int
    spike_end: int


def decode_header(value, key: str = "?") -> RecordHeader:
    """Parse and check a value's header; CacheError if the magic, version, dtype or size is wrong."""
    if len(value) < HEADER_SIZE:
        raise CacheError("cache record is shorter than its header", path=key,
                         found=f"{len(value)} bytes", expected=f">= {HEADER_SIZE} bytes")
    magic, version, code, ndim, *dims, spike_begin, spike_end = _HEADER_STRUCT.unpack_from(value)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise CacheError("cache record has a foreign header", path=key,
                         found=f"magic {magic!r} version {version}",
                         expected=f"magic {MAGIC!r} version {FORMAT_VERSION}",
                         fix="rebuild the cache with this spikeprep version")
    if code not in DTYPE_CODES or ndim > 4:
        raise CacheError("cache record header is corrupt", path=key,
                         found=f"dtype code {code}, ndim {ndim}", expected="a known dtype, ndim <= 4")
    shape = tuple(dims[:ndim])
    dtype = DTYPE_CODES[code]
    if len(value) != HEADER_SIZE + math.prod(shape) * dtype.itemsize:
        raise CacheError("cache record size does not match its header", path=key,
                         found=f"{len(value)} bytes", expected=f"{record_nbytes(shape, dtype)} bytes "
                         f"for {dtype} {shape}")
    return RecordHeader(dtype, shape, spike_begin, spike_end)


def decode_record(value, key: str = "?") -> tuple[RecordHeader, np.ndarray]:
    """``(header, array)``; the array is a read-only view of ``value`` (zero-copy)."""
    header = decode_header(value, key)
    array = np.frombuffer(value, header.dtype, offset=HEADER_SIZE).reshape(header.shape)
    return header, array


def checksum(value, algorithm: str = RECORD_CHECKSUM_ALGORITHM) -> str:
    """The record checksum: hex digest of a whole LMDB value with ``algorithm`` (`RECORD_CHECKSUMS`)."""
    return fingerprint.digest(value, algorithm)


def record_checksum_algorithm(description: str) -> str:
    """The algorithm a manifest's ``record_checksum`` names: ``"xxh3_128 hex of ..."`` ->
    ``"xxh3_128"``, ``"blake2b-128 hex of ..."`` (caches before 0.2) -> ``"blake2b"``; an empty
    description (the oldest manifests) means blake2b. CacheError for an unknown algorithm."""
    for algorithm, text in RECORD_CHECKSUMS.items():
        if description.split(" ", 1)[0] == text.split(" ", 1)[0]:
            return algorithm
    if not description:
        return "blake2b"
    raise CacheError("cache manifest names an unknown record checksum", found=description,
                     expected=" | ".join(RECORD_CHECKSUMS.values()),
                     fix="upgrade spikeprep, or rebuild the cache with 'spikeprep voxelize ... --force'")
