"""Several spike representations in one cache: built together they equal the caches built one by
one (record for record, by reading); bit-packed ones read back as 0/1 (or packed, on request);
verify --data re-derives each; ``--repr`` parsing and its errors."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

import spikeprep
from spikeprep.cache.records import unpack_bits
from spikeprep.cache.repr_specs import parse_requests
from spikeprep.cli import main
from spikeprep.errors import CacheError, UsageError
from spikeprep.inputs.dat import SpikeStream
from spikeprep.representations import catalog
from tests.support.cache_datasets import copy_dataset, make_dataset


@dataclasses.dataclass(frozen=True)
class Frames:
    """A test-only bit-packed representation: the window's first S spike frames as 0/1 (what a
    'raw' representation stores), image orientation with flipud."""

    S: int = 4
    name: ClassVar[str] = "frames"
    storage: ClassVar[str] = "bitpacked"

    @property
    def channels(self) -> int:
        return self.S

    def dtype_for(self, max_window_len: int) -> np.dtype:
        return np.dtype(np.uint8)

    def to_dict(self) -> dict:
        return {"repr": self.name, "S": self.S}

    def compute(self, packed, height, width, flipud=True, out=None) -> np.ndarray:
        bits = np.unpackbits(np.asarray(packed[:self.S]), axis=1, bitorder="little").reshape(self.S, height, width)
        out[...] = bits[:, ::-1] if flipud else bits
        return out


@pytest.fixture(autouse=True)
def frames_repr(monkeypatch):
    monkeypatch.setitem(catalog.REPRESENTATIONS, "frames", Frames)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("multi") / "data", sequences=("a", "b"), frames=3,
                        rgb_hw=(32, 40), spike_hw=(16, 20))


def build(data, cache, **kw):
    spikeprep.voxelize_dataset(data, cache, val=["b"], progress=False, **kw)
    return spikeprep.open_cache(cache)


@pytest.fixture(scope="module")
def multi(data, tmp_path_factory):
    patch = pytest.MonkeyPatch()  # the module-scoped builds need the test representation too
    patch.setitem(catalog.REPRESENTATIONS, "frames", Frames)
    root = tmp_path_factory.mktemp("built")
    caches = {"multi": build(data, root / "multi", repr=["bins:4", "frames:5", "tfp"], S=2,
                             repr_params={"tfp.tfp_window": 6})}
    for name, kw in {"bins": {"repr": "bins", "S": 4}, "frames": {"repr": "frames", "S": 5},
                     "tfp": {"repr": "tfp", "S": 2, "repr_params": {"tfp_window": 6}}}.items():
        caches[name] = build(data, root / name, **kw)
    yield caches
    patch.undo()


def test_multi_cache_equals_the_single_caches(multi):
    cache = multi["multi"]
    assert [p.name for p in cache.params.representations()] == ["bins", "frames", "tfp"]
    assert [p.kind for p in cache.params.representations()] == ["spike", "spike.frames", "spike.tfp"]
    for seq in cache.sequences:
        for i in range(cache.num_frames(seq)):
            s = cache.read(seq, i)
            assert list(s.spikes) == ["bins", "frames", "tfp"]
            assert s.spike is s.spikes["bins"]
            for name in ("bins", "frames", "tfp"):
                one = multi[name].read(seq, i)
                assert np.array_equal(s.spikes[name], one.spike) and s.spikes[name].dtype == one.spike.dtype
                assert (s.spike_begin, s.spike_end) == (one.spike_begin, one.spike_end)
            assert np.array_equal(s.blur, multi["bins"].read(seq, i).blur)


def test_stats_per_representation_equal_the_single_caches(multi):
    m = multi["multi"].manifest
    assert m.spike_stats == multi["bins"].manifest.spike_stats
    for name in ("frames", "tfp"):
        assert m.representation_stats[name] == multi[name].manifest.spike_stats
        assert m.stats_of(name) == multi[name].manifest.spike_stats
    raw = json.loads((multi["multi"].root / "manifest.json").read_text())
    assert raw["params"]["more_representations"][0]["storage"] == "bitpacked"
    assert raw["params"]["more_representations"][1]["repr_params"] == {"tfp_window": 6}


def test_bitpacked_reads_as_0_1_frames_or_packed_bytes(data, multi):
    cache = multi["multi"]
    s = cache.read("a", 1)
    with SpikeStream(filepath=data / "spike/a/spikes.dat", spike_h=16, spike_w=20) as stream:
        expected = stream.read(s.spike_begin, s.spike_begin + 5, flipud=True).astype(np.uint8)
    assert s.spikes["frames"].shape == (5, 16, 20) and np.array_equal(s.spikes["frames"], expected)
    packed = cache.read("a", 1, unpack=False).spikes["frames"]
    assert packed.shape == (5, 16, 3) and np.array_equal(unpack_bits(packed, 20), expected)
    lazy = spikeprep.open_cache(cache.root, unpack=False)
    assert np.array_equal(lazy.read("a", 1).spikes["frames"], packed)
    assert np.array_equal(lazy.read("a", 1).spike, s.spike)  # array storage: unchanged


def test_read_selects_representations_by_name(multi):
    cache = multi["multi"]
    assert list(cache.read("a", 0, names=["tfp"]).spikes) == ["bins", "tfp"]
    with pytest.raises(CacheError, match="no such spike representation"):
        cache.read("a", 0, names=["ema"])


def test_single_representation_cache_is_unchanged(multi):
    one = multi["bins"]
    assert "more_representations" not in json.loads((one.root / "manifest.json").read_text())["params"]
    s = one.read("a", 0)
    assert list(s.spikes) == ["bins"] and s.spike is s.spikes["bins"]


def test_verify_data_rederives_each_and_catches_a_corrupted_extra_record(data, multi, tmp_path):
    assert spikeprep.verify_cache(multi["multi"].root, data_root=data).ok
    data2, cache = copy_dataset((data, multi["multi"].root), tmp_path)
    import lmdb
    env = lmdb.open(str(cache / "shard-00000.lmdb"), subdir=True)
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(b"a/000001/spike.frames"))
        value[-1] ^= 0x01
        txn.put(b"a/000001/spike.frames", bytes(value))
    env.close()
    report = spikeprep.verify_cache(cache, data_root=data2)
    keys = {(p.key, p.what.split(":")[0]) for p in report.problems}
    assert ("a/000001/spike.frames", "checksum mismatch") in keys
    assert ("a/000001/spike.frames", "stored record differs from the one recomputed from the sources") in keys
    assert all(p.key == "a/000001/spike.frames" or p.key == "manifest.json" for p in report.problems)


def test_verify_catches_changed_representation_stats(data, multi, tmp_path):
    _, cache = copy_dataset((data, multi["multi"].root), tmp_path)
    raw = json.loads((cache / "manifest.json").read_text())
    raw["representation_stats"]["tfp"]["mean"][0] += 1
    (cache / "manifest.json").write_text(json.dumps(raw))
    report = spikeprep.verify_cache(cache)
    assert [p.what.split(" differs")[0] for p in report.problems] == ["representation_stats.tfp.mean"]


def test_cli_repr_list(data, tmp_path):
    result = CliRunner().invoke(main, ["voxelize", str(data), str(tmp_path / "c"), "--repr", "bins:3",
                                       "--repr", "count", "--repr-param", "count.S=1", "--val", "b"])
    assert result.exit_code == 2 and "S" in result.output  # S is not a parameter: refused
    result = CliRunner().invoke(main, ["voxelize", str(data), str(tmp_path / "c"), "--repr", "bins:3",
                                       "--repr", "count", "--val", "b"])
    assert result.exit_code == 0, result.output
    cache = spikeprep.open_cache(tmp_path / "c")
    assert [(p.name, p.S, p.channels) for p in cache.params.representations()] == [("bins", 3, 3), ("count", 1, 1)]
    info = CliRunner().invoke(main, ["info", str(tmp_path / "c")])
    assert info.exit_code == 0 and "count" in info.output


def test_parse_requests():
    assert [(r.name, r.S, r.params) for r in parse_requests(["bins:8", "raw", "tfp"], 3,
                                                           {"a": 1, "tfp.tfp_window": 4})] == \
        [("bins", 8, {"a": 1}), ("raw", 3, {}), ("tfp", 3, {"tfp_window": 4})]
    assert [(r.name, r.S) for r in parse_requests("bins", 8)] == [("bins", 8)]
    assert [(r.name, r.S) for r in parse_requests("bins:6", 8)] == [("bins", 6)]


@pytest.mark.parametrize("repr_, params, message", [
    (["bins:8", "bins:4"], {}, "asked for twice"),
    (["bins:0"], {}, "KIND or KIND:N"),
    (["bins:x"], {}, "KIND or KIND:N"),
    ([], {}, "no representation"),
    (["bins", "tfp"], {"ema.tau_fast": 3}, "not asked for"),
])
def test_parse_errors(repr_, params, message):
    with pytest.raises(UsageError, match=message):
        parse_requests(repr_, None, params)


def test_cli_same_kind_twice_is_a_usage_error(data, tmp_path):
    result = CliRunner().invoke(main, ["voxelize", str(data), str(tmp_path / "c"), "--repr", "bins:8",
                                       "--repr", "bins:4"])
    assert result.exit_code == 2 and "twice" in result.output and "Traceback" not in result.output


def test_bitpacked_first_representation_verifies(data, multi):
    one = multi["frames"]
    assert one.params.storage == "bitpacked" and one.read("a", 0).spike.shape == (5, 16, 20)
    assert one.read("a", 0, unpack=False).spike.shape == (5, 16, 3)
    assert spikeprep.verify_cache(one.root, data_root=data).ok


def test_worker_processes_build_the_same_records(data, multi, tmp_path):
    from tests.support.cache_datasets import all_records
    spikeprep.voxelize_dataset(data, tmp_path / "w0", repr=["bins:4", "tfp:2"], val=["b"], progress=False)
    spikeprep.voxelize_dataset(data, tmp_path / "w2", repr=["bins:4", "tfp:2"], val=["b"], progress=False,
                               workers=2)
    assert all_records(tmp_path / "w0") == all_records(tmp_path / "w2")
    m0, m2 = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("w0", "w2"))
    assert m0["representation_stats"] == m2["representation_stats"] and m0["representation_stats"]["tfp"]["mean"]
