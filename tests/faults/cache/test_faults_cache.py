"""Fault matrix of the cache build (issue 11): ``--force`` on folders that are not ours, CACHE
placed at, above or inside DATA_ROOT, duplicate sequence names, sources changed since the build,
signals to ``voxelize --workers N`` and an unwritable CACHE. Each case asserts the exit code,
the message, the files that survive and that the cache verifies afterwards. (The write lock:
`test_faults_lock`.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import spikeprep
import spikeprep.errors
from spikeprep.cache.lock_holders import LOCK_DIR, lock_files
from tests.support.cache_faults import (
    ROOT,
    S,
    descendants,
    invoke,
    records,
    running,
    set_offset,
    tree,
    verifies,
    voxelize_args,
)
from tests.support.fault_injection import run_killed, start_paused

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
    from spikeprep.cache import staleness
    from spikeprep.cache.journal import Journal, done_sequences
    from spikeprep.cache.plan import plan_build
    from spikeprep.inputs import fingerprint

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

@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGKILL, False),
                                        (signal.SIGTERM, True)])
def test_signal_to_voxelize_with_workers_leaves_no_orphans(dataset, tmp_path, sig, group):
    """SIGTERM / SIGKILL to the build process, or SIGTERM to its whole process group (what
    schedulers send): no worker runs 10 s later, and the cache resumes and verifies."""
    data, reference = dataset
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    proc = start_paused(2, voxelize_args(data, cache, "--workers", 3), go_file=go, cwd=ROOT,
                        start_new_session=group)
    try:
        workers = descendants(proc.pid)
        assert len(workers) >= 3, workers  # the pool (and multiprocessing's resource tracker)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        time.sleep(0.2)
        go.touch()  # the handler only records a signal: the build stops at its next frame boundary
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
            os.kill(os.getpid(), sig)  # recorded by the handler (it only sets a flag)
            time.sleep(0.1)  # not interrupted: the stop comes at a frame boundary or the block's end
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
