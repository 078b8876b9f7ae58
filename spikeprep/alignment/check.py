"""`spikeprep check-sync`: score every sequence's sync.json windows against its RGB frames.

Per sequence: read `spike/SEQ/sync.json`; sample at most ``frames`` RGB frames (evenly spaced);
for each, read the blurry (and sharp) frame's luma at the spike resolution and score, in one
pass over the memory-mapped packed bytes of just the span needed (`alignment.score_windows`),
the window moved by every offset of a coarse grid over ``[-N, N]`` spike frames and scaled by
`SCALES` about its centre, in every orientation. A second pass refines the best offset on a
finer grid around it; the first pass already holds the fine grid around 0, so a sequence whose
windows are right is read once. `syncverdict.judge` turns the scores into a verdict.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, LayoutError, UsageError
from ..inputs import layout
from ..inputs.images import imread
from ..inputs.sequence_config import load_config
from ..sync import SyncFile, load_sync, sync_path
from .scores import ORIENTATIONS, score_window_orientations
from .through import registered_luma
from .verdict import Judgement, judge

#: Window-length scales tried about the window centre (exposure check, at offset 0).
SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
#: Coarse grid: 2 * COARSE_STEPS + 1 offsets over [-N, N].
COARSE_STEPS = 8
#: Fine grid step = coarse step // FINE_DIVISIONS (at least 1 spike frame).
FINE_DIVISIONS = 3
DEFAULT_FRAMES = 100
MIN_SEARCH = 8


@dataclass(frozen=True)
class CheckOptions:
    """search: N (spike frames; None: half the median window length, at least 8); frames: most
    RGB frames scored per sequence (0: all), evenly spaced."""

    search: int | None = None
    frames: int = DEFAULT_FRAMES

    def __post_init__(self) -> None:
        if self.search is not None and (isinstance(self.search, bool) or self.search < 1):
            raise UsageError("--search must be a positive number of spike frames", found=self.search,
                             expected="an integer >= 1 (default: half the median window length, >= 8)")
        if self.frames != 0 and self.frames < 2:
            raise UsageError("--frames must be 0 (all) or at least 2", found=self.frames,
                             expected=f"0 or >= 2 (default {DEFAULT_FRAMES})")


@dataclass(frozen=True)
class SequenceCheck:
    """check-sync's result for one sequence (`judgement` holds the verdict and scores)."""

    sequence: str
    judgement: Judgement
    search: int
    window_len: int
    spike_rate: float | None
    mode: str
    has_sharp: bool
    sampled: tuple[int, ...]
    score_blur: float | None = None
    score_sharp: float | None = None
    #: the sync.json that was measured: its window_shift and flipud (what --fix's absolute values
    #: are computed from, and how it sees that the file changed since)
    measured_shift: int = 0
    measured_flipud: bool = True

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    def seconds(self, spike_frames: int) -> float | None:
        return None if not self.spike_rate else spike_frames / self.spike_rate

    def to_dict(self) -> dict:
        j = self.judgement
        return {"score": round(j.score, 4), "best_offset": j.best_offset, "best_score": round(j.best_score, 4),
                "orientation": j.orientation, "verdict": j.verdict, "reason": j.reason,
                "best_offset_s": self.seconds(j.best_offset), "gain": round(j.gain, 4),
                "threshold": round(j.threshold, 4) if math.isfinite(j.threshold) else None,
                "score_blur": self.score_blur, "score_sharp": self.score_sharp,
                "frames": j.frames, "common_frames": j.common_frames, "search": self.search,
                "window_len": self.window_len, "spike_rate": self.spike_rate, "mode": self.mode,
                "offsets": list(j.offsets), "curves": {o: list(c) for o, c in j.curves.items()},
                "orientation_scores": j.orientation_scores,
                "exposure": None if j.exposure is None else j.exposure.to_dict()}


def read_luma(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """``(height, width)`` uint8 luma (0.299 R + 0.587 G + 0.114 B) of an image, resized with
    INTER_AREA to the spike resolution."""
    image = imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise LayoutError("cannot read image", path=path, found="missing or not an image",
                          expected="a readable .png", fix="re-run build-sync after fixing the frames")
    if image.shape != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


def offset_grid(search: int, steps: int = COARSE_STEPS) -> np.ndarray:
    """``2 * steps + 1`` evenly spaced offsets from ``-search`` to ``search`` (rounded, unique,
    sorted int64; 0 included)."""
    return np.unique(np.round(np.linspace(-search, search, 2 * steps + 1))).astype(np.int64)


def first_pass_offsets(search: int) -> tuple[np.ndarray, int, int]:
    """The first pass's offsets (the coarse grid over ``[-search, search]`` and the fine grid
    around 0, where correct data peaks), the coarse step and the fine step (spike frames)."""
    step = max(1, math.ceil(search / COARSE_STEPS))
    fine_step = max(1, step // FINE_DIVISIONS)
    return np.union1d(offset_grid(search), fine_grid(0, step, fine_step, search)), step, fine_step


def fine_grid(centre: int, step: int, fine_step: int, search: int) -> np.ndarray:
    """Offsets ``centre + j * fine_step`` closer than a coarse ``step`` to ``centre``, inside
    ``[-search, search]``."""
    reach = (step - 1) // fine_step
    grid = centre + fine_step * np.arange(-reach, reach + 1, dtype=np.int64)
    return grid[np.abs(grid) <= search]


def scaled_windows(begin: int, end: int, scales=SCALES) -> np.ndarray:
    """``(S, 2)`` windows of ``round(scale * (end - begin))`` frames (at least 1) about the same
    centre (scale 1 gives ``[begin, end)`` back)."""
    out = []
    for scale in scales:
        length = max(1, round(scale * (end - begin)))
        start = math.floor((begin + end - length) / 2 + 0.5)
        out.append((start, start + length))
    return np.array(out, np.int64)


class SequenceFrames:
    """One sequence's inputs: sync file, open streams, lumas of the sampled frames (cached)."""

    def __init__(self, data_root: Path, sync: SyncFile, sampled: np.ndarray) -> None:
        self.root, self.sync, self.sampled = data_root, sync, sampled
        self.streams = {name: sync.open_stream(data_root, name) for name in sync.spike_files}
        self._lumas: dict[int, list[np.ndarray]] = {}

    def lumas(self, i: int) -> list[np.ndarray]:
        if i not in self._lumas:
            frame = self.sync.frames[i]
            paths = [frame.blur] + ([frame.sharp] if frame.sharp else [])
            reg = self.sync.registration_record  # a registered rig: the RGB view the spike camera sees
            self._lumas[i] = [read_luma(self.root / p, self.sync.height, self.sync.width) if reg is None
                              else registered_luma(self.root / p, reg) for p in paths]
        return self._lumas[i]

    def score(self, i: int, windows: np.ndarray) -> np.ndarray:
        """``(images, 4, n)`` scores of frame ``i`` (blur, then sharp when there is one) for
        absolute ``(n, 2)`` windows in every orientation; NaN for windows outside the stream."""
        frame = self.sync.frames[i]
        stream = self.streams[frame.spike_file]
        lumas = self.lumas(i)
        inside = (windows[:, 0] >= 0) & (windows[:, 1] <= len(stream)) & (windows[:, 1] > windows[:, 0])
        out = np.full((len(lumas), len(ORIENTATIONS), len(windows)), np.nan)
        if inside.any():
            span = int(windows[inside, 0].min()), int(windows[inside, 1].max())
            scores = score_window_orientations(stream.packed(*span), self.sync.height, self.sync.width,
                                               windows[inside] - span[0], np.stack(lumas), self.sync.flipud)
            out[:, :, inside] = scores.transpose(1, 2, 0)
        return out


def sample_frames(n_frames: int, frames: int) -> np.ndarray:
    """At most ``frames`` indices out of ``n_frames``, evenly spaced, first and last included."""
    if frames == 0 or n_frames <= frames:
        return np.arange(n_frames)
    return np.unique(np.round(np.linspace(0, n_frames - 1, frames)).astype(np.int64))


def _pass(seq: SequenceFrames, offsets: np.ndarray, scales=()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every sampled frame at ``offsets`` (and ``scales`` at offset 0): ``(n, 4, K)``,
    ``(n, 4, S)`` (blur and sharp averaged) and ``(n, images, 4, K)`` (each image apart)."""
    by_image = []
    for i in seq.sampled:
        frame = seq.sync.frames[i]
        shifted = np.stack([frame.spike_begin + offsets, frame.spike_end + offsets], axis=1)
        scaled = scaled_windows(frame.spike_begin, frame.spike_end, scales) if len(scales) \
            else np.empty((0, 2), np.int64)
        by_image.append(seq.score(int(i), np.concatenate([shifted, scaled])))
    by_image = np.stack(by_image)
    combined = by_image.mean(axis=1)
    return combined[:, :, :len(offsets)], combined[:, :, len(offsets):], by_image[:, :, :, :len(offsets)]


def check_sequence(data_root: str | os.PathLike, sequence: str,
                   options: CheckOptions = CheckOptions()) -> SequenceCheck:
    """Score one sequence's sync.json windows and judge them (see the module docstring)."""
    root = Path(data_root)
    sync = load_sync(sync_path(root, sequence))
    lengths = [f.length for f in sync.frames]
    window_len = int(np.median(lengths))
    search = options.search or max(MIN_SEARCH, window_len // 2)
    seq = SequenceFrames(root, sync, sample_frames(len(sync.frames), options.frames))
    offsets, step, fine_step = first_pass_offsets(search)
    by_offset, by_scale, by_image = _pass(seq, offsets, SCALES)
    current = by_image[:, :, 0, int(np.flatnonzero(offsets == 0)[0])]  # (n, images) as-is, unmoved
    coarse = judge(offsets, by_offset)
    fine = np.setdiff1d(fine_grid(coarse.best_offset, step, fine_step, search), offsets)
    if coarse.common_frames >= 5 and abs(coarse.best_offset) >= step and len(fine):
        # second pass: refine around a best offset outside the first pass's fine grid
        fine_scores, _, _ = _pass(seq, fine)
        offsets = np.concatenate([offsets, fine])
        order = np.argsort(offsets)
        offsets, by_offset = offsets[order], np.concatenate([by_offset, fine_scores], axis=2)[:, :, order]
    judgement = judge(offsets, by_offset, np.array(SCALES), by_scale)
    medians = np.median(current, axis=0)
    has_sharp = current.shape[1] > 1
    return SequenceCheck(
        sequence, judgement, search, window_len, _spike_rate(root, sync), sync.source.get("mode", "?"),
        has_sharp, tuple(int(i) for i in seq.sampled),
        score_blur=round(float(medians[0]), 4),
        score_sharp=round(float(medians[1]), 4) if has_sharp else None,
        measured_shift=int(sync.source.get("window_shift") or 0), measured_flipud=sync.flipud)


def _spike_rate(root: Path, sync: SyncFile) -> float | None:
    rate = sync.source.get("spike_rate")
    if rate:
        return float(rate)
    try:
        config = load_config(root / Path(sync.frames[0].spike_file).parent / "config.yaml")
    except ConfigError:
        return None
    return config.timing.spike_rate if config.timing else None


def check_sync(data_root: str | os.PathLike, sequences: tuple[str, ...] = (),
               options: CheckOptions = CheckOptions()) -> list[SequenceCheck]:
    """`check_sequence` for every sequence of DATA_ROOT (or those named), sorted by name.
    Spike-only sequences (no blur frames) have nothing to compare with: UsageError when one is
    named or DATA_ROOT holds only those (others are checked; they are not in blur/)."""
    from .spike_only import refuse_spike_only

    refuse_spike_only(data_root, tuple(sequences), "check-sync")
    names = [s.name for s in layout.discover(data_root, tuple(sequences))]
    return [check_sequence(data_root, name, options) for name in names]


def exit_code(checks: list[SequenceCheck]) -> int:
    """0 when every sequence is ok or weak, 3 when any is offset or orientation."""
    return 3 if any(c.verdict in ("offset", "orientation") for c in checks) else 0
