"""Shared by the cache fault matrix (`test_faults_lock`, `test_faults_cache`): a real process
holding the write lock, lock files as other holders leave them, the CLI in and out of process,
the simulated dataset and its cache (fixtures ``dataset``, ``copy``), records and folder
snapshots, and the process tree below a pid."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from spikeprep.cache.lock_holders import LOCK_DIR
from spikeprep.cache.reader import acquire_env, release_env
from spikeprep.cli import main
from tests.support.paths import REPO

ROOT = REPO
S = 4


def hold_lock(cache: Path, part=None) -> subprocess.Popen:
    """A real other process that takes the write lock, prints 'held', then sleeps until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from spikeprep.cache.lock import acquire_write_lock
        lock = acquire_write_lock({str(cache)!r}, part={part!r})
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def write_lock_file(cache: Path, name: str, **fields) -> Path:
    """A lock file as another holder would have left it."""
    holder = {"pid": 4242, "host": socket.gethostname(), "mode": "exclusive", "part": None,
              "boot_id": "", "start_ticks": None, "started": "2026-01-01T00:00:00Z", **fields}
    path = cache / LOCK_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def spikeprep_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """A real ``spikeprep`` process (this worktree's code)."""
    return subprocess.run([sys.executable, "-m", "spikeprep", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, **kwargs)


def invoke(*args):
    """``spikeprep ARGS`` in this process (CliRunner): (exit code, stdout + stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def voxelize_args(data, cache, *extra):
    return ["voxelize", data, cache, "--S", S, "--val", "seq001", *extra]


def verifies(cache: Path, data: Path | None = None) -> bool:
    code, output = invoke("verify", cache, *(["--data", data] if data else []))
    assert code in (0, 1), output
    return code == 0


def records(cache: Path) -> dict[str, bytes]:
    out = {}
    for shard in sorted(cache.glob("shard-*.lmdb")):
        env = acquire_env(shard)
        with env.begin() as txn:
            out.update({k.decode(): bytes(v) for k, v in txn.cursor()})
        release_env(shard)
    return out


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove a folder untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def set_offset(data: Path, offset: float) -> None:
    for config in data.glob("spike/*/config.yaml"):
        text = config.read_text()
        config.write_text(re.sub(r"(?m)^offset: .*$", f"offset: {offset}", text))


def descendants(pid: int) -> set[int]:
    """Pids of every living process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def running(pids) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive
