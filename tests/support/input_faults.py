"""Shared by the input-side fault matrix (`test_faults_verify`, `test_faults_conversions`,
`test_faults_config`, `test_faults_outputs`): the CLI in process, the one-line error check,
leftover temp files, small datasets, the built cache (fixtures ``built``, ``copy``), byte
renames and the mount-namespace skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from spikeprep.cli import main
from tests.support import cache_datasets, data_roots
from tests.support.namespaces import mount_supported

LEFTOVER_SUFFIXES = (".partial", ".tmp")



def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output, result.output
    return result


def leftovers(*roots) -> list[Path]:
    return [p for root in roots for p in Path(root).rglob("*")
            if p.name.endswith(LEFTOVER_SUFFIXES) or ".tmp" in p.name]


def assert_clear_error(result, code: int, *words):
    """Exit ``code``, one ``error:`` line naming found/expected, no traceback, and ``words``."""
    assert result.exit_code == code, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("error: "))
    assert "found" in line and "expected" in line, line
    for word in words:
        assert word in line, (word, line)
    return line




def small_dataset(root: Path, sequences=("a",), frames=2, rate=0.2) -> Path:
    return cache_datasets.make_dataset(root, sequences=sequences, frames=frames, rgb_hw=(16, 24),
                                       spike_hw=(16, 24), window=8, rate=rate, sharp=False)



def sync_dataset(root: Path) -> Path:
    return data_roots.make_dataset(root, frames=3, spikes_per_frame=10)


def rename_bytes(parent: Path, old: str, new: bytes) -> None:
    os.rename(os.fsencode(parent / old), os.fsencode(parent) + b"/" + new)



needs_mounts = pytest.mark.skipif(mount_supported() is not None, reason=str(mount_supported()))

