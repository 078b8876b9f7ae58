"""Issue 25 ("Nothing silently wrong", second round), cache side: stale windows, a deleted lock
file, sequences without sync.json, lost shards, ``--part`` completion at large N, SIGTERM in the
kernel. Self-contained: the tiny dataset helper is defined here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import spikeprep.cache.build as build_module
from spikeprep.cli import main
from spikeprep.errors import BuildInterrupted, LockError
from spikeprep.inputs.dat import write_dat
from spikeprep.sync import FrameWindow, SyncFile, save_sync

ROOT = Path(__file__).resolve().parents[1]


def make_dataset(root: Path, sequences=("a", "b", "c"), frames: int = 3, hw=(16, 24), window: int = 8,
                 gap: int = 2, seed: int = 0) -> Path:
    """DATA_ROOT with blur/SEQ/*.png, spike/SEQ/spikes.dat and sync.json (no sharp frames)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    h, w = hw
    for seq in sequences:
        spikes = rng.random((gap + frames * (window + gap), h, w)) < 0.2
        write_dat(root / "spike" / seq / "spikes.dat", spikes, flipud=True)
        windows = []
        for i in range(frames):
            (root / "blur" / seq).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "blur" / seq / f"{i:06d}.png"),
                        rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            begin = gap + i * (window + gap)
            windows.append(FrameWindow(f"blur/{seq}/{i:06d}.png", None, f"spike/{seq}/spikes.dat",
                                       begin, begin + window))
        save_sync(root / "spike" / seq / "sync.json", SyncFile(seq, h, w, True, tuple(windows)))
    return root


def shift_windows(data: Path, seq: str, by: int = 1) -> None:
    """Rewrite SEQ's sync.json with every window moved by ``by`` spike frames (same frame count)."""
    path = data / "spike" / seq / "sync.json"
    raw = json.loads(path.read_text())
    for frame in raw["frames"]:
        frame["spike_begin"] += by
        frame["spike_end"] += by
    path.write_text(json.dumps(raw, indent=1) + "\n")


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def verify_data(cache: Path, data: Path) -> tuple[int, str]:
    return invoke("verify", cache, "--data", data)


# -- 3: windows and their fingerprint come from the same bytes --------------------------------------

def test_sync_rewritten_between_plan_and_build_is_rebuilt(tmp_path, monkeypatch):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    plan_build = build_module.plan_build

    def plan_then_rewrite(*args, **kwargs):
        plan = plan_build(*args, **kwargs)
        shift_windows(data, "b")  # a build-sync --force landing while the build runs
        return plan

    monkeypatch.setattr(build_module, "plan_build", plan_then_rewrite)
    build_module.voxelize_dataset(data, cache, progress=False)
    monkeypatch.setattr(build_module, "plan_build", plan_build)
    summary = build_module.voxelize_dataset(data, cache, progress=False)
    assert summary.rebuilt == ["b"] and summary.sequences_skipped == 2
    code, output = verify_data(cache, data)
    assert code == 0, output


# -- 12: a stop signal only sets a flag; the build stops at a frame boundary, lock released ---------

def test_stop_signal_handler_does_not_raise_inside_the_block():
    from spikeprep.cache.interrupt import stop_on_signals

    reached = []
    with pytest.raises(BuildInterrupted) as info:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)  # as if inside a numba kernel: must not raise here
            reached.append("after the signal")
    assert reached == ["after the signal"]
    assert "voxelize stopped by SIGTERM" in str(info.value) and info.value.exit_code == 128 + signal.SIGTERM


def test_sigterm_stops_cleanly_releases_the_lock_and_resumes(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=tuple(f"s{i:02d}" for i in range(12)), frames=6)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "spikeprep", "voxelize", str(data), str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    journal = cache / "progress.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the build finished before the signal")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "voxelize stopped by SIGTERM" in err and "Traceback" not in err and "SystemError" not in err
    assert not list((cache / ".locks").glob("*.lock"))
    code, output = invoke("voxelize", data, cache)
    assert code == 0 and "already done" in output, output
    assert verify_data(cache, data)[0] == 0


# -- 4: a deleted lock file does not let a second writer in ------------------------------------------

def test_deleted_lock_file_does_not_let_a_forced_second_writer_in(tmp_path):
    from spikeprep.cache.lock import acquire_write_lock

    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    assert invoke("voxelize", data, cache)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    held = acquire_write_lock(cache)  # a build that runs (its descriptors stay open)
    try:
        (cache / ".locks" / "exclusive.lock").unlink()  # "stale", as people do with git's index.lock
        code, output = invoke("voxelize", data, cache, "--S", "4", "--force")
        assert code != 0, output
        assert "error: " in output and "do not delete lock files" in output and "Traceback" not in output
        assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()
                if p.name != ".locks"} == {k: v for k, v in before.items() if k != ".locks"}
    finally:
        held.release()
    assert verify_data(cache, data)[0] == 0
    assert invoke("voxelize", data, cache, "--S", "4", "--force")[0] == 0  # free again afterwards


def test_holder_notices_its_lock_file_taken(tmp_path):
    from spikeprep.cache.lock import acquire_write_lock
    from spikeprep.cache.lock_holders import LockHolder

    cache = tmp_path / "cache"
    held = acquire_write_lock(cache)
    try:
        path = cache / ".locks" / "exclusive.lock"
        path.unlink()
        held.check()  # deleted: written again, the build goes on
        assert LockHolder.from_json(path.read_text()) == held.holder
        path.unlink()
        other = LockHolder(12345, "node7", "exclusive", started="2026-12-01T00:00:00Z")
        path.write_text(other.to_json() + "\n")  # another host's writer got in meanwhile
        with pytest.raises(LockError, match="taken from this build") as info:
            held.check()
        assert "node7" in str(info.value) and "do not delete lock files" in str(info.value)
    finally:
        held.release()


# -- 10: --part completion is linear in N, its refusal short ------------------------------------------

def test_completion_of_20000_parts_refuses_briefly_then_completes(tmp_path):
    from spikeprep.cache import parts as partitioned
    from spikeprep.cache.plan import plan_build
    from spikeprep.parts import Part

    count = 20000
    data, cache = make_dataset(tmp_path / "data", frames=2), tmp_path / "cache"
    owners = partitioned.owners(plan_build(data, shard_size=4 << 30), count)
    for index in sorted(set(owners)):
        code, output = invoke("voxelize", data, cache, "--part", f"{index}/{count}")
        assert code == 0, output
    code, output = invoke("voxelize", data, cache)
    assert code == 1 and f"{count - 3} of {count} parts not done" in output
    assert "missing: 19997 parts (3-19999): part 3/20000 missing" in output and len(output) < 1500, output
    # the empty parts finish (as 19,997 array tasks would): their journals hold a start line only
    split = partitioned.split(plan_build(data, shard_size=4 << 30), count)
    for index in range(3, count):
        part = Part(index, count)
        header = {"kind": "start", **partitioned.journal_header(split.part(part), part)}
        (cache / partitioned.part_journal_name(part)).write_text(
            json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")
    code, output = invoke("voxelize", data, cache)
    assert code == 0 and "3 sequences (3 already done)" in output, output
    assert not list(cache.glob("progress.part-*")) and verify_data(cache, data)[0] == 0


def test_part_ranges_summary():
    from spikeprep.cache.parts_completion import ranges

    assert ranges([3, 4, 5, 17, 40, 52, 53]) == "3-5, 17, 40, 52-53"
    assert ranges(range(0, 40, 2), limit=3) == "0, 2, 4 and 17 more ranges"


# -- 8: a lost shard is never trusted from the journal -----------------------------------------------

def test_deleted_shard_is_rebuilt_on_a_plain_rerun(tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    assert invoke("voxelize", data, cache, "--shard-size", "1K")[0] == 0  # one shard per sequence
    (cache / "shard-00001.lmdb" / "data.mdb").unlink()
    code, output = invoke("voxelize", data, cache, "--shard-size", "1K")
    assert code == 0 and "(2 already done" in output and "shard-00001.lmdb" in output, output
    assert verify_data(cache, data)[0] == 0


def test_truncated_shard_is_named_then_rebuilt_once_removed(tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    assert invoke("voxelize", data, cache, "--shard-size", "1K")[0] == 0
    shard = cache / "shard-00002.lmdb"
    with open(shard / "data.mdb", "r+b") as f:
        f.truncate(4096)
    code, output = invoke("voxelize", data, cache, "--shard-size", "1K")
    assert code == 1 and "error: " in output and "already done" not in output
    assert "shard-00002.lmdb" in output and "remove" in output and "Traceback" not in output
    shutil.rmtree(shard)
    code, output = invoke("voxelize", data, cache, "--shard-size", "1K")
    assert code == 0 and "(2 already done" in output, output
    assert verify_data(cache, data)[0] == 0


def test_part_completion_rebuilds_a_deleted_shard(tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    for part in ("0/2", "1/2"):
        assert invoke("voxelize", data, cache, "--part", part)[0] == 0
    shards = sorted(cache.glob("shard-*.lmdb"))
    (shards[-1] / "data.mdb").unlink()
    code, output = invoke("voxelize", data, cache)
    assert code == 0 and "3 already done" not in output and shards[-1].name in output, output
    assert verify_data(cache, data)[0] == 0


def test_parts_of_two_splits_advice_is_safe(tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    assert invoke("voxelize", data, cache, "--part", "0/2")[0] == 0
    assert invoke("voxelize", data, cache, "--part", "0/3")[0] == 0
    code, output = invoke("voxelize", data, cache)
    assert code == 1 and "parts of different splits" in output
    flat = " ".join(output.split())
    assert "remove the journals and shards" not in flat and "new CACHE" in flat and "--force" in flat


# -- 7: sequences without sync.json are named, never silently left out -----------------------------

def test_sequences_without_sync_json_are_an_error_or_skipped_by_name(tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    (data / "spike" / "b" / "sync.json").unlink()  # an import killed before build-sync
    (data / "spike" / "d").mkdir()  # a spike-only sequence: a .dat, no blur/, no sync.json
    shutil.copy(data / "spike" / "a" / "spikes.dat", data / "spike" / "d" / "spikes.dat")
    code, output = invoke("voxelize", data, cache)
    flat = " ".join(output.split())
    assert code == 1 and "error: 2 sequences of DATA_ROOT have no sync.json" in flat, output
    assert "found b, d" in flat and "spikeprep build-sync" in flat and "--skip-unsynced" in flat
    assert not cache.exists() or not (cache / "manifest.json").exists()
    code, output = invoke("voxelize", data, cache, "--skip-unsynced")
    flat = " ".join(output.split())
    assert code == 0 and "without 2 sequences that have no sync.json (--skip-unsynced): b, d" in flat, output
    code, output = verify_data(cache, data)
    assert code == 1 and "b" in output and "d" in output and "no sync.json" in " ".join(output.split()), output
    assert invoke("verify", cache)[0] == 0  # the cache itself is whole


def test_verify_data_names_a_synced_sequence_missing_from_the_cache(tmp_path):
    data, cache = make_dataset(tmp_path / "data", sequences=("a", "b")), tmp_path / "cache"
    assert invoke("voxelize", data, cache)[0] == 0
    make_dataset(data, sequences=("c",), seed=3)  # added (with its sync.json) after the build
    code, output = verify_data(cache, data)
    assert code == 1 and "not in the cache" in " ".join(output.split()) and "c" in output, output
