"""Writing the cache: LMDB shards with on-demand map growth, one transaction per sequence.

The parent process is the only writer. Each sequence goes into its shard in **one** write
transaction, so after a crash a sequence is either entirely there or not at all; after the commit the builder
journals its summary (`spikeprep.cache.journal`). A crash between commit and journal line only
means the sequence is written again with the same bytes on resume.

Durability without holding a sequence in memory: shards are opened with ``writemap`` (records
go straight into the file's page cache, not into LMDB's private dirty-page copies, so memory
does not grow with the sequence; the kernel writes dirty pages back past its own thresholds).
With ``flush_bytes`` > 0, every ``flush_bytes`` written a background thread ``fdatasync``s the
shard while the next frames are computed, so the commit only syncs the rest. The build turns
that on only when frames are computed in other processes (`spikeprep.cache.runner.RunOptions`):
writing back mapped pages write-protects them, which interrupts every CPU running this process
(TLB shootdowns), and beside an in-process build that slowed png decoding by ~25% here.
The commit writes the meta page (LMDB's one durable step per sequence, unchanged). Early writeback
cannot weaken the guarantee: LMDB never overwrites a page reachable from the last committed
meta page, and the meta page is written only at commit, so after a crash the file still opens
at the last committed sequence whatever pages of the open transaction reached the disk.
``writemap`` makes LMDB size the file to the whole map; `close` cuts it back to the pages in use.

Map size: each shard starts at ``initial_map_size`` (64 MiB) and grows on demand: before a
sequence it is grown to fit the planned bytes, and on ``lmdb.MapFullError`` the transaction is
aborted, the map doubled (at least to fit) and the sequence's records produced again.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path
from typing import Callable, Iterable

import lmdb

from .errors import OutputError

MiB = 1 << 20
DEFAULT_INITIAL_MAP_SIZE = 64 * MiB
#: LMDB page overhead allowance when fitting the map to a planned size.
_SLACK = 1.25
#: Blocks reserved ahead of the writes into a writemap (`ShardWriter._reserve`): each value
#: rounded up to whole overflow pages (16-byte page header), room for its key in leaf and
#: branch pages, and one page more.
_PAGE = 4096
_PAGE_SLACK = 16
_LEAF_BYTES_PER_KEY = 128
_RESERVE_PAD = _PAGE
#: Bytes put between two background writebacks of a shard, when the build asks for them.
DEFAULT_FLUSH_BYTES = 64 * MiB


class _Flusher:
    """A thread that ``fdatasync``s a file when kicked (coalescing kicks), so the page cache is
    written back while the caller keeps computing."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._fd: int | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="spikeprep-flush", daemon=True)
        self._thread.start()

    def kick(self, fd: int) -> None:
        with self._wake:
            self._fd = fd
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._fd is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                fd, self._fd = self._fd, None
            try:
                os.fdatasync(fd)
            except OSError:  # closed meanwhile, or a filesystem without it: the commit syncs anyway
                pass

    def close(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()


class ShardWriter:
    """LMDB environments, one per shard index, opened on first use and grown on demand.

    ``shard_dir(index)`` names each shard's LMDB directory (the cache's layout decides it, e.g.
    ``CACHE/shard-00000.lmdb``): the writer takes keys and bytes and knows no record format.
    """

    def __init__(self, shard_dir: Callable[[int], Path], initial_map_size: int = DEFAULT_INITIAL_MAP_SIZE,
                 prefit: bool = True, writemap: bool = True,
                 flush_bytes: int = 0) -> None:
        self.shard_dir = shard_dir
        self.initial_map_size = int(initial_map_size)
        self.prefit = prefit
        self.writemap = writemap
        self.flush_bytes = int(flush_bytes)
        self.grows = 0  # how many times a map was enlarged (tests and the summary read it)
        self._envs: dict[int, lmdb.Environment] = {}
        self._fds: dict[int, int] = {}
        self._flusher: _Flusher | None = None

    def env(self, shard: int) -> lmdb.Environment:
        if shard not in self._envs:
            path = Path(self.shard_dir(shard))
            size = self.initial_map_size
            if (path / "data.mdb").is_file():  # a resumed build: keep what is there
                size = max(size, (path / "data.mdb").stat().st_size)
            try:
                # bytes: a CACHE path with non-UTF-8 bytes opens too
                self._envs[shard] = lmdb.open(os.fsencode(path), map_size=size, subdir=True,
                                              readahead=False, meminit=False, max_dbs=0,
                                              writemap=self.writemap)
            except lmdb.Error as exc:
                raise shard_write_error(exc, path, 0) from exc
        return self._envs[shard]

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(Path(self.shard_dir(shard)) / "data.mdb", os.O_RDWR)
        return self._fds[shard]

    def _reserve(self, shard: int, start: int, end: int) -> None:
        """With writemap, allocate the disk blocks of ``[start, end)`` before records are written
        into that part of the map: a full disk is then an error here (ENOSPC, raised as
        `lmdb.Error`, so the transaction aborts with the caller's message), never a SIGBUS on a
        page of the map. Filesystems without fallocate skip it."""
        if end <= start:
            return
        try:
            os.posix_fallocate(self._fd(shard), start, end - start)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise lmdb.Error(f"no space left on the device for the sequence's next {end - start} "
                                 "bytes (ENOSPC)") from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise lmdb.Error(str(exc)) from None

    def _writeback(self, shard: int) -> None:
        """Start writing shard's dirty pages back in the background (writemap only)."""
        if not self.writemap or self.flush_bytes <= 0:
            return
        if self._flusher is None:
            self._flusher = _Flusher()
        self._flusher.kick(self._fd(shard))

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
            raise shard_write_error(exc, Path(self.shard_dir(shard)), planned_bytes) from exc

    def _write_sequence(self, shard, planned_bytes, produce, clear_prefix) -> int:
        env = self.env(shard)
        if self.prefit:
            need = self._used_bytes(env) + int(planned_bytes * _SLACK) + MiB
            if env.info()["map_size"] < need:
                env.set_mapsize(need)
                self.grows += 1
        while True:
            written, next_flush, reserved, base = 0, self.flush_bytes, 0, self._used_bytes(env)
            pages = 0  # bytes of the pages this transaction's values take (for `_reserve`)
            txn = env.begin(write=True)
            try:
                if clear_prefix:
                    _delete_prefix(txn, clear_prefix.encode())
                for key, value in produce():
                    pages += -(-(len(value) + _PAGE_SLACK) // _PAGE) * _PAGE + _LEAF_BYTES_PER_KEY
                    need = pages + _RESERVE_PAD
                    if self.writemap and need > reserved:  # only the part not reserved yet
                        self._reserve(shard, base + reserved, min(base + need, env.info()["map_size"]))
                        reserved = need
                    txn.put(key.encode(), value)
                    written += len(value)
                    if self.flush_bytes and written >= next_flush:
                        self._writeback(shard)
                        next_flush = written + self.flush_bytes
                txn.commit()
                return written
            except lmdb.MapFullError:
                txn.abort()
                self._grow(env, self._used_bytes(env) + int(max(planned_bytes, written) * _SLACK) + MiB)
            except BaseException:
                txn.abort()
                raise

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.close()
            self._flusher = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for shard, env in self._envs.items():
            used = self._used_bytes(env)
            env.close()
            if self.writemap:  # writemap grew the file to the map size: give back the unused tail
                data = Path(self.shard_dir(shard)) / "data.mdb"
                if data.stat().st_size > used:
                    os.truncate(data, used)  # pages past last_pgno are unused by any commit
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
