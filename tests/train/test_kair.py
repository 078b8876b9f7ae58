"""vrt_train.kair: KAIR's video dataset samples (keys, shapes, dtypes, ranges) from a cache."""

from __future__ import annotations

import dataclasses
import os
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

import spikeprep
from spikeprep import ConfigError
from tests.support.fakes import FakeCache
from tests.support.paths import CONFIGS
from vrt_train import kair
from vrt_train.augment import SpikeNorm, assemble

S = 4


def _use(monkeypatch, cache):
    import vrt_train.data as data
    monkeypatch.setattr(data, "open_any", lambda c: cache if isinstance(c, (str, os.PathLike)) else c)


def bins_divisor(L: int) -> np.ndarray:
    """Spike frames per bin of a window of L frames split in S bins (edges k*L//S)."""
    edges = [k * L // S for k in range(S + 1)]
    return np.diff(edges).astype(np.float32)


def reference(cache, seq, frames, top, left, h, w):
    """Plain numpy: KAIR's L and H of a crop straight from the cache records."""
    f = cache.f
    Ls, Hs = [], []
    for i in frames:
        r = cache.read(seq, i)
        rgb = np.asarray(r.blur)[top:top + h, left:left + w].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        sharp = np.asarray(r.sharp)[top:top + h, left:left + w].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        sp = np.asarray(r.spike)[:, top // f:(top + h) // f, left // f:(left + w) // f]
        sp = np.repeat(np.repeat(sp, f, axis=1), f, axis=2).astype(np.float32)
        sp = sp / bins_divisor(int(r.spike_end - r.spike_begin))[:, None, None]
        Ls.append(np.concatenate([rgb, sp]))
        Hs.append(sharp)
    return np.stack(Ls), np.stack(Hs)


def test_train_sample_keys_shapes_and_crop_match_the_records(monkeypatch):
    cache = FakeCache(f=2)
    _use(monkeypatch, cache)
    ds = kair.VideoTrainDataset({"dataroot": "c", "num_frame": 3, "gt_size": 16, "use_hflip": False,
                                 "use_rot": False, "dataset_type": "VideoRecurrentTrainDataset",
                                 "io_backend": {"type": "lmdb"}})
    assert len(ds) == 2 * 8  # one key per frame of the two train sequences (KAIR)
    for index in (0, 5, 15):
        s = ds[index]
        assert set(s) == {"L", "H", "key"}
        assert s["L"].shape == (3, 3 + S, 16, 16) and s["L"].dtype == torch.float32
        assert s["H"].shape == (3, 3, 16, 16) and s["H"].dtype == torch.float32
        seq, first = ds.keys[index]
        assert s["key"] == f"{seq}/{first:06d}"
        rgb = (s["L"][:, :3] * 255).round().int()
        top, left = int(rgb[0, 0, 0, 0]), int(rgb[0, 1, 0, 0])  # FakeCache: blur = (y, x, frame + 10 seq)
        frames = (rgb[:, 2, 0, 0] - 10 * int(seq[-1])).tolist()
        assert frames == list(range(frames[0], frames[0] + 3)) and (frames[0] == first or first > 8 - 3)
        L, H = reference(cache, seq, frames, top, left, 16, 16)
        assert np.array_equal(s["L"].numpy(), L) and np.array_equal(s["H"].numpy(), H)
        assert 0 <= float(s["H"].min()) and float(s["H"].max()) <= 1


def test_train_augmentation_and_reverse_as_kair(monkeypatch):
    cache = FakeCache()
    _use(monkeypatch, cache)
    monkeypatch.setattr(kair.random, "random", lambda: 0.0)        # every coin: reverse, hflip, vflip, transpose
    monkeypatch.setattr(kair.random, "randint", lambda a, b: b)     # crop at the far corner, last start
    monkeypatch.setattr(kair.random, "choice", lambda seq: seq[-1])
    ds = kair.VideoTrainDataset({"dataroot": "c", "num_frame": 3, "gt_size": 16, "random_reverse": True,
                                 "interval_list": [1, 2]})
    s = ds[7]  # seq000 frame 7: too close to the end for 3 frames at interval 2 -> start 8 - 6 = 2
    L, H = reference(cache, "seq000", [6, 4, 2], 16, 16, 16, 16)
    aug = lambda x: np.swapaxes(x[..., ::-1, ::-1], -1, -2)  # noqa: E731  hflip, vflip, transpose
    assert np.array_equal(s["L"].numpy(), aug(L)) and np.array_equal(s["H"].numpy(), aug(H))
    assert s["key"] == "seq000/000007"


@pytest.mark.parametrize("mode", ["window", "quantile", "standardize", "none"])
def test_spike_normalisation_is_the_trainers(monkeypatch, mode):
    cache = FakeCache(f=2)
    _use(monkeypatch, cache)
    ds = kair.VideoTestDataset({"dataroot": "c", "spike_norm": mode, "num_frame": 4})
    s = ds[0]
    raw = ds.items.read_clip("seq002", range(4), 0, 0, 32, 32)
    L, H = assemble(torch.utils.data.default_collate([raw]), "cpu", SpikeNorm.from_manifest(cache.manifest, mode), None)
    torch.testing.assert_close(s["L"], L[0], rtol=1e-6, atol=1e-6)
    assert torch.equal(s["H"], H[0])


def test_test_sample_folder_and_lq_path(monkeypatch):
    cache = FakeCache()
    names = [f"blur/seq002/{i:04d}.png" for i in range(8)]
    cache.manifest = dataclasses.replace(cache.manifest, sequences={"seq002": SimpleNamespace(frame_names=names)})
    _use(monkeypatch, cache)
    ds = kair.VideoTestDataset({"dataroot": "c", "phase": "test", "dataset_type": "VideoRecurrentTestDataset",
                                "cache_data": False})
    assert len(ds) == 1
    s = ds[0]
    assert set(s) == {"L", "H", "folder", "lq_path"} and s["folder"] == "seq002"
    assert s["L"].shape == (8, 3 + S, 32, 32) and s["H"].shape == (8, 3, 32, 32)
    assert s["lq_path"] == [f"seq002/{i:04d}.png" for i in range(8)]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=1)))
    assert os.path.basename(batch["lq_path"][3][0]).split(".")[0] == "0003"  # how main_train_vrt names outputs
    cache.manifest = dataclasses.replace(cache.manifest, sequences={})
    assert kair.frame_names(cache, "seq002")[:2] == ["000000", "000001"]  # fallback: the frame index


def test_option_errors(monkeypatch):
    _use(monkeypatch, FakeCache())
    with pytest.raises(ConfigError, match="no dataroot"):
        kair.VideoTrainDataset({"num_frame": 3})
    with pytest.raises(ConfigError, match="scale"):
        kair.VideoTrainDataset({"dataroot": "c", "scale": 4})
    with pytest.raises(ConfigError, match="spike_norm"):
        kair.VideoTrainDataset({"dataroot": "c", "spike_norm": "max", "gt_size": 16})
    with pytest.raises(ConfigError, match="shorter"):
        kair.VideoTrainDataset({"dataroot": "c", "num_frame": 9, "gt_size": 16})
    with pytest.raises(ConfigError, match="gt_size"):
        kair.VideoTrainDataset({"dataroot": "c", "gt_size": 64})
    with pytest.warns(UserWarning, match="num_frames"):
        kair.VideoTrainDataset({"dataroot": "c", "num_frames": 3, "gt_size": 16})


def test_real_cache_crops_match_its_records(tmp_path, monkeypatch):
    spikeprep.simulate_dataset(tmp_path / "data", sequences=2, frames=4, height=40, width=48, exposure=1.0)
    spikeprep.build_sync(tmp_path / "data")
    spikeprep.voxelize_dataset(tmp_path / "data", tmp_path / "cache", S=S, val=("seq001",), progress=False)
    ds = kair.VideoTrainDataset({"dataroot": str(tmp_path / "cache"), "num_frame": 3, "gt_size": 24,
                                 "use_hflip": False, "use_rot": False})
    cache = spikeprep.open_cache(tmp_path / "cache")
    cache.f = 1
    for index in range(len(ds)):
        s = ds[index]
        seq, first = ds.keys[index]
        starts = [first] if first <= 4 - 3 else [0, 1]  # near the end KAIR draws the start
        crop = (s["L"][0, :3] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        hits = [(start, y, x) for start in starts for y in range(40 - 24 + 1) for x in range(48 - 24 + 1)
                if np.array_equal(np.asarray(cache.read(seq, start).blur)[y:y + 24, x:x + 24], crop)]
        assert hits, "the crop is not in the record"
        start, y, x = hits[0]
        L, H = reference(cache, seq, range(start, start + 3), y, x, 24, 24)
        assert np.array_equal(s["L"].numpy(), L) and np.array_equal(s["H"].numpy(), H)
    test = kair.VideoTestDataset({"dataroot": str(tmp_path / "cache")})
    s = test[0]
    assert s["folder"] == "seq001" and s["L"].shape == (4, 3 + S, 40, 48)
    assert float(s["L"][:, 3:].min()) >= 0 and float(s["L"][:, 3:].max()) <= 1  # window rates


def test_readme_network_factory_lines_build_a_vrt_that_takes_the_samples(monkeypatch, single_thread):
    """The README's define_G branch on a KAIR-parsed netG (KAIR adds scale; init keys present)."""
    import warnings

    from vrt_train.config import load_config
    from vrt_train.model import VRT as net
    cache = FakeCache(size=64, n_frames=4)
    _use(monkeypatch, cache)
    ds = kair.VideoTrainDataset({"dataroot": "c", "num_frame": 2, "gt_size": 64})
    opt_net = {**load_config(CONFIGS / "demo_tiny_cpu.yaml").netG,
               "net_type": "vrt_spike", "spike_chans": S, "init_type": "default", "init_bn_type": "uniform",
               "init_gain": 0.2, "scale": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        netG = net(**{k: v for k, v in opt_net.items() if k not in ('scale', 'init_bn_type', 'init_gain')})
    batch = torch.utils.data.default_collate([ds[0]])
    with torch.no_grad():
        out = netG(batch["L"])
    assert out.shape == batch["H"].shape == (1, 2, 3, 64, 64)
