"""The table `spikeprep import` prints (a pure function of the plan and the status)."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from ..datasets.base import ImportPlan


def import_table(plan: ImportPlan, status: dict[str, str], dry_run: bool) -> Table:
    """One row per sequence: split, frames, skipped (why), window rule and lengths, padding, sizes."""
    title = f"import {plan.preset} {plan.source}" + (" (dry run: nothing written)" if dry_run else "")
    table = Table(title=title)
    for column in ("sequence", "split", "frames", "skipped", "window", "spikes/window", "padded",
                   "RGB", "spikes", "status"):
        table.add_column(column, justify="right" if column in ("frames", "padded") else "left")
    for seq in plan.sequences:
        lengths = [f.length for f in seq.frames]
        why = Counter(reason for _, reason in seq.skipped)
        skipped = "; ".join(f"{n} {reason}" for reason, n in why.items()) or "0"
        padded = sum(1 for f in seq.frames if f.pad_before or f.pad_after)
        table.add_row(seq.name, seq.split, str(len(seq.frames)), skipped, seq.rule,
                      f"{min(lengths)}-{max(lengths)}" if min(lengths) != max(lengths) else str(lengths[0]),
                      str(padded), f"{seq.rgb_size[0]}x{seq.rgb_size[1]}", f"{seq.spike_h}x{seq.spike_w}",
                      status.get(seq.name, ""))
    return table
