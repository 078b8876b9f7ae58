"""Signals during a build: no orphaned workers, a clean stop on SIGTERM/SIGINT/SIGHUP.

* Worker processes call `die_with_parent` first thing: on Linux the kernel sends them SIGKILL
  when the build process dies, however it dies (``PR_SET_PDEATHSIG``, also covering SIGKILL of
  the parent); elsewhere a daemon thread polls the parent pid once a second. Workers ignore
  SIGINT: the parent (the whole terminal's process group gets Ctrl-C) stops them itself.
* The build process runs inside `stop_on_signals`: SIGTERM, SIGINT and SIGHUP raise
  `BuildInterrupted`, so the open LMDB transaction is aborted, the pool is shut down, the
  write lock is released, and the CLI prints the message and exits ``128 + signal``. Finished
  sequences are journaled: re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time

from ..errors import BuildInterrupted

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _watch_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval_s)


def die_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Make this (worker) process end when ``parent_pid`` ends (see the module doc)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    armed = False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid, interval_s), daemon=True).start()


@contextlib.contextmanager
def stop_on_signals(what: str = "voxelize"):
    """Turn SIGTERM/SIGINT/SIGHUP into `BuildInterrupted` inside the block (main thread only;
    elsewhere the block runs unchanged). The previous handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        raise BuildInterrupted(f"{what} stopped by {name}", found=f"signal {name}",
                               expected="the build to run to the end",
                               fix="finished sequences are kept: re-run the same command to resume",
                               exit_code=128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
