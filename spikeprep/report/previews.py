"""PNG contact sheets a person can judge alignment from at a glance (matplotlib, Agg backend).

A sheet has one row per frame: the blurry frame, the sharp frame (when there is one), the spike
count image of its window (what the spikes saw during the exposure) and the voxel channels
(bins), side by side, each row labelled with the frame, its window and its score. Drawn for
check-sync from DATA_ROOT (`write_check_previews`, plus a plot of score against offset) and for
`spikeprep info CACHE --preview` from what a cache stored (`write_cache_previews`; the spike image
is then the stored channels' sum, or temporal4's total / ema's slow trace, `spike_image`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..alignment.scores import ORIENTATIONS, correlation
from ..inputs.files import printable
from ..inputs.images import read_rgb
from ..sync import load_sync, sync_path
from ..voxel import voxelize

#: Frames (rows) per contact sheet and voxel bins shown per frame.
SHEET_ROWS = 4
PREVIEW_BINS = 4


@dataclass(frozen=True)
class SheetRow:
    """One frame of a sheet: blur/sharp ``(H, W, 3)`` uint8 RGB, count ``(h, w)``, voxels ``(C, h, w)``."""

    label: str
    blur: np.ndarray
    sharp: np.ndarray | None
    count: np.ndarray
    voxels: np.ndarray | None
    count_title: str = "spike count"
    blur_title: str = "blurry"              # spike-only caches: "ground truth" or "(no image)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_sheet(rows: list[SheetRow], title: str, path: str | os.PathLike) -> Path:
    """Write a contact sheet PNG of ``rows`` to ``path``; returns the path."""
    plt = _pyplot()
    n_voxels = max((len(r.voxels) for r in rows if r.voxels is not None), default=0)
    has_sharp = any(r.sharp is not None for r in rows)
    columns = [rows[0].blur_title] + (["sharp"] if has_sharp else []) + [rows[0].count_title] + \
        [f"voxel {c}" for c in range(n_voxels)]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.4 * len(columns), 2.1 * len(rows) + 0.5),
                             squeeze=False)
    for r, row in enumerate(rows):
        images = [row.blur] + ([row.sharp] if has_sharp else []) + [row.count] + \
            ([] if row.voxels is None else list(row.voxels))
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images) and images[c] is not None:
                image = images[c]
                ax.imshow(image, cmap=None if image.ndim == 3 else "gray", interpolation="nearest")
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r][0].set_ylabel(row.label, fontsize=8)
    fig.suptitle(printable(title), fontsize=10)  # CACHE may sit under a non-UTF-8 folder
    return _save(plt, fig, path)


def draw_offset_plot(check, path: str | os.PathLike) -> Path:
    """Median score against window offset (spike frames), one line per orientation."""
    plt = _pyplot()
    j = check.judgement
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for orientation in ORIENTATIONS:
        values = np.array([np.nan if v is None else v for v in j.curves[orientation]], float)
        ax.plot(j.offsets, values, marker=".", label=orientation,
                linewidth=2 if orientation == j.orientation else 1)
    ax.axvline(0, color="grey", linestyle=":", label="current windows")
    ax.axvline(j.best_offset, color="red", linestyle="--", label=f"best {j.best_offset:+d}")
    ax.set_xlabel("window offset (spike frames)")
    ax.set_ylabel("median score (r)")
    ax.set_title(f"{check.sequence}: {j.verdict} ({j.common_frames} frames)", fontsize=10)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def _save(plt, fig, path: str | os.PathLike) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders created) at 80 dpi, close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _luma_at(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return grey if grey.shape == shape else cv2.resize(grey, shape[::-1], interpolation=cv2.INTER_AREA)


def _as_rgb(image) -> np.ndarray:
    """``(H, W, 3)`` uint8 of a stored image; a grayscale ``(H, W, 1)`` one repeated into R, G, B."""
    image = np.asarray(image)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else np.array(image)


def pick_rows(indices, n: int = SHEET_ROWS) -> list[int]:
    """Up to ``n`` evenly spaced entries of ``indices``."""
    indices = list(indices)
    if len(indices) <= n:
        return indices
    return [indices[round(k * (len(indices) - 1) / (n - 1))] for k in range(n)]


def check_rows(data_root: str | os.PathLike, check) -> list[SheetRow]:
    """Sheet rows for a few of the frames check-sync scored, read from DATA_ROOT."""
    root = Path(data_root)
    sync = load_sync(sync_path(root, check.sequence))
    rows = []
    for i in pick_rows(check.sampled):
        frame = sync.frames[i]
        stream = sync.open_stream(root, frame.spike_file)
        packed = stream.packed(frame.spike_begin, frame.spike_end)
        count = voxelize(packed, sync.height, sync.width, 1, "count", sync.flipud)[0]
        voxels = voxelize(packed, sync.height, sync.width, PREVIEW_BINS, "bins", sync.flipud) \
            if frame.length >= PREVIEW_BINS else None
        blur = read_rgb(root / frame.blur)
        sharp = read_rgb(root / frame.sharp) if frame.sharp else None
        score = correlation(count, _luma_at(blur, count.shape))
        rows.append(SheetRow(f"frame {i}\n[{frame.spike_begin}, {frame.spike_end})\nr={score:.3f}",
                             blur, sharp, count, voxels))
    return rows


def write_check_previews(data_root: str | os.PathLike, checks, out_dir: str | os.PathLike) -> list[Path]:
    """``OUT/SEQ_sheet.png`` and ``OUT/SEQ_offsets.png`` for every checked sequence."""
    out = Path(out_dir)
    written = []
    for check in checks:
        j = check.judgement
        title = (f"{check.sequence}: {j.verdict}, score {j.score:.3f}, best offset {j.best_offset:+d} "
                 f"({j.best_score:.3f}), orientation {j.orientation}")
        written.append(draw_sheet(check_rows(data_root, check), title, out / f"{check.sequence}_sheet.png"))
        written.append(draw_offset_plot(check, out / f"{check.sequence}_offsets.png"))
    return written


def spike_image(voxels: np.ndarray, repr_name: str) -> tuple[np.ndarray, str]:
    """The one image that shows what a window's spikes saw, from stored voxels ``(C, h, w)``:
    the channel sum (the count for bins/count, the TFP sum for tfp), temporal4's total
    channel, or ema's slow trace at the window's end. Returns ``(image, what)``."""
    if repr_name == "temporal4":
        return voxels[3], "total (temporal4)"
    if repr_name == "ema":
        return voxels[-1], "slow trace (ema)"
    return voxels.sum(axis=0, dtype=np.float64), "TFP sum" if repr_name == "tfp" else "spike count"


def cache_rows(cache, sequence: str) -> list[SheetRow]:
    """Sheet rows for a few frames of ``sequence`` as a cache stored them (`spikeprep.open_cache`)."""
    rows = []
    for i in pick_rows(range(cache.num_frames(sequence))):
        s = cache.read(sequence, i)
        image, what = spike_image(np.asarray(s.spike), cache.params.repr)
        # spike-only caches: the ground truth (gray made RGB) takes the blurry frame's place, a
        # blank frame where there is none
        blur, sharp = (s.blur, s.sharp) if s.blur is not None else (s.sharp, None)
        first = "blurry" if s.blur is not None else "ground truth" if blur is not None else "(no image)"
        blur = np.zeros((*image.shape, 3), np.uint8) if blur is None else _as_rgb(blur)
        score = correlation(image, _luma_at(blur, image.shape))
        rows.append(SheetRow(f"frame {i}\n[{s.spike_begin}, {s.spike_end})\nr={score:.3f}",
                             blur, None if sharp is None else np.array(sharp),
                             image, np.array(s.spike), what, first))
    return rows


def write_cache_previews(cache_root: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """``OUT/SEQ_sheet.png`` for every sequence of a cache, drawn from what it stored."""
    from ..cache.reader import open_cache

    written = []
    with open_cache(cache_root) as cache:
        params = cache.params
        for sequence in cache.sequences:
            title = (f"{sequence} ({cache.split(sequence)}) from {cache_root}: --repr {params.repr} "
                     f"S={params.S}, match {params.match}")
            written.append(draw_sheet(cache_rows(cache, sequence), title, Path(out_dir) / f"{sequence}_sheet.png"))
    return written
