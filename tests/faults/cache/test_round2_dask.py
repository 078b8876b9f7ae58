"""Issue 25 #11: ``voxelize --dask`` never waits forever and never prints a traceback: a killed
only worker, a lost scheduler, a malformed or unreachable address; DATA_ROOT/CACHE given as
relative paths work with workers started in another folder. Self-contained (own cluster helpers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("distributed")

from spikeprep.inputs.dat import write_dat  # noqa: E402
from spikeprep.sync import FrameWindow, SyncFile, save_sync  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           SPIKEPREP_DASK_LOST_GRACE_S="3")


def make_dataset(root: Path, sequences=("a", "b"), frames: int = 3, hw=(16, 24), window: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for seq in sequences:
        write_dat(root / "spike" / seq / "spikes.dat", rng.random((2 + frames * (window + 2), *hw)) < 0.2,
                  flipud=True)
        windows = []
        for i in range(frames):
            (root / "blur" / seq).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "blur" / seq / f"{i:06d}.png"), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
            begin = 2 + i * (window + 2)
            windows.append(FrameWindow(f"blur/{seq}/{i:06d}.png", None, f"spike/{seq}/spikes.dat", begin,
                                       begin + window))
        save_sync(root / "spike" / seq / "sync.json", SyncFile(seq, *hw, True, tuple(windows)))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(logs: Path, cwd: Path, workers: int = 1):
    """``(address, [scheduler, worker...])``: a scheduler and single-threaded workers (no nanny,
    so a killed worker stays dead), the workers running in ``cwd``."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], cwd=ROOT, env=ENV,
                              stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT)]
    for i in range(workers):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny",
             "--memory-limit", "0", "--name", f"w{i}", "--local-directory", str(logs)], cwd=cwd, env=ENV,
            stdout=open(logs / f"worker{i}.log", "w"), stderr=subprocess.STDOUT))
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=90)
    except BaseException:
        stop(procs)
        raise
    return address, procs


def stop(procs) -> None:
    for proc in procs[::-1]:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def voxelize(*args, cwd=ROOT, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep", "voxelize", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(stderr: str) -> bool:
    return "Traceback" not in stderr and len([ln for ln in stderr.splitlines() if ln.startswith("error:")]) == 1


def test_malformed_and_unreachable_addresses_are_one_error_line(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=1)
    for address in ("not an address", "tcp://127.0.0.1", f"tcp://127.0.0.1:{free_port()}"):
        t0 = time.monotonic()
        proc = voxelize(data, tmp_path / "cache", "--dask", address, timeout=60)
        assert proc.returncode == 2 and one_error_line(proc.stderr), proc.stderr
        assert "the --dask address" in proc.stderr or "cannot reach the Dask scheduler" in proc.stderr
        assert address in proc.stderr
        assert time.monotonic() - t0 < 40


def test_relative_paths_with_workers_in_another_folder(tmp_path):
    make_dataset(tmp_path / "data")  # given to voxelize as "data", relative to tmp_path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    address, procs = start_cluster(tmp_path / "logs", cwd=elsewhere)
    try:
        proc = voxelize("data", "cache", "--dask", address, cwd=tmp_path)
    finally:
        stop(procs)
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([sys.executable, "-m", "spikeprep", "verify", "cache", "--data", "data"], cwd=tmp_path,
                           env=ENV, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def _build_then_lose(tmp_path, lose) -> tuple[subprocess.CompletedProcess, float, Path, Path]:
    """Start a --dask build on a one-worker cluster; once a sequence is journaled, ``lose(procs)``;
    return the finished process, seconds from the loss to its end, DATA_ROOT and CACHE."""
    data = make_dataset(tmp_path / "data", sequences=tuple(f"s{i:02d}" for i in range(40)), frames=4)
    cache = tmp_path / "cache"
    address, procs = start_cluster(tmp_path / "logs", cwd=ROOT)
    try:
        build = subprocess.Popen([sys.executable, "-m", "spikeprep", "voxelize", str(data), str(cache), "--dask",
                                  address], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        journal = cache / "progress.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and build.poll() is None:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        lost_at = time.monotonic()
        lose(procs)
        try:
            out, err = build.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            build.kill()
            out, err = build.communicate()
            pytest.fail(f"voxelize still waited 150 s after the loss:\n{err[-2000:]}")
    finally:
        stop(procs)
    return subprocess.CompletedProcess(build.args, build.returncode, out, err), time.monotonic() - lost_at, data, cache


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["worker", "scheduler"])
def test_lost_worker_or_scheduler_ends_the_build_with_one_error_and_resumes_locally(tmp_path, lost):
    def lose(procs):
        procs[1 if lost == "worker" else 0].send_signal(signal.SIGKILL)

    proc, seconds, data, cache = _build_then_lose(tmp_path, lose)
    if proc.returncode == 0:
        pytest.skip("the build finished before the loss")
    assert proc.returncode == 1 and one_error_line(proc.stderr), proc.stderr
    assert "lost its Dask cluster" in proc.stderr and seconds < 120
    again = voxelize(data, cache)  # resumes locally, without --dask
    assert again.returncode == 0 and "already done" in again.stdout, again.stderr
