"""`spikeprep simulate OUT`: synthetic sequences of moving textured shapes, byte-identical for
the same arguments."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .output import prepare
from .scenes import SyntheticScene, random_scene
from .spikes import (
    DEFAULT_THRESHOLD,
    ProgressCallback,
    SimulationSummary,
    SpikeParams,
    progress_counter,
    require,
    write_sequence,
)

_MIN_SCENE_SIDE_PX = 16


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The RNG of sequence ``index``: scene parameters first, then the accumulator start."""
    return np.random.default_rng([seed, index])


def synthetic_scene(seed: int, index: int, height: int, width: int, frame_rate_hz: float,
                    motion: float = 1.0) -> tuple[SyntheticScene, np.random.Generator]:
    """Sequence ``index``'s scene and its RNG (positioned for the accumulator draw)."""
    rng = sequence_rng(seed, index)
    return random_scene(rng, height, width, frame_rate_hz, motion), rng


def simulate_dataset(out: str | Path, *, sequences: int = 2, frames: int = 8, height: int = 64,
                     width: int = 64, spikes_per_frame: int = 40, exposure: float = 0.5, seed: int = 0,
                     threshold: float = DEFAULT_THRESHOLD, spike_rate: float = 20000.0,
                     spike_downsample: int = 1, motion: float = 1.0, force: bool = False,
                     on_progress: ProgressCallback | None = None, part=None) -> SimulationSummary:
    """Write ``sequences`` synthetic sequences ``seq000, seq001, ...`` of ``frames`` RGB frames
    (``height x width``) into ``out``; byte-identical for the same arguments. ``motion``
    scales object speeds (more motion, more blur). ``part`` ``"I/N"``: only part I's share of
    the sequences (see `prepare_part_output`)."""
    started = time.perf_counter()
    params = SpikeParams(spikes_per_frame, exposure, threshold, spike_rate, spike_downsample, seed)
    require(sequences >= 1, "--sequences", sequences, "an integer >= 1")
    require(frames >= 1, "--frames", frames, "an integer >= 1")
    require(math.isfinite(motion) and motion > 0, "--motion", motion, "a finite speed factor > 0")
    require(height >= _MIN_SCENE_SIDE_PX, "--height", height, f"an integer >= {_MIN_SCENE_SIDE_PX}")
    require(width >= _MIN_SCENE_SIDE_PX, "--width", width, f"an integer >= {_MIN_SCENE_SIDE_PX}")
    spike_h, spike_w = params.spike_geometry(height, width, "--height x --width")
    out = Path(out)
    indices = prepare(out, force, part, [f"seq{i:03d}" for i in range(sequences)], [frames] * sequences)
    advance = progress_counter(len(indices) * frames * spikes_per_frame, on_progress)
    names, spike_frames = [], []
    for index in indices:
        name = f"seq{index:03d}"
        scene, rng = synthetic_scene(seed, index, height, width, params.frame_rate_hz, motion)
        spike_frames.append(write_sequence(scene, out, name, frames, height, width, params, rng, advance))
        names.append(name)
    return SimulationSummary(out, tuple(names), (frames,) * len(names), tuple(spike_frames),
                             height, width, spike_h, spike_w, time.perf_counter() - started)
