"""Reading a voxel cache: `open_cache(CACHE) -> Cache`, ``cache.read(seq, i) -> Sample``.

```python
cache = spikeprep.open_cache("cache/")
for seq in cache.sequences:                 # sorted
    if cache.split(seq) == "train":
        s = cache.read(seq, 0)              # Sample: blur (H,W,3) uint8 RGB, sharp or None,
        crop = s.spike[:, :64, :64].copy()  # spike (C,h,w) in cache.params.spike_dtype
```

Arrays are zero-copy, **read-only** views of LMDB's memory map (``np.frombuffer``). Contract:
copy what you keep past the next ``read`` call, or open with ``buffers=False`` to get private
copies. (They in fact stay valid until ``close()``, as the cache keeps one read transaction per
shard, but do not rely on it.)

LMDB environments are opened lazily (``readonly=True, lock=False, readahead=False``), once per
process: after a fork (DataLoader workers) the first read re-opens them, and pickling drops them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import numpy as np

from ..errors import CacheError
from .manifest import CacheParams, Manifest, SequenceEntry, load_manifest
from .records import decode_record, frame_key, hot_pixels_key, shard_name
from .repr_specs import logical


@dataclass(frozen=True)
class Sample:
    """One cached frame. ``spike_begin``/``spike_end``: its spike window ``[begin, end)``."""

    sequence: str
    index: int
    blur: np.ndarray | None     # (H, W, 3) uint8 RGB; None for spike-only data (params.has_blur false)
    sharp: np.ndarray | None    # (H, W, 3) uint8 RGB ((H, W, 1) gray GT of spike-only data), None
                                # when the dataset has no sharp frames
    spike: np.ndarray           # (C, h, w) in the cache's params.spike_dtype: the first representation
    spike_begin: int
    spike_end: int
    #: every representation read, by name, first one first (``spikes[first name] is spike``);
    #: bit-packed ones ``(C, h, w)`` uint8 0/1, or their packed ``(C, h, ceil(w/8))`` bytes
    #: when read with ``unpack=False``
    spikes: dict = field(default_factory=dict)


#: Read-only environments shared by every reader in this process (py-lmdb refuses to open the
#: same files twice in one process, and a forked child inherits that registry): realpath ->
#: [env, users, pid]. A child closes an inherited env (lock=False: that only unmaps the child's
#: copy and closes its descriptor) before opening its own.
_SHARED: dict[str, list] = {}


def _truncation(env: lmdb.Environment, data: Path) -> str | None:
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = data.stat().st_size
    return f"shard is truncated: {size} bytes, its pages need {needed}" if size < needed else None


def acquire_env(path: Path) -> lmdb.Environment:
    """The process's shared read-only env of shard ``path``; CacheError if missing or truncated.

    Truncation is checked from the meta page before any record is read: reading a page past
    the end of a truncated file would SIGBUS the process.
    """
    key = os.path.realpath(path)
    entry = _SHARED.get(key)
    if entry is not None and entry[2] != os.getpid():
        _drop_inherited()
        entry = None
    if entry is None:
        data = Path(path) / "data.mdb"
        problem = None if data.is_file() else "shard is missing (no data.mdb)"
        env = None
        if problem is None:
            try:
                env = lmdb.open(os.fsencode(path), readonly=True, lock=False, readahead=False, subdir=True,
                                max_readers=2048)
                problem = _truncation(env, data)
            except lmdb.Error as exc:
                problem = f"shard cannot be opened: {exc}"
        if problem:
            if env is not None:
                env.close()
            raise CacheError("cache shard is unreadable", path=path, found=problem,
                             expected="a complete LMDB shard",
                             fix="run 'spikeprep verify CACHE', then rebuild with --force")
        entry = _SHARED[key] = [env, 0, os.getpid()]
    entry[1] += 1
    return entry[0]


def _drop_inherited() -> None:
    """In a forked child: close every env inherited from the parent (never used here)."""
    for key, entry in list(_SHARED.items()):
        if entry[2] != os.getpid():
            del _SHARED[key]
            entry[0].close()


def release_env(path: Path) -> None:
    """Drop one user of a shared env; the last one closes it."""
    key = os.path.realpath(path)
    entry = _SHARED.get(key)
    if entry is None or entry[2] != os.getpid():
        return
    entry[1] -= 1
    if entry[1] <= 0:
        entry[0].close()
        del _SHARED[key]


def check_shard_file(path: Path) -> str | None:
    """None if shard ``path`` opens and holds every page its meta page names, else what is wrong."""
    try:
        acquire_env(path)
    except CacheError as err:
        return str(err.found)
    release_env(path)
    return None


class Cache:
    """A read-only voxel cache (see module docstring). Picklable; fork-safe."""

    def __init__(self, root: str | os.PathLike, buffers: bool = True, unpack: bool = True) -> None:
        self.root = Path(root)
        self.buffers = buffers
        #: bit-packed representations: unpack to 0/1 per pixel (True) or return the packed bytes
        self.unpack = unpack
        self.manifest: Manifest = load_manifest(self.root)
        self.params: CacheParams = self.manifest.params
        self._seqs = self.manifest.sequences
        self.sequences = sorted(self._seqs)
        self._envs: dict[int, tuple] = {}
        self._pid = os.getpid()
        #: what each record kind must decode to: ``(shape, dtype)``
        self._expected = {"rgb": (self.params.rgb_shape, np.dtype(np.uint8)),
                          "spike": (self.params.representations()[0].record_shape,
                                    np.dtype(self.params.spike_dtype))}
        #: each representation, first one first: ``(ReprSpec, record kind, record shape, dtype)``
        self._specs = [(p, p.kind, p.record_shape, p.dtype) for p in self.params.representations()]

    # -- metadata ---------------------------------------------------------------------------
    def _entry(self, seq: str) -> SequenceEntry:
        try:
            return self._seqs[seq]
        except KeyError:
            raise CacheError("sequence not in cache", path=self.root, found=repr(seq),
                             expected="one of " + ", ".join(self.sequences)) from None

    def num_frames(self, seq: str) -> int:
        return self._entry(seq).num_frames

    def split(self, seq: str) -> str:
        """``"train"`` or ``"val"``."""
        return self._entry(seq).split

    def frame_name(self, seq: str, index: int) -> str:
        """Frame ``index``'s name in the source dataset (e.g. ``"000047"``; ``"000003"`` for frame
        3 of a cache that records no names): inference writes ``OUT/SEQ/<name>.png``."""
        return self._entry(seq).frame_name(index)

    def clip_length(self, seq: str) -> int | None:
        """The recipe's ``T`` (VRT clip length) of a sequence, or None when its sync.json had none."""
        return self._entry(seq).T

    def __len__(self) -> int:
        return sum(self.num_frames(s) for s in self.sequences)

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r}, {len(self.sequences)} sequences, {len(self)} frames)"

    # -- LMDB -------------------------------------------------------------------------------
    def _txn(self, shard: int):
        if self._pid != os.getpid():  # forked: never share an environment across processes
            self._envs, self._pid = {}, os.getpid()
        if shard not in self._envs:
            env = acquire_env(self.root / shard_name(shard))
            self._envs[shard] = (env, env.begin(buffers=self.buffers))
        return self._envs[shard][1]

    def _get(self, txn, key: str):
        value = txn.get(key.encode())
        if value is None:
            raise CacheError("record missing from cache", path=self.root, found=f"no {key}",
                             expected="every record the manifest lists",
                             fix="run 'spikeprep verify CACHE'")
        return value

    def _array(self, txn, key: str, shape, dtype):
        header, array = decode_record(self._get(txn, key), key)
        if header.shape != shape or header.dtype != dtype:
            raise CacheError("cache record has an unexpected shape or dtype", path=key,
                             found=f"{header.dtype} {header.shape}", expected=f"{dtype} {shape}")
        return header, array

    def read(self, seq: str, i: int, names=None, unpack: bool | None = None) -> Sample:
        """Frame ``i`` of ``seq``: zero-copy read-only arrays (see the module docstring).

        ``names``: the representations to read into ``Sample.spikes`` (None: all; the first is
        always read: ``Sample.spike``); ``unpack`` (None: the cache's option): bit-packed ones
        as ``(C, h, w)`` uint8 0/1 (a fresh array) or False: their packed bytes (zero-copy)."""
        entry = self._entry(seq)
        i, n = int(i), entry.num_frames
        if not 0 <= i < n:
            raise CacheError("frame index out of range", path=self.root, found=f"{seq}[{i}]",
                             expected=f"0 <= i < {n}")
        txn = self._txn(entry.shard)
        rgb = self._expected["rgb"]
        blur = self._array(txn, frame_key(seq, i, "blur"), *rgb)[1] if self.params.has_blur else None
        sharp = self._array(txn, frame_key(seq, i, "sharp"), *rgb)[1] if entry.has_sharp else None
        unpack = self.unpack if unpack is None else unpack
        specs = self._specs
        if names is not None:
            wanted = {self.params.representation_named(n).name for n in names}
            specs = [r for r in specs if r[0].first or r[0].name in wanted]
        spikes, header = {}, None
        for spec, kind, shape, dtype in specs:
            head, stored = self._array(txn, frame_key(seq, i, kind), shape, dtype)
            header = header or head
            spikes[spec.name] = logical(spec, stored) if unpack else stored
        voxels = spikes[self.params.repr]
        return Sample(seq, i, blur, sharp, voxels, header.spike_begin, header.spike_end, spikes)

    def hot_pixels(self, seq: str) -> np.ndarray | None:
        """``(h, w)`` bool mask of the pixels repaired in ``seq`` (None with ``--hot-pixels off``)."""
        if self.params.hot_pixels == "off":
            self._entry(seq)
            return None
        txn = self._txn(self._entry(seq).shard)
        _, mask = self._array(txn, hot_pixels_key(seq), self.params.spike_shape[1:],
                              np.dtype(np.uint8))
        return mask.astype(bool)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._pid == os.getpid():
            for shard, (_, txn) in self._envs.items():
                txn.abort()
                release_env(self.root / shard_name(shard))
        self._envs = {}

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_envs"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


def open_cache(root: str | os.PathLike, buffers: bool = True, unpack: bool = True) -> Cache:
    """Open a cache written by `spikeprep.voxelize_dataset`; CacheError if it or its manifest is
    missing or invalid. ``buffers=False`` returns private (still read-only) copies;
    ``unpack=False`` returns bit-packed representations as their packed bytes (to unpack on a
    training device: `vrt_train.bits.unpack_bits_torch`)."""
    return Cache(root, buffers=buffers, unpack=unpack)
