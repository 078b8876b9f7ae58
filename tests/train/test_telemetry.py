"""vrt_train.telemetry, curves, memory and tiles: step timing, logs, curves.png, auto tiles."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

from tests.support.fakes import FakeCache
from tests.support.tiny_train import TinyNet, small_cfg
from vrt_train import memory, telemetry, tiles
from vrt_train import train as train_mod
from vrt_train.config import ValConfig
from vrt_train.curves import plot_curves, read_rows
from vrt_train.telemetry import StepTelemetry
from vrt_train.validate import _run_padded


@pytest.fixture(autouse=True)
def fake_open_cache(monkeypatch):
    import vrt_train.data as data
    monkeypatch.setattr(data, "open_any", lambda c: FakeCache() if isinstance(c, (str, os.PathLike)) else c)


def test_step_telemetry_hand_computed(monkeypatch):
    clock = iter([0.0, 0.010, 0.100,      # it 1: 10 ms data, 100 ms step
                  0.100, 0.130, 0.300])   # it 2: 30 ms data, 200 ms step
    monkeypatch.setattr(telemetry.time, "perf_counter", lambda: next(clock))
    tele = StepTelemetry("cpu", samples_per_step=4)
    stats = []
    for done, loss in [(1, 1.0), (2, 3.0)]:
        tele.begin()
        tele.data_ready()
        stats.append(tele.end(torch.tensor(loss), done, report=done == 2))
    assert stats[0] is None
    s = stats[1]
    assert (s.iter, s.steps, s.loss) == (2, 2, 2.0)
    assert s.data_ms == pytest.approx(20.0) and s.step_ms == pytest.approx(150.0)
    assert s.data_share == pytest.approx(40 / 300) and s.samples_per_s == pytest.approx(8 / 0.3)
    assert "data 20.0 ms / step 150.0 ms (13.3% data), 26.67 samples/s" in s.line()


def test_training_logs_telemetry_and_draws_curves(tmp_path, monkeypatch):
    losses = []
    real = train_mod.charbonnier

    def spy(E, H, eps):
        loss = real(E, H, eps)
        losses.append(float(loss.detach()))
        return loss
    monkeypatch.setattr(train_mod, "charbonnier", spy)
    cfg = small_cfg(tmp_path, None, print_every=2, tensorboard=True)  # 6 iterations, val at 3 and 6
    train_mod.train(cfg, progress=False, model_fn=TinyNet)
    out = Path(cfg.out_dir)
    lines = [ln for ln in (out / "train.log").read_text().splitlines() if ln.startswith("iter ")]
    assert [ln.split(":")[0] for ln in lines] == ["iter 2", "iter 4", "iter 6"]
    pat = re.compile(r"data [\d.]+ ms / step [\d.]+ ms \([\d.]+% data\), [\d.]+ samples/s, peak mem \d+ MiB")
    assert all(pat.search(ln) for ln in lines)
    with open(out / "train.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iter"]) for r in rows] == [2, 4, 6] and all(int(r["steps"]) == 2 for r in rows)
    for k, r in enumerate(rows):  # the interval mean of the losses the loop computed
        assert float(r["loss"]) == pytest.approx(np.mean(losses[2 * k:2 * k + 2]), rel=1e-5)
        assert 0 <= float(r["data_share"]) <= 1 and float(r["step_ms"]) >= float(r["data_ms"])
        assert float(r["samples_per_s"]) == pytest.approx(2 * 1000 / float(r["step_ms"]), rel=1e-3)
    img = cv2.imread(str(out / "curves.png"))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 200
    if (out / "tb").exists():  # tensorboard installed: the same scalars went there
        assert any((out / "tb").iterdir())


def test_curves_keep_the_last_row_per_iteration(tmp_path):
    (tmp_path / "train.csv").write_text("iter,loss\n2,0.5\n4,0.4\n2,0.3\n")  # resumed from iter 2
    (tmp_path / "val.csv").write_text("iter,psnr,ssim,psnr_input,ssim_input\n4,25,0.8,22,0.7\n")
    rows = read_rows(tmp_path / "train.csv", ("loss",))
    assert rows == {"iter": [2, 4], "loss": [0.3, 0.4]}
    assert cv2.imread(str(plot_curves(tmp_path))) is not None
    assert not list(tmp_path.glob(".*tmp*"))


def test_peak_meter_sees_a_cpu_allocation():
    meter = memory.PeakMeter("cpu")
    block = np.ones(64 * 2**20 // 8)  # 64 MiB touched
    del block
    if Path("/proc/self/clear_refs").exists():
        assert 60 * 2**20 <= meter.growth() <= 200 * 2**20
    assert memory.available_bytes("cpu") > 0
    assert memory.fit_line([1, 2, 3], [5, 7, 9]) == pytest.approx((3.0, 2.0))


def test_choose_tile_hand_cases():
    # a + b*s^2 with a = 100, b = 1: whole 64x64 frame needs 4196
    assert tiles.choose_tile(100, 1, 5000, 64, 64, 16, 4) == 0
    assert tiles.choose_tile(100, 1, 1200, 64, 64, 16, 4) == 32     # 32^2 + 100 = 1124 <= 1200 < 40^2 + 100
    assert tiles.choose_tile(100, 1, 10, 64, 64, 16, 20) == 24      # nothing fits: smallest legal (> overlap)


def test_auto_tiles_untiled_on_cpu_and_tiled_when_ram_is_short(monkeypatch):
    tiles._CACHE.clear()
    model = TinyNet(4).eval()
    val = ValConfig(num_frame_testing=3, num_frame_overlapping=1, size_patch_testing="auto", tile_overlap=4)
    assert tiles.resolve_tiles(model, val, (1, 8, 7, 32, 32), "cpu", _run_padded, 1).size_patch_testing == 0
    tiles._CACHE.clear()
    monkeypatch.setattr(tiles, "measure", lambda fn, dev: (fn(), memory.Measured(0.0, 0)))
    monkeypatch.setattr(tiles, "fit_line", lambda xs, ys: (0.0, 1.0))  # 1 byte per pixel
    monkeypatch.setattr(tiles, "available_bytes", lambda dev: int(500 / tiles.BUDGET) + 1)
    resolved = tiles.resolve_tiles(model, val, (1, 8, 7, 32, 32), "cpu", _run_padded, 1)
    assert resolved.size_patch_testing == 16 and resolved.tile_overlap == 4  # 16^2 <= 500 < 24^2
    from vrt_train.validate import infer_video
    lq = torch.rand(1, 8, 7, 32, 32)
    torch.testing.assert_close(infer_video(model, lq, val, "cpu"), infer_video(model, lq, resolved, "cpu"))


def test_device_syncs_only_at_print_intervals_and_compile_is_plumbed(tmp_path, monkeypatch):
    syncs, compiled = [], []
    monkeypatch.setattr(telemetry, "synchronize", lambda device: syncs.append(str(device)))
    monkeypatch.setattr(TinyNet, "compile", lambda self, *a, **k: compiled.append(type(self).__name__), raising=False)
    cfg = small_cfg(tmp_path, None, print_every=3, compile=True)  # 6 iterations: reports at 3 and 6
    train_mod.train(cfg, progress=False, model_fn=TinyNet)
    assert syncs == ["cpu", "cpu"] and compiled == ["TinyNet"]
    from vrt_train.checkpoint import list_checkpoints
    keys = torch.load(list_checkpoints(cfg.out_dir)[-1], weights_only=False)["model"].keys()
    assert set(keys) == set(TinyNet(4).state_dict())  # in-place compile: no _orig_mod. prefix
