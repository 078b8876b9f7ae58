"""``spikeprep qc --preview DIR``: a capture's firing-rate map (hot and dead pixels circled) and
a TFP image (the mean of a few spike frames around the middle), one png each per file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Spike frames averaged into the TFP image (SpikeCV's texture-from-playback, a short window).
TFP_FRAMES = 32


def preview_name(path: str, taken: set[str]) -> str:
    """A file name stem for a capture's previews, unique among ``taken``: ``SEQ_file``."""
    p = Path(path)
    stem = f"{p.parent.name}_{p.stem}" if p.parent.name else p.stem
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name


def tfp_image(report) -> np.ndarray:
    """``(H, W)`` float mean of `TFP_FRAMES` spike frames centred in the recording."""
    from ..inputs.dat import SpikeStream

    g = report.geometry
    with SpikeStream(filepath=report.path, spike_h=g.height, spike_w=g.width, strip_head=g.with_head,
                     print_dat_detail=False) as s:
        begin = max(0, len(s) // 2 - TFP_FRAMES // 2)
        return s.read(begin, min(len(s), begin + TFP_FRAMES), flipud=g.flipud).mean(axis=0)


def write_qc_previews(reports, out_dir: str | os.PathLike) -> list[Path]:
    """``DIR/NAME_rate.png`` and ``DIR/NAME_tfp.png`` for every capture that could be read."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, taken = [], set()
    for report in reports:
        if report.error or report.rate is None:
            continue
        name = preview_name(report.path, taken)
        g = report.geometry
        for kind, image, title in (
                ("rate", report.rate, f"firing rate (spikes/pixel/frame), {len(report.hot_pixels)} hot "
                                      f"(red), {len(report.dead_pixels)} dead (cyan)"),
                ("tfp", tfp_image(report), f"TFP of {TFP_FRAMES} frames at the middle")):
            fig, ax = plt.subplots(figsize=(8, 8 * g.height / g.width + 0.8))
            shown = ax.imshow(image, cmap="viridis" if kind == "rate" else "gray")
            if kind == "rate":
                fig.colorbar(shown, ax=ax, fraction=0.03)
                for pixels, colour in ((report.hot_pixels, "red"), (report.dead_pixels, "cyan")):
                    if pixels:
                        rows, cols = zip(*pixels)
                        ax.scatter(cols, rows, s=80, facecolors="none", edgecolors=colour, linewidths=1.2)
            ax.set_title(f"{Path(report.path).name} {g.height}x{g.width} ({g.source}): {title}", fontsize=8)
            ax.set_axis_off()
            path = out / f"{name}_{kind}.png"
            fig.savefig(path, dpi=80, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    return written
