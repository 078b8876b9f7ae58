"""vrt_train.data / vrt_train.augment: shapes, dtypes, crop alignment, sampler, normalisation."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

from spikeprep import ConfigError
from tests.support.fakes import FakeCache
from vrt_train.augment import SpikeNorm, assemble, geometric
from vrt_train.config import AugmentConfig
from vrt_train.data import ClipSampler, ShardDataset, ValDataset, make_loader, window_divisor_fn


def test_item_shapes_dtypes_and_alignment():
    ds = ShardDataset(FakeCache(f=2), num_frames=3, gt_size=16, seed=1)
    assert len(ds) == 2 * (8 - 3 + 1)  # two train sequences
    for key in [(0, 0), (1, 5), (3, 7)]:
        item = ds[key]
        assert item["L_rgb"].shape == (3, 16, 16, 3) and item["L_rgb"].dtype == torch.uint8
        assert item["H"].shape == (3, 16, 16, 3) and item["H"].dtype == torch.uint8
        assert item["L_spike"].shape == (3, 4, 8, 8) and item["L_spike"].dtype == torch.uint16
        rgb, spike = item["L_rgb"].permute(0, 3, 1, 2).int(), item["L_spike"].int()
        # the spike crop is the RGB crop on the spike grid: spike (y', x') = RGB (2y', 2x') / 2
        assert torch.equal(spike[:, 0], rgb[:, 0, ::2, ::2] // 2)
        assert torch.equal(spike[:, 1], rgb[:, 1, ::2, ::2] // 2)
        assert torch.equal(item["H"][..., 2].int(), rgb[:, 2] + 1)
        assert item["frames"].tolist() == list(range(item["frames"][0], item["frames"][0] + 3))
        assert torch.equal(spike[:, 2, 0, 0], item["frames"].int() + 200)
        L = 15 + item["frames"] - 5
        k = torch.arange(4)
        expect = (k + 1)[None] * L[:, None] // 4 - k[None] * L[:, None] // 4
        assert torch.equal(item["window"], expect.float())
    assert torch.equal(ds[(2, 3)]["L_rgb"], ds[(2, 3)]["L_rgb"])  # deterministic per key
    crops = {tuple(ds[(e, 0)]["L_rgb"][0, 0, 0, :2].tolist()) for e in range(12)}
    assert len(crops) > 1  # the crop moves between epochs


def test_gt_size_must_divide_by_factor():
    with pytest.raises(ConfigError, match="divisible"):
        ShardDataset(FakeCache(f=2), num_frames=3, gt_size=15)
    with pytest.raises(ConfigError, match="larger"):
        ShardDataset(FakeCache(), num_frames=3, gt_size=64)


def test_val_dataset_whole_sequences_and_fallback():
    val = ValDataset(FakeCache())
    assert len(val) == 1 and val[0]["seq"] == "seq002" and val[0]["L_rgb"].shape == (8, 32, 32, 3)
    with pytest.warns(UserWarning, match="no val split"):
        val = ValDataset(FakeCache(splits=("train",) * 3), num_frames=5)
    assert val[0]["seq"] == "seq002" and val[0]["L_rgb"].shape[0] == 5


def test_sampler_deterministic_disjoint_resumable():
    n = 37
    streams = []
    for rank in range(3):
        s = ClipSampler(n, rank, 3, seed=5)
        it = iter(s)
        streams.append([next(it) for _ in range(2 * len(s))])
    for epoch in (0, 1):
        seen = [set(i for e, i in st if e == epoch) for st in streams]
        assert set().union(*seen) == set(range(n))
        assert sum(len(x) for x in seen) >= n - 2  # disjoint up to the wrap-around padding
    again = iter(ClipSampler(n, 1, 3, seed=5))
    assert [next(again) for _ in range(2 * 13)] == streams[1]
    for consumed in (0, 5, 13, 20):
        resumed = iter(ClipSampler.at(consumed, n, 1, 3, seed=5))
        assert [next(resumed) for _ in range(6)] == streams[1][consumed:consumed + 6]


def test_loader_workers_same_stream_and_pickle():
    ds = ShardDataset(FakeCache(), num_frames=2, gt_size=16, seed=3, samples_per_epoch=10)
    pickle.loads(pickle.dumps(ds))

    def take(workers):
        loader = make_loader(ds, 2, workers, ClipSampler(len(ds), seed=3))
        it = iter(loader)
        return [next(it) for _ in range(7)]  # crosses an epoch boundary
    a, b = take(0), take(2)
    for x, y in zip(a, b):
        assert torch.equal(x["L_rgb"], y["L_rgb"]) and torch.equal(x["L_spike"], y["L_spike"])
        assert x["seq"] == y["seq"]


def test_window_divisor_bins():
    fn = window_divisor_fn(FakeCache(S=3).manifest.params)
    assert fn(10).tolist() == [3, 3, 4]
    assert fn(7).tolist() == [2, 2, 3]


def _batch(B=3, T=2, f=1, S=4):
    ds = ShardDataset(FakeCache(f=f, S=S), num_frames=T, gt_size=16, seed=0)
    return torch.utils.data.default_collate([ds[(0, i)] for i in range(B)]), ds


def test_normalisations_by_hand():
    batch, ds = _batch()
    spike = batch["L_spike"].double()
    window = batch["window"].double()
    m = ds.items.manifest["spike_stats"]
    for mode, expect in [
        ("window", spike / window[..., None, None]),
        ("quantile", (spike / torch.tensor(m["q995"]).view(1, 1, -1, 1, 1)).clamp(0, 1)),
        ("standardize", (spike - torch.tensor(m["mean"]).view(1, 1, -1, 1, 1)) / 2.0),
        ("none", spike),
    ]:
        L, H = assemble(batch, "cpu", SpikeNorm.from_manifest(ds.items.manifest, mode), None)
        assert L.shape == (3, 2, 7, 16, 16) and L.dtype == torch.float32
        torch.testing.assert_close(L[:, :, 3:].double(), expect.double(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(L[:, :, :3], batch["L_rgb"].permute(0, 1, 4, 2, 3).float() / 255)
        torch.testing.assert_close(H, batch["H"].permute(0, 1, 4, 2, 3).float() / 255)


def test_spike_upsampled_nearest_to_rgb_size():
    batch, ds = _batch(f=2)
    L, _ = assemble(batch, "cpu", SpikeNorm("none"), None)
    assert L.shape[-2:] == (16, 16)
    torch.testing.assert_close(L[:, :, 3:, 1::2, ::2], batch["L_spike"].float())
    torch.testing.assert_close(L[:, :, 3:, ::2, 1::2], batch["L_spike"].float())


def test_augmentation_same_for_frames_rgb_spike_and_target():
    batch, ds = _batch(B=8, T=3)
    plain, target = assemble(batch, "cpu", SpikeNorm("none"), None)
    g = torch.Generator().manual_seed(0)
    L, H = assemble(batch, "cpu", SpikeNorm("none"), AugmentConfig(), g)
    variants = set()
    for b in range(8):
        # find the dihedral transform used for sample b from frame 0's RGB and check everything else
        ok = [(h, v, t) for h in (0, 1) for v in (0, 1) for t in (0, 1)
              if torch.equal(geometric(plain[b, 0, :3], h, v, t), L[b, 0, :3])]
        assert ok, "RGB frame 0 is not a dihedral transform of the input"
        h, v, t = ok[0]
        variants.add(ok[0])
        assert torch.equal(geometric(plain[b], h, v, t), L[b])  # all frames, RGB and spike
        assert torch.equal(geometric(target[b], h, v, t), H[b])
    assert len(variants) > 1
    g2 = torch.Generator().manual_seed(0)
    L2, _ = assemble(batch, "cpu", SpikeNorm("none"), AugmentConfig(), g2)
    assert torch.equal(L, L2)


def test_photometric_and_spike_noise():
    batch, ds = _batch(B=2)
    aug = AugmentConfig(hflip=False, rot=False, brightness=0.2, contrast=0.2, spike_gain=0.5, spike_poisson=True)
    L, H = assemble(batch, "cpu", SpikeNorm("none"), aug, torch.Generator().manual_seed(1))
    plain, target = assemble(batch, "cpu", SpikeNorm("none"), None)
    assert not torch.equal(L[:, :, :3], plain[:, :, :3]) and not torch.equal(L[:, :, 3:], plain[:, :, 3:])
    assert torch.equal(L[:, :, 3:], L[:, :, 3:].round())  # Poisson counts stay integers
    assert L[:, :, :3].min() >= 0 and L[:, :, :3].max() <= 1
    # input and target get the same brightness/contrast: their difference only scales
    d_in, d_out = target - plain[:, :, :3], H - L[:, :, :3]
    assert (d_out.abs() <= d_in.abs() * 1.5 + 1e-6).all()
