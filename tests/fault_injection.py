"""Kill a `spikeprep` command at a chosen point, from the test side (no hooks in production code).

Run as a script: ``python tests/fault_injection.py POINT N -- spikeprep-args...`` patches the
library in this process, then runs the `spikeprep` CLI with the remaining arguments:

* ``frame N``: SIGKILL just before the N-th frame's records are handed to the open LMDB write
  transaction (frames counted over the whole build, from 1);
* ``journal N``: SIGKILL right after the N-th sequence line was journaled (fsync'd).

The fault matrix and the crash-resume tests use it through `run_killed`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, n: int) -> None:
    """Patch spikeprep so this process SIGKILLs itself at ``point`` number ``n``."""
    from spikeprep.cache import build, journal

    count = {"n": 0}
    if point == "frame":
        original = build.compute_frame

        def compute_frame(*args, **kwargs):
            count["n"] += 1
            if count["n"] == n:
                _kill_self()
            return original(*args, **kwargs)

        build.compute_frame = compute_frame
    elif point == "journal":
        original_append = journal.Journal.append

        def append(self, entry):
            original_append(self, entry)
            if entry.get("kind") == "sequence":
                count["n"] += 1
                if count["n"] == n:
                    _kill_self()

        journal.Journal.append = append
    else:
        raise SystemExit(f"unknown fault point {point!r}: frame | journal")


def run_killed(point: str, n: int, args, **kwargs) -> subprocess.CompletedProcess:
    """Run ``spikeprep ARGS`` in a subprocess that kills itself at ``point`` ``n``."""
    command = [sys.executable, str(HERE), point, str(n), "--", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


if __name__ == "__main__":
    point, n, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: fault_injection.py POINT N -- spikeprep-args..."
    sys.path.insert(0, os.getcwd())
    install(point, int(n))
    from spikeprep.cli import main

    main(args=rest, prog_name="spikeprep")
