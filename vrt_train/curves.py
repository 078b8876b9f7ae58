"""``out_dir/curves.png``: training loss and validation PSNR (output and blurred input) against
iterations, drawn from ``train.csv`` and ``val.csv`` after every validation.

Reading the files (not in-memory history) keeps the curves whole across resumes; rows of an
iteration written twice (a run resumed from an earlier checkpoint) keep the last one.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .telemetry import CSV_NAME

PNG_NAME = "curves.png"


def read_rows(path: Path, columns: tuple[str, ...]) -> dict[str, list[float]]:
    """``{"iter": [...], col: [...]}`` from a csv, sorted by iteration, last row per iteration."""
    if not path.is_file():
        return {"iter": [], **{c: [] for c in columns}}
    by_iter: dict[int, dict] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            by_iter[int(row["iter"])] = row
    its = sorted(by_iter)
    return {"iter": its, **{c: [float(by_iter[i][c]) for i in its] for c in columns}}


def plot_curves(out_dir) -> Path:
    """Draw ``out_dir/curves.png`` (written atomically); returns its path."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    out_dir = Path(out_dir)
    train = read_rows(out_dir / CSV_NAME, ("loss",))
    val = read_rows(out_dir / "val.csv", ("psnr", "psnr_input"))
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax_loss, ax_psnr = fig.subplots(1, 2)
    ax_loss.plot(train["iter"], train["loss"], color="tab:blue", label="train loss (print-interval mean)")
    if train["loss"] and min(train["loss"]) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="iteration", ylabel="Charbonnier loss", title="training loss")
    ax_psnr.plot(val["iter"], val["psnr"], "o-", color="tab:red", label="output")
    ax_psnr.plot(val["iter"], val["psnr_input"], "s--", color="tab:gray", label="blurred input")
    ax_psnr.set(xlabel="iteration", ylabel="PSNR (dB)", title="validation PSNR")
    for ax in (ax_loss, ax_psnr):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    path = out_dir / PNG_NAME
    tmp = path.with_name(f".{PNG_NAME}.tmp{os.getpid()}.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path
