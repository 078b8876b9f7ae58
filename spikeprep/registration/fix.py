"""``spikeprep register --fix``: write each ok registration into config.yaml, rebuild sync.json.

Per sequence with verdict ok: the ``registration:`` block (`Registration.to_dict`: model,
matrix, overlap, spike_size, rgb_size) is set in the sequence's own ``spike/SEQ/config.yaml``;
a sequence without one (a fixed rig: the dataset-level ``spike/config.yaml`` serves every
sequence) gets it in ``spike/config.yaml``, when every sequence written there agrees within
`AGREE_PX` RGB px at the spike frame's corners (else: give each sequence its own file). A
sequence's own block wins over the dataset's (key by key). The file keeps its comments and
other keys (`spikeprep.inputs.yaml_edit`); nothing is written through a link (as
``check-sync --fix``, `spikeprep.alignment.fix.refusal`), and nothing when the new config
would not validate (another sensor size, say). Then build-sync runs again (``--force``) for the
sequences, so sync.json carries the registration and caches built from it become stale.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..alignment.build import build_sync
from ..alignment.fix import Fix, fix_lock, options_of, refusal
from ..errors import SpikeprepError
from ..inputs.files import write_text_atomic
from ..inputs.sequence_config import parse_config, read_raw
from ..inputs.yaml_edit import set_keys
from ..sync import load_sync, sync_path
from .geometry import apply, centre_corners
from .record import Registration

#: sequences sharing spike/config.yaml must agree this well (RGB px at the spike frame's corners)
AGREE_PX = 1.0


def config_target(root: Path, sequence: str) -> Path:
    """The config.yaml a sequence's registration goes into: its own, else the dataset-level one."""
    sync = load_sync(sync_path(root, sequence))
    own = root / Path(sync.frames[0].spike_file).parent / "config.yaml"
    shared = root / "spike" / "config.yaml"
    return shared if not own.is_file() and shared.is_file() else own


def corner_gap(a: Registration, b: Registration) -> float:
    """Largest distance (RGB px) between where ``a`` and ``b`` put the spike frame's corner pixels."""
    corners = centre_corners(a.spike_size)
    return float(np.max(np.linalg.norm(apply(a.array, corners) - apply(b.array, corners), axis=1)))


def _write(path: Path, registration: Registration) -> None:
    """Set the block in ``path``; ConfigError (nothing written) when the result would not validate
    as config.yaml (with the dataset-level file beside a sequence's own)."""
    text = path.read_text(encoding="utf-8")
    raw = read_raw(path)
    block = registration.to_dict()
    edited = set_keys(text, {"registration": block}, path)
    shared = path.parent.parent / "config.yaml"
    base = read_raw(shared) if path.name == "config.yaml" and path.parent.name != "spike" and shared.is_file() else {}
    parse_config({**base, **raw, "registration": block}, path)
    write_text_atomic(path, edited)


def _rebuild(root: Path, sequence: str, path: Path, before: str, change: str) -> Fix:
    options = options_of(root, sequence)
    try:
        build_sync(root, options, sequences=(sequence,), dry_run=True)
    except SpikeprepError as err:
        write_text_atomic(path, before)
        return Fix(sequence, "not fixed", f"{change} would not build: {err}", str(path))
    build_sync(root, options, sequences=(sequence,), force=True)
    return Fix(sequence, "fixed", change, str(path))


def _describe(reg: Registration) -> str:
    x0, y0, x1, y1 = reg.overlap
    return f"registration: {reg.model}, overlap [{x0}, {y0}, {x1}, {y1}) ({x1 - x0}x{y1 - y0} RGB px)"


def apply_registrations(data_root: str | os.PathLike, results) -> list[Fix]:
    """Write every ok result of `register` (see the module docstring); one `Fix` per sequence."""
    root = Path(data_root)
    fixes, by_file = [], {}
    for r in results:
        reg = r.registration
        if reg is None:
            fixes.append(Fix(r.sequence, "not fixed", f"verdict {r.verdict}: nothing written"))
            continue
        path = config_target(root, r.sequence)
        why = refusal(root, path)
        if why:
            fixes.append(Fix(r.sequence, "not fixed", why, str(path)))
            continue
        by_file.setdefault(path, []).append((r.sequence, reg))
    for path, items in by_file.items():
        first = items[0][1]
        gap = max(corner_gap(first, reg) for _, reg in items)
        if gap > AGREE_PX:
            fixes += [Fix(seq, "not fixed", f"the sequences sharing {path.name} ({', '.join(s for s, _ in items)}) "
                                            f"disagree by {gap:.1f} RGB px: give each its own spike/SEQ/config.yaml "
                                            "(spike_h, spike_w, flipud) and run --fix again", str(path))
                      for seq, _ in items]
            continue
        with fix_lock(root):
            before = path.read_text(encoding="utf-8")
            try:
                _write(path, first)
            except SpikeprepError as err:
                fixes += [Fix(seq, "not fixed", f"{_describe(first)}: {err}", str(path)) for seq, _ in items]
                continue
            fixes += [_rebuild(root, seq, path, before, _describe(reg)) for seq, reg in items]
    return sorted(fixes, key=lambda f: f.sequence)
