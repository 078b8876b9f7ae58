"""Manifest version 3: the new keys round-trip and are validated; version 2 caches still open,
verify and resume (a cache that uses none of the new keys has version 2's params hash)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import spikeprep
from spikeprep.cache.manifest import manifest_from_dict
from spikeprep.cache.manifest_params import CacheParams, ReprSpec, params_hash
from spikeprep.cache.records import pack_bits, stored_shape, unpack_bits
from spikeprep.errors import CacheError
from tests.support.cache_datasets import make_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("v3")
    data = make_dataset(root / "data", sequences=("a", "b"), frames=3)
    spikeprep.voxelize_dataset(data, root / "cache", S=4, val=["b"], progress=False)
    return data, root / "cache"


def v3_extras(raw: dict) -> dict:
    """``raw`` with every version-3 key filled (a second, bit-packed representation, a
    registration, spike-only data), its params hash renewed."""
    raw = json.loads(json.dumps(raw))
    p = raw["params"]
    p["more_representations"] = [{"name": "raw", "repr": "raw", "S": 41, "repr_params": {}, "channels": 41,
                                  "spike_dtype": "uint8", "spike_shape": [41, 8, 12], "storage": "bitpacked"}]
    p["registration"] = {"crop": [8, 12], "resample": "linear", "dtype": "float32"}
    p["has_blur"] = False
    raw["params_hash"] = params_hash(p)
    raw["sequences"]["a"]["registration"] = {"model": "homography", "matrix": [[1, 0, 2], [0, 1, 3], [0, 0, 1]],
                                             "overlap": [2, 3, 14, 11], "crop_box": [2, 3, 14, 11]}
    raw["representation_stats"] = {"raw": {"mean": [0.5], "std": [0.5], "q995": [1], "over": ["a"],
                                           "method": "exact (value histograms)"}}
    return raw


def test_new_builds_write_version_3_and_leave_unused_keys_out(built):
    raw = json.loads((built[1] / "manifest.json").read_text())
    assert raw["manifest_version"] == 3
    for key in ("storage", "more_representations", "has_blur", "registration"):
        assert key not in raw["params"]
    assert "representation_stats" not in raw and "registration" not in raw["sequences"]["a"]


def test_version_3_keys_round_trip(built):
    raw = v3_extras(json.loads((built[1] / "manifest.json").read_text()))
    manifest = manifest_from_dict(raw)
    assert manifest.to_dict() == raw
    first, extra = manifest.params.representations()
    assert (first.kind, extra.kind) == ("spike", "spike.raw")
    assert extra.record_shape == (41, 8, 2) and extra.dtype == np.uint8
    assert manifest.params.registration.crop == (8, 12) and not manifest.params.has_blur
    assert manifest.sequences["a"].registration.matrix[0] == (1, 0, 2)
    assert manifest.stats_of("raw").mean == (0.5,)
    keys = manifest.sequences["a"].expected_records(manifest.params, "a")
    assert "a/000000/blur" not in keys and keys["a/000000/spike.raw"] == ((41, 8, 2), np.dtype("u1"))


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m["params"]["more_representations"][0].update(name="bins"), "representation twice"),
    (lambda m: m["params"]["more_representations"][0].update(storage="zip"), "storage"),
    (lambda m: m["params"]["registration"].update(crop=[0, 4]), "registration.crop"),
    (lambda m: m["representation_stats"].update(tfi={}), "representation_stats"),
])
def test_bad_version_3_keys_are_refused(built, mutate, message):
    raw = v3_extras(json.loads((built[1] / "manifest.json").read_text()))
    mutate(raw)
    raw["params_hash"] = params_hash(raw["params"])
    with pytest.raises(CacheError, match=message):
        manifest_from_dict(raw)


def test_bad_sequence_registration_is_refused(built):
    raw = v3_extras(json.loads((built[1] / "manifest.json").read_text()))
    raw["sequences"]["a"]["registration"]["crop_box"] = [5, 5, 5, 9]
    with pytest.raises(CacheError, match="crop_box"):
        manifest_from_dict(raw)


def test_version_2_caches_open_and_verify(built, tmp_path):
    data, cache_dir = built
    old = tmp_path / "old"
    shutil.copytree(cache_dir, old)
    raw = json.loads((old / "manifest.json").read_text())
    raw["manifest_version"] = 2
    (old / "manifest.json").write_text(json.dumps(raw))
    cache = spikeprep.open_cache(old)
    assert cache.params == spikeprep.open_cache(cache_dir).params
    assert spikeprep.verify_cache(old, data_root=data).ok


def test_unknown_representation_name_is_refused_naming_the_fix():
    params = CacheParams(S=4, channels=4, repr="bins", repr_params={}, flipud=True, match="none",
                         hot_pixels="off", spike_dtype="uint8", rgb_shape=(8, 8, 3), spike_shape=(4, 8, 8))
    assert [s.name for s in params.representations()] == ["bins"]
    with pytest.raises(CacheError, match="add-repr tfi"):
        params.representation_named("tfi")
    assert isinstance(params.representations()[0], ReprSpec)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 40), st.randoms(use_true_random=False))
def test_pack_bits_round_trips_against_a_hand_rule(n, h, w, rnd):
    bits = np.array([[[rnd.randint(0, 1) for _ in range(w)] for _ in range(h)] for _ in range(n)], np.uint8)
    packed = pack_bits(bits)
    assert packed.shape == stored_shape(bits.shape, "bitpacked")
    for x in range(w):  # pixel x is bit x % 8 of byte x // 8
        np.testing.assert_array_equal((packed[..., x // 8] >> (x % 8)) & 1, bits[..., x])
    np.testing.assert_array_equal(unpack_bits(packed, w), bits)
