"""Make a folder read-only or small (disk full) for one command, even as root, where ``chmod``
stops nothing: the command runs in a private mount namespace (``unshare -m``) with a read-only
bind mount or a small tmpfs over the folder; nothing outside that process sees the mounts.

`mount_supported()` probes once whether this machine allows it; tests skip with its reason where
it does not (containers without CAP_SYS_ADMIN, no ``unshare``).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from tests.support.paths import REPO


@functools.cache
def mount_supported() -> str | None:
    """None when ``unshare -m`` with tmpfs and read-only bind mounts works here, else why not."""
    if shutil.which("unshare") is None:
        return "no 'unshare' command on this machine"
    with tempfile.TemporaryDirectory() as tmp:
        script = (f"mount -t tmpfs -o size=64k tmpfs {tmp} && mount --bind -o ro {tmp} {tmp} && "
                  f"! touch {tmp}/x 2>/dev/null")
        try:
            done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare -m failed: {exc}"
    if done.returncode:
        return f"private mount namespaces are not permitted here: {done.stderr.strip()[:200]}"
    return None


def spikeprep_command(*args) -> str:
    """``python -m spikeprep ARGS`` of this checkout, quoted for sh."""
    return " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", "spikeprep", *args))


def read_only(path) -> str:
    """sh: make ``path`` a read-only bind mount of itself."""
    return f"mount --bind -o ro {shlex.quote(str(path))} {shlex.quote(str(path))}"


def tmpfs(path, size: str) -> str:
    """sh: mount a tmpfs of ``size`` (e.g. ``300k``) over ``path``."""
    return f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(path))}"


def run_in_namespace(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the sh ``script`` (mounts, then spikeprep commands) in a private mount namespace,
    from the repository root so this checkout's spikeprep is used."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)
