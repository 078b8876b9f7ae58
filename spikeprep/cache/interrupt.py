"""Signals during a build: no orphaned workers, a clean stop on SIGTERM/SIGINT/SIGHUP.

* Worker processes call `die_with_parent` first thing: on Linux the kernel sends them SIGKILL
  when the build process dies, however it dies (``PR_SET_PDEATHSIG``, also covering SIGKILL of
  the parent); elsewhere a daemon thread polls the parent pid once a second. Workers ignore
  SIGINT: the parent (the whole terminal's process group gets Ctrl-C) stops them itself.
* The build process runs inside `stop_on_signals`: SIGTERM, SIGINT and SIGHUP are recorded by
  the handler (which only sets a flag, so it never raises inside a numba kernel or an LMDB
  call), and the build raises `BuildInterrupted` at the next frame or sequence boundary
  (`check_stop`), so the open LMDB transaction is aborted, the pool is shut down, the write lock
  is released (the lock is taken inside the block, so a signal while it is taken or released
  also waits), and the CLI prints the message and exits ``128 + signal``. Finished sequences are
  journaled: re-running the same command resumes.
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


#: Signals received inside `stop_on_signals` and not acted on yet (a stack: one list per block).
_PENDING: list[list] = []


def _interrupted(what: str, signum: int) -> BuildInterrupted:
    name = signal.Signals(signum).name
    return BuildInterrupted(f"{what} stopped by {name}", found=f"signal {name}",
                            expected="the build to run to the end",
                            fix="finished sequences are kept: re-run the same command to resume",
                            exit_code=128 + signum)


def check_stop() -> None:
    """Raise `BuildInterrupted` when a stop signal arrived in the innermost `stop_on_signals`
    block. The build calls it at safe points (each frame, each sequence): the handler itself only
    records the signal, so it never raises inside a numba kernel, an LMDB call or a lock file write."""
    if _PENDING and _PENDING[-1][1]:
        raise _interrupted(_PENDING[-1][0], _PENDING[-1][1][0])


@contextlib.contextmanager
def stop_on_signals(what: str = "voxelize"):
    """Record SIGTERM/SIGINT/SIGHUP inside the block (main thread only; elsewhere the block runs
    unchanged); `check_stop` turns a recorded signal into `BuildInterrupted`, and so does leaving
    the block (after the blocks nested in it, e.g. the write lock, were left). The previous
    handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = [what, []]

    def handler(signum, frame):  # only a flag: raising here could land inside a numba call
        state[1].append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    _PENDING.append(state)
    try:
        yield
    finally:
        _PENDING.remove(state)
        for sig, old in previous.items():
            signal.signal(sig, old)
    if state[1]:
        raise _interrupted(what, state[1][0])
