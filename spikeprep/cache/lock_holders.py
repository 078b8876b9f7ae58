"""Who holds a cache's write lock: the lock files under ``CACHE/.locks/`` and their names, the
holder each records (`LockHolder`: pid, host, boot id, process start time, mode, part), whether it
still runs on this host, and the note ``spikeprep info``/``verify`` print about live writers.
Taking and releasing the lock: `spikeprep.cache.lock`."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR = ".locks"
EXCLUSIVE_NAME = "exclusive.lock"
MUTEX_NAME = "mutex"
#: Held with ``flock`` by every writer for as long as it writes (exclusive: LOCK_EX, parts:
#: LOCK_SH): the kernel's record of who writes, which deleting a lock file does not defeat.
ACTIVE_NAME = "active"
_DO_NOT_DELETE = ("do not delete lock files under CACHE/.locks: spikeprep takes over the lock of a "
                  "process that no longer runs by itself")
_PART_RE = re.compile(r"part-(\d+)-of-(\d+)\.lock")


# -- who holds a lock ---------------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def boot_id() -> str:
    """This boot's id (Linux), '' where unknown: pids and start times are only unique within one."""
    return _read("/proc/sys/kernel/random/boot_id") or ""


def process_start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22);
    None when the process does not exist or /proc is not there."""
    stat = _read(f"/proc/{int(pid)}/stat")
    if not stat:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def pid_namespace() -> str:
    """This process's pid namespace (``pid:[4026531836]``), '' where unknown."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock file. ``part``: ``(I, N)`` for mode ``part``, else None;
    ``start_ticks``: the holder's process start time (clock ticks since boot; None off Linux);
    ``started``: when it took the lock (UTC, ISO 8601)."""

    pid: int
    host: str
    mode: str
    part: tuple[int, int] | None = None
    boot_id: str = ""
    start_ticks: int | None = None
    started: str = ""
    pid_ns: str = ""

    @classmethod
    def me(cls, part: tuple[int, int] | None) -> "LockHolder":
        pid = os.getpid()
        return cls(pid, socket.gethostname(), "exclusive" if part is None else "part",
                   None if part is None else (int(part[0]), int(part[1])), boot_id(),
                   process_start_ticks(pid), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   pid_namespace())

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "mode": self.mode,
                           "part": None if self.part is None else list(self.part),
                           "boot_id": self.boot_id, "start_ticks": self.start_ticks,
                           "started": self.started, "pid_ns": self.pid_ns}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LockHolder":
        """Parse a lock file's content; ValueError when it is not one of ours."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("pid"), int) or \
                raw.get("mode") not in ("exclusive", "part"):
            raise ValueError("not a spikeprep lock")
        part = raw.get("part")
        return cls(raw["pid"], str(raw.get("host", "")), raw["mode"],
                   None if part is None else (int(part[0]), int(part[1])),
                   str(raw.get("boot_id", "")), raw.get("start_ticks"), str(raw.get("started", "")),
                   str(raw.get("pid_ns", "")))

    @property
    def mode_text(self) -> str:
        return "exclusive" if self.part is None else f"part {self.part[0]}/{self.part[1]}"

    def describe(self) -> str:
        """``pid 123 on host node7, mode part 0/4, started 2026-11-29T17:20:00Z``."""
        return (f"pid {self.pid} on host {self.host}, mode {self.mode_text}, "
                f"started {self.started or 'at an unknown time'}")

    def is_local(self) -> bool:
        """Same host name and (where both are known) the same pid namespace: its pid is checkable."""
        if self.host != socket.gethostname():
            return False
        mine = pid_namespace()
        return not (self.pid_ns and mine and self.pid_ns != mine)

    def is_alive(self) -> bool | None:
        """True/False for a holder on this host; None (cannot tell) for another host's."""
        if not self.is_local():
            return None
        mine = boot_id()
        if self.boot_id and mine and self.boot_id != mine:
            return False  # held before a reboot
        if not _pid_exists(self.pid):
            return False
        ticks = process_start_ticks(self.pid)
        if self.start_ticks is not None and ticks is not None and ticks != self.start_ticks:
            return False  # the pid was reused by another process
        return True


def _conflicts(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    """Whether holders of parts ``a`` and ``b`` (None: exclusive) may not write at once."""
    if a is None or b is None:
        return True
    return a == b or a[1] != b[1]


def _lock_name(part: tuple[int, int] | None) -> str:
    return EXCLUSIVE_NAME if part is None else f"part-{part[0]}-of-{part[1]}.lock"


@dataclass(frozen=True)
class LockFile:
    """One lock file found in ``CACHE/.locks``: its path and holder (None: unreadable)."""

    path: Path
    holder: LockHolder | None


def lock_files(cache: str | os.PathLike) -> list[LockFile]:
    """Every lock file in ``CACHE/.locks`` (sorted by name), with its parsed holder."""
    folder = Path(cache) / LOCK_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.name != EXCLUSIVE_NAME and not _PART_RE.fullmatch(path.name):
            continue
        # None: being written right now, or damaged: treated as held by someone
        out.append(LockFile(path, _holder_of(path)))
    return out


def live_holders(cache: str | os.PathLike) -> list[LockHolder]:
    """Holders of ``CACHE``'s lock files that are alive or on another host (cannot tell)."""
    return [f.holder for f in lock_files(cache) if f.holder is not None and f.holder.is_alive() is not False]


def writers_note(cache: str | os.PathLike) -> str | None:
    """A line for readers (``info``, ``verify``) when a voxelize run holds CACHE's write lock
    now (alive, or on another host); None when nobody writes it."""
    holders = live_holders(cache)
    if not holders:
        return None
    who = "; ".join(h.describe() for h in holders)
    return (f"a voxelize run is writing this cache now ({who}): what is read here may change "
            "or be unfinished; run again when it has finished")


def _holder_of(path: Path) -> LockHolder | None:
    try:
        return LockHolder.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, IndexError, UnicodeDecodeError):
        return None
