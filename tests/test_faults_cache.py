"""Fault matrix of the cache build (issue 11): concurrent writers and the write lock, ``--force``
on folders that are not ours, duplicate sequence names, sources changed since the build, and
signals to ``voxelize --workers N``. Each case asserts the exit code, the message, the files that
survive and that the cache verifies afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fault_injection import run_killed, start_paused

import spikeprep
import spikeprep.errors
from spikeprep.cache.lock import (LOCK_DIR, LockHolder, acquire_write_lock, live_holders,
                                  lock_files, process_start_ticks)
from spikeprep.cache.reader import acquire_env, release_env
from spikeprep.cli import main
from spikeprep.errors import LockError

ROOT = Path(__file__).resolve().parents[1]
S = 4


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


# -- datasets and the CLI -------------------------------------------------------------------------

def spikeprep_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """A real ``spikeprep`` process (this worktree's code)."""
    return subprocess.run([sys.executable, "-m", "spikeprep", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, **kwargs)


def invoke(*args):
    """``spikeprep ARGS`` in this process (CliRunner): (exit code, stdout + stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def voxelize_args(data, cache, *extra):
    return ["voxelize", data, cache, "--S", S, "--val", "seq001", *extra]


def verifies(cache: Path, data: Path | None = None) -> bool:
    code, output = invoke("verify", cache, *(["--data", data] if data else []))
    assert code in (0, 1), output
    return code == 0


def records(cache: Path) -> dict[str, bytes]:
    out = {}
    for shard in sorted(cache.glob("shard-*.lmdb")):
        env = acquire_env(shard)
        with env.begin() as txn:
            out.update({k.decode(): bytes(v) for k, v in txn.cursor()})
        release_env(shard)
    return out


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove a folder untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def set_offset(data: Path, offset: float) -> None:
    for config in data.glob("spike/*/config.yaml"):
        text = config.read_text()
        config.write_text(re.sub(r"(?m)^offset: .*$", f"offset: {offset}", text))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A simulated DATA_ROOT (2 sequences x 3 frames, 32x32, config.yaml + sync.json) and its cache."""
    root = tmp_path_factory.mktemp("faults")
    data = root / "data"
    assert invoke("simulate", data, "--sequences", 2, "--frames", 3, "--height", 32, "--width", 32,
                  "--spikes-per-frame", 20)[0] == 0
    assert invoke("build-sync", data)[0] == 0
    assert invoke(*voxelize_args(data, root / "cache"))[0] == 0
    return data, root / "cache"


@pytest.fixture
def copy(dataset, tmp_path):
    data, cache = dataset
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(cache, tmp_path / "cache")
    return tmp_path / "data", tmp_path / "cache"


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


# -- 1: --force deletes only what spikeprep wrote --------------------------------------------------

def test_force_refuses_a_folder_with_someone_elses_manifest(dataset, tmp_path):
    data, _ = dataset
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\\\documentclass{book}")
    (thesis / "manifest.json").write_text(json.dumps({"name": "my-thesis", "version": 3}))
    (thesis / "figures").mkdir()
    (thesis / "figures" / "plot.pdf").write_bytes(b"%PDF")
    before = tree(thesis)
    code, output = invoke(*voxelize_args(data, thesis, "--force"))
    assert code == 1
    assert "not a spikeprep cache" in output and "figures" in output and "thesis.tex" in output
    assert "nothing was deleted" in output
    assert tree(thesis) == before and sorted(p.name for p in thesis.iterdir()) == ["figures", "manifest.json",
                                                                                 "thesis.tex"]
    code, output = invoke(*voxelize_args(data, thesis))  # without --force: refused as well
    assert code == 1 and "not a spikeprep cache" in output and tree(thesis) == before


def test_force_refuses_a_cache_holding_other_files(copy):
    data, cache = copy
    (cache / "notes.txt").write_text("mine")
    (cache / "shard-00000.lmdb" / "backup.mdb").write_bytes(b"x")
    before = tree(cache)
    code, output = invoke(*voxelize_args(data, cache, "--force"))
    assert code == 1
    assert "entries spikeprep did not write" in output
    assert "notes.txt" in output and "shard-00000.lmdb/backup.mdb" in output
    assert tree(cache) == before
    (cache / "notes.txt").unlink()
    (cache / "shard-00000.lmdb" / "backup.mdb").unlink()
    assert verifies(cache, data)


@pytest.mark.parametrize("where", ["data_root", "parent", "symlink"])
def test_cache_equal_to_or_above_data_root_is_refused(copy, where):
    data, _ = copy
    (data / "manifest.json").write_text(json.dumps({"format": "spikeprep.cache"}))
    if where == "data_root":
        cache = data
    elif where == "parent":
        cache = data.parent
    else:
        cache = data.parent / "link"
        cache.symlink_to(data, target_is_directory=True)
    before = tree(data)
    code, output = invoke(*voxelize_args(data, cache, "--force"))
    assert code == 1 and "CACHE would hold the sources" in output, output
    assert tree(data) == before  # the .dat recordings, pngs, sync.json all still there
    assert sorted(p.name for p in data.glob("spike/*/*.dat")) == ["spikes.dat", "spikes.dat"]
    assert not (data / LOCK_DIR).exists()


def test_cache_that_is_a_file_is_refused(dataset, tmp_path):
    data, _ = dataset
    target = tmp_path / "cache"
    target.write_text("not a folder")
    for extra in ([], ["--force"]):
        code, output = invoke(*voxelize_args(data, target, *extra))
        assert code == 2 and "is a file" in output  # the command line refuses it (usage error)
        with pytest.raises(spikeprep.errors.CacheError, match="CACHE is not a directory"):
            spikeprep.voxelize_dataset(data, target, S=S, force=bool(extra), progress=False)
        assert target.read_text() == "not a folder"


def test_cache_inside_data_root_is_allowed_and_not_a_sequence(dataset, tmp_path):
    source, reference = dataset
    data = tmp_path / "data"
    shutil.copytree(source, data)
    for cache in (data / "cache", data / "spike" / "cache", data / "blur" / "cache"):
        assert invoke(*voxelize_args(data, cache))[0] == 0
        code, output = invoke(*voxelize_args(data, cache, "--force"))
        assert code == 0, output
        assert records(cache) == records(reference)
        assert json.loads((cache / "manifest.json").read_text())["sequences"].keys() == {"seq000", "seq001"}
        code, output = invoke("build-sync", data, "--force")  # the cache is no sequence either
        assert code == 0 and "cache" not in output.replace(str(data), ""), output
        assert verifies(cache, data)


def test_force_rebuilds_an_interrupted_first_build(dataset, tmp_path):
    data, reference = dataset
    cache = tmp_path / "cache"
    assert run_killed("journal", 1, voxelize_args(data, cache, "--S", 8), cwd=ROOT).returncode == -9
    assert not (cache / "manifest.json").exists()  # only the journal says it is ours
    code, output = invoke(*voxelize_args(data, cache, "--force"))
    assert code == 0, output
    assert records(cache) == records(reference) and verifies(cache, data)


# -- 2: two sync.json with the same "sequence" -----------------------------------------------------

def test_duplicate_sequence_names_are_an_error_naming_both_files(copy, tmp_path):
    data, _ = copy
    (data / "spike" / "seq002").mkdir()
    shutil.copy(data / "spike" / "seq000" / "sync.json", data / "spike" / "seq002" / "sync.json")
    code, output = invoke(*voxelize_args(data, tmp_path / "new"))
    assert code == 1
    text = " ".join(output.split())
    assert "two sync.json files name the same sequence" in text
    assert str(data / "spike" / "seq000" / "sync.json") in text
    assert str(data / "spike" / "seq002" / "sync.json") in text
    assert not (tmp_path / "new").exists()  # nothing written


# -- 3: sources changed since the build -------------------------------------------------------------

def test_changed_offset_is_rebuilt_never_already_done(copy, tmp_path):
    """The issue's case: change offset in config.yaml, build-sync --force, voxelize again."""
    data, cache = copy
    set_offset(data, 0.0002)  # 4 spike frames later
    assert invoke("build-sync", data, "--force")[0] == 0
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0, output
    assert "already done" in output and "(0 already done, 2 rebuilt (sources changed))" in output
    assert "spike/seq000/sync.json" in output
    assert verifies(cache, data)
    assert invoke(*voxelize_args(data, tmp_path / "fresh"))[0] == 0
    assert records(cache) == records(tmp_path / "fresh")
    code, output = invoke(*voxelize_args(data, cache))  # nothing changed since: done, no rebuild
    assert code == 0 and "(2 already done)" in output


def test_changed_png_rebuilds_only_its_sequence(copy):
    data, cache = copy
    png = data / "blur" / "seq001" / "000002.png"
    other = (data / "blur" / "seq000" / "000000.png").read_bytes()
    png.write_bytes(other)
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0, output
    assert "(1 already done, 1 rebuilt (sources changed))" in output and "blur/seq001/000002.png" in output
    assert verifies(cache, data)


def test_changed_dat_rebuilds_and_a_missing_png_is_a_clear_error_then_resumes(copy):
    data, cache = copy
    dat = data / "spike" / "seq000" / "spikes.dat"
    raw = bytearray(dat.read_bytes())
    raw[-1] ^= 0xFF  # a spike frame's last byte: same size, other spikes
    dat.write_bytes(bytes(raw))
    png = data / "blur" / "seq001" / "000001.png"
    saved = png.read_bytes()
    png.unlink()
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 1 and "RGB frame not found" in output and "blur/seq001/000001.png" in output
    assert "rebuilding: seq000 (spike/seq000/spikes.dat); seq001 (blur/seq001/000001.png)" in output
    assert not (cache / "manifest.json").exists()  # stale: no longer claims to be finished
    png.write_bytes(saved)
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0 and "(1 already done)" in output, output  # seq000 was rebuilt before the error
    assert verifies(cache, data)


def test_changed_sources_whose_plan_moved_are_refused_naming_them(copy):
    data, cache = copy
    assert invoke(*voxelize_args(data, cache, "--shard-size", "70K", "--force"))[0] == 0  # ~31K each: one shard
    sync_path = data / "spike" / "seq000" / "sync.json"
    sync = json.loads(sync_path.read_text())
    for kind in ("blur", "sharp"):
        shutil.copy(data / kind / "seq000" / "000002.png", data / kind / "seq000" / "000003.png")
    sync["frames"].append({**sync["frames"][-1], "blur": "blur/seq000/000003.png",
                           "sharp": "sharp/seq000/000003.png", "spike_begin": 50, "spike_end": 60})
    sync_path.write_text(json.dumps(sync))  # seq000 grows to ~42K: seq001 moves to shard 1
    before = tree(cache)
    code, output = invoke(*voxelize_args(data, cache, "--shard-size", "70K"))
    assert code == 1
    text = " ".join(output.split())
    assert "sources changed since they were cached: seq000 (blur/seq000/000003.png" in text
    assert "shard plan moved seq001 (shard 0 -> 1)" in text and "pass --force" in text
    assert tree(cache) == before and verifies(cache)  # the old cache is intact (and self-consistent)
    code, output = invoke(*voxelize_args(data, cache, "--shard-size", "70K", "--force"))
    assert code == 0 and verifies(cache, data)


def test_crash_during_a_rebuild_then_sources_reverted_is_not_already_done(copy, dataset):
    data, cache = copy
    _, reference = dataset
    original = (data / "spike" / "seq000" / "sync.json").read_bytes()
    set_offset(data, 0.0002)
    assert invoke("build-sync", data, "--force")[0] == 0
    # the rebuild of seq000 commits, then the process dies before journaling it
    assert run_killed("commit", 1, voxelize_args(data, cache), cwd=ROOT).returncode == -9
    assert not (cache / "manifest.json").exists()  # an unfinished cache while records change
    set_offset(data, 0.0)
    assert invoke("build-sync", data, "--force")[0] == 0
    assert (data / "spike" / "seq000" / "sync.json").read_bytes() == original
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0, output
    assert records(cache) == records(reference) and verifies(cache, data)


def test_cheap_precheck_skips_unchanged_files_and_rehashes_the_rest(copy, monkeypatch):
    from spikeprep import fingerprint
    from spikeprep.cache import staleness
    from spikeprep.cache.journal import Journal, done_sequences
    from spikeprep.cache.plan import plan_build

    data, cache = copy
    past = time.time_ns() - 3600 * 10**9
    for path in data.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(past, past))
    code, _ = invoke(*voxelize_args(data, cache, "--force"))
    assert code == 0
    plan = plan_build(data, S=S, val=("seq001",), shard_size=4 << 30)
    done = done_sequences(Journal(cache).read())
    assert all(e["source_stats"] for e in done.values())
    hashed = []
    real = fingerprint.hash_file
    monkeypatch.setattr(fingerprint, "hash_file", lambda path, *a: hashed.append(Path(path).name) or real(path, *a))
    assert staleness.stale_sequences(data, plan.sequences, done) == {}
    assert hashed == []  # size, mtime and inode unchanged: nothing read
    png = data / "blur" / "seq000" / "000001.png"
    replacement = png.with_suffix(".new")
    shutil.copy(png, replacement)
    os.replace(replacement, png)  # same bytes, new inode
    os.utime(png, ns=(past, past))
    assert staleness.stale_sequences(data, plan.sequences, done) == {} and hashed == ["000001.png"]
    png.write_bytes(png.read_bytes()[:-1] + b"\0")  # same size, other content
    os.utime(png, ns=(past, past))
    assert staleness.stale_sequences(data, plan.sequences, done) == {"seq000": ["blur/seq000/000001.png"]}


def test_caches_without_source_stats_still_detect_changes(copy):
    data, cache = copy
    journal = cache / "progress.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    for line in lines:
        line.pop("source_stats", None)
        line.pop("stats_taken_ns", None)
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert invoke(*voxelize_args(data, cache))[1].count("already done") == 1
    png = data / "sharp" / "seq000" / "000000.png"
    png.write_bytes((data / "sharp" / "seq001" / "000001.png").read_bytes())
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0 and "1 rebuilt" in output and verifies(cache, data)


# -- no orphans: signals to voxelize --workers N ----------------------------------------------------

def descendants(pid: int) -> set[int]:
    """Pids of every living process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def running(pids) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGKILL, False),
                                        (signal.SIGTERM, True)])
def test_signal_to_voxelize_with_workers_leaves_no_orphans(dataset, tmp_path, sig, group):
    """SIGTERM / SIGKILL to the build process, or SIGTERM to its whole process group (what
    schedulers send): no worker runs 10 s later, and the cache resumes and verifies."""
    data, reference = dataset
    cache = tmp_path / "cache"
    proc = start_paused(2, voxelize_args(data, cache, "--workers", 3), cwd=ROOT, start_new_session=group)
    try:
        workers = descendants(proc.pid)
        assert len(workers) >= 3, workers  # the pool (and multiprocessing's resource tracker)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    deadline = time.monotonic() + 10
    while running(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(workers) == set()
    if sig == signal.SIGTERM:
        assert proc.returncode in ((128 + signal.SIGTERM, 1) if group else (128 + signal.SIGTERM,)), err
        assert "Traceback" not in err and lock_files(cache) == []
        assert ("error: voxelize stopped by SIGTERM" in err and "re-run the same command to resume" in err
                or group and "error: a voxelize worker process died" in err), err
    else:
        assert proc.returncode == -signal.SIGKILL and len(lock_files(cache)) == 1
    code, output = invoke(*voxelize_args(data, cache))  # resumes (taking over a SIGKILL's lock)
    assert code == 0, output
    assert records(cache) == records(reference) and verifies(cache, data)


def test_a_worker_killed_alone_is_an_error_not_a_traceback(dataset, tmp_path):
    data, reference = dataset
    cache = tmp_path / "cache"
    proc = start_paused(1, voxelize_args(data, cache, "--workers", 2), go_file=tmp_path / "go", cwd=ROOT)
    try:
        pool = [pid for pid in descendants(proc.pid)
                if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(pool[0], signal.SIGKILL)
        time.sleep(0.5)
        (tmp_path / "go").touch()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "Traceback" not in err
    assert "error: a voxelize worker process died" in err and "re-run the same command" in err
    assert lock_files(cache) == []
    code, output = invoke(*voxelize_args(data, cache))
    assert code == 0 and records(cache) == records(reference) and verifies(cache, data)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_become_an_error_with_exit_code_128_plus_signal(sig):
    from spikeprep.cache.interrupt import stop_on_signals
    from spikeprep.errors import BuildInterrupted

    before = signal.getsignal(sig)
    with pytest.raises(BuildInterrupted) as err:
        with stop_on_signals():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # interrupted by the handler
    assert err.value.exit_code == 128 + sig
    assert f"stopped by {signal.Signals(sig).name}" in str(err.value) and "resume" in str(err.value)
    assert signal.getsignal(sig) is before  # restored


def test_read_only_cache_parent_is_a_clear_error(dataset, tmp_path):
    """Root ignores chmod: a read-only bind mount in a private mount namespace (skipped where
    unshare is not permitted)."""
    data, _ = dataset
    parent = tmp_path / "ro"
    parent.mkdir()
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -m is not permitted here")
    script = (f"mount --bind {parent} {parent} && mount -o remount,bind,ro {parent} && "
              f"{sys.executable} -m spikeprep voxelize {data} {parent / 'cache'} --S {S}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert "error: cannot create the write lock of CACHE" in proc.stderr
    assert "Read-only file system" in proc.stderr and "Traceback" not in proc.stderr
    assert list(parent.iterdir()) == []
