"""The voxel cache's on-disk layout: the only module that knows the record bytes and manifest schema.

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

Checksums: ``blake2b`` with a 16-byte digest, hex, over the whole LMDB value (header + payload).
The params hash is sha256 of the params as canonical JSON (sorted keys, no spaces).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CacheError
from .files import write_text_atomic

FORMAT = "spikeprep.cache"
FORMAT_VERSION = 1
MAGIC = b"SPKC"
MANIFEST_NAME = "manifest.json"
META_INFO_NAME = "meta_info.txt"
JOURNAL_NAME = "progress.jsonl"

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
PARAM_KEYS = ("S", "channels", "repr", "repr_params", "flipud", "match", "hot_pixels",
              "spike_dtype", "rgb_shape", "spike_shape")
MATCH_MODES = ("none", "rgb", "spike")


def shard_name(index: int) -> str:
    """``shard-00000.lmdb``: the LMDB directory of shard ``index``."""
    return f"shard-{index:05d}.lmdb"


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
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return header.tobytes() + little.tobytes()


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


def checksum(value) -> str:
    """blake2b-128 hex digest of a whole LMDB value."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def params_hash(params: dict) -> str:
    """sha256 hex of the params' canonical JSON."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


def diff_params(found: dict, expected: dict) -> list[str]:
    """``["S: found 4, expected 8", ...]`` for every differing top-level parameter."""
    keys = sorted(set(found) | set(expected))
    return [f"{k}: found {found.get(k)!r}, expected {expected.get(k)!r}"
            for k in keys if found.get(k) != expected.get(k)]


def expected_records(params: dict, sequence: str, entry: dict) -> dict[str, tuple[tuple, np.dtype]]:
    """``{key: (shape, dtype)}`` of every record a manifest sequence entry promises."""
    rgb, spike = tuple(params["rgb_shape"]), tuple(params["spike_shape"])
    sdtype = np.dtype(params["spike_dtype"])
    out = {}
    for i in range(entry["num_frames"]):
        out[frame_key(sequence, i, "blur")] = (rgb, np.dtype("u1"))
        if entry["has_sharp"]:
            out[frame_key(sequence, i, "sharp")] = (rgb, np.dtype("u1"))
        out[frame_key(sequence, i, "spike")] = (spike, sdtype)
    if params["hot_pixels"] == "detect":
        out[hot_pixels_key(sequence)] = (spike[1:], np.dtype("u1"))
    return out


def validate_manifest(raw, path=None) -> dict:
    """Check a loaded manifest's schema and params hash; return it. CacheError if invalid."""
    def need(cond, what, found, expected):
        if not cond:
            raise CacheError(f"cache manifest: {what}", path=path, found=found, expected=expected,
                             fix="rebuild the cache with 'spikeprep voxelize ... --force'")
    need(isinstance(raw, dict), "not a JSON object", type(raw).__name__, "an object")
    need(raw.get("format") == FORMAT, "not a spikeprep cache", raw.get("format"), FORMAT)
    need(raw.get("version") == FORMAT_VERSION, "unsupported format version", raw.get("version"),
         FORMAT_VERSION)
    params = raw.get("params")
    need(isinstance(params, dict) and all(k in params for k in PARAM_KEYS), "params incomplete",
         sorted(params) if isinstance(params, dict) else params, list(PARAM_KEYS))
    need(raw.get("params_hash") == params_hash(params), "params_hash does not match params",
         raw.get("params_hash"), params_hash(params))
    seqs = raw.get("sequences")
    need(isinstance(seqs, dict), "no sequences", type(seqs).__name__, "an object")
    for name, entry in seqs.items():
        need(isinstance(entry, dict) and all(k in entry for k in
             ("shard", "num_frames", "split", "has_sharp", "sources", "records", "hot_pixels")),
             f"sequence {name!r} entry incomplete", entry if not isinstance(entry, dict) else
             sorted(entry), "shard, num_frames, split, has_sharp, sources, records, hot_pixels")
        need(entry["split"] in ("train", "val"), f"sequence {name!r} split", entry["split"],
             "train or val")
    need(isinstance(raw.get("spike_stats"), dict), "no spike_stats", raw.get("spike_stats"),
         "an object")
    return raw


def load_manifest(cache: str | os.PathLike) -> dict:
    """Read and validate ``CACHE/manifest.json``; CacheError when missing or invalid."""
    cache = Path(cache)
    if not cache.is_dir():
        raise CacheError("cache directory not found", path=cache, found="no such directory",
                         expected="a CACHE written by 'spikeprep voxelize'")
    path = cache / MANIFEST_NAME
    if not path.is_file():
        journal = (cache / JOURNAL_NAME).is_file()
        raise CacheError("cache has no manifest", path=path, found="no manifest.json" +
                         (" (an unfinished build: progress.jsonl exists)" if journal else ""),
                         expected="a finished cache",
                         fix="re-run the same 'spikeprep voxelize' command to finish it")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError("cache manifest is not valid JSON", path=path, found=str(exc),
                         expected="JSON", fix="rebuild with 'spikeprep voxelize ... --force'") from exc
    return validate_manifest(raw, path)


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON via temp file + fsync + rename."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def meta_info_lines(manifest: dict) -> list[str]:
    """KAIR meta_info lines ``SEQ NFRAMES (H,W,3) 0`` for every sequence, sorted."""
    h, w, c = manifest["params"]["rgb_shape"]
    return [f"{seq} {entry['num_frames']} ({h},{w},{c}) 0"
            for seq, entry in sorted(manifest["sequences"].items())]
