"""Shared by the trainer's fault matrix (`test_faults_train`, `test_faults_train_signals`):
configs written for the tiny net, the fake cache (fixture ``fake``), one torch thread per module
(autouse fixture ``one_thread``), the CLI in process, checkpoint and weight checks, the one-line
error check, and trainer subprocesses (`train_fault_runner.py`) with their progress files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.support.fakes import FakeCache
from tests.support.paths import REPO, SUPPORT
from vrt_train.cli import main

ROOT = REPO
RUNNER = SUPPORT / "train_fault_runner.py"  # run by path, as a script


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



def runner_env(**extra) -> dict:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", **{k: str(v) for k, v in extra.items()})


def spawn_runner(args, progress: Path, **env) -> subprocess.Popen:
    progress.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, str(RUNNER), *map(str, args), "--quiet"], cwd=ROOT,
                            env=runner_env(FAULT_PROGRESS=progress, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, at_least: int = 1, timeout: float = 120, proc=None) -> int:
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


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is not running
    except FileNotFoundError:
        return False


def workers_gone(pids, within: float = 10.0) -> bool:
    end = time.time() + within
    while time.time() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def stop_runner(proc, sig, progress: Path, after: int = 3) -> tuple[int, str, float]:
    """Send ``sig`` once the run did ``after`` steps; (exit code, stderr, seconds to exit)."""
    wait_for(progress / f"{proc.pid}.iter", after, proc=proc)
    t0 = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)  # schedulers SIGKILL 30 s after SIGTERM
    return proc.returncode, err, time.time() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_private_mounts(script: str, timeout=300) -> subprocess.CompletedProcess:
    """Run a shell ``script`` in a private mount namespace (skip where that is not permitted)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not installed")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    if probe.returncode:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=runner_env(), capture_output=True,
                          text=True, timeout=timeout)
