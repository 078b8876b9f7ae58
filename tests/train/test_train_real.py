"""End to end on a real cache (simulate -> build-sync -> voxelize) with the real VRT, via the CLI."""

from __future__ import annotations

import shutil
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

import spikeprep
from tests.support.paths import CONFIGS
from vrt_train.augment import SpikeNorm, assemble
from vrt_train.checkpoint import list_checkpoints
from vrt_train.cli import main
from vrt_train.data import ShardDataset, ValDataset

CONFIG = CONFIGS / "demo_tiny_cpu.yaml"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    spikeprep.simulate_dataset(root / "data", sequences=3, frames=5, height=48, width=48, exposure=1.0)
    spikeprep.build_sync(root / "data")
    spikeprep.voxelize_dataset(root / "data", root / "cache", S=4, val=("seq002",), progress=False)
    return root / "cache"


def test_real_cache_items_and_window_norm(cache):
    ds = ShardDataset(str(cache), num_frames=3, gt_size=40, seed=0)
    assert len(ds) == 2 * 3
    item = ds[(0, 1)]
    c = spikeprep.open_cache(str(cache))
    seq, first = item["seq"], int(item["frames"][0])
    s = c.read(seq, first)
    assert item["L_spike"].dtype == torch.from_numpy(np.array(s.spike)).dtype
    # the crop is where the item says: find it in the full frame
    full = torch.from_numpy(np.array(s.blur))
    hits = [(y, x) for y in range(9) for x in range(9) if torch.equal(full[y:y + 40, x:x + 40], item["L_rgb"][0])]
    assert hits
    y, x = hits[0]
    assert torch.equal(item["L_spike"][0], torch.from_numpy(np.array(s.spike))[:, y:y + 40, x:x + 40])
    batch = torch.utils.data.default_collate([item])
    L, _ = assemble(batch, "cpu", SpikeNorm("window"), None)
    L_len = s.spike_end - s.spike_begin
    edges = [k * L_len // 4 for k in range(5)]
    expect = item["L_spike"][0].double() / torch.tensor(np.diff(edges), dtype=torch.float64).view(4, 1, 1)
    torch.testing.assert_close(L[0, 0, 3:].double(), expect)
    assert 0 <= L[:, :, 3:].min() and L[:, :, 3:].max() <= 1
    assert ValDataset(str(cache))[0]["seq"] == "seq002"


def test_cli_train_resume_infer_real_vrt(cache, tmp_path):
    out = tmp_path / "run"
    base = ["--opt", str(CONFIG), "--set", f"data.cache={cache}", "--set", f"out_dir={out}", "--set", "data.gt_size=48",
            "--set", "train.total_iter=1", "--set", "train.val_every=1", "--set", "train.fix_iter=1",
            "--set", "data.num_frames_val=2", "--set", "train.checkpoint_every=1", "--quiet"]
    from vrt_train.config import load_config
    from vrt_train.train import build_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rgb = build_model(load_config(CONFIG), spike_chans=0)  # an "official" RGB checkpoint
        torch.save({"params": rgb.state_dict()}, tmp_path / "rgb.pth")
        for extra in (["--init-from", str(tmp_path / "rgb.pth")], ["--resume", "auto", "--set", "train.total_iter=2"]):
            with pytest.raises(SystemExit) as exc:
                main(base + extra)
            assert exc.value.code == 0
        assert [p.name for p in list_checkpoints(out)] == ["iter_00000001.pt", "iter_00000002.pt"]
        log = (out / "train.log").read_text()
        assert "init-from" in log and "adapted" in log and "resumed from" in log
        assert len((out / "val.csv").read_text().splitlines()) == 3
        with pytest.raises(SystemExit) as exc:
            main(base + ["--infer", str(cache), str(tmp_path / "png")])
        assert exc.value.code == 0
    pngs = sorted((tmp_path / "png").glob("*/*.png"))
    assert len(pngs) == 15 and cv2.imread(str(pngs[0])).shape == (48, 48, 3)


def test_infer_from_a_data_root_without_sharp_frames(cache, tmp_path):
    data = tmp_path / "inference_set"
    shutil.copytree(cache.parent / "data" / "blur", data / "blur")
    shutil.copytree(cache.parent / "data" / "spike", data / "spike")
    for sync in data.glob("spike/*/sync.json"):
        sync.unlink()
    spikeprep.build_sync(data)
    out = tmp_path / "run"
    base = ["--opt", str(CONFIG), "--set", f"data.cache={cache}", "--set", f"out_dir={out}", "--set", "data.gt_size=48",
            "--set", "train.total_iter=1", "--set", "train.fix_iter=1", "--set", "train.val_every=5",
            "--set", "train.checkpoint_every=1", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for extra in ([], ["--infer", str(data), str(tmp_path / "png")]):
            with pytest.raises(SystemExit) as exc:
                main(base + extra)
            assert exc.value.code == 0
    pngs = sorted((tmp_path / "png").glob("*/*.png"))
    assert len(pngs) == 15 and [p.parent.name for p in pngs[::5]] == ["seq000", "seq001", "seq002"]
    assert not list((tmp_path / "png").glob(".infer-cache-*"))
