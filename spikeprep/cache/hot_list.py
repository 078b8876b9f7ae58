"""``voxelize --hot-pixel-list QC.json``: the hot pixels `spikeprep qc` found, as each sequence's
repair mask (instead of ``--hot-pixels detect``'s own detection).

qc's JSON (``{"files": {PATH: {"hot_pixels": [[row, col], ...], ...}}}``) names captures by the
path qc was given; a sequence's spike files are matched to them by their last path parts
(``spike/SEQ/spikes.dat``, then ``SEQ/spikes.dat``), so the list works from wherever qc ran.
Pixels are ``[row, col]`` as qc read the file (image orientation under the sequence's flipud),
the orientation of the stored voxels. Every spike file of every sequence must be in the list
(a sequence qc never saw is an error, not a silent "no hot pixels").
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import ConfigError, UsageError


def _tail(path: str, parts: int) -> tuple[str, ...]:
    return PurePosixPath(Path(path).as_posix()).parts[-parts:]


def read_qc_lists(path: str | os.PathLike) -> dict[str, list[list[int]]]:
    """``{qc file path: [[row, col], ...]}`` from a ``spikeprep qc --json`` output."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("hot-pixel list not found", path=path, found="no such file",
                         expected="the output of 'spikeprep qc DATA_ROOT --json'") from None
    except (OSError, ValueError) as exc:
        raise ConfigError("hot-pixel list is not readable JSON", path=path, found=str(exc)[:200],
                          expected="the output of 'spikeprep qc DATA_ROOT --json'") from None
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict):
        raise ConfigError("hot-pixel list has no 'files' object", path=path, found=type(raw).__name__,
                          expected='{"files": {PATH: {"hot_pixels": [[row, col], ...]}}}')
    out = {}
    for name, report in files.items():
        pixels = report.get("hot_pixels") if isinstance(report, dict) else None
        if not isinstance(pixels, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p)
                for p in pixels):
            raise ConfigError("hot-pixel list entry is malformed", path=path, found=f"{name}: {pixels!r}"[:200],
                              expected="hot_pixels: a list of [row, col] integer pairs")
        out[name] = pixels
    return out


def sequence_lists(qc: dict[str, list], spike_files: dict[str, list[str]], shape: tuple[int, int],
                   source: str | os.PathLike) -> dict[str, list[list[int]]]:
    """``{sequence: sorted unique [[row, col], ...]}``: the union over each sequence's spike files
    (``spike_files``: sequence -> DATA_ROOT-relative paths) of qc's lists, checked to lie inside
    ``shape`` (h, w)."""
    by_tail = {}
    for parts in (3, 2):
        for name, pixels in qc.items():
            by_tail.setdefault((parts, _tail(name, parts)), pixels)
    out, missing = {}, []
    for seq, files in spike_files.items():
        found = set()
        for rel in files:
            pixels = by_tail.get((3, _tail(rel, 3)), by_tail.get((2, _tail(rel, 2))))
            if pixels is None:
                missing.append(rel)
                continue
            found.update(map(tuple, pixels))
        outside = [p for p in found if p[0] >= shape[0] or p[1] >= shape[1]]
        if outside:
            raise ConfigError("hot-pixel list names pixels outside the spike frame", path=source,
                              found=f"sequence {seq}: {sorted(outside)[:3]}",
                              expected=f"[row, col] inside {shape[0]}x{shape[1]}",
                              fix="run spikeprep qc again on this DATA_ROOT (another sensor size?)")
        out[seq] = [list(p) for p in sorted(found)]
    if missing:
        raise ConfigError("hot-pixel list does not cover every spike file", path=source,
                          found=", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
                          expected="an entry for every spike file of every sequence",
                          fix="run 'spikeprep qc DATA_ROOT --json > LIST' on this DATA_ROOT")
    return out


def mask_of(pixels: list[list[int]], shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` bool mask of ``[[row, col], ...]``."""
    mask = np.zeros(shape, bool)
    for row, col in pixels:
        mask[row, col] = True
    return mask
