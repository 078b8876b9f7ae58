"""vrt_train.dryrun: `vrt-train --dry-run` measures one step and one validation chunk, writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spikeprep import ConfigError
from tests.support.fakes import FakeCache

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

from tests.support.paths import CONFIGS
from tests.support.tiny_train import TinyNet, small_cfg
from vrt_train import dryrun
from vrt_train.config import replace
from vrt_train.memory import Measured


@pytest.fixture(autouse=True)
def fake_open_cache(monkeypatch):
    import vrt_train.data as data
    monkeypatch.setattr(data, "open_any", lambda c: FakeCache() if isinstance(c, (str, os.PathLike)) else c)


def test_dry_run_reports_and_writes_nothing(tmp_path):
    cfg = small_cfg(tmp_path, None, total_iter=100, val_every=50)
    lines = []
    rep = dryrun.dry_run(cfg, model_fn=TinyNet, emit=lines.append)
    assert rep.fits and rep.device == "cpu" and (rep.batch, rep.frames, rep.gt_size) == (2, 3, 16)
    assert rep.parameters == sum(p.numel() for p in TinyNet(4).parameters())
    assert rep.step.seconds > 0 and rep.step.peak_bytes >= 0 and rep.predicted_peak is not None
    # FakeCache val: one 32x32 sequence, num_frames_val 4; chunks of 3 overlapping by 1 -> starts 0, 1;
    # 24-pixel tiles overlapping by 4 -> starts 0, 8 per axis: 2 chunks x 4 tiles
    assert rep.val_shape == (3, 7, 24, 24) and rep.val_pieces == 8
    expect = 100 * rep.step.seconds + 2 * 8 * rep.val_chunk.seconds
    assert rep.estimate_s == pytest.approx(expect)
    assert lines == rep.lines and lines[1] == f"parameters: {rep.parameters:,}"
    assert any(ln.startswith("training step: peak") for ln in lines) and lines[-1] == "no checkpoint written"
    assert not Path(cfg.out_dir).exists()


def test_dry_run_uses_the_per_process_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    rep = dryrun.dry_run(small_cfg(tmp_path, None), model_fn=TinyNet, emit=lambda s: None)
    assert rep.batch == 1 and rep.world == 2 and "batch 1/process" in rep.lines[0]
    with pytest.raises(ConfigError, match="divisible"):
        dryrun.dry_run(replace(small_cfg(tmp_path, None), data={"batch_size": 3}), model_fn=TinyNet)


def test_cpu_step_that_does_not_fit_is_not_run_and_fitting_settings_are_named(tmp_path, monkeypatch):
    calls = []

    def fake_run(self, b, frames, size):  # peak = 1000 + 10 bytes per pixel of the batch
        calls.append((b, frames, size))
        return Measured(0.01, 1000 + 10 * b * frames * size * size)
    monkeypatch.setattr(dryrun._Stepper, "run", fake_run)
    monkeypatch.setattr(dryrun, "available_bytes", lambda dev: 10000 / dryrun.BUDGET)
    cfg = small_cfg(tmp_path, None)  # batch 2, 3 frames, 16x16: 1000 + 10*2*3*256 = 16360 > 10000
    rep = dryrun.dry_run(cfg, model_fn=TinyNet, emit=lambda s: None)
    assert not rep.fits and rep.step is None and rep.estimate_s is None
    assert rep.predicted_peak == pytest.approx(16360)
    assert (2, 3, 16) not in calls  # the full step never ran
    # batch 1: 1000 + 10*3*256 = 8680 fits; 2 frames: 11240 does not; gt 8: 1000 + 10*2*3*64 = 4840 fits
    assert [s.split(" (")[0] for s in rep.suggestions] == ["data.batch_size=1 per process", "data.gt_size=8"]
    assert "DOES NOT FIT" in " ".join(rep.lines)


def test_cli_dry_run_exit_codes(tmp_path, monkeypatch, capsys):
    import yaml

    from vrt_train import cli
    from vrt_train.config import to_dict
    cfg = small_cfg(tmp_path, None)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    monkeypatch.setattr(dryrun, "build_model", lambda c, ch: TinyNet(ch))
    with pytest.raises(SystemExit) as exc:
        cli.main(["--opt", str(path), "--dry-run"])
    assert exc.value.code == 0
    assert "no checkpoint written" in capsys.readouterr().out
    monkeypatch.setattr(dryrun, "available_bytes", lambda dev: 1)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--opt", str(path), "--dry-run"])
    assert exc.value.code == 1 and "DOES NOT FIT" in capsys.readouterr().out
    assert not Path(cfg.out_dir).exists()


CONFIG = CONFIGS / "demo_tiny_cpu.yaml"


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    import spikeprep
    root = tmp_path_factory.mktemp("dry")
    spikeprep.simulate_dataset(root / "data", sequences=2, frames=3, height=48, width=48, exposure=1.0)
    spikeprep.build_sync(root / "data")
    spikeprep.voxelize_dataset(root / "data", root / "cache", S=4, val=("seq001",), progress=False)
    return root / "cache"


@pytest.mark.slow
def test_real_tiny_vrt_dry_run_and_checkpointing_suggestion(real_cache, tmp_path, monkeypatch):
    import warnings

    import vrt_train.data as data
    from vrt_train.config import load_config
    monkeypatch.setattr(data, "open_any",
                        lambda c: __import__("spikeprep").open_cache(c) if isinstance(c, (str, os.PathLike)) else c)
    cfg = load_config(CONFIG, [f"data.cache={real_cache}", f"out_dir={tmp_path / 'run'}", "data.gt_size=48",
                               "data.num_frames_val=3"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = dryrun.dry_run(cfg, emit=lambda s: None)
        assert rep.fits and rep.parameters == 1_724_629  # the demo VRT with S = 4
        assert rep.step.peak_bytes > 0 and rep.val_shape == (3, 7, 48, 48) and rep.val_pieces == 1
        monkeypatch.setattr(dryrun, "available_bytes", lambda dev: int(rep.predicted_peak * 0.8 / dryrun.BUDGET) + 1)
        short = dryrun.dry_run(cfg, emit=lambda s: None)
    assert not short.fits and short.step is None
    assert any("with gradient checkpointing" in ln for ln in short.lines)
    assert not (tmp_path / "run").exists()
