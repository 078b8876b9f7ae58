"""DataLoader worker hygiene: no orphans, no stray signals, one-line errors.

* `WorkerInit` (the loader's ``worker_init_fn``): a worker dies with its trainer
  (``PR_SET_PDEATHSIG`` = SIGKILL, so even a SIGKILLed trainer leaves none behind) and ignores
  SIGTERM/SIGINT/SIGUSR1, which schedulers and terminals send to every process of a job: the
  trainer, not its workers, decides when to stop, and shuts them down after its checkpoint.
* `close_loader`: shut a loader iterator's workers down now (gracefully, then SIGKILL).
* `next_batch`: ``next(batches)`` where an exception raised inside a worker (which torch
  re-raises with the whole worker traceback as its message) becomes one clean line, the
  traceback kept in ``detail`` for ``--verbose``.
"""

from __future__ import annotations

import ctypes
import os
import signal

from spikeprep import SpikeprepError

from .errors import WorkerError

PR_SET_PDEATHSIG = 1
_WORKER_MARK = "in DataLoader worker process"


class WorkerInit:
    """``worker_init_fn``: tie the worker's life to the process that made the loader."""

    def __init__(self):
        self.parent = os.getpid()

    def __call__(self, worker_id: int) -> None:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(s, signal.SIG_IGN)
        die_with_parent(self.parent)


def die_with_parent(parent: int) -> None:
    """This process gets SIGKILL when its parent (pid ``parent``) ends, however it ends (Linux
    ``PR_SET_PDEATHSIG``; elsewhere nothing: a worker keeps torch's own parent watchdog), and
    exits now if the parent is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def close_loader(batches) -> None:
    """Stop the workers of a DataLoader iterator now (no-op for ``workers: 0``)."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for w in getattr(batches, "_workers", []):
        if w.is_alive():
            w.kill()
            w.join(timeout=5)


def worker_failure(text: str) -> tuple[str, str]:
    """``(exception line, traceback)`` from torch's "Caught X in DataLoader worker process N.
    Original Traceback ..." message: the last frame's exception, collapsed to one line."""
    lines = text.rstrip().splitlines()
    files = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    start = files[-1] + 1 if files else 0
    while start < len(lines) and lines[start].startswith("    "):
        start += 1
    last = " ".join(line.strip() for line in lines[start:] if line.strip())
    return last or lines[0], text


def as_worker_error(exc: BaseException) -> SpikeprepError | None:
    """A one-line error for an exception that comes from a DataLoader worker (raised inside
    it, re-raised by torch with the worker's traceback as its message; or the worker died),
    or None for any other exception."""
    message = str(exc)
    if _WORKER_MARK in message.split("\n", 1)[0]:
        line, detail = worker_failure(message)
        err = None
        if isinstance(exc, SpikeprepError):
            prefix, _, rest = line.partition(": ")  # "spikeprep.errors.ConfigError: <message>"
            text = rest if prefix.split(".")[-1] == type(exc).__name__ else line
            try:
                err = type(exc)(text.rstrip("."))
            except TypeError:  # a subclass with its own signature
                err = None
        if err is None:
            err = WorkerError(f"a DataLoader worker failed: {line}",
                              fix="rerun with --verbose for the worker's traceback")
        err.detail = detail
        return err
    if isinstance(exc, RuntimeError) and "DataLoader worker" in message and (
            "exited unexpectedly" in message or "killed by signal" in message):
        return worker_died(message.strip().splitlines()[0])
    return None


def worker_died(found: str) -> WorkerError:
    """The one-line error for a DataLoader worker killed from outside."""
    return WorkerError("a DataLoader worker died", found=found,
                       fix="it was killed from outside (often: out of memory); lower "
                           "data.workers or data.batch_size, then --resume auto")


def next_batch(batches):
    """``next(batches)``, with a worker's exception turned into a one-line error."""
    try:
        return next(batches)
    except (ConnectionError, EOFError) as exc:
        if not getattr(batches, "_workers", None):
            raise
        # a worker killed while it handed a batch over: the connection carrying it was reset
        # (torch reports the death itself only when it notices it first)
        raise worker_died(f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - only worker failures are rewritten
        err = as_worker_error(exc)
        if err is None:
            raise
        raise err from None
