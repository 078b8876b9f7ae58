"""``voxelize --dask SCHEDULER``: frames computed as tasks on a Dask distributed cluster.

The cluster only computes: each task is `spikeprep.cache.frames.compute_frame` for one frame (a
pure function of the files it reads and the `FrameConfig`), so its records are the bytes a local
build makes. This process stays the only writer: results come back in frame order and go into
the sequence's LMDB transaction as with local workers, so the crash and resume guarantees are
unchanged. Needs ``pip install 'spikeprep[dask]'`` here and on the workers, and DATA_ROOT at the
same path on every worker (a shared filesystem); CACHE is written only here.

In flight: at most ``2 * (worker threads) + 2`` frames (at least 4), so memory stays a few frames
per worker whatever the sequence length.
"""

from __future__ import annotations

from ..errors import UsageError
from .frames import FrameConfig, compute_frame
from .ordered import in_order


def _client(address: str, timeout: str = "30s"):
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--dask needs the 'distributed' package", found="not installed",
                         expected="pip install 'spikeprep[dask]'") from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError("cannot reach the Dask scheduler", path=address, found=str(exc) or type(exc).__name__,
                         expected="a running 'dask scheduler' (tcp://HOST:PORT)",
                         fix="start one (dask scheduler; dask worker tcp://HOST:PORT) or check --dask") from None


class DaskRunner:
    """`FrameRunner`'s interface (``map``, ``close``) over a Dask cluster."""

    def __init__(self, cfg: FrameConfig, address: str) -> None:
        self.cfg = cfg
        self.client = _client(address)
        threads = sum(self.client.nthreads().values())
        self.limit = max(4, 2 * threads + 2)

    def map(self, jobs, mask):
        """`FrameResult`s in job order (``mask``: the sequence's hot-pixel mask or None)."""
        yield from in_order(lambda job: self.client.submit(compute_frame, job, self.cfg, mask, pure=False),
                            jobs, self.limit)

    def close(self) -> None:
        self.client.close()
