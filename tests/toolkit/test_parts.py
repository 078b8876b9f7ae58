"""voxelize --part I/N: balanced split, parts as real concurrent processes, completion equal to a
single-process build, refusals naming parts, the Slurm example; simulate --part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeprep
from spikeprep.cache.reader import acquire_env, release_env
from spikeprep.errors import CacheError, LockError, UsageError
from spikeprep.parts import Part, balanced_partition, parse_part
from tests.support.cache_datasets import make_dataset
from tests.support.fault_injection import run_killed
from tests.support.paths import REPO

ROOT = REPO
S = 4
SEQS = ("a", "b", "c", "d", "e")


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, **kw)


def records_by_key(cache: Path) -> dict[str, bytes]:
    """Every record of every shard, by key (where a record lives is the manifest's business)."""
    out = {}
    for shard in sorted(cache.glob("shard-*.lmdb")):
        env = acquire_env(shard)
        with env.begin() as txn:
            for k, v in txn.cursor():
                assert k.decode() not in out, f"{k} stored twice"
                out[k.decode()] = bytes(v)
        release_env(shard)
    return out


def manifest_without_placement(cache: Path) -> dict:
    """The manifest minus ``created`` and where sequences live (shard numbers)."""
    manifest = json.loads((cache / "manifest.json").read_text())
    for key in ("created", "shards"):
        manifest.pop(key)
    for entry in manifest["sequences"].values():
        entry.pop("shard")
    return manifest


def assert_same_cache(cache: Path, reference: Path, data: Path) -> None:
    assert records_by_key(cache) == records_by_key(reference)
    assert manifest_without_placement(cache) == manifest_without_placement(reference)
    assert (cache / "meta_info.txt").read_text() == (reference / "meta_info.txt").read_text()
    assert spikeprep.verify_cache(cache, data_root=data).ok


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    data = make_dataset(root / "data", sequences=SEQS, frames=3)
    spikeprep.voxelize_dataset(data, root / "reference", S=S, val=["e"], progress=False)
    return data, root / "reference"


# -- the split ------------------------------------------------------------------------------------

def test_parse_part():
    assert parse_part("1/4") == Part(1, 4) and str(Part(1, 4)) == "1/4"
    for bad in ("4/4", "-1/2", "1-4", "x", "1/0"):
        with pytest.raises(UsageError):
            parse_part(bad)


def test_balanced_partition_by_hand():
    # longest first to the least loaded part: 9 -> p0, 7 -> p1, 5 -> p1 (7 < 9? no: p1 has 7),
    assert balanced_partition([5, 9, 7, 1], 2) == [1, 0, 1, 0]  # loads 9+1=10, 7+5=12
    assert balanced_partition([3, 3, 3], 3) == [0, 1, 2]
    assert balanced_partition([1], 3) == [0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=40), st.integers(1, 8))
def test_balanced_partition_properties(sizes, count):
    owner = balanced_partition(sizes, count)
    assert owner == balanced_partition(list(sizes), count)  # deterministic
    loads = [sum(s for s, o in zip(sizes, owner) if o == p) for p in range(count)]
    if len(sizes) >= count:
        assert all(load > 0 for load in loads)  # every part gets work
    assert max(loads) <= sum(sizes) / count + max(sizes)  # LPT bound


def test_parts_never_share_a_shard_whatever_the_shard_size(dataset):
    from spikeprep.cache.parts import owners, partitioned
    from spikeprep.cache.plan import plan_build
    data, _ = dataset
    for shard_size in (1 << 40, 1):
        plan = plan_build(data, S=S, shard_size=shard_size)
        whole, owner = partitioned(plan, 3), owners(plan, 3)
        shards = {}
        for seq, part in zip(whole.sequences, owner):
            assert shards.setdefault(seq.shard, part) == part
        assert sorted(set(owner)) == [0, 1, 2]
    assert [s.shard for s in partitioned(plan, 1).sequences] == [s.shard for s in plan.sequences]


# -- parts as processes ----------------------------------------------------------------------------

def test_two_parts_in_parallel_then_completion_equal_one_build(dataset, tmp_path):
    data, reference = dataset
    cache = tmp_path / "cache"
    common = [data, cache, "--S", S, "--val", "e"]
    procs = [subprocess.Popen([sys.executable, "-m", "spikeprep", "voxelize", *map(str, common),
                               "--part", f"{i}/2"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "part 0/2: 3 sequences" in outs[0][0] and "part 1/2: 2 sequences" in outs[1][0]
    assert not (cache / "manifest.json").exists()
    # each shard written by exactly one part: shard sets of the two part journals are disjoint
    plans = [json.loads((cache / f"progress.part-{i}-of-2.jsonl").read_text().splitlines()[0])["plan"]
             for i in range(2)]
    assert not set(plans[0].values()) & set(plans[1].values())
    done = cli("voxelize", *common)
    assert done.returncode == 0, done.stderr
    assert "5 sequences (5 already done)" in done.stdout  # nothing recomputed
    assert_same_cache(cache, reference, data)
    assert not list(cache.glob("progress.part-*"))
    again = cli("voxelize", *common)  # a finished partitioned cache is an ordinary one
    assert again.returncode == 0 and "(5 already done)" in again.stdout
    part_again = cli("voxelize", *common, "--part", "1/2")
    assert part_again.returncode == 0 and "(2 already done)" in part_again.stdout


def _build(data, cache, **kw):
    return spikeprep.voxelize_dataset(data, cache, S=S, val=["e"], progress=False, **kw)


def test_missing_part_is_named_then_build_missing(dataset, tmp_path):
    data, reference = dataset
    cache = tmp_path / "cache"
    _build(data, cache, part="2/3")
    with pytest.raises(CacheError, match=r"2 of 3 parts not done") as err:
        _build(data, cache)
    assert "part 0/3 missing" in str(err.value) and "part 1/3 missing" in str(err.value)
    assert "--build-missing" in str(err.value)
    assert not (cache / "manifest.json").exists()
    summary = _build(data, cache, build_missing=True)
    assert summary.sequences_skipped == 1 and summary.frames == 12  # part 2/3 is sequence c
    assert_same_cache(cache, reference, data)


def test_failed_part_is_named_resumes_and_completes(dataset, tmp_path):
    data, reference = dataset
    cache = tmp_path / "cache"
    args = ["voxelize", data, cache, "--S", S, "--val", "e"]
    assert cli(*args, "--part", "1/2").returncode == 0
    killed = run_killed("journal", 1, [*args, "--part", "0/2"], cwd=ROOT)  # part 0 has 3 sequences
    assert killed.returncode == -9
    failed = cli(*args)
    assert failed.returncode == 1
    assert "part 0/2 failed (1 of 3 sequences done, stopped before" in failed.stderr, failed.stderr
    resumed = cli(*args, "--part", "0/2")
    assert resumed.returncode == 0 and "(1 already done)" in resumed.stdout
    assert cli(*args).returncode == 0
    assert_same_cache(cache, reference, data)


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from spikeprep.cache.lock import acquire_write_lock
    lock = acquire_write_lock(sys.argv[1], part=(int(sys.argv[2]), int(sys.argv[3])))
    print("locked", flush=True)
    time.sleep(60)
""")


def test_running_part_is_named_and_the_same_part_twice_conflicts(dataset, tmp_path):
    data, _ = dataset
    cache = tmp_path / "cache"
    _build(data, cache, part="0/2")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(cache), "1", "2"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CacheError, match=rf"part 1/2 running \(pid {holder.pid} on host"):
            _build(data, cache, build_missing=True)
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            _build(data, cache, part="1/2")
    finally:
        holder.kill()
        holder.wait()
    _build(data, cache, part="1/2")  # the dead holder's lock is taken over
    _build(data, cache)


def test_part_with_other_parameters_is_named(dataset, tmp_path):
    data, _ = dataset
    cache = tmp_path / "cache"
    _build(data, cache, part="0/2")
    spikeprep.voxelize_dataset(data, cache, S=2, val=["e"], progress=False, part="1/2")
    with pytest.raises(CacheError, match=r"part 1/2 built with other parameters \(S: found 2, expected 4"):
        _build(data, cache, build_missing=True)
    with pytest.raises(CacheError, match=r"part 0/2 of CACHE was started with other parameters"):
        spikeprep.voxelize_dataset(data, cache, S=2, val=["e"], progress=False, part="0/2")


def test_parts_of_different_splits_and_foreign_directories_are_refused(dataset, tmp_path):
    data, _ = dataset
    cache = tmp_path / "cache"
    _build(data, cache, part="0/2")
    _build(data, cache, part="0/3")
    with pytest.raises(CacheError, match=r"different splits.*N=2.*N=3"):
        _build(data, cache)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(CacheError, match="thesis.tex"):
        _build(data, tmp_path / "mine", part="0/2")
    assert (tmp_path / "mine" / "thesis.tex").exists()
    with pytest.raises(UsageError, match="--force cannot be combined with --part"):
        _build(data, cache, part="1/2", force=True)
    bad = cli("voxelize", data, cache, "--part", "2/2")
    assert bad.returncode == 2 and "0 <= I < N" in bad.stderr


def test_a_single_process_cache_refuses_parts(dataset, tmp_path):
    data, reference = dataset
    with pytest.raises(CacheError, match="CACHE holds another build.*single-process build"):
        _build(data, reference, part="0/2")


# -- the Slurm example ---------------------------------------------------------------------------

FAKE_SBATCH = textwrap.dedent('''
    #!/usr/bin/env python3
    """A local stand-in for sbatch: runs array tasks at once, --wrap commands, honours afterok."""
    import os, re, subprocess, sys
    state = os.environ["FAKE_SLURM_STATE"]
    args, wrap, script, array, dep = sys.argv[1:], None, None, None, None
    while args:
        a = args.pop(0)
        if a == "--wrap": wrap = args.pop(0)
        elif a.startswith("--array="): array = a.split("=", 1)[1]
        elif a.startswith("--dependency="): dep = a.split("=", 1)[1]
        elif a.startswith("--"): pass
        else: script = a
    ids = sorted(int(f) for f in os.listdir(state)) if os.listdir(state) else []
    job = (ids[-1] + 1) if ids else 1
    if dep:
        kind, _, ref = dep.partition(":")
        assert kind == "afterok" and open(os.path.join(state, ref)).read() == "0", "dependency failed"
    env = dict(os.environ, SLURM_JOB_ID=str(job))
    log = lambda name: open(os.path.join(os.environ["FAKE_SLURM_LOGS"], name), "w")
    if wrap:
        rc = subprocess.run(["bash", "-c", wrap], env=env, stdout=log(f"{job}.log"),
                            stderr=subprocess.STDOUT).returncode
    else:
        text = open(script).read()
        array = array or re.search(r"^#SBATCH --array=(\\S+)", text, re.M).group(1)
        lo, hi = map(int, array.split("-"))
        procs = [subprocess.Popen(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID=str(i),
                 SLURM_ARRAY_TASK_MIN=str(lo), SLURM_ARRAY_TASK_COUNT=str(hi - lo + 1),
                 SLURM_CPUS_PER_TASK="1"), stdout=log(f"{job}_{i}.log"), stderr=subprocess.STDOUT)
                 for i in range(lo, hi + 1)]
        rc = max(p.wait() for p in procs)
    open(os.path.join(state, str(job)), "w").write(str(rc))
    print(job)
    sys.exit(rc)
''').lstrip()


def test_slurm_example_builds_the_same_cache(dataset, tmp_path):
    data, reference = dataset
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir(), state.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "spikeprep").write_text(f'#!/bin/sh\nexec {sys.executable} -m spikeprep "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = (ROOT / "examples" / "voxelize_slurm.sbatch").read_text()
    assert "#SBATCH --array=0-7" in script and "SLURM_ARRAY_TASK_ID" in script
    # run with 3 array tasks (parts 0/3 .. 2/3) instead of 8, the rest as written
    sbatch_copy = tmp_path / "voxelize_slurm.sbatch"
    sbatch_copy.write_text(script.replace("#SBATCH --array=0-7", "#SBATCH --array=0-2"))
    submit = tmp_path / "voxelize_slurm_submit.sh"
    submit.write_text((ROOT / "examples" / "voxelize_slurm_submit.sh").read_text())
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_SLURM_STATE=str(state),
               FAKE_SLURM_LOGS=str(tmp_path),
               DATA_ROOT=str(data), CACHE=str(tmp_path / "cache"), VOXELIZE_ARGS=f"--S {S} --val e",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run(["bash", str(submit)], env=env, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(state)) == ["1", "2"]  # the array, then the completion
    assert "part 2/3: 1 sequences" in (tmp_path / "1_2.log").read_text()
    assert "5 sequences (5 already done)" in (tmp_path / "2.log").read_text()
    assert_same_cache(tmp_path / "cache", reference, data)


def test_completion_refuses_sequences_whose_sources_changed_then_rebuilds_them(tmp_path):
    import cv2
    import numpy as np
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=2)
    cache = tmp_path / "cache"
    for i in range(2):
        spikeprep.voxelize_dataset(data, cache, S=S, progress=False, part=f"{i}/2")
    png = data / "blur" / "b" / "000001.png"
    cv2.imwrite(str(png), np.full((32, 48, 3), 7, np.uint8))
    with pytest.raises(CacheError, match=r"sources changed since parts built them.*part 1/2: b"):
        spikeprep.voxelize_dataset(data, cache, S=S, progress=False)
    summary = spikeprep.voxelize_dataset(data, cache, S=S, progress=False, build_missing=True)
    assert summary.rebuilt == ["b"]
    spikeprep.voxelize_dataset(data, tmp_path / "fresh", S=S, progress=False)
    assert_same_cache(cache, tmp_path / "fresh", data)
