"""Kill a `spikeprep` command at a chosen point, from the test side (no hooks in production code).

Run as a script: ``python tests/support/fault_injection.py POINT N -- spikeprep-args...`` patches the
library in this process, then runs the `spikeprep` CLI with the remaining arguments:

* ``frame N``: SIGKILL just before the N-th frame's records are handed to the open LMDB write
  transaction (frames counted over the whole build, from 1);
* ``commit N``: SIGKILL right after the N-th sequence's LMDB transaction committed, before its
  journal line;
* ``journal N``: SIGKILL right after the N-th sequence line was journaled (fsync'd);
* ``pause N``: after the N-th frame result reached the parent (worker processes, if any, are
  running), print ``paused`` on stderr and sleep until the file named by the environment
  variable ``FAULT_GO_FILE`` exists (forever without it): a live writer that tests can signal,
  or let finish.

The fault matrix and the crash-resume tests use it through `run_killed`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, n: int) -> None:
    """Patch spikeprep so this process SIGKILLs itself at ``point`` number ``n``."""
    from spikeprep.cache import journal, runner

    count = {"n": 0}
    if point == "frame":
        original = runner.compute_frame

        def compute_frame(*args, **kwargs):
            count["n"] += 1
            if count["n"] == n:
                _kill_self()
            return original(*args, **kwargs)

        runner.compute_frame = compute_frame
    elif point == "journal":
        original_append = journal.Journal.append

        def append(self, entry):
            original_append(self, entry)
            if entry.get("kind") == "sequence":
                count["n"] += 1
                if count["n"] == n:
                    _kill_self()

        journal.Journal.append = append
    elif point == "commit":
        from spikeprep import lmdb_writer

        original_write = lmdb_writer.ShardWriter.write_sequence

        def write_sequence(self, *args, **kwargs):
            written = original_write(self, *args, **kwargs)
            count["n"] += 1
            if count["n"] == n:
                _kill_self()
            return written

        lmdb_writer.ShardWriter.write_sequence = write_sequence
    elif point == "pause":
        original_map = runner.FrameRunner.map

        def map(self, jobs, mask):
            for result in original_map(self, jobs, mask):
                count["n"] += 1
                if count["n"] == n:
                    _pause()
                yield result

        runner.FrameRunner.map = map
    else:
        raise SystemExit(f"unknown fault point {point!r}: frame | commit | journal | pause")


def _pause() -> None:
    sys.stderr.write("paused\n")
    sys.stderr.flush()
    go = os.environ.get("FAULT_GO_FILE")
    while not (go and os.path.exists(go)):
        time.sleep(0.05)


def start_paused(n: int, args, go_file=None, **kwargs) -> subprocess.Popen:
    """Start ``spikeprep ARGS`` that pauses after its ``n``-th frame; return once it is paused
    (its stderr has been read up to the ``paused`` line). Touch ``go_file`` to let it go on."""
    env = {**os.environ, **({"FAULT_GO_FILE": str(go_file)} if go_file else {})}
    proc = subprocess.Popen([sys.executable, str(HERE), "pause", str(n), "--", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.strip() == "paused":
            return proc
    proc.wait()
    raise AssertionError(f"the command ended (exit {proc.returncode}) before pausing:\n{''.join(lines)}")


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
