"""voxelize --dask: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1 (started
and stopped here) compute the frames; the cache equals a local build record for record."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

import spikeprep
from spikeprep.errors import UsageError
from tests.support.cache_datasets import all_records, make_dataset, manifest_without_time
from tests.support.paths import REPO

ROOT = REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``tcp://127.0.0.1:PORT`` of a scheduler with two single-threaded workers."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # workers import spikeprep from this checkout (the worktree), like the client does
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    logs = tmp_path_factory.mktemp("dask")
    quiet = dict(cwd=ROOT, env=env, stderr=subprocess.STDOUT)
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"],
                              stdout=open(logs / "scheduler.log", "w"), **quiet)]
    try:
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--no-dashboard", "--no-nanny", "--memory-limit", "0", "--name", f"w{i}",
                 "--local-directory", str(logs)],
                stdout=open(logs / f"worker{i}.log", "w"), **quiet))
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        _stop(procs[::-1])


def test_dask_build_equals_local_build(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b", "c"), frames=4)
    local = spikeprep.voxelize_dataset(data, tmp_path / "local", S=4, val=["c"], hot_pixels="detect",
                                       progress=False)
    remote = spikeprep.voxelize_dataset(data, tmp_path / "dask", S=4, val=["c"], hot_pixels="detect",
                                        progress=False, dask=cluster)
    assert remote.frames == local.frames == 12
    assert all_records(tmp_path / "dask") == all_records(tmp_path / "local")
    assert manifest_without_time(tmp_path / "dask") == manifest_without_time(tmp_path / "local")
    # the workers did the work: both of them ran compute_frame tasks
    from distributed import Client
    with Client(cluster, set_as_default=False) as client:
        done = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert len(done) == 2 and all(n > 0 for n in done.values())


def test_dask_from_the_command_line_with_parts(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=3)
    reference = tmp_path / "local"
    spikeprep.voxelize_dataset(data, reference, S=4, progress=False)
    cache = tmp_path / "cache"
    for part in ("0/1",):
        proc = subprocess.run([sys.executable, "-m", "spikeprep", "voxelize", str(data), str(cache), "--S", "4",
                               "--dask", cluster, "--part", part], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "spikeprep", "voxelize", str(data), str(cache), "--S", "4"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all_records(cache) == all_records(reference)  # one part: the single-process plan
    assert json.loads((cache / "manifest.json").read_text())["sequences"] == \
        json.loads((reference / "manifest.json").read_text())["sequences"]


def test_unreachable_scheduler_is_a_usage_error(tmp_path):
    from spikeprep.cache import dask_backend
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler"):
        dask_backend._client(f"tcp://127.0.0.1:{free_port()}", timeout="1s")
