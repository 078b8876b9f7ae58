"""Fault matrix of the cache build (issue 11): concurrent writers and the write lock, ``--force``
on folders that are not ours, duplicate sequence names, sources changed since the build, and
signals to ``voxelize --workers N``. Each case asserts the exit code, the message, the files that
survive and that the cache verifies afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spikeprep.cache.lock import (LOCK_DIR, LockHolder, acquire_write_lock, live_holders,
                                  lock_files, process_start_ticks)
from spikeprep.errors import LockError

ROOT = Path(__file__).resolve().parents[1]


# -- helpers --------------------------------------------------------------------------------------

def hold_lock(cache: Path, part=None) -> subprocess.Popen:
    """A real other process that takes the write lock, prints 'held', then sleeps until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from spikeprep.cache.lock import acquire_write_lock
        lock = acquire_write_lock({str(cache)!r}, part={part!r})
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def write_lock_file(cache: Path, name: str, **fields) -> Path:
    """A lock file as another holder would have left it."""
    holder = {"pid": 4242, "host": socket.gethostname(), "mode": "exclusive", "part": None,
              "boot_id": "", "start_ticks": None, "started": "2026-01-01T00:00:00Z", **fields}
    path = cache / LOCK_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- the write lock (library level) ---------------------------------------------------------------

def test_lock_conflict_names_the_live_holder_of_another_process(tmp_path):
    holder = hold_lock(tmp_path / "cache")
    try:
        t0 = time.monotonic()
        with pytest.raises(LockError) as err:
            acquire_write_lock(tmp_path / "cache")
        assert time.monotonic() - t0 < 5  # fails at once, never waits
        text = str(err.value)
        assert f"pid {holder.pid}" in text and socket.gethostname() in text
        assert "mode exclusive" in text and "started 20" in text
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            acquire_write_lock(tmp_path / "cache", part=(0, 2))
        assert [h.pid for h in live_holders(tmp_path / "cache")] == [holder.pid]
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_holder_is_taken_over_and_released(tmp_path):
    cache = tmp_path / "cache"
    holder = hold_lock(cache)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    [stale] = lock_files(cache)  # SIGKILL leaves the file behind
    assert stale.holder.pid == holder.pid and stale.holder.is_alive() is False
    with acquire_write_lock(cache) as lock:
        assert [h.pid for h in lock.took_over] == [holder.pid]
        assert "took over a stale write lock" in lock.notices()[0] and str(holder.pid) in lock.notices()[0]
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
        assert json.loads(lock.path.read_text())["start_ticks"] == process_start_ticks(os.getpid())
    assert lock_files(cache) == []  # released on exit


def test_lock_released_on_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with acquire_write_lock(tmp_path / "cache"):
            raise RuntimeError("boom")
    assert lock_files(tmp_path / "cache") == []
    acquire_write_lock(tmp_path / "cache").release()


@pytest.mark.parametrize("fields", [
    {"pid": None},                                  # filled with a pid that has exited
    {"pid": 1, "start_ticks": -5},                  # pid reused by another process (init)
    {"pid": 1, "boot_id": "an-earlier-boot"},       # held before a reboot
])
def test_stale_local_locks_are_taken_over(tmp_path, fields):
    fields = {**fields, "pid": fields["pid"] or dead_pid()}
    write_lock_file(tmp_path / "cache", "exclusive.lock", **fields)
    with acquire_write_lock(tmp_path / "cache") as lock:
        assert [h.pid for h in lock.took_over] == [fields["pid"]]


def test_lock_held_on_another_host_needs_break_lock(tmp_path):
    cache = tmp_path / "cache"
    path = write_lock_file(cache, "exclusive.lock", host="node-elsewhere", pid=os.getpid())
    with pytest.raises(LockError) as err:
        acquire_write_lock(cache)
    text = str(err.value)
    assert "node-elsewhere" in text and f"pid {os.getpid()}" in text and "--break-lock" in text
    assert path.exists()
    with acquire_write_lock(cache, break_lock=True) as lock:
        assert [h.host for h in lock.broken] == ["node-elsewhere"]
        assert "--break-lock" in lock.notices()[0]
        assert json.loads(path.read_text())["host"] == socket.gethostname()


def test_break_lock_never_breaks_a_live_local_holder(tmp_path):
    holder = hold_lock(tmp_path / "cache")
    try:
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            acquire_write_lock(tmp_path / "cache", break_lock=True)
    finally:
        holder.kill()
        holder.wait()


def test_parts_coexist_but_not_twice_nor_with_exclusive(tmp_path):
    cache = tmp_path / "cache"
    part0 = hold_lock(cache, part=(0, 3))
    try:
        with acquire_write_lock(cache, part=(1, 3)), acquire_write_lock(cache, part=(2, 3)):
            assert sorted(h.part for h in live_holders(cache)) == [(0, 3), (1, 3), (2, 3)]
        with pytest.raises(LockError, match=f"pid {part0.pid}.*mode part 0/3"):
            acquire_write_lock(cache, part=(0, 3))  # the same part twice
        with pytest.raises(LockError, match="mode part 0/3"):
            acquire_write_lock(cache, part=(1, 2))  # parts of another partition
        with pytest.raises(LockError, match="mode part 0/3"):
            acquire_write_lock(cache)               # completion / --force / a full build
    finally:
        part0.kill()
        part0.wait()


def test_exclusive_keeps_parts_out(tmp_path):
    cache = tmp_path / "cache"
    with acquire_write_lock(cache):
        with pytest.raises(LockError, match="mode exclusive"):
            acquire_write_lock(cache, part=(0, 2))
    with acquire_write_lock(cache, part=(0, 2)):
        pass


def test_unreadable_lock_file_is_a_conflict_unless_broken(tmp_path):
    cache = tmp_path / "cache"
    (cache / LOCK_DIR).mkdir(parents=True)
    (cache / LOCK_DIR / "exclusive.lock").write_text("")
    with pytest.raises(LockError, match="cannot be read"):
        acquire_write_lock(cache)
    acquire_write_lock(cache, break_lock=True).release()


def test_lock_holder_round_trips():
    me = LockHolder.me((1, 4))
    assert LockHolder.from_json(me.to_json()) == me
    assert me.is_alive() is True and me.mode_text == "part 1/4"
