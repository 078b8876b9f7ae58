"""How a build computes its frames (none of it changes the output): `RunOptions` and the local
`FrameRunner` (in this process, or ``workers`` spawned processes that die with the build);
`spikeprep.cache.dask_backend.DaskRunner` is the same interface over a Dask cluster."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..errors import CacheError
from ..lmdb_writer import DEFAULT_FLUSH_BYTES, DEFAULT_INITIAL_MAP_SIZE
from .frames import FrameConfig, compute_frame
from .interrupt import die_with_parent
from .ordered import in_order

_WORKER_CFG: FrameConfig | None = None


def _init_worker(cfg: FrameConfig, threads: int, parent_pid: int) -> None:
    global _WORKER_CFG
    die_with_parent(parent_pid)  # no orphans when the build process is killed
    _WORKER_CFG = cfg
    try:
        import numba
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # numba absent or JIT disabled: nothing to tune
        pass


def _work(job, mask):
    return compute_frame(job, _WORKER_CFG, mask)


def _worker_died(sequence: str) -> CacheError:
    """The error for a worker process that died (a signal, the OOM killer), not a traceback."""
    return CacheError("a voxelize worker process died", found=f"a worker ended while computing "
                      f"frames of {sequence} (killed by a signal, or out of memory)",
                      expected="workers that run until the build ends",
                      fix="finished sequences are kept: re-run the same command to resume "
                          "(with fewer --workers if memory ran out)")


class FrameRunner:
    """Computes `FrameResult`s in job order; with workers, at most ``2*workers+1`` in flight."""

    def __init__(self, cfg: FrameConfig, workers: int) -> None:
        self.cfg, self.workers = cfg, int(workers)
        self.pool = None
        if self.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(cfg, threads, os.getpid()))

    def map(self, jobs, mask):
        if self.pool is None:
            for job in jobs:
                yield compute_frame(job, self.cfg, mask)
            return
        jobs = list(jobs)  # one sequence's jobs (small): the error below names it
        try:
            yield from in_order(lambda job: self.pool.submit(_work, job, mask), jobs, 2 * self.workers + 1)
        except BrokenProcessPool:
            raise _worker_died(jobs[0].sequence) from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class RunOptions:
    """How to run a build (none of it changes the output): worker processes (0/1: in-process),
    a progress bar, the LMDB maps' first size, a Dask scheduler address (None: local)."""

    workers: int = 0
    progress: object = False  # bool | sequences.ProgressCallback
    initial_map_size: int = DEFAULT_INITIAL_MAP_SIZE
    dask: str | None = None

    @property
    def flush_bytes(self) -> int:
        """Bytes between background writebacks of a shard (`ShardWriter`): only when frames are
        computed in other processes. Writing back a ``writemap`` shard write-protects its pages,
        which interrupts the CPUs running this process (TLB shootdowns), so beside an in-process
        build it slows png decoding more than it saves at the commit (README, *Benchmarks*)."""
        return DEFAULT_FLUSH_BYTES if (self.workers > 1 or self.dask) else 0

    def runner(self, cfg: FrameConfig):
        """The frame runner: local processes, or a Dask cluster."""
        if self.dask:
            from .dask_backend import DaskRunner
            return DaskRunner(cfg, self.dask)
        return FrameRunner(cfg, self.workers)
