"""``spikeprep register --preview DIR``: one overlay sheet per sequence, judged at a glance.

Two panels on the RGB frame's grid, for the middle frame used: the spike count image of the
frame's window (grey) with the edges of the RGB luma (Canny, red) drawn over it, first through
the naive map (the spike image resized onto the whole RGB frame), then through the estimated
matrix (the warped spike frame's outline in yellow, the overlap box dashed cyan). Edges that
sit on the spike image's own edges mean the registration is right.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..inputs.files import printable
from ..registration.geometry import apply, frame_corners, resize_matrix
from ..registration.sequence import frame_images


def luma_edges(luma: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool Canny edges of a luma (blurred by ~2 px per 240 px of height first;
    thresholds from the gradient's spread, so any exposure gives edges)."""
    sigma = 2.0 * max(1.0, luma.shape[0] / 240)
    smooth = cv2.GaussianBlur(np.clip(luma, 0, 255).astype(np.uint8), (0, 0), sigma)
    gradient = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    high = float(np.percentile(gradient, 95))
    return cv2.Canny(smooth, 0.5 * high, high, L2gradient=True) > 0


def spike_on_rgb(count: np.ndarray, matrix: np.ndarray, rgb_size) -> np.ndarray:
    """``(H, W)`` float spike count image (smoothed, scaled to [0, 1]) seen through ``matrix``
    on the RGB grid; NaN where the spike camera does not see."""
    H, W = rgb_size
    smooth = cv2.GaussianBlur(count.astype(np.float32), (0, 0), 1.0)
    lo, hi = np.percentile(smooth, (1, 99))
    scaled = np.clip((smooth - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    warped = cv2.warpPerspective(scaled, matrix, (W, H), flags=cv2.INTER_LINEAR)
    seen = cv2.warpPerspective(np.ones_like(scaled), matrix, (W, H), flags=cv2.INTER_LINEAR) > 0.5
    return np.where(seen, warped, np.nan)


def _panel(ax, count, edges, matrix, title, overlap=None):
    H, W = edges.shape
    ax.set_facecolor("#203040")
    ax.imshow(spike_on_rgb(count, matrix, (H, W)), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    overlay = np.zeros((H, W, 4), np.float32)
    overlay[edges] = (1.0, 0.15, 0.1, 0.9)
    ax.imshow(overlay, interpolation="nearest")
    quad = apply(matrix, frame_corners(count.shape))
    ax.plot(*np.vstack([quad, quad[:1]]).T, color="yellow", lw=1)
    if overlap is not None:
        x0, y0, x1, y1 = overlap
        ax.plot([x0 - .5, x1 - .5, x1 - .5, x0 - .5, x0 - .5], [y0 - .5, y0 - .5, y1 - .5, y1 - .5, y0 - .5],
                color="cyan", lw=1, ls="--")
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def write_register_previews(data_root: str | os.PathLike, results, out_dir: str | os.PathLike,
                            dpi: int = 100) -> list[Path]:
    """``DIR/SEQ_register.png`` for every `SequenceRegistration` (see the module docstring)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for r in results:
        index = r.sampled[len(r.sampled) // 2]
        count, luma = frame_images(data_root, r.sequence, index)
        edges = luma_edges(luma)
        e = r.estimate
        H, W = luma.shape
        fig, axes = plt.subplots(1, 2, figsize=(11, 5.5 * H / W + 0.9))
        before = "-" if e.ncc_before is None else f"{e.ncc_before:.2f}"
        _panel(axes[0], count, edges, resize_matrix(count.shape, (H, W)), f"before: spike image resized (NCC {before})")
        if e.matrix is not None:
            after = "-" if e.ncc_after is None else f"{e.ncc_after:.2f}"
            _panel(axes[1], count, edges, e.matrix, f"after: through the {e.model} (NCC {after})", e.overlap)
        else:
            axes[1].axis("off")
            axes[1].text(0.5, 0.5, f"no matrix:\n{e.reason}", ha="center", va="center", wrap=True, fontsize=9)
        reason = f": {e.reason}" if e.reason else ""
        fig.suptitle(f"{printable(r.sequence)} frame {index}: RGB edges (red) over spike counts (grey); "
                     f"{e.verdict}{reason}", fontsize=9, wrap=True)
        fig.tight_layout()
        path = out / f"{printable(r.sequence)}_register.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        written.append(path)
    return written
