"""`spikeprep simulate`: synthetic (or high-frame-rate-video-derived) datasets in the input layout.

```
OUT/blur/SEQ/000000.png ...   RGB blurred inputs: mean of the scene over frame i's exposure window
OUT/sharp/SEQ/000000.png ...  RGB ground truth: the scene at mid-exposure
OUT/spike/SEQ/spikes.dat      one continuous spike stream (SpikeCV layout, flipud=True)
OUT/spike/SEQ/config.yaml     spike_h, spike_w, flipud, spike_rate, frame_rate, exposure, offset=0
```

Timing: ``frame_rate_hz = spike_rate_hz / spikes_per_frame``; spike frame ``k`` samples the scene at
``t_k = k / spike_rate_hz``; RGB frame ``i``'s window is ``Timing(...).window(i)`` (see
`spikeprep.seqconfig`). Spikes come from integrate-and-fire on the scene's luma: a per-pixel
accumulator starts at ``uniform[0, threshold)``, adds the luma (in [0, 1], gain 1) at every
sample, and fires (then subtracts ``threshold``) when it reaches ``threshold``; a pixel of
constant luma ``Y`` thus fires ``Y / threshold`` times per sample on average.
"""

from __future__ import annotations

import math
import shutil
import struct
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from .dat import DatWriter
from .files import write_bytes_atomic
from .images import decode_rgb
from .errors import LayoutError, UsageError
from .scenes import FrameSequenceScene, SyntheticScene, random_scene
from .seqconfig import SequenceConfig, Timing, save_config
from .simulate_output import prepare_part_output

#: Default integrate-and-fire threshold: white (luma 1) fires every 2nd sample, mid-grey every 4th.
DEFAULT_THRESHOLD = 2.0
#: Source image suffixes `simulate_from_frames` reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
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
        _require(self.spikes_per_frame >= 1, "--spikes-per-frame", self.spikes_per_frame, "an integer >= 1")
        _require(0 < self.exposure <= 1, "--exposure", self.exposure, "a fraction in (0, 1]")
        _require(math.isfinite(self.threshold) and self.threshold > 0, "--threshold", self.threshold,
                 "a finite number > 0")
        _require(math.isfinite(self.spike_rate_hz) and self.spike_rate_hz > 0, "--spike-rate",
                 self.spike_rate_hz, "a finite rate in Hz > 0")
        _require(self.spike_downsample >= 1, "--spike-downsample", self.spike_downsample, "an integer >= 1")
        _require(self.seed >= 0, "--seed", self.seed, "an integer >= 0")

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


def _require(ok: bool, option: str, value: object, expected: str) -> None:
    if not ok:
        raise UsageError(f"invalid {option}", found=value, expected=expected)


# -- output folder ---------------------------------------------------------------------------
def _prepare_output(out: Path, force: bool) -> None:
    """Refuse a non-empty ``out`` unless ``force``; with it, remove OUT/{blur,sharp,spike}."""
    if out.exists() and not out.is_dir():
        raise UsageError("output path is not a folder", path=out, found="a file", expected="a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not force:
        raise UsageError("output folder is not empty", path=out, found=", ".join(entries[:5]),
                         expected="a new or empty folder",
                         fix="Pass --force to replace OUT/blur, OUT/sharp and OUT/spike, or pick another OUT")
    for part in ("blur", "sharp", "spike"):
        if (out / part).is_dir():
            shutil.rmtree(out / part)
        elif (out / part).exists():
            (out / part).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _prepare(out: Path, force: bool, part, names: list[str], sizes: list[int]) -> list[int]:
    """Prepare OUT for the whole run (``part`` None) or one part; the sequence indices to write."""
    if part is None:
        _prepare_output(out, force)
        return list(range(len(names)))
    return prepare_part_output(out, force, part, names, sizes)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3)`` float RGB in [0, 1] as an 8-bit RGB png (cv2 wants BGR)."""
    pixels = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LayoutError("could not encode image", path=path, found="cv2.imencode failed",
                          expected="an (H, W, 3) image")
    write_bytes_atomic(path, encoded.tobytes(), fsync=False)  # a full disk leaves no half-written png


# -- the core: one sequence ------------------------------------------------------------------
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


def _progress_counter(total: int, on_progress: ProgressCallback | None) -> Callable[[int], None]:
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if on_progress is not None:
            on_progress(done[0], total)

    return advance


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The RNG of sequence ``index``: scene parameters first, then the accumulator start."""
    return np.random.default_rng([seed, index])


def synthetic_scene(seed: int, index: int, height: int, width: int, frame_rate_hz: float,
                    motion: float = 1.0) -> tuple[SyntheticScene, np.random.Generator]:
    """Sequence ``index``'s scene and its RNG (positioned for the accumulator draw)."""
    rng = sequence_rng(seed, index)
    return random_scene(rng, height, width, frame_rate_hz, motion), rng


# -- entry points ----------------------------------------------------------------------------
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
    _require(sequences >= 1, "--sequences", sequences, "an integer >= 1")
    _require(frames >= 1, "--frames", frames, "an integer >= 1")
    _require(math.isfinite(motion) and motion > 0, "--motion", motion, "a finite speed factor > 0")
    _require(height >= _MIN_SCENE_SIDE_PX, "--height", height, f"an integer >= {_MIN_SCENE_SIDE_PX}")
    _require(width >= _MIN_SCENE_SIDE_PX, "--width", width, f"an integer >= {_MIN_SCENE_SIDE_PX}")
    spike_h, spike_w = params.spike_geometry(height, width, "--height x --width")
    out = Path(out)
    indices = _prepare(out, force, part, [f"seq{i:03d}" for i in range(sequences)], [frames] * sequences)
    advance = _progress_counter(len(indices) * frames * spikes_per_frame, on_progress)
    names, spike_frames = [], []
    for index in indices:
        name = f"seq{index:03d}"
        scene, rng = synthetic_scene(seed, index, height, width, params.frame_rate_hz, motion)
        spike_frames.append(write_sequence(scene, out, name, frames, height, width, params, rng, advance))
        names.append(name)
    return SimulationSummary(out, tuple(names), (frames,) * len(names), tuple(spike_frames),
                             height, width, spike_h, spike_w, time.perf_counter() - started)


def find_source_sequences(src: Path) -> list[tuple[str, list[Path]]]:
    """``[(name, sorted image paths)]``: ``src`` itself if it holds images, else each subfolder."""
    if not src.is_dir():
        raise LayoutError("source folder not found", path=src, found="no such folder",
                          expected="a folder of .png/.jpg frames (or of such folders)")
    own = _list_images(src)
    if own:
        return [(src.resolve().name, own)]
    found = [(sub.name, _list_images(sub)) for sub in sorted(src.iterdir()) if sub.is_dir()]
    found = [(name, images) for name, images in found if images]
    if not found:
        raise LayoutError("no source images", path=src, found="no .png/.jpg files in it or its subfolders",
                          expected="sorted high-frame-rate frames, e.g. 000000.png, 000001.png, ...",
                          fix="Point --from-frames at a folder of frames or a folder of such folders")
    return found


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image; reads only the header of a png."""
    with open(path, "rb") as handle:
        header = handle.read(24)
    if header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR":
        width, height = struct.unpack(">II", header[16:24])
        return int(height), int(width)
    image, _ = decode_rgb(Path(path).read_bytes(), path)  # not cv2.imread: no non-UTF-8 paths there
    return image.shape[:2]


def _check_sizes(paths: Sequence[Path]) -> tuple[int, int]:
    """The common ``(height, width)`` of ``paths``; names the first image that differs."""
    first = image_size(paths[0])
    for path in paths[1:]:
        size = image_size(path)
        if size != first:
            raise LayoutError("source images differ in size", path=path,
                              found=f"{size[0]}x{size[1]} (HxW)",
                              expected=f"{first[0]}x{first[1]} like {paths[0].name}",
                              fix="Resize or crop all frames of a sequence to one size")
    return first


def simulate_from_frames(src: str | Path, out: str | Path, *, images_per_frame: int = 8,
                         spikes_per_frame: int = 40, exposure: float = 0.5, seed: int = 0,
                         threshold: float = DEFAULT_THRESHOLD, spike_rate: float = 20000.0,
                         spike_downsample: int = 1, force: bool = False,
                         on_progress: ProgressCallback | None = None, part=None) -> SimulationSummary:
    """Turn high-frame-rate frames (``src`` or each of its subfolders) into the input layout.

    Every ``images_per_frame`` source images make one RGB frame interval of ``spikes_per_frame``
    spike samples; the scene between source images is their linear interpolation. A sequence of
    ``n`` images gives ``(n - 1) // images_per_frame`` frames. ``part`` ``"I/N"``: only part I's
    share of the sequences (see `prepare_part_output`)."""
    started = time.perf_counter()
    params = SpikeParams(spikes_per_frame, exposure, threshold, spike_rate, spike_downsample, seed)
    _require(images_per_frame >= 1, "--images-per-frame", images_per_frame, "an integer >= 1")
    src, out = Path(src), Path(out)
    plan = []
    for name, paths in find_source_sequences(src):
        height, width = _check_sizes(paths)
        params.spike_geometry(height, width, f"source frames in {paths[0].parent}:")
        n_frames = (len(paths) - 1) // images_per_frame
        if n_frames < 1:
            raise LayoutError("too few source images for one frame", path=paths[0].parent,
                              found=f"{len(paths)} images",
                              expected=f"at least --images-per-frame + 1 = {images_per_frame + 1}",
                              fix="Lower --images-per-frame or add frames")
        plan.append((name, paths, n_frames, height, width))
    _refuse_overlap(src, out)
    indices = _prepare(out, force, part, [item[0] for item in plan],
                       [item[2] * item[3] * item[4] for item in plan])
    height, width = plan[0][3], plan[0][4]
    plan = [(index, *plan[index]) for index in indices]
    advance = _progress_counter(sum(item[3] for item in plan) * spikes_per_frame, on_progress)
    spike_frames = []
    for index, name, paths, n_frames, h, w in plan:
        scene = FrameSequenceScene(paths, images_per_frame, params.frame_rate_hz)
        spike_frames.append(write_sequence(scene, out, name, n_frames, h, w, params,
                                           sequence_rng(seed, index), advance))
    spike_h, spike_w = params.spike_geometry(height, width, "source frames")
    return SimulationSummary(out, tuple(item[1] for item in plan), tuple(item[3] for item in plan),
                             tuple(spike_frames), height, width, spike_h, spike_w,
                             time.perf_counter() - started)


def _refuse_overlap(src: Path, out: Path) -> None:
    """``--force`` removes OUT/{blur,sharp,spike}: the source must not live there."""
    src_abs = src.resolve()
    for part in ("blur", "sharp", "spike"):
        if src_abs.is_relative_to((out / part).resolve()):
            raise UsageError("source frames lie inside the output", path=src, found=f"inside {out / part}",
                             expected="a source folder outside OUT/blur, OUT/sharp and OUT/spike")
