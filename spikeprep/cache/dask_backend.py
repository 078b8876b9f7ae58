"""``voxelize --dask SCHEDULER``: frames computed as tasks on a Dask distributed cluster.

The cluster only computes: each task is `spikeprep.cache.frames.compute_frame` for one frame (a
pure function of the files it reads and the `FrameConfig`), so its records are the bytes a local
build makes. This process stays the only writer: results come back in frame order and go into
the sequence's LMDB transaction as with local workers, so the crash and resume guarantees are
unchanged. Needs ``pip install 'spikeprep[dask]'`` here and on the workers, and DATA_ROOT at the
same path on every worker (a shared filesystem; it is sent as an absolute path, so workers may
run in any folder); CACHE is written only here. A lost scheduler, or no worker left, for
`LOST_GRACE_S` ends the build with one error (finished sequences are kept: a re-run, with or
without ``--dask``, continues).

In flight: at most ``2 * (worker threads) + 2`` frames (at least 4), so memory stays a few frames
per worker whatever the sequence length.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import time

from ..errors import CacheError, UsageError
from .frames import FrameConfig, compute_frame
from .interrupt import check_stop
from .ordered import in_order

#: Seconds to connect to the scheduler.
CONNECT_TIMEOUT_S = 10
#: Seconds without any worker, or without the scheduler, before the build stops with an error
#: (a worker restarting, or a scheduler reconnecting, within it is waited for).
LOST_GRACE_S = float(os.environ.get("SPIKEPREP_DASK_LOST_GRACE_S", "30"))
#: Seconds between looks at the cluster while a frame is awaited.
POLL_S = 1.0


_ADDRESS = re.compile(r"(?:(tcp|tls)://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def _unreachable(address: str, found: str, timeout) -> UsageError:
    return UsageError("cannot reach the Dask scheduler", path=address, found=found,
                      expected=f"a running 'dask scheduler' at an address like tcp://HOST:PORT, "
                               f"answering within {timeout}",
                      fix="start one (dask scheduler; dask worker tcp://HOST:PORT) or check --dask")


def _client(address: str, timeout: str = f"{CONNECT_TIMEOUT_S}s"):
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--dask needs the 'distributed' package", found="not installed",
                         expected="pip install 'spikeprep[dask]'") from None
    match = _ADDRESS.fullmatch(str(address).strip())
    if not match:
        raise UsageError("cannot read the --dask address", path=address, found=repr(address),
                         expected="tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")
    seconds = float(str(timeout).rstrip("s"))
    try:  # a plain connect first: a refused or silent port fails fast and without Client's noise
        socket.create_connection((match.group(2).strip("[]"), int(match.group(3))), timeout=seconds).close()
    except OSError as exc:
        raise _unreachable(address, exc.strerror or f"{type(exc).__name__}: {exc}", timeout) from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # OSError, TimeoutError (not a scheduler), ...
        raise _unreachable(address, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                           timeout) from None


def _quiet_distributed() -> dict:
    """Silence distributed's loggers (each lost connection is logged with a traceback; the build
    reports one error instead) and asyncio's (distributed's event loop reports a gather it
    abandoned on a lost cluster as "Task exception was never retrieved", with a traceback);
    their previous levels."""
    names = ["distributed", "asyncio"] + [n for n in logging.root.manager.loggerDict
                                           if n.startswith("distributed.")]
    levels = {}
    for name in names:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.CRITICAL + 1)
    return levels


def _restore(levels: dict) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _lost(address: str, what: str, sequence: str) -> CacheError:
    return CacheError("voxelize lost its Dask cluster", path=address,
                      found=f"{what} while frames of {sequence} were computed",
                      expected="a scheduler and at least one worker until the build ends",
                      fix="finished sequences are kept: restart the cluster and re-run the same command, "
                          "or re-run it without --dask to continue locally")


class DaskRunner:
    """`FrameRunner`'s interface (``map``, ``close``) over a Dask cluster. DATA_ROOT is sent as
    an absolute path (workers run in other folders); a cluster that loses its scheduler or every
    worker for `LOST_GRACE_S` is a CacheError, never a wait without end."""

    def __init__(self, cfg: FrameConfig, address: str) -> None:
        self.cfg = dataclasses.replace(cfg, data_root=os.path.abspath(cfg.data_root))
        self.address = address
        # distributed logs (with tracebacks) every lost connection: this build reports one error instead
        try:
            import distributed  # noqa: F401  (its import configures its loggers: quiet them after)
        except ImportError:
            pass  # _client says how to install it
        self._levels = _quiet_distributed()
        try:
            self.client = _client(address)
        except BaseException:
            _restore(self._levels)
            raise
        try:
            threads = sum(self.client.nthreads().values())
        except Exception as exc:
            self.client.close()
            raise UsageError("cannot reach the Dask scheduler", path=address, found=f"{type(exc).__name__}: {exc}",
                             expected="a running 'dask scheduler'", fix="check --dask") from None
        self.limit = max(4, 2 * threads + 2)
        self.lost = False

    def _workers(self) -> int | None:
        """Workers the scheduler knows now; None when it cannot be asked (lost)."""
        if self.client.status != "running":
            return None
        try:
            return len(self.client.nthreads())
        except Exception:
            return None

    def _wait(self, future, sequence: str):
        """``future``'s result, looking at the cluster (and for a stop signal) every `POLL_S`."""
        from distributed import TimeoutError as DaskTimeout

        since = None
        while True:
            try:
                return future.result(timeout=POLL_S)
            except (DaskTimeout, TimeoutError):
                pass
            except Exception as exc:
                if self._workers() is None:
                    self.lost = True
                    raise _lost(self.address, "the scheduler is gone", sequence) from None
                if type(exc).__module__.startswith(("distributed", "concurrent", "asyncio")):
                    self.lost = True
                    raise _lost(self.address, f"{type(exc).__name__}: {exc}", sequence) from None
                raise  # an error of compute_frame itself (a SpikeprepError naming the file)
            check_stop()
            workers = self._workers()
            if workers:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since > LOST_GRACE_S:
                what = "the scheduler is gone" if workers is None else "no worker is left"
                self.lost = True
                raise _lost(self.address, f"{what} (for {LOST_GRACE_S:.0f} s)", sequence)

    def map(self, jobs, mask):
        """`FrameResult`s in job order (``mask``: the sequence's hot-pixel mask or None)."""
        jobs = list(jobs)
        sequence = jobs[0].sequence if jobs else "?"
        yield from in_order(lambda job: self.client.submit(compute_frame, job, self.cfg, mask, pure=False),
                            jobs, self.limit, wait=lambda future: self._wait(future, sequence))

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception:
            pass  # the scheduler is gone already
        finally:
            if not self.lost:  # after a loss, distributed's event loop still logs its reconnects
                _restore(self._levels)
