"""Writing the cache: LMDB shards with on-demand map growth, one transaction per sequence.

The parent process is the only writer. Each sequence goes into its shard in **one** write
transaction, so after a crash a sequence is either entirely there or not at all; after the commit the builder
journals its summary (`spikeprep.cache.journal`). A crash between commit and journal line only
means the sequence is written again with the same bytes on resume.

Map size: each shard starts at ``initial_map_size`` (64 MiB) and grows on demand: before a
sequence it is grown to fit the planned bytes, and on ``lmdb.MapFullError`` the transaction is
aborted, the map doubled (at least to fit) and the sequence's records produced again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

import lmdb

from .cache.records import shard_name
from .errors import OutputError

MiB = 1 << 20
DEFAULT_INITIAL_MAP_SIZE = 64 * MiB
#: LMDB page overhead allowance when fitting the map to a planned size.
_SLACK = 1.25


class ShardWriter:
    """LMDB environments ``CACHE/shard-NNNNN.lmdb`` opened on first use, grown on demand."""

    def __init__(self, cache: Path, initial_map_size: int = DEFAULT_INITIAL_MAP_SIZE,
                 prefit: bool = True) -> None:
        self.cache = Path(cache)
        self.initial_map_size = int(initial_map_size)
        self.prefit = prefit
        self.grows = 0  # how many times a map was enlarged (tests and the summary read it)
        self._envs: dict[int, lmdb.Environment] = {}

    def env(self, shard: int) -> lmdb.Environment:
        if shard not in self._envs:
            path = self.cache / shard_name(shard)
            size = self.initial_map_size
            if (path / "data.mdb").is_file():  # a resumed build: keep what is there
                size = max(size, (path / "data.mdb").stat().st_size)
            try:
                # bytes: a CACHE path with non-UTF-8 bytes opens too
                self._envs[shard] = lmdb.open(os.fsencode(path), map_size=size, subdir=True,
                                              readahead=False, meminit=False, max_dbs=0)
            except lmdb.Error as exc:
                raise shard_write_error(exc, path, 0) from exc
        return self._envs[shard]

    def _used_bytes(self, env: lmdb.Environment) -> int:
        info = env.info()
        return (info["last_pgno"] + 1) * env.stat()["psize"]

    def _grow(self, env: lmdb.Environment, at_least: int) -> None:
        new = max(2 * env.info()["map_size"], int(at_least))
        env.set_mapsize(new)
        self.grows += 1

    def write_sequence(self, shard: int, planned_bytes: int,
                       produce: Callable[[], Iterable[tuple[str, bytes]]],
                       clear_prefix: str | None = None) -> int:
        """Put every ``(key, value)`` that ``produce()`` yields in one transaction; return bytes.

        ``produce`` is called again from scratch if the map fills up mid-transaction.
        ``clear_prefix`` (e.g. ``"SEQ/"``): first delete every key starting with it, in the same
        transaction, so a rebuilt sequence never keeps records of its previous build.
        Any other LMDB failure (a full disk, an I/O error; also while growing the map) aborts the
        transaction and raises `OutputError`.
        """
        try:
            return self._write_sequence(shard, planned_bytes, produce, clear_prefix)
        except lmdb.Error as exc:  # disk full (LMDB reports a short write as EIO), I/O error
            raise shard_write_error(exc, self.cache / shard_name(shard), planned_bytes) from exc

    def _write_sequence(self, shard, planned_bytes, produce, clear_prefix) -> int:
        env = self.env(shard)
        if self.prefit:
            need = self._used_bytes(env) + int(planned_bytes * _SLACK) + MiB
            if env.info()["map_size"] < need:
                env.set_mapsize(need)
                self.grows += 1
        while True:
            written = 0
            txn = env.begin(write=True)
            try:
                if clear_prefix:
                    _delete_prefix(txn, clear_prefix.encode())
                for key, value in produce():
                    txn.put(key.encode(), value)
                    written += len(value)
                txn.commit()
                return written
            except lmdb.MapFullError:
                txn.abort()
                self._grow(env, self._used_bytes(env) + int(max(planned_bytes, written) * _SLACK) + MiB)
            except BaseException:
                txn.abort()
                raise

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _delete_prefix(txn: lmdb.Transaction, prefix: bytes) -> int:
    """Delete every key starting with ``prefix`` inside ``txn``; return how many."""
    cursor, deleted = txn.cursor(), 0
    if cursor.set_range(prefix):
        while cursor.key().startswith(prefix):
            if not cursor.delete():  # moves to the next key; False at the end
                break
            deleted += 1
    return deleted


def shard_write_error(exc: lmdb.Error, path: Path, planned_bytes: int) -> OutputError:
    """An `OutputError` for a shard LMDB could not write: the free disk space is in the message,
    since LMDB reports a full disk as a short write (EIO), not as ENOSPC. The failed transaction
    was aborted, so the shard still holds exactly the sequences committed before."""
    try:
        free = f"{shutil.disk_usage(path.parent).free} bytes free on its disk"
    except OSError:
        free = "free space unknown"
    return OutputError("cannot write the LMDB shard", path=path, found=f"{exc} ({free})",
                       expected=f"a writable folder with room for about {planned_bytes} more bytes",
                       fix="free disk space or make CACHE writable, then re-run the same command: "
                           "finished sequences are kept and the build resumes")
