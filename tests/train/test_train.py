"""vrt_train.config and vrt_train.train: validation, freezing, resume, checkpoints, CLI, infer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch
import yaml

from spikeprep import ConfigError
from tests.support.fakes import FakeCache
from tests.support.paths import CONFIGS, REPO
from tests.support.tiny_train import TinyNet, run, small_cfg
from vrt_train import train as train_mod
from vrt_train.checkpoint import list_checkpoints
from vrt_train.cli import main
from vrt_train.config import config_from_dict, load_config, replace


@pytest.fixture(autouse=True)
def fake_open_cache(monkeypatch):
    """data.cache paths resolve to FakeCache objects (the real reader is tested in test_train_real)."""
    import vrt_train.data as data
    monkeypatch.setattr(data, "open_any", lambda c: FakeCache() if isinstance(c, (str, os.PathLike)) else c)


# -- config ---------------------------------------------------------------------------------

def test_config_unknown_key_wrong_type_overrides(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key train\.totl_iter"):
        config_from_dict({"train": {"totl_iter": 3}})
    with pytest.raises(ConfigError, match=r"unknown config key data\.augment\.flip"):
        config_from_dict({"data": {"augment": {"flip": True}}})
    with pytest.raises(ConfigError, match=r"train\.total_iter has the wrong type"):
        config_from_dict({"train": {"total_iter": "many"}})
    with pytest.raises(ConfigError, match=r"train\.betas\[1\] has the wrong type"):
        config_from_dict({"train": {"betas": [0.9, "x"]}})
    with pytest.raises(ConfigError, match=r"data\.use_spike has the wrong type"):
        config_from_dict({"data": {"use_spike": 1}})
    with pytest.raises(ConfigError, match="spike_norm"):
        config_from_dict({"data": {"spike_norm": "max"}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"total_iter": 7}, "netG": {"depths": [1, 2]}}))
    cfg = load_config(path, ["train.total_iter=200", "train.amp=bf16", "netG.depths=[3, 4]",
                             "data.augment.hflip=false", "train.clip_grad=0.5"])
    assert cfg.train.total_iter == 200 and cfg.train.amp == "bf16" and cfg.netG["depths"] == [3, 4]
    assert cfg.data.augment.hflip is False and cfg.train.clip_grad == 0.5 and cfg.train.lr == 4e-4
    with pytest.raises(ConfigError, match=r"unknown config key train\.nope"):
        load_config(path, ["train.nope=1"])
    with pytest.raises(Exception):
        cfg.train.lr = 1.0  # frozen


def test_shipped_configs_load():
    root = CONFIGS
    kair = load_config(root / "006_vrt_gopro_rgb.yaml")
    assert kair.train.lr == 4e-4 and kair.train.fix_iter == 20000 and kair.train.total_iter == 300000
    assert kair.netG["depths"] == [8] * 7 + [4] * 4 and kair.data.use_spike is False
    s8 = load_config(root / "006_vrt_gopro_rgbspike_s8.yaml")
    assert s8.data.use_spike and s8.netG == kair.netG
    load_config(root / "demo_tiny_cpu.yaml")


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--opt", str(tmp_path / "missing.yaml")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: config file not found") and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["--bogus"])
    assert exc.value.code == 2


def test_global_batch_must_split_over_ranks(tmp_path, monkeypatch):
    cfg = small_cfg(tmp_path, None)
    cfg = replace(cfg, data={"batch_size": 3})
    monkeypatch.setattr(train_mod, "setup_distributed", lambda: (0, 2, torch.device("cpu"), False))
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        run(cfg)


# -- training -------------------------------------------------------------------------------

def _load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_freeze_unfreeze_lr_and_checkpoints(tmp_path):
    cfg = small_cfg(tmp_path, None, keep_last=4)
    summary = run(cfg)
    assert summary["iter"] == 6 and "psnr" in summary and "psnr_input" in summary
    ckpts = list_checkpoints(cfg.out_dir)
    assert [p.name for p in ckpts] == [f"iter_{i:08d}.pt" for i in (3, 4, 5, 6)]  # keep_last
    assert all(p.with_suffix(".yaml").exists() for p in ckpts)
    assert not list((Path(cfg.out_dir) / "checkpoints").glob(".*tmp*"))
    assert (Path(cfg.out_dir) / "checkpoints" / "best.pt").exists()
    assert yaml.safe_load(ckpts[0].with_suffix(".yaml").read_text())["train"]["fix_iter"] == 3
    torch.manual_seed(cfg.seed)
    init = TinyNet(4).state_dict()
    states = {i: _load(Path(cfg.out_dir) / "checkpoints" / f"iter_{i:08d}.pt") for i in (3, 4)}
    frozen_keys = [k for k in init if "spynet" in k or "deform" in k]
    for k in frozen_keys:  # unchanged through the first fix_iter iterations, trained afterwards
        assert torch.equal(states[3]["model"][k], init[k])
        assert not torch.equal(states[4]["model"][k], init[k])
    assert not torch.equal(states[3]["model"]["body.0.weight"], init["body.0.weight"])
    groups = states[4]["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(cfg.train.fix_lr_mul * groups[0]["lr"])
    rows = (Path(cfg.out_dir) / "val.csv").read_text().splitlines()
    assert rows[0] == "iter,psnr,ssim,psnr_input,ssim_input" and [r.split(",")[0] for r in rows[1:]] == ["3", "6"]


def test_resume_is_bit_exact(tmp_path):
    full = small_cfg(tmp_path / "a", None, ema_decay=0.9, clip_grad=1.0)
    run(full)
    part = replace(full, out_dir=str(tmp_path / "b" / "run"), train={"total_iter": 4})
    run(part)
    resumed = replace(part, train={"total_iter": 6})
    summary = run(resumed, resume="auto")
    a = _load(list_checkpoints(full.out_dir)[-1])
    b = _load(list_checkpoints(resumed.out_dir)[-1])
    assert a["iter"] == b["iter"] == 6 and summary["iter"] == 6
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # two loader workers give the same stream, hence the same weights
    workers = replace(full, out_dir=str(tmp_path / "c" / "run"), data={"workers": 2})
    run(workers)
    c = _load(list_checkpoints(workers.out_dir)[-1])
    assert all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


def test_infer_writes_pngs(tmp_path):
    cfg = small_cfg(tmp_path, None, total_iter=2, fix_iter=0)
    run(cfg)
    out = tmp_path / "restored"
    from vrt_train.infer import infer
    written = infer(cfg, FakeCache(), out, progress=False, model_fn=TinyNet)
    assert len(written) == 3 * 8
    import cv2
    img = cv2.imread(str(out / "seq001" / "000007.png"))
    assert img.shape == (32, 32, 3)


@pytest.mark.slow  # torch 2.4.1 (the floor) hangs now and then in gloo's destroy_process_group
def test_torchrun_two_processes_gloo(tmp_path):
    """DDP on CPU (gloo) across the unfreeze at fix_iter, via torchrun."""
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import faulthandler, sys, os
faulthandler.dump_traceback_later(100, exit=True)  # a hung rank prints where it hangs, then exits
sys.path.insert(0, {str(REPO)!r})
import tests.support.tiny_train as t, vrt_train.data as data
from tests.support.fakes import FakeCache
data.open_any = lambda c: FakeCache()
from pathlib import Path
cfg = t.small_cfg(Path({str(tmp_path)!r}), None, total_iter=5, fix_iter=2, val_every=5)
s = t.train(cfg, progress=False, model_fn=t.TinyNet)
Path({str(tmp_path)!r}, "rank" + os.environ["RANK"]).write_text(str(s["iter"]))
os._exit(0)  # torch 2.4's gloo teardown at interpreter exit can hang once a peer has left
""")
    root = str(REPO)  # this checkout's code, not the installed one
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    # --standalone: a free port for the rendezvous (never a port a leftover process still holds)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "rank0").read_text() == (tmp_path / "rank1").read_text() == "5"
    torch.manual_seed(3)
    init = TinyNet(4).state_dict()
    ck = {i: _load(tmp_path / "run" / "checkpoints" / f"iter_{i:08d}.pt")["model"] for i in (2, 3)}
    assert torch.equal(ck[2]["spynet.weight"], init["spynet.weight"])  # frozen, then trained
    assert not torch.equal(ck[3]["spynet.weight"], init["spynet.weight"])


def test_amp_bf16_and_tensorboard_flag_run(tmp_path):
    cfg = small_cfg(tmp_path, None, total_iter=2, fix_iter=1, amp="bf16", deterministic=False,
                    tensorboard=True)
    assert run(cfg)["iter"] == 2


def test_window_norm_falls_back_to_quantile_for_other_reprs():
    from vrt_train.data import effective_spike_norm
    params = FakeCache(repr="ema", repr_params={"tau_fast": 5.0, "tau_slow": 50.0}).manifest.params
    with pytest.warns(UserWarning, match="quantile"):
        assert effective_spike_norm(params, "window") == "quantile"
    assert effective_spike_norm(FakeCache().manifest.params, "window") == "window"
    assert effective_spike_norm(FakeCache(repr="ema").manifest.params, "standardize") == "standardize"
