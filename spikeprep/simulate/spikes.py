"""Integrate-and-fire: how a scene becomes a spike stream plus blurred and sharp frames.

Spike frame ``k`` samples the scene at ``t_k = k / spike_rate_hz``; RGB frame ``i``'s window is
``Timing(...).window(i)`` (the timing rule: docs/timing.md). A per-pixel accumulator
starts at ``uniform[0, threshold)``, adds the luma (in [0, 1], gain 1) at every sample, and fires
(then subtracts ``threshold``) when it reaches ``threshold``; a pixel of constant luma ``Y`` thus
fires ``Y / threshold`` times per sample on average.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from ..errors import LayoutError, UsageError
from ..inputs.dat import DatWriter
from ..inputs.files import write_bytes_atomic
from ..inputs.sequence_config import SequenceConfig, Timing, save_config

#: Default integrate-and-fire threshold: white (luma 1) fires every 2nd sample, mid-grey every 4th.
DEFAULT_THRESHOLD = 2.0
#: Most spike frames held in memory at once (one chunk written through `DatWriter`).
_MAX_CHUNK_SPIKE_FRAMES = 256
_MIN_SCENE_SIDE_PX = 16

#: ``on_progress(spike_frames_done, spike_frames_total)``
ProgressCallback = Callable[[int, int], None]


class Scene(Protocol):
    def render(self, time_s: float) -> np.ndarray: ...  # (H, W, 3) float32 RGB in [0, 1]
    def render_luma(self, time_s: float) -> np.ndarray: ...  # (H, W) float32 in [0, 1]


@dataclass(frozen=True)
class SpikeParams:
    """How scenes become spikes and frames (shared by both modes)."""

    spikes_per_frame: int = 40
    exposure: float = 0.5
    threshold: float = DEFAULT_THRESHOLD
    spike_rate_hz: float = 20000.0
    spike_downsample: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.spikes_per_frame >= 1, "--spikes-per-frame", self.spikes_per_frame, "an integer >= 1")
        require(0 < self.exposure <= 1, "--exposure", self.exposure, "a fraction in (0, 1]")
        require(math.isfinite(self.threshold) and self.threshold > 0, "--threshold", self.threshold,
                 "a finite number > 0")
        require(math.isfinite(self.spike_rate_hz) and self.spike_rate_hz > 0, "--spike-rate",
                 self.spike_rate_hz, "a finite rate in Hz > 0")
        require(self.spike_downsample >= 1, "--spike-downsample", self.spike_downsample, "an integer >= 1")
        require(self.seed >= 0, "--seed", self.seed, "an integer >= 0")

    @property
    def frame_rate_hz(self) -> float:
        return self.spike_rate_hz / self.spikes_per_frame

    @property
    def timing(self) -> Timing:
        return Timing(self.spike_rate_hz, self.frame_rate_hz, self.exposure, 0.0)

    def spike_geometry(self, height: int, width: int, source: str) -> tuple[int, int]:
        """Spike ``(H, W)`` for an RGB ``height x width``; H*W must be whole bytes."""
        spike_h, spike_w = height // self.spike_downsample, width // self.spike_downsample
        if spike_h < 1 or spike_w < 1 or (spike_h * spike_w) % 8:
            raise UsageError(
                "spike frame size is not a whole number of bytes",
                found=f"{source} {height}x{width} (HxW) / --spike-downsample {self.spike_downsample} "
                      f"= {spike_h}x{spike_w} = {spike_h * spike_w} pixels",
                expected="spike H*W a positive multiple of 8 (.dat frames are whole bytes)",
                fix="Pick sizes such as 64x64, 250x400 or 720x1280 with --spike-downsample 2")
        return spike_h, spike_w


@dataclass(frozen=True)
class SimulationSummary:
    """What a run wrote: one entry per sequence in ``sequences`` / ``frames`` / ``spike_frames``."""

    out: Path
    sequences: tuple[str, ...]
    frames: tuple[int, ...]
    spike_frames: tuple[int, ...]
    height: int
    width: int
    spike_h: int
    spike_w: int
    seconds: float


def require(ok: bool, option: str, value: object, expected: str) -> None:
    if not ok:
        raise UsageError(f"invalid {option}", found=value, expected=expected)



def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3)`` float RGB in [0, 1] as an 8-bit RGB png (cv2 wants BGR)."""
    pixels = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LayoutError("could not encode image", path=path, found="cv2.imencode failed",
                          expected="an (H, W, 3) image")
    write_bytes_atomic(path, encoded.tobytes(), fsync=False)  # a full disk leaves no half-written png


def _integrate_and_fire(luma: np.ndarray, accumulator: np.ndarray, threshold: np.float32,
                        fired: np.ndarray) -> None:
    """One spike sample: ``accumulator += luma``; ``fired = accumulator >= threshold``; fired
    pixels subtract ``threshold`` (not reset). All ``(h, w)``, updated in place."""
    np.add(accumulator, luma, out=accumulator)
    np.greater_equal(accumulator, threshold, out=fired)
    accumulator -= fired * threshold


@dataclass
class _SpikeState:
    """Integrate-and-fire state of one sequence: ``accumulator`` ``(spike_h, spike_w)`` float32."""

    accumulator: np.ndarray
    threshold: np.float32
    writer: DatWriter


def _render_interval(scene: Scene, frame_index: int, params: SpikeParams, state: _SpikeState,
                     on_sample_block: Callable[[int], None] | None) -> np.ndarray:
    """Render RGB frame interval ``frame_index`` at every spike sample, stream its spikes to
    ``state.writer`` (chunks of <= 256 frames) and return the blurred frame: the mean RGB over
    the exposure window, ``(H, W, 3)`` float32 in [0, 1]."""
    begin, end = params.timing.window(frame_index)
    spf, spike_h, spike_w = params.spikes_per_frame, state.writer.height, state.writer.width
    exposure_sum = None
    for block_start in range(frame_index * spf, (frame_index + 1) * spf, _MAX_CHUNK_SPIKE_FRAMES):
        block_stop = min(block_start + _MAX_CHUNK_SPIKE_FRAMES, (frame_index + 1) * spf)
        chunk = np.empty((block_stop - block_start, spike_h, spike_w), bool)
        for offset, sample in enumerate(range(block_start, block_stop)):
            time_s = sample / params.spike_rate_hz
            if begin <= sample < end:
                rgb = scene.render(time_s)
                if exposure_sum is None:
                    exposure_sum = np.zeros(rgb.shape, np.float32)
                cv2.add(exposure_sum, rgb, dst=exposure_sum)
            luma = scene.render_luma(time_s)
            if luma.shape != (spike_h, spike_w):
                luma = cv2.resize(luma, (spike_w, spike_h), interpolation=cv2.INTER_AREA)
            _integrate_and_fire(luma, state.accumulator, state.threshold, chunk[offset])
        state.writer.write(chunk)
        if on_sample_block is not None:
            on_sample_block(block_stop - block_start)
    return exposure_sum / np.float32(end - begin)


def _mid_exposure_s(timing: Timing, frame_index: int) -> float:
    """``(t0 + t1) / 2`` of frame ``frame_index``'s exposure ``[t0, t1)``, seconds."""
    start_s = timing.offset + frame_index / timing.frame_rate
    return (start_s + (start_s + timing.exposure / timing.frame_rate)) / 2


def write_sequence(scene: Scene, out: Path, name: str, n_frames: int, height: int, width: int,
                   params: SpikeParams, rng: np.random.Generator,
                   on_sample_block: Callable[[int], None] | None = None) -> int:
    """Render ``n_frames`` RGB frame intervals of ``scene`` into OUT's layout; returns spike frames.

    Memory is bounded by one chunk of at most 256 spike frames plus a few images; the pngs of
    frame i are encoded on a helper thread while frame i + 1 renders.
    """
    spike_h, spike_w = params.spike_geometry(height, width, f"sequence {name}:")
    threshold = np.float32(params.threshold)
    accumulator = rng.random((spike_h, spike_w), dtype=np.float32) * threshold  # uniform [0, threshold)
    blur_dir, sharp_dir, spike_dir = (out / part / name for part in ("blur", "sharp", "spike"))
    for folder in (blur_dir, sharp_dir, spike_dir):
        folder.mkdir(parents=True, exist_ok=True)
    pending: list[Future] = []
    with DatWriter(spike_dir / "spikes.dat", spike_h, spike_w, flipud=True) as writer, \
            ThreadPoolExecutor(max_workers=1) as png_writer:
        state = _SpikeState(accumulator, threshold, writer)
        for frame_index in range(n_frames):
            blur = _render_interval(scene, frame_index, params, state, on_sample_block)
            sharp = scene.render(_mid_exposure_s(params.timing, frame_index))
            for done in pending:  # at most one frame's pngs in flight
                done.result()
            pending = [png_writer.submit(_write_png, folder / f"{frame_index:06d}.png", image)
                       for folder, image in ((blur_dir, blur), (sharp_dir, sharp))]
        for done in pending:
            done.result()
    save_config(spike_dir / "config.yaml", SequenceConfig(spike_h, spike_w, True, params.timing))
    return writer.n_frames


def progress_counter(total: int, on_progress: ProgressCallback | None) -> Callable[[int], None]:
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if on_progress is not None:
            on_progress(done[0], total)

    return advance
