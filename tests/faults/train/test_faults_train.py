"""Fault matrix of the trainer (issue 11), in process: diverging runs, resume with a changed
config, a broken newest checkpoint, clear errors for bad numbers, files and DataLoader worker
failures, a full disk or read-only parent for checkpoints. Each case is made to happen and its
outcome asserted (exit code, message, the files that survive, the weights that resume).
(Signals and processes: `test_faults_train_signals`.)"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch
from torch import nn

import vrt_train.data as data
from spikeprep.errors import ConfigError
from tests.support.fakes import FakeCache
from tests.support.tiny_train import TinyNet
from tests.support.train_faults import (
    ROOT,
    RUNNER,
    assert_one_line_error,
    assert_same_weights,
    cli,
    fake_cache,
    in_private_mounts,
    load,
    raw_cfg,
    runner_env,
    write_cfg,
)
from vrt_train.checkpoint import list_checkpoints
from vrt_train.config import config_from_dict
from vrt_train.errors import TrainingDiverged
from vrt_train.guard import StepGuard, assert_finite_weights

# -- 1. diverging runs --------------------------------------------------------------------------

class NanAt(TinyNet):
    """TinyNet whose training forwards number ``bad`` (1-based) return NaN (or, with
    ``grad=True``, a finite output whose gradient is NaN)."""

    bad: set = set()
    grad = False

    def __init__(self, chans):
        super().__init__(chans)
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls in self.bad:
                return _NanGrad.apply(out) if self.grad else out * float("nan")
        return out


class _NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def _net(bad, grad=False):
    return type("Net", (NanAt,), {"bad": set(bad), "grad": grad})


@pytest.mark.parametrize("grad", [False, True], ids=["nan_loss", "nan_grad"])
def test_nonfinite_step_is_skipped_and_counted(tmp_path, fake, capsys, grad):
    fake(net=_net({3}, grad))
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, fix_iter=0, ema_decay=0.5))
    assert code == 0, err
    ck = {i: load(tmp_path / "run" / "checkpoints" / f"iter_{i:08d}.pt") for i in (2, 3, 4)}
    assert_same_weights(ck[2], ck[3])  # step 3 skipped: no weight, EMA or Adam update
    assert not torch.equal(ck[3]["model"]["body.0.weight"], ck[4]["model"]["body.0.weight"])
    assert ck[3]["scheduler"]["last_epoch"] == 3  # the schedule keeps counting iterations
    log = (tmp_path / "run" / "train.log").read_text()
    what = "gradient" if grad else "loss"
    assert f"iter 3: non-finite {what}" in log and "step skipped (1 in a row, 1 in this run" in log


def test_diverging_run_stops_with_exit_1_and_saves_no_garbage(tmp_path, fake, capsys):
    fake(net=_net(range(3, 100)))
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, max_nonfinite_steps=3, total_iter=10))
    assert_one_line_error(code, err, "training diverged: 3 steps in a row", "iteration 5, loss nan, lr ")
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == [f"iter_0000000{i}.pt" for i in (1, 2, 3, 4)]  # none at 5
    assert all(torch.isfinite(t).all() for p in ckpts for t in load(p)["model"].values())
    assert_same_weights(load(ckpts[1]), load(ckpts[3]))  # 3 and 4 skipped: the weights of 2
    # --resume auto restarts from the last good weights (and diverges again with this net)
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, max_nonfinite_steps=3, total_iter=10),
                    "--resume", "auto")
    assert code == 1 and "iteration 9," in err  # resumed at 4 (finite weights), NaN from 7


def test_step_guard_single_process_and_weight_check():
    net = nn.Linear(2, 1)
    loss = net(torch.ones(1, 2)).sum()
    loss.backward()
    guard = StepGuard(2, world=1)
    assert guard.check(loss, net.parameters())[:2] == (True, pytest.approx(loss.item()))
    net.weight.grad[0, 0] = float("inf")
    assert guard.check(loss, net.parameters())[0] is False
    with torch.no_grad():
        net.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite model weights at iteration 7"):
        assert_finite_weights(7, model=net, ema=None)


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_vrt_with_nan_weights_or_input_does_not_segfault():
    """torchvision's deform_conv2d segfaults on NaN offsets; VRT must hand it finite ones."""
    code = """
import warnings; warnings.simplefilter("ignore")
import torch
from vrt_train.config import load_config
from vrt_train.factory import build_model
m = build_model(load_config("configs/demo_tiny_cpu.yaml"), 4)
x = torch.rand(1, 2, 7, 64, 64); x[0, 0, 0, 5, 5] = float("nan")
assert m(x).isnan().any()
with torch.no_grad():
    for p in m.parameters(): p.fill_(float("nan"))
assert m(torch.rand(1, 2, 7, 64, 64)).isnan().any()
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=runner_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, (res.returncode, res.stderr[-2000:])


# -- 4. resume with a changed config ---------------------------------------------------------------

def test_resume_refuses_changed_keys_with_a_table_and_logs_allowed_ones(tmp_path, fake, capsys):
    assert cli(capsys, "--opt", write_cfg(tmp_path, total_iter=3))[0] == 0
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=5, lr=2e-2), "--resume", "auto",
                    "--set", "netG.depth=3", "--set", "data.augment.hflip=false")
    assert code == 1 and "Traceback" not in err, err
    assert "the config differs from the checkpoint's in 3 key(s)" in err
    table = err[err.index("key "):err.index("Restore")]
    assert "train.lr" in table and "0.01" in table and "0.02" in table
    assert "netG.depth" in table and "(absent)" in table and "data.augment.hflip" in table
    assert "train.total_iter" not in table  # allowed
    assert [p.name for p in list_checkpoints(tmp_path / "run")][-1] == "iter_00000003.pt"  # nothing ran
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=5, print_every=2, keep_last=50),
                    "--resume", "auto")
    assert code == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resume: train.total_iter changed from 3 to 5 (allowed)" in log
    assert "resume: train.print_every changed from 1 to 2 (allowed)" in log


def test_resume_with_a_cache_of_another_S_is_a_clear_error(tmp_path, fake, capsys):
    assert cli(capsys, "--opt", write_cfg(tmp_path, total_iter=2))[0] == 0
    fake(S=6)
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=4), "--resume", "auto")
    assert_one_line_error(code, err, "another number of spike channels", "found 6 channels", "expected 4")


def test_resume_into_another_network_is_a_clear_error(tmp_path, fake, capsys):
    assert cli(capsys, "--opt", write_cfg(tmp_path, total_iter=2))[0] == 0
    ckpt = list_checkpoints(tmp_path / "run")[-1]
    state = load(ckpt)
    state.pop("config")  # an old checkpoint without a config: the shapes must still be checked
    torch.save(state, ckpt)

    class Wider(TinyNet):
        def __init__(self, chans):
            super().__init__(chans)
            self.body = nn.Sequential(nn.Conv2d(3 + chans, 16, 1), nn.GELU(), nn.Conv2d(16, 3, 1))
    fake(net=Wider)
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=4), "--resume", "auto")
    assert_one_line_error(code, err, "the checkpoint's model does not fit this network", "body.0.weight")


def test_init_from_and_infer_checkpoint_with_mismatching_shapes(tmp_path, fake, capsys, monkeypatch):
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=1))
    assert code == 0, err
    ckpt = list_checkpoints(tmp_path / "run")[-1]
    fake(S=6)
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, out="other", total_iter=1), "--init-from", ckpt)
    assert code == 1 and "Traceback" not in err and "does not fit the model" in err, err
    # --infer with a cache of another S than the checkpoint's
    code, err = cli(capsys, "--opt", write_cfg(tmp_path), "--infer", tmp_path / "cache", tmp_path / "png",
                    "--checkpoint", ckpt)
    assert_one_line_error(code, err, "another number of spike channels (S)", "found 6 channels", "expected 4")
    assert not (tmp_path / "png").exists()

    class Wider(TinyNet):
        def __init__(self, chans):
            super().__init__(chans)
            self.body = nn.Sequential(nn.Conv2d(3 + chans, 16, 1), nn.GELU(), nn.Conv2d(16, 3, 1))
    fake(S=4)
    import vrt_train.infer as infer_mod
    monkeypatch.setattr(infer_mod, "build_model", lambda cfg, chans: Wider(chans))
    code, err = cli(capsys, "--opt", write_cfg(tmp_path), "--infer", tmp_path / "cache", tmp_path / "png",
                    "--checkpoint", ckpt)
    assert_one_line_error(code, err, "does not fit this network", "body.0.weight")


# -- 5. broken newest checkpoint -----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "nan_weights"])
def test_broken_newest_checkpoint_falls_back_with_a_warning(tmp_path, fake, capsys, damage):
    opts = dict(total_iter=4, ema_decay=0.5)
    assert cli(capsys, "--opt", write_cfg(tmp_path, "ref.yaml", "ref", **opts))[0] == 0
    assert cli(capsys, "--opt", write_cfg(tmp_path, total_iter=3, ema_decay=0.5))[0] == 0
    newest = list_checkpoints(tmp_path / "run")[-1]
    if damage == "truncated":
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    elif damage == "zero_bytes":
        newest.write_bytes(b"")
    else:
        state = load(newest)
        state["model"]["body.0.weight"][0] = float("nan")
        torch.save(state, newest)
    (newest.parent / ".iter_00000003.pt.tmp999").write_bytes(b"half")  # a killed save's leftover
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, **opts), "--resume", "auto")
    assert code == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"warning: checkpoint {newest} skipped: " in log and "resuming from the older iter_00000002.pt" in log
    assert "resumed from" in log and "at iteration 2" in log and "removed" in log
    assert not list(newest.parent.glob(".*tmp*"))
    assert_same_weights(load(list_checkpoints(tmp_path / "ref")[-1]), load(list_checkpoints(tmp_path / "run")[-1]))


def test_no_usable_checkpoint_is_a_clear_error(tmp_path, fake, capsys):
    assert cli(capsys, "--opt", write_cfg(tmp_path, total_iter=2))[0] == 0
    for p in list_checkpoints(tmp_path / "run"):
        p.write_bytes(b"")
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=4), "--resume", "auto")
    assert_one_line_error(code, err, "no usable checkpoint to resume from", "iter_00000002.pt: empty file")
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, total_iter=4), "--resume",
                    list_checkpoints(tmp_path / "run")[0])
    assert_one_line_error(code, err, "checkpoint to resume from is not usable", "empty file (0 bytes)")


# -- 6. clear errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,expected", [
    ("data.num_frames", 1, ">= 2"), ("data.num_frames_val", 1, ">= 2"), ("train.lr", -1e-4, "> 0"),
    ("train.lr", 0.0, "> 0"), ("train.lr", math.nan, "a finite number"), ("train.eta_min", 1.0, "<= train.lr"),
    ("train.betas", [0.9, 1.5], "in [0, 1)"), ("train.ema_decay", 1.0, "in [0, 1)"),
    ("train.weight_decay", -1.0, ">= 0"), ("train.clip_grad", 0.0, "> 0"), ("seed", -1, ">= 0"),
    ("train.charbonnier_eps", 0.0, "> 0"), ("train.max_nonfinite_steps", 0, ">= 1"),
    ("data.samples_per_epoch", 0, ">= 1"), ("val.tile_overlap", -2, ">= 0")])
def test_nonsensical_numbers_are_refused(key, value, expected):
    raw = raw_cfg("x")
    section, _, name = key.rpartition(".")
    (raw[section] if section else raw)[name] = value
    with pytest.raises(ConfigError, match=f"config key {key.split('[')[0]}") as exc:
        config_from_dict(raw)
    assert f"expected {expected}" in str(exc.value) and "--set" in str(exc.value)


def test_num_frames_1_via_the_cli(tmp_path, fake, capsys):
    code, err = cli(capsys, "--opt", write_cfg(tmp_path), "--set", "data.num_frames=1")
    assert_one_line_error(code, err, "data.num_frames is invalid", "found 1", "expected >= 2")


def test_missing_spynet_weights_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "open_any", fake_cache())  # the real build_model
    code, err = cli(capsys, "--opt", ROOT / "configs" / "demo_tiny_cpu.yaml", "--set", f"out_dir={tmp_path / 'run'}",
                    "--set", "netG.spynet_path=nowhere/spynet.pth", "--set", "data.gt_size=32")
    assert_one_line_error(code, err, "the SpyNet weights file is missing (nowhere/spynet.pth)",
                          "netG.spynet_path: null")


def test_out_dir_that_is_a_file(tmp_path, fake, capsys):
    (tmp_path / "run").write_text("not a folder")
    code, err = cli(capsys, "--opt", write_cfg(tmp_path))
    assert_one_line_error(code, err, "out_dir cannot be created: a file is in the way", str(tmp_path / "run"))
    code, err = cli(capsys, "--opt", write_cfg(tmp_path, out="run/sub"))
    assert_one_line_error(code, err, "a file is in the way")
    assert (tmp_path / "run").read_text() == "not a folder"


@pytest.mark.parametrize("fail", ["plain", "spikeprep_error"])
def test_error_inside_a_dataloader_worker_is_one_line(tmp_path, fake, capsys, monkeypatch, fail):
    class Failing(FakeCache):
        def read(self, seq, i):
            if i == 5:
                if fail == "plain":
                    raise ValueError(f"frame {i} of {seq} is unreadable (injected)")
                raise ConfigError("cache record is broken", path="cache/data.mdb", found=f"frame {i}")
            return super().read(seq, i)
    monkeypatch.setattr(data, "open_any", lambda c: Failing(n_seq=4, splits=("train", "train", "val", "val")))
    cfg = write_cfg(tmp_path, total_iter=50)
    code, err = cli(capsys, "--opt", cfg, "--set", "data.workers=2")
    if fail == "plain":
        assert_one_line_error(code, err, "a DataLoader worker failed: ValueError: frame 5 of seq00",
                              "is unreadable (injected)", "--verbose")
    else:
        assert_one_line_error(code, err, "error: cache record is broken (cache/data.mdb): found frame 5.")
    code, err = cli(capsys, "--opt", cfg, "--set", "data.workers=2", "--verbose")
    assert code == 1 and "Traceback" in err and "in __getitem__" in err  # the worker's own traceback


class _ResetLoader:
    """A loader iterator whose next batch fails as a worker killed mid-handover makes it fail."""

    def __init__(self, workers):
        self._workers = workers

    def __next__(self):
        raise ConnectionResetError(104, "Connection reset by peer")


def test_worker_killed_while_handing_a_batch_over_is_a_worker_death():
    """torch reports a killed worker itself only when it notices first; otherwise the pipe that
    carried the batch is reset (seen in CI: 'a file operation failed: Connection reset by
    peer'). With workers that is their death; without workers the error is left alone."""
    from vrt_train.errors import WorkerError
    from vrt_train.workers import next_batch

    with pytest.raises(WorkerError, match="a DataLoader worker died") as err:
        next_batch(_ResetLoader(workers=[object()]))
    assert "ConnectionResetError" in str(err.value) and "lower data.workers" in str(err.value)
    with pytest.raises(ConnectionResetError):
        next_batch(_ResetLoader(workers=[]))


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_disk_full_during_a_checkpoint_save(tmp_path):
    """A 4 MiB tmpfs holds two ~1.5 MB checkpoints; the third save fails: exit 1, a clear
    message, no temp file left, the earlier checkpoints intact and resumable."""
    disk, keep = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    keep.mkdir()
    cfg = write_cfg(tmp_path, out="disk/run", total_iter=6)
    res = in_private_mounts(
        f"mount -t tmpfs -o size=4m tmpfs {disk} && FAULT_BIG=131072 {sys.executable} {RUNNER} --opt {cfg} --quiet; "
        f"rc=$?; ls -a {disk}/run/checkpoints > {keep}/listing; cp {disk}/run/checkpoints/*.pt {keep}/; exit $rc")
    assert_one_line_error(res.returncode, res.stderr, "failed", "No space left on device", "--resume auto")
    listing = (keep / "listing").read_text().split()
    assert sorted(n for n in listing if n not in (".", "..")) == [
        "iter_00000001.pt", "iter_00000001.yaml", "iter_00000002.pt", "iter_00000002.yaml"], listing
    assert all(load(keep / f"iter_0000000{i}.pt")["iter"] == i for i in (1, 2))


def test_read_only_out_dir_parent(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    cfg = write_cfg(tmp_path, out="ro/run")
    res = in_private_mounts(f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
                             f"{sys.executable} {RUNNER} --opt {cfg} --quiet")
    assert_one_line_error(res.returncode, res.stderr, "preparing out_dir", "Read-only file system",
                          "set out_dir to a writable folder")
    assert not (ro / "run").exists()
