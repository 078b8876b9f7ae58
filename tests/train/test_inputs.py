"""``data.inputs``: the trainer and the KAIR datasets take the cache's representations by name,
concatenated along channels in order; the default (the first only) is the single-representation
path; the device unpacker equals `records.unpack_bits`."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import spikeprep  # noqa: E402
from spikeprep import ConfigError  # noqa: E402
from spikeprep.cache.records import pack_bits, unpack_bits  # noqa: E402
from tests.support.cache_datasets import make_dataset  # noqa: E402
from vrt_train import kair  # noqa: E402
from vrt_train.augment import SpikeNorm  # noqa: E402
from vrt_train.bits import unpack_bits_torch  # noqa: E402
from vrt_train.config import config_from_dict  # noqa: E402
from vrt_train.data import ShardDataset, ValDataset, effective_spike_norm, window_divisor_fn  # noqa: E402


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    data = make_dataset(root / "data", sequences=("a", "b"), frames=4, rgb_hw=(16, 16), spike_hw=(16, 16))
    spikeprep.voxelize_dataset(data, root / "multi", repr=["bins:4", "tfp:2", "ema:2"], val=["b"], progress=False)
    spikeprep.voxelize_dataset(data, root / "one", S=4, val=["b"], progress=False)
    return root / "multi", root / "one"


def test_default_is_the_first_representation_as_a_single_cache_gives(caches):
    multi, one = (ShardDataset(str(c), num_frames=2, gt_size=8, seed=3) for c in caches)
    for k in range(len(one)):
        a, b = multi[(0, k)], one[(0, k)]
        for key in ("L_rgb", "L_spike", "H", "window"):
            assert torch.equal(a[key], b[key]) and a[key].dtype == b[key].dtype


def test_inputs_concatenate_in_order(caches):
    ds = ShardDataset(str(caches[0]), num_frames=2, gt_size=8, seed=3, inputs=["tfp", "bins"])
    item = ds[(0, 1)]
    assert ds.items.channels == 6 and item["L_spike"].shape == (2, 6, 8, 8)
    cache = spikeprep.open_cache(caches[0])
    frames = [int(i) for i in item["frames"]]
    for t, i in enumerate(frames):
        s = cache.read(item["seq"], i)
        full = np.concatenate([s.spikes["tfp"], s.spikes["bins"]])
        # the crop is somewhere in the frame: find it by matching the RGB crop
        rgb = item["L_rgb"][t].numpy()
        tops = [(y, x) for y in range(9) for x in range(9) if np.array_equal(s.blur[y:y + 8, x:x + 8], rgb)]
        (y, x), = tops
        assert np.array_equal(item["L_spike"][t].numpy(), full[:, y:y + 8, x:x + 8])
        L = s.spike_end - s.spike_begin
        tfp, bins = (p.representation() for p in (cache.params.representation_named(n) for n in ("tfp", "bins")))
        assert np.allclose(item["window"][t].numpy(), np.concatenate([tfp.normalizer(L), bins.normalizer(L)]))
    val = ValDataset(str(caches[0]), inputs=["bins", "tfp"])
    assert val[0]["L_spike"].shape[1] == 6


def test_stats_and_window_fallback_follow_the_inputs(caches):
    manifest = spikeprep.open_cache(caches[0]).manifest
    norm = SpikeNorm.from_manifest(manifest, "quantile", ["tfp", "bins"])
    assert norm.q995 == tuple(manifest.representation_stats["tfp"].q995) + tuple(manifest.spike_stats.q995)
    assert SpikeNorm.from_manifest(manifest, "quantile") == SpikeNorm.from_manifest(manifest, "quantile", ["bins"])
    assert window_divisor_fn(manifest.params, ["bins", "ema"]) is None
    with pytest.warns(UserWarning, match="quantile"):
        assert effective_spike_norm(manifest.params, "window", ["ema"]) == "quantile"
    assert effective_spike_norm(manifest.params, "window", ["bins", "tfp"]) == "window"


@pytest.mark.parametrize("inputs, message", [(["raw"], "does not hold"), (["bins", "bins"], "distinct"),
                                             ([], "distinct")])
def test_bad_inputs_are_config_errors(caches, inputs, message):
    with pytest.raises(ConfigError, match=message):
        ShardDataset(str(caches[0]), num_frames=2, gt_size=8, inputs=inputs)


def test_config_key_and_kair_option(caches):
    assert config_from_dict({"data": {"cache": "c"}}).data.inputs is None
    assert config_from_dict({"data": {"cache": "c", "inputs": ["bins", "tfp"]}}).data.inputs == ["bins", "tfp"]
    with pytest.raises(ConfigError, match="wrong type"):
        config_from_dict({"data": {"cache": "c", "inputs": "bins"}})
    opt = {"dataroot": str(caches[0]), "num_frame": 2, "gt_size": 8, "use_hflip": False, "use_rot": False,
           "spike_norm": "none"}
    plain = kair.VideoTrainDataset(opt)
    both = kair.VideoTrainDataset({**opt, "inputs": ["bins", "tfp"]})
    assert (plain.spike_chans, both.spike_chans) == (4, 6)
    random.seed(5)
    a = plain[0]
    random.seed(5)
    b = both[0]
    assert torch.equal(a["L"], b["L"][:, :7])  # same clip and crop: bins first, then tfp


@pytest.mark.parametrize("width", [1, 7, 8, 13, 20])
def test_unpack_on_device_equals_unpack_bits(width):
    rng = np.random.default_rng(width)
    bits = (rng.random((3, 5, width)) < 0.4).astype(np.uint8)
    packed = pack_bits(bits)
    out = unpack_bits_torch(torch.from_numpy(packed), width)
    assert out.dtype == torch.uint8 and np.array_equal(out.numpy(), unpack_bits(packed, width))
    assert np.array_equal(out.numpy(), bits)
    with pytest.raises(ValueError):
        unpack_bits_torch(torch.from_numpy(packed), 8 * packed.shape[-1] + 1)
    with pytest.raises(TypeError):
        unpack_bits_torch(torch.from_numpy(packed).int(), width)
