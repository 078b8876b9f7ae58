"""``spikeprep register``: read a sequence's frames and spike windows (sync.json), estimate.

Per sequence: load ``spike/SEQ/sync.json`` (build-sync writes it), take ``frames`` RGB frames
evenly spaced (`alignment.check.sample_frames`), and for each the blurry frame's luma at full
size (0.299 R + 0.587 G + 0.114 B) and the spike count image of its window ``[spike_begin,
spike_end)`` in image orientation; `estimate.estimate` does the rest. Nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..alignment.check import sample_frames
from ..errors import LayoutError, UsageError
from ..inputs import layout
from ..inputs.images import imread
from ..sync import load_sync, sync_path
from .estimate import Estimate, estimate
from .record import Registration
from .refine import MODELS

DEFAULT_FRAMES = 12


@dataclass(frozen=True)
class RegisterOptions:
    """model: similarity | affine | homography; frames: RGB frames used per sequence (>= 2)."""

    model: str = "homography"
    frames: int = DEFAULT_FRAMES

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UsageError("--model must be similarity, affine or homography", found=self.model,
                             expected=" | ".join(MODELS))
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 2:
            raise UsageError("--frames must be at least 2", found=self.frames,
                             expected=f"an integer >= 2 (default {DEFAULT_FRAMES})")


@dataclass(frozen=True)
class SequenceRegistration:
    """register's result for one sequence: the `Estimate`, the sizes (h, w) / (H, W) and the
    frames used (indices into sync.json's frames)."""

    sequence: str
    estimate: Estimate
    spike_size: tuple[int, int]
    rgb_size: tuple[int, int]
    sampled: tuple[int, ...]

    @property
    def verdict(self) -> str:
        return self.estimate.verdict

    @property
    def registration(self) -> Registration | None:
        """What the later ``--fix`` writes: None unless the verdict is ok."""
        e = self.estimate
        if e.verdict != "ok" or e.matrix is None or e.overlap is None:
            return None
        return Registration(e.model, tuple(map(tuple, e.matrix.tolist())), e.overlap, self.spike_size, self.rgb_size)

    def to_dict(self) -> dict:
        return self.estimate.to_dict()


def read_luma(path: Path) -> np.ndarray:
    """``(H, W)`` float32 luma (0-255) of an image at its own size."""
    image = imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise LayoutError("cannot read image", path=path, found="missing or not an image",
                          expected="a readable .png", fix="re-run build-sync after fixing the frames")
    return image.astype(np.float32)


def read_frames(data_root: str | os.PathLike, sequence: str, frames: int):
    """The sync file, sampled indices, ``(h, w)`` float32 spike counts and ``(H, W)`` lumas."""
    root = Path(data_root)
    sync = load_sync(sync_path(root, sequence))
    sampled = sample_frames(len(sync.frames), frames)
    streams = {name: sync.open_stream(root, name) for name in sync.spike_files}
    counts, lumas = [], []
    for i in sampled:
        frame = sync.frames[int(i)]
        spikes = streams[frame.spike_file].read(frame.spike_begin, frame.spike_end, flipud=sync.flipud)
        counts.append(spikes.sum(axis=0, dtype=np.int32).astype(np.float32))
        lumas.append(read_luma(root / frame.blur))
    for stream in streams.values():
        stream.close()
    return sync, sampled, counts, lumas


def frame_images(data_root: str | os.PathLike, sequence: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``index``'s ``(h, w)`` float32 spike count image and ``(H, W)`` float32 luma."""
    root = Path(data_root)
    sync = load_sync(sync_path(root, sequence))
    frame = sync.frames[index]
    with sync.open_stream(root, frame.spike_file) as stream:
        spikes = stream.read(frame.spike_begin, frame.spike_end, flipud=sync.flipud)
    return spikes.sum(axis=0, dtype=np.int32).astype(np.float32), read_luma(root / frame.blur)


def register_sequence(data_root: str | os.PathLike, sequence: str,
                      options: RegisterOptions = RegisterOptions()) -> SequenceRegistration:
    """Estimate one sequence's spike -> RGB matrix (see the module docstring)."""
    sync, sampled, counts, lumas = read_frames(data_root, sequence, options.frames)
    result = estimate(counts, lumas, options.model)
    return SequenceRegistration(sequence, result, (sync.height, sync.width), lumas[0].shape,
                                tuple(int(i) for i in sampled))


def register(data_root: str | os.PathLike, sequences: tuple[str, ...] = (),
             options: RegisterOptions = RegisterOptions()) -> list[SequenceRegistration]:
    """`register_sequence` for every sequence of DATA_ROOT (or those named), sorted by name.
    Every sync.json is checked before any estimation starts."""
    names = [s.name for s in layout.discover(data_root, tuple(sequences))]
    for name in names:
        load_sync(sync_path(data_root, name))
    return [register_sequence(data_root, name, options) for name in names]


def exit_code(results: list[SequenceRegistration]) -> int:
    """0 when every sequence is ok, 3 when any is weak or failed."""
    return 0 if all(r.verdict == "ok" for r in results) else 3
