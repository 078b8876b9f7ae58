"""import -> voxelize (no --val) -> verify --data on each preset's replica: the cached voxels equal
the representation of the window each official loader feeds (tests/replicas.py), splits and frame
names reach the cache, SOURCE stays byte-identical."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from spikeprep import open_cache
from spikeprep.cli import main
from tests.support import replicas


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def bins(spikes: np.ndarray, S: int) -> np.ndarray:
    """``(S, h, w)`` spike counts of S equal bins ``[k*L//S, (k+1)*L//S)``, the obvious way."""
    L = len(spikes)
    return np.stack([spikes[k * L // S:(k + 1) * L // S].sum(axis=0) for k in range(S)])


def pipeline(tmp_path, preset, src, *import_args, voxelize_args=("--S", "4")):
    before = replicas.tree_hash(src)
    data, cache = tmp_path / "data", tmp_path / "cache"
    result = run("import", preset, src, data, *import_args)
    assert result.exit_code == 0, result.output
    result = run("voxelize", data, cache, *voxelize_args)
    assert result.exit_code == 0, result.output
    result = run("verify", cache, "--data", data)
    assert result.exit_code == 0, result.output
    assert replicas.tree_hash(src) == before
    return open_cache(cache), data


def test_spk_gopro_end_to_end(tmp_path):
    seqs = {"train": {"GOPR0372_07_00": ["000047", "000048"]}, "test": {"GOPR0384_11_00": ["000001"]}}
    src = replicas.spk_gopro(tmp_path / "src", seqs, spike=(8, 16), rgb=(16, 32))
    cache, _ = pipeline(tmp_path, "spk-gopro", src, "--spike-size", "8x16")
    assert cache.split("GOPR0372_07_00") == "train" and cache.split("GOPR0384_11_00") == "val"
    assert cache.manifest["spike_stats"]["over"] == ["GOPR0372_07_00"]
    assert [cache.frame_name("GOPR0372_07_00", i) for i in range(2)] == ["000047", "000048"]
    for seq, split in (("GOPR0372_07_00", "train"), ("GOPR0384_11_00", "test")):
        for i, name in enumerate(seqs[split][seq]):
            spikes = replicas.loader_decode(src / f"GOPRO_Large_spike_seq/{split}/{seq}/spike/{name}.dat", 8, 16)
            b, e = replicas.spk_gopro_window(len(spikes))
            np.testing.assert_array_equal(cache.read(seq, i).spike, bins(spikes[b:e], 4))


def test_val_flag_overrides_the_splits_and_splits_are_build_parameters(tmp_path):
    seqs = {"train": {"GOPR0372_07_00": ["000047"]}, "test": {"GOPR0384_11_00": ["000001"]}}
    src = replicas.spk_gopro(tmp_path / "src", seqs, spike=(8, 16), rgb=(16, 32))
    assert run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16").exit_code == 0
    result = run("voxelize", tmp_path / "data", tmp_path / "cache", "--S", "2", "--val", "GOPR0372_07_00")
    assert result.exit_code == 0, result.output
    cache = open_cache(tmp_path / "cache")
    assert cache.split("GOPR0372_07_00") == "val" and cache.split("GOPR0384_11_00") == "train"
    result = run("voxelize", tmp_path / "data", tmp_path / "cache", "--S", "2")  # the sync.json splits
    assert result.exit_code == 1 and "other parameters" in result.output and "val" in result.output


@pytest.mark.parametrize("pad", ["ones", "zeros"])
def test_x4k_padded_voxels(tmp_path, pad):
    clips = {("002", "occ008.320_f2881"): [3, 47, 70]}
    src = replicas.x4k(tmp_path / "src", "train", clips, n_full=80, spike=(16, 16), rgb=(32, 32))
    cache, _ = pipeline(tmp_path, "x4k", src, "--spike-size", "16x16", "--pad", pad,
                        voxelize_args=("--S", "5"))
    seq = "002_occ008.320_f2881"
    spikes = replicas.loader_decode(src / "train_spike_2xds/002/occ008.320_f2881/spike.dat", 16, 16)
    for i, c in enumerate(clips[("002", "occ008.320_f2881")]):
        fed = replicas.x4k_window(spikes, c, value=1.0 if pad == "ones" else 0.0)
        np.testing.assert_array_equal(cache.read(seq, i).spike, bins(fed, 5))
        assert cache.frame_name(seq, i) == replicas.x4k_name(c)


def test_svrt_tfp_cache_within_one_grey_level(tmp_path):
    src = replicas.svrt(tmp_path / "src", {"train": {"GOPR0372_07_00": 56}, "test": {"GOPR0384_11_00": 88}},
                        spike=(8, 16), rgb=(16, 32))
    cache, _ = pipeline(tmp_path, "s-vrt", src, voxelize_args=("--repr", "svrt-tfp", "--S", "4"))
    assert cache.manifest.params.repr_params == {"half_window": 20}
    for seq, split in (("GOPR0372_07_00", "train"), ("GOPR0384_11_00", "test")):
        for i in range(3):
            spikes = replicas.loader_decode(src / f"GOPRO_Large_spike_seq/{split}/{seq}/spike/{i:06d}.dat", 8, 16)
            got = cache.read(seq, i).spike.astype(int)
            assert np.abs(got - replicas.svrt_tfp(spikes, 4).astype(int)).max() <= 1


def test_ssdm_and_rsb_end_to_end(tmp_path):
    src = replicas.ssdm(tmp_path / "s/src", {"train": {"GOPR0372_07_00": 3}, "test": {"GOPR0384_11_00": 3}},
                        spike=(8, 16), rgb=(16, 32))
    cache, _ = pipeline(tmp_path / "s", "s-sdm", src, "--spike-size", "8x16")
    assert cache.num_frames("GOPR0372_07_00") == 2 and cache.split("GOPR0384_11_00") == "val"
    for i, name in enumerate(("000019", "000032")):
        spikes = replicas.loader_decode(src / f"GOPRO/train/spike_data/GOPR0372_07_00/{name}.dat", 8, 16)
        b, e = replicas.ssdm_window(len(spikes))
        np.testing.assert_array_equal(cache.read("GOPR0372_07_00", i).spike, bins(spikes[b:e], 4))
    src = replicas.rsb(tmp_path / "r/src", {"calib": [("0001", 137), ("0002", 137)]}, spike=(8, 16), rgb=(16, 32))
    cache, _ = pipeline(tmp_path / "r", "rsb", src, "--spike-size", "8x16")
    assert cache.split("calib") == "val" and cache.read("calib", 0).sharp is None
    spikes = replicas.loader_decode(src / "spike_data/calib/0002.dat", 8, 16)
    np.testing.assert_array_equal(cache.read("calib", 1).spike, bins(spikes[20:117], 4))
    manifest = json.loads((tmp_path / "r/cache/manifest.json").read_text())
    assert manifest["sequences"]["calib"]["frame_names"] == ["0001", "0002"]


# -- the recipe's T, the trainer's num_frames, inference names -----------------------------------

@pytest.mark.requires_torch
def test_recipe_clip_length_reaches_the_cache_and_the_trainer(tmp_path):
    from spikeprep import ConfigError
    from tests.support.data_roots import make_recipe
    from vrt_train.data import ShardDataset, clip_frames

    make_recipe(tmp_path / "data", frames=4, T=3)
    assert run("build-sync", tmp_path / "data").exit_code == 0
    result = run("voxelize", tmp_path / "data", tmp_path / "cache", "--S", "2")
    assert result.exit_code == 0, result.output
    cache = open_cache(tmp_path / "cache")
    assert cache.clip_length("seqA") == 3
    assert clip_frames(cache, ["seqA"], None) == 3 and clip_frames(cache, ["seqA"], 2) == 2
    assert ShardDataset(tmp_path / "cache", None, gt_size=8).num_frames == 3
    with pytest.raises(ConfigError, match="at least 2 frames"):
        clip_frames(cache, ["seqA"], 1)


@pytest.mark.requires_torch
def test_num_frames_null_errors():
    from spikeprep import ConfigError
    from tests.support.fakes import FakeCache
    from vrt_train.data import clip_frames

    class OneFrameClips(FakeCache):
        def clip_length(self, seq):
            return 1

    with pytest.raises(ConfigError, match="records no clip length T"):
        clip_frames(FakeCache(), ["seq000"], None)
    with pytest.raises(ConfigError, match="smallest training T"):
        clip_frames(OneFrameClips(), ["seq000"], None)


@pytest.mark.requires_torch
def test_inference_writes_source_frame_names(tmp_path, monkeypatch):
    import os

    import cv2

    import vrt_train.data as data
    from tests.support.fakes import FakeCache
    from tests.support.tiny_train import TinyNet, small_cfg
    from tests.support.tiny_train import run as train_run
    from vrt_train.infer import infer

    class Named(FakeCache):
        def frame_name(self, seq, i):
            return f"{4 * i:04d}_{i:03d}"

    monkeypatch.setattr(data, "open_any", lambda c: Named() if isinstance(c, (str, os.PathLike)) else c)

    cfg = small_cfg(tmp_path, None, total_iter=2, fix_iter=0)
    train_run(cfg)
    written = infer(cfg, Named(), tmp_path / "out", progress=False, model_fn=TinyNet)
    assert sorted(p.name for p in written if p.parent.name == "seq001")[:2] == ["0000_000.png", "0004_001.png"]
    assert cv2.imread(str(tmp_path / "out/seq001/0028_007.png")).shape == (32, 32, 3)
