"""voxelize_dataset + open_cache: round trip against an independent reference, manifest, shards,
map growth, resume after a crash, parameter mismatch, match modes, hot pixels, workers."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

import spikeprep
from spikeprep.cache.manifest import params_hash
from spikeprep.cache.records import HEADER_SIZE, checksum, decode_record
from spikeprep.errors import CacheError
from spikeprep.lmdb_writer import ShardWriter
from spikeprep.sync import load_sync
from tests.support.cache_datasets import all_records, make_dataset, manifest_without_time
from tests.support.fault_injection import run_killed
from tests.support.reference import spikecv_decode

S = 4


def build(data, cache, **kw):
    kw.setdefault("S", S)
    kw.setdefault("progress", False)
    return spikeprep.voxelize_dataset(data, cache, **kw)


def reference_bins(data: Path, seq: str, i: int, S: int) -> np.ndarray:
    """SpikeCV-style decode of the raw file bytes + numpy bin sums (no spikeprep code)."""
    sync = json.loads((data / "spike" / seq / "sync.json").read_text())
    frame = sync["frames"][i]
    raw = np.fromfile(data / frame["spike_file"], np.uint8)
    h, w = sync["spike"]["height"], sync["spike"]["width"]
    L = frame["spike_end"] - frame["spike_begin"]
    spikes = spikecv_decode(raw, h, w, frame["spike_begin"], L, flipud=True)
    edges = [k * L // S for k in range(S + 1)]
    return np.stack([spikes[edges[k]:edges[k + 1]].sum(0) for k in range(S)])


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    data = make_dataset(root / "data", sequences=("a", "b", "c"), frames=4)
    build(data, root / "cache", val=["c"])
    return data, root / "cache"


def test_round_trip_against_reference(built):
    data, cache_dir = built
    cache = spikeprep.open_cache(cache_dir)
    assert cache.sequences == ["a", "b", "c"]
    assert [cache.split(s) for s in cache.sequences] == ["train", "train", "val"]
    for seq in cache.sequences:
        assert cache.num_frames(seq) == 4
        for i in range(4):
            sample = cache.read(seq, i)
            assert (sample.sequence, sample.index) == (seq, i)
            assert sample.spike.dtype == np.uint8 and sample.spike.shape == (S, 32, 48)
            np.testing.assert_array_equal(sample.spike, reference_bins(data, seq, i, S))
            np.testing.assert_array_equal(sample.blur, rgb(data / f"blur/{seq}/{i:06d}.png"))
            np.testing.assert_array_equal(sample.sharp, rgb(data / f"sharp/{seq}/{i:06d}.png"))
            assert (sample.spike_begin, sample.spike_end) == (4 + i * 20, 4 + i * 20 + 16)
            assert not sample.spike.flags.writeable
    assert cache.hot_pixels("a") is None
    # picklable (DataLoader workers) and re-opens lazily
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.read("b", 2).spike, reference_bins(data, "b", 2, S))
    copy = spikeprep.open_cache(cache_dir, buffers=False).read("a", 0)
    np.testing.assert_array_equal(copy.blur, cache.read("a", 0).blur)
    cache.close()


def as_version_1(cache_dir: Path) -> None:
    """Rewrite a cache's manifest.json as spikeprep 0.1.0 wrote it (manifest schema version 1)."""
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    del manifest["manifest_version"]
    params = manifest["params"]
    params["repr_params"] = {"repr": params["repr"], "S": params["S"], **params["repr_params"]}
    manifest["params_hash"] = params_hash(params)
    (cache_dir / "manifest.json").write_text(json.dumps(manifest))


def test_caches_written_with_manifest_version_1_still_open_and_verify(built, tmp_path):
    import shutil
    data, cache_dir = built
    old = tmp_path / "old"
    shutil.copytree(cache_dir, old)
    as_version_1(old)
    cache = spikeprep.open_cache(old)
    assert cache.params == spikeprep.open_cache(cache_dir).params and cache.params.repr_params == {}
    assert cache.manifest["params_hash"] == json.loads((old / "manifest.json").read_text())["params_hash"]
    np.testing.assert_array_equal(cache.read("a", 1).spike, spikeprep.open_cache(cache_dir).read("a", 1).spike)
    assert spikeprep.verify_cache(old, data_root=data).ok


def test_manifest_round_trips_through_its_dataclasses(built):
    from spikeprep.cache.manifest import manifest_from_dict
    _, cache_dir = built
    raw = json.loads((cache_dir / "manifest.json").read_text())
    manifest = manifest_from_dict(raw)
    assert manifest.to_dict() == raw
    assert manifest.params.S == S and manifest.sequences["a"].num_frames == 4
    assert manifest["spike_stats"] == raw["spike_stats"]  # the public dict-style access


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m["params"].pop("match"), "params incomplete"),
    (lambda m: m["params"].update(match="bogus"), "params.match"),
    (lambda m: m["sequences"]["a"].update(split="test"), "split"),
    (lambda m: m["sequences"]["a"].pop("records"), "incomplete"),
    (lambda m: m.update(manifest_version=99), "unsupported manifest version"),
])
def test_invalid_manifests_are_refused_naming_the_field(built, mutate, message):
    from spikeprep.cache.manifest import manifest_from_dict
    _, cache_dir = built
    raw = json.loads((cache_dir / "manifest.json").read_text())
    mutate(raw)
    raw["params_hash"] = params_hash(raw["params"])
    with pytest.raises(CacheError, match=message):
        manifest_from_dict(raw)


def test_manifest_contents(built):
    data, cache_dir = built
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    params = manifest["params"]
    # manifest version 2: repr_params holds only the representation's own parameters
    assert params == {"S": S, "channels": S, "repr": "bins", "repr_params": {},
                      "flipud": True, "match": "none", "hot_pixels": "off", "spike_dtype": "uint8",
                      "rgb_shape": [32, 48, 3], "spike_shape": [S, 32, 48]}
    assert manifest["format"] == "spikeprep.cache" and manifest["version"] == 1
    assert manifest["manifest_version"] == 3
    assert manifest["params_hash"] == params_hash(params)
    records = all_records(cache_dir)
    for seq, entry in manifest["sequences"].items():
        assert entry["shard"] == 0 and entry["num_frames"] == 4 and entry["has_sharp"]
        assert len(entry["records"]) == 12
        for key, digest in entry["records"].items():
            assert checksum(records[f"shard-00000.lmdb:{key}"]) == digest
        for rel, fingerprint in entry["sources"].items():
            raw = (data / rel).read_bytes()
            assert fingerprint["size"] == len(raw)
            import xxhash
            assert fingerprint["xxh3_128"] == xxhash.xxh3_128(raw).hexdigest()
        assert f"spike/{seq}/spikes.dat" in entry["sources"] and f"blur/{seq}/000003.png" in entry["sources"]
    # stats over train sequences only, against numpy
    voxels = np.stack([reference_bins(data, s, i, S) for s in ("a", "b") for i in range(4)])
    per_channel = voxels.transpose(1, 0, 2, 3).reshape(S, -1).astype(np.float64)
    stats = manifest["spike_stats"]
    assert stats["over"] == ["a", "b"]
    np.testing.assert_allclose(stats["mean"], per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], per_channel.std(1), rtol=1e-12)
    np.testing.assert_allclose(stats["q995"], np.quantile(per_channel, 0.995, axis=1), rtol=1e-12)
    assert (cache_dir / "meta_info.txt").read_text().splitlines() == [
        "a 4 (32,48,3) 0", "b 4 (32,48,3) 0", "c 4 (32,48,3) 0"]


def test_record_header_layout(built):
    _, cache_dir = built
    value = all_records(cache_dir)["shard-00000.lmdb:a/000001/spike"]
    assert value[:4] == b"SPKC" and HEADER_SIZE == 48
    header, array = decode_record(value)
    assert header.shape == (S, 32, 48) and (header.spike_begin, header.spike_end) == (24, 40)
    assert len(value) == 48 + array.nbytes


def test_shards_and_map_growth(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b", "c"), frames=4)
    summary = build(data, tmp_path / "cache", shard_size="20K", initial_map_size=32 * 1024)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    shards = {seq: e["shard"] for seq, e in manifest["sequences"].items()}
    assert shards == {"a": 0, "b": 1, "c": 2}  # ~62 KB per sequence > 20K: one shard each
    for seq, shard in shards.items():  # a sequence never spans shards
        keys = {k.split(":")[1] for k in all_records(tmp_path / "cache") if k.startswith(f"shard-{shard:05d}")}
        assert keys == set(manifest["sequences"][seq]["records"])
    assert summary.map_grows >= 3
    spikeprep.open_cache(tmp_path / "cache").read("c", 3)


def test_map_full_is_retried(tmp_path):
    writer = ShardWriter(lambda i: tmp_path / f"shard-{i:05d}.lmdb", initial_map_size=64 * 1024, prefit=False)
    calls = []

    def produce():
        calls.append(1)
        for i in range(40):
            yield f"k{i:03d}", bytes([i]) * 10_000

    assert writer.write_sequence(0, 0, produce) == 400_000
    assert len(calls) >= 2 and writer.grows >= 1
    writer.close()
    env = lmdb.open(str(tmp_path / "shard-00000.lmdb"), readonly=True, lock=False)
    assert env.stat()["entries"] == 40


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b", "c"), frames=4)
    build(data, tmp_path / "clean", val=["b"], shard_size="100K")
    proc = run_killed("journal", 1, ["voxelize", data, tmp_path / "crashed", "--S", S, "--val", "b",
                                     "--shard-size", "100K"])
    assert proc.returncode == -9, proc.stderr
    journal = (tmp_path / "crashed" / "progress.jsonl").read_text().splitlines()
    assert len(journal) == 2 and not (tmp_path / "crashed" / "manifest.json").exists()
    with pytest.raises(CacheError, match="no manifest"):
        spikeprep.open_cache(tmp_path / "crashed")
    summary = build(data, tmp_path / "crashed", val=["b"], shard_size="100K")
    assert summary.sequences_skipped == 1 and summary.frames == 8
    assert manifest_without_time(tmp_path / "crashed") == manifest_without_time(tmp_path / "clean")
    assert all_records(tmp_path / "crashed") == all_records(tmp_path / "clean")
    # re-running a finished build changes nothing
    build(data, tmp_path / "crashed", val=["b"], shard_size="100K")
    assert all_records(tmp_path / "crashed") == all_records(tmp_path / "clean")


@pytest.mark.parametrize("kill_at_frame", [2, 6, 11])
def test_sigkill_inside_a_transaction_then_resume_verifies(tmp_path, kill_at_frame):
    """A real kill -9 of `spikeprep voxelize` while a sequence's write transaction is open."""
    data = make_dataset(tmp_path / "data", sequences=("a", "b", "c"), frames=4)
    build(data, tmp_path / "clean", val=["b"], shard_size="100K")
    command = [sys.executable, "-m", "spikeprep", "voxelize", str(data), str(tmp_path / "killed"),
               "--S", str(S), "--val", "b", "--shard-size", "100K"]
    proc = run_killed("frame", kill_at_frame, command[3:])
    assert proc.returncode == -9, proc.stderr
    assert not (tmp_path / "killed" / "manifest.json").exists()
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert manifest_without_time(tmp_path / "killed") == manifest_without_time(tmp_path / "clean")
    assert all_records(tmp_path / "killed") == all_records(tmp_path / "clean")
    verified = subprocess.run([sys.executable, "-m", "spikeprep", "verify", str(tmp_path / "killed"),
                               "--data", str(data)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_other_parameters_refused_then_force(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=2)
    build(data, tmp_path / "cache")
    with pytest.raises(CacheError, match=r"S: found 4, expected 8") as err:
        build(data, tmp_path / "cache", S=8)
    assert "--force" in str(err.value)
    with pytest.raises(CacheError, match="val"):
        build(data, tmp_path / "cache", val=["a"])
    build(data, tmp_path / "cache", S=8, force=True)
    assert spikeprep.open_cache(tmp_path / "cache").manifest["params"]["S"] == 8
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(CacheError, match="not a spikeprep cache"):
        build(data, tmp_path / "other", force=True)
    assert (tmp_path / "other" / "precious.txt").exists()


def test_open_cache_errors(tmp_path):
    with pytest.raises(CacheError, match="not found"):
        spikeprep.open_cache(tmp_path / "nope")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text("{broken")
    with pytest.raises(CacheError, match="not valid JSON"):
        spikeprep.open_cache(tmp_path / "c")
    (tmp_path / "c" / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(CacheError, match="not a spikeprep cache"):
        spikeprep.open_cache(tmp_path / "c")


@pytest.mark.parametrize("match", ["none", "rgb", "spike"])
def test_match_modes(tmp_path, match):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=2, rgb_hw=(32, 48), spike_hw=(16, 24))
    build(data, tmp_path / "cache", match=match)
    cache = spikeprep.open_cache(tmp_path / "cache")
    sample = cache.read("a", 1)
    bins = reference_bins(data, "a", 1, S)
    blur = rgb(data / "blur/a/000001.png")
    if match == "none":
        np.testing.assert_array_equal(sample.spike, bins)
        np.testing.assert_array_equal(sample.blur, blur)
    elif match == "rgb":
        assert sample.spike.shape == (S, 32, 48) and sample.spike.dtype == np.uint8
        np.testing.assert_array_equal(sample.spike, bins.repeat(2, axis=1).repeat(2, axis=2))
        np.testing.assert_array_equal(sample.blur, blur)
    else:
        np.testing.assert_array_equal(sample.spike, bins)
        assert sample.blur.shape == (16, 24, 3)
        np.testing.assert_array_equal(sample.blur, cv2.resize(blur, (24, 16), interpolation=cv2.INTER_AREA))
    assert cache.manifest["params"]["rgb_shape"] == list(sample.blur.shape)


def test_match_none_needs_integer_ratio(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=2, rgb_hw=(32, 48), spike_hw=(24, 24))
    with pytest.raises(CacheError, match="integer multiple") as err:
        build(data, tmp_path / "cache")
    assert "--match rgb" in str(err.value)


def test_hot_pixels_detected_repaired_stored(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=3, stuck={"a": (5, 7)}, rate=0.05)
    build(data, tmp_path / "cache", hot_pixels="detect")
    cache = spikeprep.open_cache(tmp_path / "cache")
    mask = cache.hot_pixels("a")
    assert mask.dtype == bool and mask.shape == (32, 48)
    assert mask[5, 7] and mask.sum() == 1
    assert not cache.hot_pixels("b").any()
    spike = cache.read("a", 0).spike
    raw = reference_bins(data, "a", 0, S)
    assert raw[:, 5, 7].tolist() == [4] * S          # the stuck pixel fired every frame
    assert (spike[:, 5, 7] < 4).all()                 # repaired from its neighbours
    assert cache.manifest["sequences"]["a"]["hot_pixels"]["count"] == 1
    assert cache.manifest["sequences"]["b"]["hot_pixels"]["count"] == 0


def test_workers_give_the_same_cache(tmp_path, built):
    data, cache_dir = built
    build(data, tmp_path / "w2", val=["c"], workers=2)
    assert manifest_without_time(tmp_path / "w2") == manifest_without_time(cache_dir)
    assert all_records(tmp_path / "w2") == all_records(cache_dir)


def test_background_writeback_only_beside_other_processes():
    """Writing a writemap shard back write-protects its pages and interrupts every CPU running
    this process: only worth it when the frames are computed elsewhere."""
    from spikeprep.cache.runner import RunOptions
    from spikeprep.lmdb_writer import DEFAULT_FLUSH_BYTES

    assert [RunOptions(workers=w).flush_bytes for w in (0, 1, 2, 8)] == [0, 0] + [DEFAULT_FLUSH_BYTES] * 2
    assert RunOptions(workers=0, dask="tcp://127.0.0.1:8786").flush_bytes == DEFAULT_FLUSH_BYTES


def test_sync_loaded_relative_paths(built):
    data, _ = built
    assert load_sync(data / "spike" / "a" / "sync.json").frames[0].blur == "blur/a/000000.png"


def test_hot_pixel_mask_follows_match_rgb(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=2, rgb_hw=(32, 48), spike_hw=(16, 24),
                        stuck={"a": (5, 7)}, rate=0.05)
    build(data, tmp_path / "cache", hot_pixels="detect", match="rgb")
    cache = spikeprep.open_cache(tmp_path / "cache")
    mask = cache.hot_pixels("a")
    assert mask.shape == cache.read("a", 0).spike.shape[1:] == (32, 48)
    assert np.argwhere(mask).tolist() == [[10, 14], [10, 15], [11, 14], [11, 15]]
    assert spikeprep.verify_cache(tmp_path / "cache", data_root=data).ok


def _read_sum(args):
    cache, seq, i = args
    return int(cache.read(seq, i).spike.sum())


def test_cache_in_forked_and_spawned_workers(built):
    import multiprocessing
    _, cache_dir = built
    cache = spikeprep.open_cache(cache_dir)
    expected = [int(cache.read("b", i).spike.sum()) for i in range(4)]  # parent opened the env first
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            assert pool.map(_read_sum, [(cache, "b", i) for i in range(4)]) == expected
    assert int(cache.read("b", 3).spike.sum()) == expected[3]
