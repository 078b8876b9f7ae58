"""Fault matrix of the trainer (issue 11): each case is made to happen, its outcome asserted
(exit code, message, the files that survive, the weights that resume).

In-process cases run the CLI (`vrt_train.cli.main`) over the fake cache of test_data and the
tiny net of test_train; cases that need real signals, SIGKILL, several processes or a private
mount namespace run tests/train_fault_runner.py in a subprocess.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import vrt_train.data as data
import vrt_train.train as train_mod
from spikeprep.errors import ConfigError
from fakes import FakeCache
from test_train import TinyNet
from vrt_train.checkpoint import list_checkpoints
from vrt_train.cli import main
from vrt_train.config import config_from_dict
from vrt_train.guard import StepGuard, assert_finite_weights, stop_on_signals
from vrt_train.errors import TrainingDiverged

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("train_fault_runner.py")


def raw_cfg(out_dir, **train) -> dict:
    return {"name": "faults", "seed": 3, "out_dir": str(out_dir),
            "data": {"cache": "fake", "num_frames": 3, "gt_size": 16, "batch_size": 2, "workers": 0,
                     "num_frames_val": 4},
            "train": {"lr": 1e-2, "total_iter": 6, "fix_iter": 2, "checkpoint_every": 1, "keep_last": 100,
                      "print_every": 1, "val_every": 1000, "scheduler_periods": 4,
                      **train},
            "val": {"num_frame_testing": 0, "num_frame_overlapping": 0, "size_patch_testing": 0,
                    "tile_overlap": 0}}


def write_cfg(tmp_path, name="cfg.yaml", out="run", **train) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw_cfg(tmp_path / out, **train)))
    return path


def fake_cache(S=4):
    return lambda c: FakeCache(n_seq=4, splits=("train", "train", "val", "val"), S=S) \
        if isinstance(c, (str, os.PathLike)) else c


@pytest.fixture
def fake(monkeypatch):
    """In-process CLI runs over the fake cache and TinyNet (``fake(S=6)`` switches the cache)."""
    def use(S=4, net=TinyNet):
        monkeypatch.setattr(data, "open_any", fake_cache(S))
        monkeypatch.setattr(train_mod, "build_model", lambda cfg, chans: net(chans))
    use()
    return use


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs on a shared 2-core machine: one thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cli(capsys, *args) -> tuple[int, str]:
    """Run `vrt-train` in-process: (exit code, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*map(str, args), "--quiet"])
    return exc.value.code, capsys.readouterr().err


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_weights(a, b):
    for key in ("model", "ema"):
        if a.get(key) is None:
            continue
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_one_line_error(code, err, *needles):
    assert code == 1, err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") <= 1, err
    for needle in needles:
        assert needle in err, (needle, err)


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
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, (res.returncode, res.stderr[-2000:])


# -- 2./3. preemption and orphans (real signals to a subprocess) ---------------------------------

def _env(**extra) -> dict:
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", **{k: str(v) for k, v in extra.items()})


def _spawn(args, progress: Path, **env) -> subprocess.Popen:
    progress.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, str(RUNNER), *map(str, args), "--quiet"], cwd=ROOT,
                            env=_env(FAULT_PROGRESS=progress, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, at_least: int = 1, timeout: float = 120, proc=None) -> int:
    """Wait until the counter in ``path`` reaches ``at_least`` (fail early if ``proc`` ended)."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the trainer ended early (exit {proc.returncode}): {proc.stderr.read()}")
        try:
            if int(path.read_text() or 0) >= at_least:
                return int(path.read_text())
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {at_least}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is not running
    except FileNotFoundError:
        return False


def _workers_gone(pids, within: float = 10.0) -> bool:
    end = time.time() + within
    while time.time() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _stop(proc, sig, progress: Path, after: int = 3) -> tuple[int, str, float]:
    """Send ``sig`` once the run did ``after`` steps; (exit code, stderr, seconds to exit)."""
    _wait_for(progress / f"{proc.pid}.iter", after, proc=proc)
    t0 = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)  # schedulers SIGKILL 30 s after SIGTERM
    return proc.returncode, err, time.time() - t0


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_signals_checkpoint_then_resume_is_bit_exact_no_orphans(tmp_path):
    """SIGTERM (with 2 loader workers), SIGUSR1 and SIGINT each stop the run at an iteration
    boundary with a checkpoint and exit 128 + signal; the resumed chain equals one
    uninterrupted run bit for bit; the workers are gone."""
    opts = dict(total_iter=20, ema_decay=0.9, clip_grad=1.0)
    reference = _spawn(["--opt", write_cfg(tmp_path, "ref.yaml", "ref", **opts)], tmp_path / "p0")
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    cfg = write_cfg(tmp_path, **opts)
    stops = []
    for n, sig in enumerate([signal.SIGTERM, signal.SIGUSR1, signal.SIGINT]):
        extra = ["--set", "data.workers=2"] if n == 0 else ["--resume", "auto"]
        proc = _spawn(["--opt", cfg, *extra], tmp_path / f"p{n + 1}", FAULT_SLEEP=0.3)  # slack on a busy CPU
        if n == 0:
            _wait_for(tmp_path / "p1" / f"{proc.pid}.iter", 2, proc=proc)
            workers = [int(p) for p in (tmp_path / "p1" / f"{proc.pid}.workers").read_text().split()]
            assert len(workers) == 2
        code, err, seconds = _stop(proc, sig, tmp_path / f"p{n + 1}")
        assert code == 128 + sig, err
        name = signal.Signals(sig).name
        assert err.startswith(f"stopped by {name} at iteration ") and "--resume auto" in err, err
        it = int(err.split("at iteration ")[1].split()[0])
        assert list_checkpoints(tmp_path / "run")[-1].name == f"iter_{it:08d}.pt"
        assert it < 20 and (not stops or it > stops[-1])
        stops.append(it)
        if n == 0:
            assert _workers_gone(workers), "DataLoader workers outlived the trainer"
    final = _spawn(["--opt", cfg, "--resume", "auto"], tmp_path / "p4")
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert_same_weights(load(list_checkpoints(tmp_path / "ref")[-1]), load(list_checkpoints(tmp_path / "run")[-1]))
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("stop signal: checkpoint") == 3 and "data.workers changed from 2 to 0 (allowed)" in log


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_second_sigint_stops_at_once(tmp_path):
    # each forward sleeps 2 s (a signal runs its handler during a sleep at once), so the first SIGINT's
    # handler has run well before the second arrives (two signals before Python's handler runs
    # would be seen as one), and the iteration boundary where it would checkpoint is still far
    proc = _spawn(["--opt", write_cfg(tmp_path, total_iter=500, checkpoint_every=1000)], tmp_path / "p",
                  FAULT_SLEEP=2.0)
    _wait_for(tmp_path / "p" / f"{proc.pid}.iter", 2, proc=proc)  # written as a forward ends
    time.sleep(0.5)  # now inside the next forward's 2 s sleep
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.startswith("interrupted: stopped at once") and "Traceback" not in err, err
    assert list_checkpoints(tmp_path / "run") == []


@pytest.mark.parametrize("armed", [False, True])
def test_sigint_while_shutting_down_exits_at_once_without_a_traceback(armed):
    """A Ctrl-C that lands in an atexit hook (torch's, a process-group teardown) after a stop:
    Python's default handler prints a KeyboardInterrupt traceback out of the hook; once
    `exit_at_once_on_sigint` is armed, the process leaves at once with the stop's exit code."""
    code = f"""
import atexit, os, signal, sys, time
sys.path.insert(0, {str(ROOT)!r})
from vrt_train.guard import exit_at_once_on_sigint
def teardown():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(20)
atexit.register(teardown)
if {armed!r}:
    exit_at_once_on_sigint(143)
print("stopped", flush=True)
sys.exit(143)
"""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "stopped\n"
    if armed:
        assert proc.returncode == 143 and proc.stderr == "" and time.monotonic() - t0 < 15
    else:  # what users saw before: the hook's KeyboardInterrupt traceback
        assert "KeyboardInterrupt" in proc.stderr and "Traceback" in proc.stderr


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_sigkill_leaves_no_worker_behind(tmp_path):
    proc = _spawn(["--opt", write_cfg(tmp_path, total_iter=500), "--set", "data.workers=2"], tmp_path / "p",
                  FAULT_SLEEP=0.05)
    _wait_for(tmp_path / "p" / f"{proc.pid}.iter", 2, proc=proc)
    workers = [int(p) for p in (tmp_path / "p" / f"{proc.pid}.workers").read_text().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    proc.kill()
    proc.communicate(timeout=30)
    assert _workers_gone(workers), "DataLoader workers outlived a SIGKILLed trainer"


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_signal_during_validation_abandons_it_and_resumes(tmp_path):
    cfg = write_cfg(tmp_path, total_iter=8, val_every=4, checkpoint_every=100)
    proc = _spawn(["--opt", cfg], tmp_path / "p", FAULT_VAL_SLEEP=3)  # slack on a busy CPU
    _wait_for(tmp_path / "p" / f"{proc.pid}.val", proc=proc)  # validation at iteration 4 has started
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "stopped by SIGTERM at iteration 4" in err, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "validation at iteration 4 abandoned" in log
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["iter_00000004.pt"]
    assert not (tmp_path / "run" / "val.csv").exists()
    proc = _spawn(["--opt", cfg, "--resume", "auto"], tmp_path / "p2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [r.split(",")[0] for r in (tmp_path / "run" / "val.csv").read_text().splitlines()[1:]] == ["8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_ddp_every_rank_stops_at_the_same_iteration(tmp_path):
    """Two gloo processes; SIGTERM to rank 1 only: the all-reduced stop flag stops both at the
    same iteration, rank 0 writes the checkpoint, both exit 143."""
    cfg = write_cfg(tmp_path, total_iter=200)
    port = _free_port()
    procs = [_spawn(["--opt", cfg], tmp_path / "p", FAULT_SLEEP=0.05, RANK=r, LOCAL_RANK=r, WORLD_SIZE=2,
                    MASTER_ADDR="127.0.0.1", MASTER_PORT=port) for r in (0, 1)]
    try:
        _wait_for(tmp_path / "p" / f"{procs[1].pid}.iter", 3, proc=procs[1])
        procs[1].send_signal(signal.SIGTERM)
        errs = [p.communicate(timeout=60)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [143, 143], errs
    it = int(errs[0].split("at iteration ")[1].split()[0])
    assert it < 200 and list_checkpoints(tmp_path / "run")[-1].name == f"iter_{it:08d}.pt"
    assert load(list_checkpoints(tmp_path / "run")[-1])["iter"] == it
    done = [int((tmp_path / "p" / f"{p.pid}.iter").read_text()) for p in procs]
    assert done == [it, it], "the ranks stopped at different iterations"


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


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_killed_dataloader_worker_is_one_line(tmp_path):
    proc = _spawn(["--opt", write_cfg(tmp_path, total_iter=500), "--set", "data.workers=2"], tmp_path / "p",
                  FAULT_SLEEP=0.05)
    _wait_for(tmp_path / "p" / f"{proc.pid}.iter", 2, proc=proc)
    worker = int((tmp_path / "p" / f"{proc.pid}.workers").read_text().split()[0])
    os.kill(worker, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert_one_line_error(proc.returncode, err, "a DataLoader worker died", "lower data.workers")


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


def _in_private_mounts(script: str, timeout=300) -> subprocess.CompletedProcess:
    """Run a shell ``script`` in a private mount namespace (skip where that is not permitted)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not installed")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    if probe.returncode:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow  # subprocesses (each imports torch): > 20 s on the shared 2-core machine
def test_disk_full_during_a_checkpoint_save(tmp_path):
    """A 4 MiB tmpfs holds two ~1.5 MB checkpoints; the third save fails: exit 1, a clear
    message, no temp file left, the earlier checkpoints intact and resumable."""
    disk, keep = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    keep.mkdir()
    cfg = write_cfg(tmp_path, out="disk/run", total_iter=6)
    res = _in_private_mounts(
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
    res = _in_private_mounts(f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
                             f"{sys.executable} {RUNNER} --opt {cfg} --quiet")
    assert_one_line_error(res.returncode, res.stderr, "preparing out_dir", "Read-only file system",
                          "set out_dir to a writable folder")
    assert not (ro / "run").exists()


def test_stop_on_signals_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
