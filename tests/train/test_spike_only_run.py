"""Spike-only runs end to end on a spike-only cache (tests.support.spike_only: 1-frame
sequences, grayscale GT, no blur): training lowers the loss, the tiny config writes a
checkpoint, and --infer / --test write one grayscale image per sample (also without GT)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from tests.support.paths import CONFIGS  # noqa: E402
from tests.support.spike_only import SpikeOnlyCache  # noqa: E402
from tests.support.tiny_vrt import TINY  # noqa: E402
from vrt_train import data as data_mod  # noqa: E402
from vrt_train import evaluate  # noqa: E402,F401  (before any test patches data.open_any: evaluate binds it)
from vrt_train.config import config_from_dict, load_config  # noqa: E402
from vrt_train.train import train  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def losses(out_dir) -> list[float]:
    text = (out_dir / "train.log").read_text()
    return [float(x) for x in re.findall(r"iter \d+: loss ([0-9.]+)", text)]


def tiny_spike_vrt(spike_chans):
    from vrt_train.model import SpikeOnlyVRT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SpikeOnlyVRT(**TINY, spike_chans=spike_chans, gt_chans=1)


def spike_cfg(out_dir, total: int, fix: int | None = None, **train_keys):
    """A 40x40, batch-1 spike-only config for the tiny `SpikeOnlyVRT`."""
    return config_from_dict({
        "seed": 1, "out_dir": str(out_dir),
        "data": {"cache": "spike-only", "use_rgb": False, "num_frames": 1, "gt_size": 40, "batch_size": 1,
                 "workers": 0, "spike_norm": "window", "augment": {"hflip": True, "rot": True, "spike_gain": 0.2}},
        "train": {"lr": 3e-3, "total_iter": total, "scheduler_periods": 16, "fix_iter": total if fix is None else fix,
                  "charbonnier_eps": 1e-3, "zero_init_last": True, "checkpoint_every": 16, "print_every": 1,
                  "val_every": 16, **train_keys},
        "val": {"num_frame_testing": 0, "num_frame_overlapping": 0, "size_patch_testing": 0, "tile_overlap": 0}})


def test_tiny_spike_only_run_lowers_its_loss(tmp_path, monkeypatch, single_thread):
    cache = SpikeOnlyCache(n_seq=3, size=40)
    monkeypatch.setattr(data_mod, "open_any", lambda c: cache if isinstance(c, str) else c)
    summary = train(spike_cfg(tmp_path / "run", 16), progress=False, model_fn=tiny_spike_vrt)
    curve = losses(tmp_path / "run")
    assert len(curve) == 16
    # per-step losses are of different random crops (batch 1): compare halves, not single steps
    # (torch 2.15: 0.154 -> 0.110; the floor, torch 2.4.1: 0.144 -> 0.113)
    assert np.mean(curve[8:]) < 0.9 * np.mean(curve[:8]), curve
    assert summary["psnr"] > summary["psnr_input"]  # beats its own TFP guide


@pytest.fixture
def tiny_run(tmp_path_factory, monkeypatch):
    """The shipped tiny config, 2 iterations on a 64x64 spike-only cache."""
    tmp = tmp_path_factory.mktemp("spkonly")
    caches = {"gt": SpikeOnlyCache(n_seq=3, size=64), "nogt": SpikeOnlyCache(n_seq=2, size=64, has_sharp=False)}

    def open_any(c):
        return caches[str(c).rsplit("/", 1)[-1]] if not hasattr(c, "read") else c
    monkeypatch.setattr(data_mod, "open_any", open_any)
    overrides = [f"out_dir={tmp / 'run'}", f"data.cache={tmp / 'gt'}", "train.total_iter=2",
                 "train.scheduler_periods=2", "train.fix_iter=2", "train.checkpoint_every=2", "train.val_every=2",
                 "train.print_every=1"]
    return tmp, overrides, caches


def test_tiny_config_trains_and_infers(tiny_run, single_thread):
    from vrt_train.cli import main
    tmp, overrides, caches = tiny_run
    cfg = load_config(CONFIGS / "spikezoo_reds_vrt_tiny.yaml", overrides)
    summary = train(cfg, progress=False)
    assert (tmp / "run" / "checkpoints" / "iter_00000002.pt").is_file()
    assert summary["iter"] == 2 and np.isfinite(summary["psnr"])
    state = torch.load(tmp / "run" / "checkpoints" / "iter_00000002.pt", map_location="cpu", weights_only=False)
    assert state["config"]["data"]["use_rgb"] is False and state["spike_chans"] == 4

    args = ["--opt", str(CONFIGS / "spikezoo_reds_vrt_tiny.yaml")] + [a for o in overrides for a in ("--set", o)]
    for name in ("gt", "nogt"):
        with pytest.raises(SystemExit) as exc:
            main(args + ["--quiet", "--infer", str(tmp / name), str(tmp / f"out_{name}"), "--video", "--side-by-side"])
        assert exc.value.code in (0, None)
        cache = caches[name]
        pngs = sorted(p.relative_to(tmp / f"out_{name}").as_posix() for p in (tmp / f"out_{name}").rglob("*.png"))
        assert pngs == [f"{s}/im_{s}_00.png" for s in cache.sequences]  # one image per sample, its name
        for p in pngs:
            img = cv2.imread(str(tmp / f"out_{name}" / p), cv2.IMREAD_UNCHANGED)
            assert img.shape == (64, 64) and img.dtype == np.uint8  # the GT's size, one channel
        assert sorted(p.name for p in (tmp / f"out_{name}").glob("*.mp4")) == [f"{s}.mp4" for s in cache.sequences]


def test_test_protocol_spikezoo_on_the_tiny_run(tiny_run, monkeypatch, single_thread, capsys):
    from vrt_train.cli import main
    tmp, overrides, caches = tiny_run
    monkeypatch.setattr(evaluate, "open_any", data_mod.open_any)
    train(load_config(CONFIGS / "spikezoo_reds_vrt_tiny.yaml", overrides), progress=False)
    args = ["--opt", str(CONFIGS / "spikezoo_reds_vrt_tiny.yaml")] + [a for o in overrides for a in ("--set", o)]
    with pytest.raises(SystemExit) as exc:
        main(args + ["--quiet", "--test", "--protocol", "spikezoo", "--split", "all", "--out", str(tmp / "card"),
                     "--save-images", str(tmp / "imgs")])
    assert exc.value.code == 0
    assert "spikezoo: PSNR" in capsys.readouterr().out
    assert len(list((tmp / "imgs").rglob("*.png"))) == 3


def test_spike_only_config_without_spikes_fails_in_the_cli(tmp_path, capsys):
    from vrt_train.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--opt", str(CONFIGS / "spikezoo_reds_vrt_tiny.yaml"), "--set", "data.use_spike=false"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "data.use_spike" in err and "Traceback" not in err


def test_dry_run_of_the_tiny_config(tiny_run, single_thread):
    from vrt_train.dryrun import dry_run
    tmp, overrides, _ = tiny_run
    lines = []
    report = dry_run(load_config(CONFIGS / "spikezoo_reds_vrt_tiny.yaml", overrides), model_fn=tiny_spike_vrt,
                     emit=lines.append)
    assert report.fits, lines
    assert not (tmp / "run").exists()  # writes nothing


def test_spike_only_resume_is_bit_exact(tmp_path, monkeypatch, single_thread):
    cache = SpikeOnlyCache(n_seq=3, size=40)
    monkeypatch.setattr(data_mod, "open_any", lambda c: cache if isinstance(c, str) else c)
    keys = {"checkpoint_every": 1, "val_every": 100}
    train(spike_cfg(tmp_path / "a", 4, fix=2, **keys), progress=False, model_fn=tiny_spike_vrt)
    train(spike_cfg(tmp_path / "b", 2, fix=2, **keys), progress=False, model_fn=tiny_spike_vrt)
    train(spike_cfg(tmp_path / "b", 4, fix=2, **keys), progress=False, model_fn=tiny_spike_vrt, resume="auto")
    a, b = (torch.load(tmp_path / r / "checkpoints" / "iter_00000004.pt", map_location="cpu", weights_only=False)
            for r in "ab")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_a_three_channel_output_against_a_gray_target_is_refused():
    from vrt_train.metrics import charbonnier
    with pytest.raises(ValueError, match="differ in shape"):
        charbonnier(torch.zeros(1, 1, 3, 4, 4), torch.zeros(1, 1, 1, 4, 4))
