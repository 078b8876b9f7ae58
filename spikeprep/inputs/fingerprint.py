"""Content fingerprints of source files and cache records: ``{"size": bytes, ALGORITHM: hex}``.

A fingerprint names its algorithm as its digest's key, so a cache keeps verifying when the
default algorithm changes. Files are hashed in 1 MiB chunks (O(1) memory).

Algorithms (128-bit digests, hex):

* ``xxh3_128`` (default since 0.2): xxHash's XXH3, 128 bits; non-cryptographic, ~4 GB/s per core
  here, which keeps hashing out of the build's critical path. Fingerprints and checksums guard
  against corruption and stale sources, not against an adversary, so a non-cryptographic hash is
  enough.
* ``blake2b`` (``blake2b``, digest_size 16): what caches built before 0.2 name; still verified.
"""

from __future__ import annotations

import hashlib
import os

import xxhash

CHUNK = 1 << 20
DEFAULT_ALGORITHM = "xxh3_128"


def _hasher(algorithm: str):
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128()
    if algorithm == "blake2b":
        return hashlib.blake2b(digest_size=16)
    raise ValueError(f"unknown hash algorithm {algorithm!r}")


#: Algorithms a fingerprint may name (the digest key).
ALGORITHMS = ("xxh3_128", "blake2b")


def digest(data, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """Hex digest of ``data`` (bytes-like)."""
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128_hexdigest(data)
    h = _hasher(algorithm)
    h.update(data)
    return h.hexdigest()


def hash_bytes(data, algorithm: str = DEFAULT_ALGORITHM) -> dict:
    """``{"size", algorithm: hex}`` of in-memory bytes."""
    return {"size": len(data), algorithm: digest(data, algorithm)}


def hash_file(path: str | os.PathLike, algorithm: str = DEFAULT_ALGORITHM) -> dict:
    """``{"size", algorithm: hex}`` of a file, read in 1 MiB chunks."""
    h, size = _hasher(algorithm), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, algorithm: h.hexdigest()}


def algorithm_of(fingerprint: dict) -> str:
    """The algorithm a stored fingerprint was made with (its digest key)."""
    for name in ALGORITHMS:
        if name in fingerprint:
            return name
    raise ValueError(f"fingerprint names no known algorithm: {sorted(fingerprint)}")


def describe(fingerprint: dict) -> str:
    """``size 123 xxh3_128 0a1b...`` for messages."""
    algo = algorithm_of(fingerprint)
    return f"size {fingerprint['size']} {algo} {fingerprint[algo]}"
