"""verify_cache / `spikeprep verify` / `spikeprep info` / `spikeprep voxelize` through CliRunner."""

from __future__ import annotations

import json
import shutil

import cv2
import lmdb
import numpy as np
import pytest
from click.testing import CliRunner

import spikeprep
from spikeprep.cache.records import HEADER_SIZE
from spikeprep.cli import main
from tests.support.cache_datasets import make_dataset


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    data = make_dataset(root / "data", sequences=("a", "b"), frames=4)
    spikeprep.voxelize_dataset(data, root / "cache", S=4, val=["b"], progress=False)
    return data, root / "cache"


@pytest.fixture
def copy(clean, tmp_path):
    data, cache = clean
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(cache, tmp_path / "cache")
    return tmp_path / "data", tmp_path / "cache"


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_clean_cache_verifies(clean):
    data, cache = clean
    report = spikeprep.verify_cache(cache, data_root=data)
    assert report.ok, report.problems
    assert report.records_checked == 24 and report.frames_recomputed == 8
    result = run("verify", cache, "--data", data)
    assert result.exit_code == 0 and result.output.startswith("ok: 24 records")


def test_flipped_byte_named(copy):
    _, cache = copy
    env = lmdb.open(str(cache / "shard-00000.lmdb"))
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(b"a/000002/spike"))
        value[HEADER_SIZE + 100] ^= 0x01
        txn.put(b"a/000002/spike", bytes(value))
    env.close()
    report = spikeprep.verify_cache(cache)
    assert [(p.sequence, p.frame, p.key) for p in report.problems] == [("a", 2, "a/000002/spike")]
    assert "checksum" in report.problems[0].what
    result = run("verify", cache)
    assert result.exit_code == 1 and "a/000002/spike" in result.output


def test_missing_and_unexpected_records(copy):
    _, cache = copy
    env = lmdb.open(str(cache / "shard-00000.lmdb"))
    with env.begin(write=True) as txn:
        txn.delete(b"b/000001/blur")
        txn.put(b"b/000009/blur", b"junk")
    env.close()
    problems = {(p.key, p.what.split(" ")[0]) for p in spikeprep.verify_cache(cache).problems}
    assert problems == {("b/000001/blur", "record"), ("b/000009/blur", "unexpected")}


def test_truncated_shard_is_a_problem(copy):
    _, cache = copy
    data_mdb = cache / "shard-00000.lmdb" / "data.mdb"
    size = data_mdb.stat().st_size
    with open(data_mdb, "r+b") as f:
        f.truncate(size // 2)
    report = spikeprep.verify_cache(cache)
    assert not report.ok and "truncated" in report.problems[0].what
    result = run("verify", cache)
    assert result.exit_code == 1 and "truncated" in result.output
    with pytest.raises(spikeprep.SpikeprepError, match="truncated"):
        spikeprep.open_cache(cache).read("a", 0)


def test_changed_sources_with_data(copy):
    data, cache = copy
    png = data / "blur" / "a" / "000001.png"
    image = cv2.imread(str(png))
    image[0, 0] ^= 0xFF
    cv2.imwrite(str(png), image)
    dat = data / "spike" / "b" / "spikes.dat"
    raw = bytearray(dat.read_bytes())
    raw[4 * 32 * 48 // 8 + 3] ^= 0xFF  # a byte of frame 4: inside frame 0's window [4, 20)
    dat.write_bytes(bytes(raw))
    report = spikeprep.verify_cache(cache, data_root=data)
    where = {(p.sequence, p.frame, p.key) for p in report.problems}
    assert ("a", 1, "blur/a/000001.png") in where          # fingerprint
    assert ("a", 1, "a/000001/blur") in where              # recomputed record differs
    assert ("b", None, "spike/b/spikes.dat") in where
    assert ("b", 0, "b/000000/spike") in where
    assert ("b", 1, "b/000001/spike") not in where
    assert spikeprep.verify_cache(cache).ok                # the cache itself is intact
    result = run("verify", cache, "--data", data, "--json")
    assert result.exit_code == 1
    parsed = json.loads(result.output)
    assert parsed["ok"] is False and {"sequence", "frame", "key", "what"} <= set(parsed["problems"][0])


def test_sample(clean):
    data, cache = clean
    report = spikeprep.verify_cache(cache, data_root=data, sample=3, seed=1)
    assert report.ok and report.frames_recomputed == 3
    result = run("verify", cache, "--data", data, "--sample", 2, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["frames_recomputed"] == 2


def test_verify_usage_errors(tmp_path, clean):
    result = run("verify", tmp_path / "missing")
    assert result.exit_code == 2 and result.output.startswith("error: CACHE directory not found")
    (tmp_path / "empty").mkdir()
    result = run("verify", tmp_path / "empty")
    assert result.exit_code == 1 and "no manifest" in result.output
    result = run("info", tmp_path / "missing")
    assert result.exit_code == 2 and "error:" in result.output


def test_info(clean):
    _, cache = clean
    result = run("info", cache)
    assert result.exit_code == 0
    assert "spike_dtype" in result.output and "uint8" in result.output
    assert "train" in result.output and "val" in result.output and "off" in result.output
    info = spikeprep.cache_info(cache)
    assert [r["sequence"] for r in info["sequences"]] == ["a", "b"]
    assert 0.15 < info["sequences"][0]["spike_rate"] < 0.25   # make_dataset fires at 20%


def test_info_reports_hot_pixels(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=2, stuck={"a": (3, 3)}, rate=0.05)
    spikeprep.voxelize_dataset(data, tmp_path / "cache", S=4, hot_pixels="detect", progress=False)
    info = spikeprep.cache_info(tmp_path / "cache")
    assert info["sequences"][0]["hot_pixels"] == 1
    assert spikeprep.verify_cache(tmp_path / "cache", data_root=data).ok


def test_voxelize_cli(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=2)
    result = run("voxelize", data, tmp_path / "cache", "--S", 4, "--val", "b", "--shard-size", "512M")
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "2 sequences" in result.output
    cache = spikeprep.open_cache(tmp_path / "cache")
    assert cache.split("b") == "val" and cache.manifest["params"]["S"] == 4
    result = run("voxelize", data, tmp_path / "cache", "--S", 8)
    assert result.exit_code == 1 and result.output.startswith("error: CACHE was built with other parameters")
    assert "S: found 4, expected 8" in result.output
    assert run("voxelize", data, tmp_path / "cache", "--S", 8, "--force").exit_code == 0
    result = run("voxelize", data, tmp_path / "c2", "--val", "nope")
    assert result.exit_code == 2 and "error:" in result.output
    result = run("voxelize", data, tmp_path / "c3", "--shard-size", "lots")
    assert result.exit_code == 2 and "cannot read a size" in result.output
    assert "INTER_NEAREST" in run("voxelize", "--help").output


def test_voxelize_cli_default_S(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=1)
    assert run("voxelize", data, tmp_path / "cache").exit_code == 0
    sample = spikeprep.open_cache(tmp_path / "cache").read("a", 0)
    assert sample.spike.shape == (8, 32, 48) and sample.spike.dtype == np.uint8  # 16 frames / 8 bins
