"""``spikeprep register``'s table: one row per sequence (verdict, scale/rotation, scores, overlap, why)."""

from __future__ import annotations

import math

import numpy as np
from rich.markup import escape
from rich.table import Table

STYLE = {"ok": "green", "weak": "yellow", "failed": "red"}


def _scale_rotation(matrix) -> tuple[str, str]:
    """Scale (RGB px per spike px) and rotation (degrees) of the matrix's linear part."""
    if matrix is None:
        return "-", "-"
    m = np.asarray(matrix, np.float64)
    scale = math.sqrt(abs(np.linalg.det(m[:2, :2])))
    return f"{scale:.3f}", f"{math.degrees(math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1])):+.2f}"


def _number(value, digits=3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def register_table(results) -> Table:
    """One row per `SequenceRegistration`."""
    table = Table(title="register (spike px -> RGB px; NCC of spike counts with the luma)")
    for column in ("sequence", "verdict", "model", "scale", "rotation", "shift px", "NCC before -> after",
                   "rms px", "overlap x0,y0,x1,y1", "frames", "why"):
        table.add_column(column, justify="right" if column in ("scale", "rotation", "rms px", "frames") else "left",
                         no_wrap=column.startswith(("NCC", "overlap", "shift")))
    for r in results:
        e = r.estimate
        scale, rotation = _scale_rotation(e.matrix)
        shift = "-" if e.matrix is None else f"{e.matrix[0, 2]:+.1f},{e.matrix[1, 2]:+.1f}"
        overlap = "-" if e.overlap is None else ",".join(str(v) for v in e.overlap)
        table.add_row(escape(r.sequence), f"[{STYLE[e.verdict]}]{e.verdict}[/]", e.model, scale, rotation, shift,
                      f"{_number(e.ncc_before)} -> {_number(e.ncc_after)}", _number(e.rms_px, 2), overlap,
                      f"{e.frames_used}/{len(r.sampled)}", escape(e.reason))
    return table
