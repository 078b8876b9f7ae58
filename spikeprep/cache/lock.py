"""The write lock of a cache: lock files under ``CACHE/.locks/``, so two writers never mix.

Modes:

* ``exclusive``: a whole build, ``--force``, the completion of a partitioned build. Conflicts
  with every other holder. File ``CACHE/.locks/exclusive.lock``.
* ``part I/N``: one process of ``voxelize --part I/N``. Different parts of the same N coexist;
  the same part twice, a part of another N, or any part while an exclusive holder lives,
  conflict. File ``CACHE/.locks/part-I-of-N.lock``.

A lock file is created atomically (``O_CREAT | O_EXCL``) and holds JSON describing its holder
(`LockHolder`: pid, host, boot id, the process start time from ``/proc/PID/stat`` so a reused pid
is not mistaken for the holder, mode, part, when it started). Protocol: create the own file
first, then look at the others; two conflicting writers starting together therefore see each
other (both may fail, never both succeed). On one host the whole acquire runs under an
``flock`` of ``CACHE/.locks/mutex`` (released by the kernel if the process dies), so a stale
lock is taken over by exactly one process.

A holder on this host whose process is gone (or whose pid now names another process, or that
ran before the last reboot) is stale: its lock is taken over and `WriteLock.took_over` says so.
A holder on another host cannot be checked from here: the lock is reported and only
``break_lock=True`` (``voxelize --break-lock``) removes it. "This host" means the same host name
*and* the same pid namespace (containers sharing a host name and a filesystem cannot see each
other's pids, so they count as other hosts).

Shared filesystems: lock files need an atomic ``O_EXCL`` create (local filesystems, NFSv3 and
later, Lustre, GPFS/Spectrum Scale, CephFS); the ``flock`` mutex is best effort.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LockError
from .lock_holders import (
    _DO_NOT_DELETE,
    ACTIVE_NAME,
    LOCK_DIR,
    MUTEX_NAME,
    LockFile,
    LockHolder,
    _conflicts,
    _holder_of,
    _lock_name,
    lock_files,
)

# -- taking the lock ------------------------------------------------------------------------------

@dataclass
class WriteLock:
    """A held write lock (a context manager); `release` removes its file (idempotent).

    ``took_over``: stale holders (dead, this host) whose locks were removed to take this one;
    ``broken``: locks of other hosts removed because ``break_lock`` was given."""

    path: Path
    holder: LockHolder
    took_over: list[LockHolder] = field(default_factory=list)
    broken: list[LockHolder] = field(default_factory=list)
    released: bool = False
    #: descriptor of ``.locks/active``, flock'ed while the lock is held (None: no flock here)
    active_fd: int | None = None

    def notices(self) -> list[str]:
        """One line per lock taken over or broken, for the user."""
        return ([f"took over a stale write lock of a process that no longer runs ({h.describe()})"
                 for h in self.took_over] +
                [f"broke the write lock of {h.describe()} (--break-lock)" for h in self.broken])

    def check(self) -> None:
        """Before each commit: make sure this lock is still ours. Its file deleted (by hand) is
        written again; replaced by another writer's (a deleted lock let one in, e.g. on another
        host where ``flock`` does not reach) is a LockError, so this build stops before it
        writes over the other's files."""
        if self.released:
            return
        holder = _holder_of(self.path)
        if holder == self.holder:
            return
        if holder is None and not self.path.exists() and _create(self.path, self.holder):
            return
        raise LockError("the write lock of CACHE was taken from this build while it ran", path=self.path,
                        found=("another writer's lock: " + holder.describe()) if holder is not None
                        else "the lock file was deleted or damaged",
                        expected=f"this build's lock ({self.holder.describe()})",
                        fix="this build stopped before writing more (finished sequences are kept); "
                            f"{_DO_NOT_DELETE}; when the other writer has finished, run 'spikeprep "
                            "verify CACHE' and re-run (with --force if it was built with other parameters)")

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            if LockHolder.from_json(self.path.read_text(encoding="utf-8")) == self.holder:
                self.path.unlink()
        except (OSError, ValueError):
            pass  # already gone (broken by someone with --break-lock)
        finally:
            if self.active_fd is not None:
                os.close(self.active_fd)  # drops the flock
                self.active_fd = None

    def __enter__(self) -> "WriteLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class _Mutex:
    """``flock`` on ``CACHE/.locks/mutex`` for the few milliseconds of an acquire (best effort:
    filesystems without flock still get the O_EXCL protocol)."""

    def __init__(self, folder: Path) -> None:
        self.fd = os.open(folder / MUTEX_NAME, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # also drops the flock


def _create(path: Path, holder: LockHolder) -> bool:
    """Create ``path`` holding ``holder`` atomically; False when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(holder.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # disk full: leave no half-written lock behind
        path.unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    return True


def _unwritable(path: Path, exc: OSError) -> LockError:
    return LockError("cannot create the write lock of CACHE", path=path,
                     found=f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno, 'errno')} "
                           f"{exc.errno})",
                     expected="a CACHE directory this user can write (read-write, space left)",
                     fix="choose a writable CACHE, or fix the permissions, mount or free space")


def _conflict_error(cache: Path, me: LockHolder, holder: LockHolder | None, path: Path) -> LockError:
    if holder is None:
        return LockError("CACHE is locked by a writer whose lock file cannot be read", path=path,
                         found="an unreadable lock file", expected=f"no other writer for {me.mode_text}",
                         fix="wait a moment and retry; if no spikeprep process writes this cache, "
                             "pass --break-lock")
    remote = not holder.is_local()
    return LockError(
        "CACHE is being written by another process", path=cache,
        found=holder.describe() + (" (another host or container: cannot check whether it still runs)"
                                   if remote else ""),
        expected=f"no conflicting writer for mode {me.mode_text}",
        fix=("wait for it to finish, or make sure it no longer runs on that host and pass --break-lock "
             "(do not delete the lock file by hand)"
             if remote else f"wait for it to finish (or stop it), then re-run; {_DO_NOT_DELETE}"))


def _hold_active(folder: Path, part) -> int | None:
    """flock ``.locks/active`` (exclusive for a whole build, shared for a part) without waiting;
    its descriptor, None where the filesystem has no flock; LockError when another writer holds it."""
    try:
        fd = os.open(folder / ACTIVE_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _unwritable(folder / ACTIVE_NAME, exc) from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if part is None else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockError("CACHE is being written by another process whose lock file was deleted",
                        path=folder, found=f"a live writer holds {folder / ACTIVE_NAME} but no lock "
                        "file names it", expected="no other writer",
                        fix=f"wait for the other voxelize to finish (or stop it), then re-run; "
                            f"{_DO_NOT_DELETE}") from None
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return None  # best effort: the lock files still hold
        raise
    return fd


def acquire_write_lock(cache: str | os.PathLike, *, part: tuple[int, int] | None = None,
                       break_lock: bool = False) -> WriteLock:
    """Take the write lock of ``cache`` (created if missing) for a whole build (``part`` None)
    or for part ``(I, N)`` of a partitioned one; LockError naming the holder on a conflict.

    Stale locks of dead processes on this host are taken over; with ``break_lock`` the locks of
    conflicting holders on other hosts (and unreadable lock files) are removed too. Live holders
    on this host are never broken.
    """
    if part is not None and not (0 <= part[0] < part[1]):
        raise ValueError(f"bad part {part!r}: need 0 <= I < N")
    cache = Path(cache)
    folder = cache / LOCK_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        mutex = _Mutex(folder)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    me = LockHolder.me(part)
    lock = WriteLock(folder / _lock_name(part), me)
    with mutex:
        for other in lock_files(cache):
            if other.path != lock.path and not _conflicts(part, other.holder.part if other.holder else None):
                continue
            _clear(cache, me, other, lock, break_lock)
        if not _create(lock.path, me):  # someone else (another host) was quicker
            _clear(cache, me, LockFile(lock.path, _holder_of(lock.path)), lock, break_lock)
            if not _create(lock.path, me):
                raise _conflict_error(cache, me, _holder_of(lock.path), lock.path)
        # O_EXCL protocol across hosts: having created ours, a conflicting lock now means a race
        for other in lock_files(cache):
            if other.path != lock.path and other.holder != me and \
                    _conflicts(part, other.holder.part if other.holder else None):
                lock.release()
                raise _conflict_error(cache, me, other.holder, other.path)
        try:  # a writer whose lock file was deleted still holds the flock
            lock.active_fd = _hold_active(folder, part)
        except BaseException:
            lock.release()
            raise
    return lock


def _clear(cache: Path, me: LockHolder, other: LockFile, lock: WriteLock, break_lock: bool) -> None:
    """Remove a conflicting lock file if its holder is dead here (or ``break_lock`` and it is not
    provably alive here); else raise LockError naming the holder."""
    holder = other.holder
    alive = None if holder is None else holder.is_alive()
    if alive is False:
        lock.took_over.append(holder)
    elif break_lock and alive is None:
        if holder is not None:
            lock.broken.append(holder)
    else:
        raise _conflict_error(cache, me, holder, other.path)
    try:
        other.path.unlink()
    except FileNotFoundError:
        pass
