"""``spikeprep register``'s table: one row per sequence (verdict, scale/rotation, scores, overlap),
and the reasons of the sequences that are not ok."""

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
    models = sorted({r.estimate.model for r in results})
    table = Table(title=f"register ({', '.join(models)}: spike px -> RGB px)")
    for column in ("sequence", "verdict", "scale", "rotation", "shift px", "NCC before", "NCC after",
                   "rms px", "overlap x0,y0,x1,y1", "frames"):
        table.add_column(column, justify="left" if column in ("sequence", "verdict") else "right",
                         no_wrap=column in ("shift px", "overlap x0,y0,x1,y1", "verdict"))
    for r in results:
        e = r.estimate
        scale, rotation = _scale_rotation(e.matrix)
        shift = "-" if e.matrix is None else f"{e.matrix[0, 2]:+.1f},{e.matrix[1, 2]:+.1f}"
        overlap = "-" if e.overlap is None else ",".join(str(v) for v in e.overlap)
        table.add_row(escape(r.sequence), f"[{STYLE[e.verdict]}]{e.verdict}[/]", scale, rotation, shift,
                      _number(e.ncc_before), _number(e.ncc_after), _number(e.rms_px, 2), overlap,
                      f"{e.frames_used}/{len(r.sampled)}")
    return table


def reason_lines(results) -> list[str]:
    """``SEQ: verdict: why`` for every sequence that is not ok (printed under the table)."""
    return [f"{r.sequence}: {r.verdict}: {r.estimate.reason}" for r in results if r.verdict != "ok"]
