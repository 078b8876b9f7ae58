"""Fault matrix, input side (issue 11): read-only DATA_ROOT or CACHE parent and a full disk
(private mount namespaces, skipped where not permitted), non-UTF-8 paths that must work, partial
files. Each case makes the fault happen and asserts the exit code, the message (file, found,
expected, fix), the files that survive and that nothing is left over."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from spikeprep.errors import OutputError
from spikeprep.inputs.files import write_text_atomic
from tests.support import cache_datasets
from tests.support.input_faults import assert_clear_error, leftovers, needs_mounts, run, small_dataset, sync_dataset
from tests.support.namespaces import read_only, run_in_namespace, spikeprep_command, tmpfs

# -- read-only folders and a full disk ----------------------------------------------------------

def test_atomic_text_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "sync.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        write_text_atomic(target, "new")
    assert "ENOSPC" in str(caught.value) and "free disk space" in str(caught.value)
    assert target.read_text() == "old" and leftovers(tmp_path) == []


@needs_mounts
def test_build_sync_into_read_only_data_root(tmp_path):
    data = sync_dataset(tmp_path / "data")
    done = run_in_namespace(f"{read_only(data)} && {spikeprep_command('build-sync', data)}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("error:"))
    assert "cannot write sync.json" in line and "EROFS" in line and "read-only" in line
    assert str(data / "spike/seqA/sync.json") in line
    assert leftovers(data) == [] and not (data / "spike/seqA/sync.json").exists()


@needs_mounts
def test_voxelize_and_verify_from_read_only_data_root(tmp_path):
    data = small_dataset(tmp_path / "data", sequences=("a", "b"))
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    cache = tmp_path / "cache"
    done = run_in_namespace(f"{read_only(data)} && {spikeprep_command('voxelize', data, cache, '--S', 4)}"
                            f" && {spikeprep_command('verify', cache, '--data', data)}")
    assert done.returncode == 0, done.stderr
    assert "ok: " in done.stdout
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


@needs_mounts
def test_voxelize_into_read_only_cache_parent(tmp_path):
    data = small_dataset(tmp_path / "data")
    parent = tmp_path / "parent"
    parent.mkdir()
    done = run_in_namespace(f"{read_only(parent)} && "
                            f"{spikeprep_command('voxelize', data, parent / 'cache', '--S', 4)}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("error:"))
    assert "EROFS" in line and str(parent / "cache") in line and "expected" in line
    assert list(parent.iterdir()) == []


@needs_mounts
def test_disk_full_during_voxelize_then_resume(tmp_path):
    """A tmpfs that holds one sequence (~250 kB) but not two: the second sequence's LMDB commit
    fails (LMDB reports the short write as EIO); after the disk grows the same command resumes."""
    data = cache_datasets.make_dataset(tmp_path / "data", sequences=("a", "b"), frames=4,
                                       rgb_hw=(64, 96), spike_hw=(64, 96), window=8)
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    cache = disk / "cache"
    voxelize_cmd = spikeprep_command("voxelize", data, cache, "--S", 4)
    script = (f"{tmpfs(disk, '300k')} && "
              f"{{ {voxelize_cmd} >{out}/1.out 2>{out}/1.err; echo $? >{out}/1.rc; }}; "
              f"find {disk} -name '*.partial' -o -name '*.tmp*' >{out}/leftovers; "
              f"ls {cache} >{out}/ls; "
              f"mount -o remount,size=4m {disk} && "
              f"{{ {voxelize_cmd} >{out}/2.out 2>{out}/2.err; echo $? >{out}/2.rc; }}; "
              f"{spikeprep_command('verify', cache, '--data', data)} >{out}/3.out 2>&1; echo $? >{out}/3.rc")
    run_in_namespace(script)
    first_err = (out / "1.err").read_text()
    assert (out / "1.rc").read_text().strip() == "1", first_err
    assert "Traceback" not in first_err
    line = next(ln for ln in first_err.splitlines() if ln.startswith("error:"))
    assert "cannot write the LMDB shard" in line and "bytes free" in line and "re-run the same command" in line
    assert (out / "leftovers").read_text() == ""
    assert "manifest.json" not in (out / "ls").read_text()
    assert (out / "2.rc").read_text().strip() == "0", (out / "2.err").read_text()
    assert "2 sequences (1 already done)" in (out / "2.out").read_text()
    assert (out / "3.rc").read_text().strip() == "0" and "ok: " in (out / "3.out").read_text()


@pytest.mark.parametrize("flag,value", [("--motion", "inf"), ("--threshold", "nan"), ("--spike-rate", "inf")])
def test_simulate_non_finite_flags(tmp_path, flag, value):
    assert_clear_error(run("simulate", tmp_path / "out", "--frames", 2, "--sequences", 1, flag, value),
                       2, flag, value)
    assert not (tmp_path / "out" / "spike").exists()


@needs_mounts
def test_simulate_onto_a_full_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    simulate = spikeprep_command("simulate", disk / "out", "--frames", 4, "--height", 64, "--width", 64)
    done = run_in_namespace(f"{tmpfs(disk, '100k')} && {simulate}"
                            f"; echo rc=$? ; find {disk} -name '*.partial'")
    assert "rc=1" in done.stdout and "Traceback" not in done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("error:"))
    assert "ENOSPC" in line and "free disk space" in line
    assert ".partial" not in done.stdout.split("rc=1")[1]


def test_non_utf8_data_root_and_cache_paths_work(tmp_path):
    """Only names spikeprep stores (sequences, frames) must be UTF-8; the folders above may not be."""
    small_dataset(tmp_path / "plain" / "data")  # cv2.imwrite cannot write under such a path
    parent = Path(os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9j\xe0"))
    os.rename(tmp_path / "plain", parent)
    data = parent / "data"
    cache = parent / "cache"
    assert run("voxelize", data, cache, "--S", 4).exit_code == 0
    assert run("verify", cache, "--data", data).exit_code == 0
    assert run("info", cache).exit_code == 0
    checked = run("check-sync", data, "--frames", 2, "--search", 2, "--preview", parent / "sheets")
    assert checked.exit_code in (0, 3) and "cannot read image" not in checked.output, checked.output
    assert run("info", cache, "--preview", parent / "sheets").exit_code == 0


def test_simulate_from_frames_under_a_non_utf8_folder(tmp_path):
    frames = Path(os.fsdecode(os.fsencode(tmp_path) + b"/fr\xe9mes"))
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:03d}.png").write_bytes(cv2.imencode(".png", np.full((32, 32, 3), 40 * i, np.uint8))[1])
    result = run("simulate", tmp_path / "out", "--from-frames", frames, "--images-per-frame", 1,
                 "--spikes-per-frame", 4)
    assert result.exit_code == 0, result.output
    (frames / "001.png").write_bytes(b"")
    assert_clear_error(run("simulate", tmp_path / "out2", "--from-frames", frames, "--images-per-frame", 1,
                           "--spikes-per-frame", 4), 1, "001.png")


def test_build_sync_removes_a_partial_file_left_by_a_killed_run(tmp_path):
    data = sync_dataset(tmp_path)
    assert run("build-sync", data).exit_code == 0
    (data / "spike/seqA/sync.json.partial").write_text('{"format": "spikeprep.sy')
    result = run("build-sync", data)
    assert result.exit_code == 0 and "unchanged" in result.output
    assert leftovers(data) == []


@needs_mounts
def test_verify_and_info_on_a_read_only_cache(tmp_path, built):
    data, cache = built
    shutil.copytree(cache, tmp_path / "cache")
    done = run_in_namespace(f"{read_only(tmp_path / 'cache')} && "
                            f"{spikeprep_command('verify', tmp_path / 'cache', '--data', data)} && "
                            f"{spikeprep_command('info', tmp_path / 'cache')}")
    assert done.returncode == 0, done.stderr
    assert "ok: " in done.stdout and "spike_stats over 2 train" in done.stdout
