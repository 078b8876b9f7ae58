"""``voxelize --add-repr``: builds only the new records (old ones byte for byte unchanged), equals a
cache built with both, refuses a name already present, resumes after a kill, respects the lock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import spikeprep
from spikeprep.cache.add_repr import ADD_JOURNAL, add_representation
from spikeprep.cli import main
from spikeprep.errors import CacheError, LockError, UsageError
from tests.support.cache_datasets import all_records, copy_dataset, make_dataset
from tests.support.cache_faults import hold_lock
from tests.support.fault_injection import run_killed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("add")
    data = make_dataset(root / "data", sequences=("a", "b", "c"), frames=3, rgb_hw=(16, 24), spike_hw=(16, 24))
    spikeprep.voxelize_dataset(data, root / "cache", S=4, val=["c"], progress=False)
    both = root / "both"
    spikeprep.voxelize_dataset(data, both, repr=["bins:4", "tfp:2"], val=["c"], progress=False)
    return data, root / "cache", both


def test_add_builds_only_new_records_and_equals_a_build_with_both(base, tmp_path):
    data, cache, both = copy_dataset(base[:2], tmp_path) + (base[2],)
    before = all_records(cache)
    old_manifest = json.loads((cache / "manifest.json").read_text())
    summary = add_representation(data, cache, "tfp:2")
    assert (summary.name, summary.sequences, summary.frames) == ("tfp", 3, 9)
    after = all_records(cache)
    assert {k: v for k, v in after.items() if k in before} == before  # old records untouched
    assert sorted(set(after) - set(before)) == sorted(
        f"shard-00000.lmdb:{s}/{i:06d}/spike.tfp" for s in "abc" for i in range(3))
    new = json.loads((cache / "manifest.json").read_text())
    for seq, entry in old_manifest["sequences"].items():
        assert {k: v for k, v in new["sequences"][seq]["records"].items() if k in entry["records"]} == entry["records"]
    ref = json.loads((both / "manifest.json").read_text())
    assert new["params"] == ref["params"] and new["params_hash"] == ref["params_hash"]
    assert new["representation_stats"] == ref["representation_stats"]
    assert {s: e["records"] for s, e in new["sequences"].items()} == \
        {s: e["records"] for s, e in ref["sequences"].items()}
    a, b = spikeprep.open_cache(cache), spikeprep.open_cache(both)
    assert np.array_equal(a.read("b", 2).spikes["tfp"], b.read("b", 2).spikes["tfp"])
    assert spikeprep.verify_cache(cache, data_root=data).ok
    assert not (cache / ADD_JOURNAL).exists()
    # the build journal now describes the cache with both: the two-representation command resumes it
    summary = spikeprep.voxelize_dataset(data, cache, repr=["bins:4", "tfp:2"], val=["c"], progress=False)
    assert summary.sequences_skipped == 3 and all_records(cache) == after
    with pytest.raises(CacheError, match="other parameters"):
        spikeprep.voxelize_dataset(data, cache, S=4, val=["c"], progress=False)


def test_add_refuses_a_name_already_present(base):
    data, cache, _ = base
    with pytest.raises(UsageError, match="already holds"):
        add_representation(data, cache, "bins:2")
    result = CliRunner().invoke(main, ["voxelize", str(data), str(cache), "--add-repr", "bins"])
    assert result.exit_code == 2 and "already holds" in result.output and "Traceback" not in result.output


def test_add_takes_one_representation_per_run(base):
    data, cache, _ = base
    before = (cache / "manifest.json").read_bytes()
    with pytest.raises(UsageError, match="one representation per run"):
        add_representation(data, cache, ["tfp:2", "count"])
    assert (cache / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--add-repr", "count", "--repr", "bins"], "--add-repr adds"),
    (["--add-repr", "count", "--force"], "--add-repr adds"),
    (["--add-repr", "count:x"], "KIND or KIND:N"),
    (["--add-repr", "nope"], "unknown voxel representation"),
])
def test_add_usage_errors(base, args, message):
    data, cache, _ = base
    result = CliRunner().invoke(main, ["voxelize", str(data), str(cache), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_add_refuses_changed_sources_and_an_unfinished_cache(base, tmp_path):
    data, cache = copy_dataset(base[:2], tmp_path)
    dat = data / "spike/b/spikes.dat"
    raw = bytearray(dat.read_bytes())
    raw[-1] ^= 0xFF
    dat.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="source changed"):
        add_representation(data, cache, "count")
    (cache / "manifest.json").unlink()
    with pytest.raises(CacheError, match="no manifest"):
        add_representation(data, cache, "count")


def test_add_resumes_after_a_kill(base, tmp_path):
    data, cache = copy_dataset(base[:2], tmp_path)
    args = ["voxelize", data, cache, "--add-repr", "count"]
    assert run_killed("journal", 1, args, cwd=ROOT).returncode == -9  # right after sequence a
    journal = [json.loads(x) for x in (cache / ADD_JOURNAL).read_text().splitlines()]
    assert [e.get("name") for e in journal] == [None, "a"]
    assert "more_representations" not in json.loads((cache / "manifest.json").read_text())["params"]
    summary = add_representation(data, cache, "count")
    assert (summary.sequences, summary.sequences_skipped) == (2, 1)
    assert spikeprep.verify_cache(cache, data_root=data).ok
    assert [p.name for p in spikeprep.open_cache(cache).params.representations()] == ["bins", "count"]
    with pytest.raises(CacheError, match="another representation"):  # a stale pass of another kind
        (cache / ADD_JOURNAL).write_text(json.dumps({"kind": "start", "params_hash": "x",
                                                     "representation": {"name": "tfp"}}) + "\n")
        add_representation(data, cache, "ema")


def test_add_refuses_while_the_lock_is_held(base, tmp_path):
    data, cache = copy_dataset(base[:2], tmp_path)
    holder = hold_lock(cache)
    try:
        with pytest.raises(LockError):
            add_representation(data, cache, "count")
    finally:
        holder.kill()
        holder.wait()
    assert not (cache / ADD_JOURNAL).exists()
