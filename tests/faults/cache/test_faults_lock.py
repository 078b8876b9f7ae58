"""Fault matrix of the cache build (issue 11), the write lock: its rules at library level
(conflicts, stale holders taken over, other hosts, other pid namespaces, parts), and concurrent
writers as real processes (a second voxelize fails at once naming the first, a killed writer's
lock is taken over, info/verify name a running writer)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
from click.testing import CliRunner

from spikeprep.cache.lock import acquire_write_lock
from spikeprep.cache.lock_holders import LOCK_DIR, LockHolder, live_holders, lock_files, process_start_ticks
from spikeprep.cli import main
from spikeprep.errors import LockError
from tests.support.cache_faults import (
    ROOT,
    dead_pid,
    hold_lock,
    invoke,
    records,
    spikeprep_cli,
    verifies,
    voxelize_args,
    write_lock_file,
)
from tests.support.fault_injection import run_killed, start_paused

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


def test_lock_from_another_pid_namespace_is_not_taken_for_dead(tmp_path):
    """A container with the same host name cannot see the holder's pid: it must not take over."""
    cache = tmp_path / "cache"
    write_lock_file(cache, "exclusive.lock", pid=dead_pid(), pid_ns="pid:[1]")
    with pytest.raises(LockError, match="another host or container.*--break-lock"):
        acquire_write_lock(cache)
    with acquire_write_lock(cache, break_lock=True) as lock:
        assert [h.pid_ns for h in lock.broken] == ["pid:[1]"]


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


# -- 4: concurrent writers (real processes) --------------------------------------------------------

def test_second_voxelize_fails_at_once_naming_the_first_which_finishes(dataset, tmp_path):
    data, reference = dataset
    cache, go = tmp_path / "cache", tmp_path / "go"
    first = start_paused(1, voxelize_args(data, cache, "--workers", 2), go_file=go, cwd=ROOT)
    try:
        for extra in ([], ["--force"], ["--S", 8, "--force"]):
            t0 = time.monotonic()
            second = spikeprep_cli(*voxelize_args(data, cache), *extra)
            assert second.returncode == 1, second.stderr
            assert time.monotonic() - t0 < 60  # no waiting for the lock (process start-up only)
            assert "being written by another process" in second.stderr
            assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
            assert "mode exclusive" in second.stderr and "Traceback" not in second.stderr
        go.touch()
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        first.kill()
    assert records(cache) == records(reference)  # nothing mixed in
    assert lock_files(cache) == [] and verifies(cache, data)


def test_killed_writer_leaves_a_lock_the_next_run_takes_over(dataset, tmp_path):
    data, reference = dataset
    cache = tmp_path / "cache"
    killed = run_killed("frame", 2, voxelize_args(data, cache), cwd=ROOT)
    assert killed.returncode == -9
    [stale] = lock_files(cache)
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0, output
    assert "took over a stale write lock" in output and f"pid {stale.holder.pid}" in output
    assert lock_files(cache) == [] and records(cache) == records(reference) and verifies(cache, data)


def test_lock_from_another_host_needs_break_lock(copy):
    data, cache = copy
    write_lock_file(cache, "exclusive.lock", host="gpu-node-17", pid=31337)
    code, output = invoke(*voxelize_args(data, cache, "--force"))
    assert code == 1
    assert "pid 31337 on host gpu-node-17" in output and "--break-lock" in output
    assert (cache / "manifest.json").exists() and verifies(cache, data)  # nothing deleted
    code, output = invoke(*voxelize_args(data, cache, "--force", "--break-lock"))
    assert code == 0, output
    assert "broke the write lock of pid 31337 on host gpu-node-17" in " ".join(output.split())
    assert lock_files(cache) == [] and verifies(cache, data)


def test_running_part_keeps_a_full_build_out(copy):
    data, cache = copy
    part = hold_lock(cache, part=(0, 2))
    try:
        code, output = invoke(*voxelize_args(data, cache, "--force"))
        assert code == 1 and f"pid {part.pid}" in output and "mode part 0/2" in output
        assert verifies(cache, data)
    finally:
        part.kill()
        part.wait()


def test_info_and_verify_name_a_running_writer(copy, tmp_path):
    data, cache = copy
    writer = hold_lock(cache, part=(1, 2))
    try:
        code, output = invoke("info", cache)
        assert code == 0 and "a voxelize run is writing this cache now" in output
        assert f"pid {writer.pid} on host {socket.gethostname()}, mode part 1/2" in output
        result = CliRunner().invoke(main, ["verify", str(cache), "--json"])
        assert result.exit_code == 0, result.output  # the cache itself is fine: a note, not a problem
        notes = json.loads(result.stdout)["notes"]
        assert len(notes) == 1 and f"pid {writer.pid}" in notes[0]
        assert "writing this cache now" in result.stderr
    finally:
        writer.kill()
        writer.wait()
    assert "writing this cache now" not in invoke("info", cache)[1]  # a dead holder is no writer
    first_build = tmp_path / "new"
    first_build.mkdir()
    writer = hold_lock(first_build)
    try:
        code, output = invoke("info", first_build)
        assert code == 1 and "cache is being built" in output and f"pid {writer.pid}" in output
        assert "wait for that voxelize run to finish" in output
    finally:
        writer.kill()
        writer.wait()
