"""Quality control of one raw capture (a `.dat` file): its geometry, its pixels, its frames."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatError, SpikeprepError
from ..inputs.dat import SpikeStream, frame_nbytes
from ..inputs.images import list_images, read_rgb
from ..inputs.sequence_config import load_config
from ..representations.hot_pixels import firing_rate
from . import frames as frame_checks
from . import pixels
from .geometry import Candidate, rank_geometries, row_correlation

#: A config geometry whose rate image correlates this little between rows is checked against
#: the geometries the data fits.
PLAUSIBLE_ROW_SCORE = 0.3
#: Blur frames sampled for the brightness ratio.
BRIGHTNESS_FRAMES = 8


@dataclass(frozen=True)
class Geometry:
    """How the file is read: ``height x width`` pixels, rows bottom-up when ``flipud``;
    ``source`` ``"config"`` (config.yaml) or ``"inferred"`` (`rank_geometries`)."""

    height: int
    width: int  # the file's row width (with_head: the 16 head columns included)
    flipud: bool
    source: str
    candidates: tuple[Candidate, ...] = ()
    with_head: bool = False


@dataclass
class CaptureReport:
    """What `check_capture` found in one file. Pixel lists are ``[row, col]`` in image
    orientation; rates are spikes per pixel per frame."""

    path: str
    geometry: Geometry | None = None
    frames: int = 0
    firing_rate: dict = field(default_factory=dict)
    hot_pixels: list = field(default_factory=list)
    dead_pixels: list = field(default_factory=list)
    empty_frames: list = field(default_factory=list)
    saturated_frames: list = field(default_factory=list)
    rate_jumps: list = field(default_factory=list)
    brightness_ratio: float | None = None
    problems: list = field(default_factory=list)
    error: str | None = None
    rate: np.ndarray | None = field(default=None, repr=False)

    @property
    def verdict(self) -> str:
        return "error" if self.error else ("problems" if self.problems else "ok")

    def to_dict(self) -> dict:
        g = self.geometry
        return {"spike_h": g.height if g else None, "spike_w": g.width if g else None,
                "frames": self.frames, "flipud": g.flipud if g else None,
                "with_head": g.with_head if g else None,
                "geometry": g.source if g else None,
                "candidates": [c.to_dict() for c in g.candidates] if g else [],
                "firing_rate": self.firing_rate, "hot_pixels": self.hot_pixels,
                "dead_pixels": self.dead_pixels, "empty_frames": self.empty_frames,
                "saturated_frames": self.saturated_frames, "rate_jumps": self.rate_jumps,
                "brightness_ratio": self.brightness_ratio, "problems": self.problems,
                "error": self.error, "verdict": self.verdict}


def config_paths(dat: Path) -> tuple[Path, Path | None]:
    """The sequence's ``config.yaml`` beside ``dat`` and, inside a DATA_ROOT's ``spike/``
    folder, the dataset-level ``spike/config.yaml`` that supplies what it lacks."""
    seq_dir = dat.parent
    default = seq_dir.parent / "config.yaml" if seq_dir.parent.name == "spike" else None
    return seq_dir / "config.yaml", default


def find_geometry(dat: Path) -> Geometry:
    """The config's geometry when a config.yaml gives one, else the best inferred one."""
    own, default = config_paths(dat)
    if own.is_file() or (default is not None and default.is_file()):
        config = load_config(own, default)
        return Geometry(config.spike_h, config.spike_w, config.flipud, "config", with_head=config.with_head)
    ranked = tuple(rank_geometries(dat))
    best = ranked[0]
    if best.leftover_bytes:
        raise DatError("spike file's last frame is truncated", path=dat,
                       found=f"{best.frames} frames of {best.height}x{best.width} + "
                             f"{best.leftover_bytes} bytes",
                       expected=f"a multiple of {best.height * best.width // 8} bytes",
                       fix="the recording was cut short: re-copy it, or cut the partial frame off")
    return Geometry(best.height, best.width, True, "inferred", ranked)


def _check_config_geometry(dat: Path, geometry: Geometry, rate: np.ndarray, report: CaptureReport) -> Geometry:
    """A config geometry under which rows do not resemble their neighbours is compared with what
    the data fits; a better fit is named as a problem (the config is not changed)."""
    if row_correlation(rate.ravel(), rate.shape[1]) >= PLAUSIBLE_ROW_SCORE:
        return geometry
    ranked = tuple(rank_geometries(dat))
    best = ranked[0]
    if (best.height, best.width) != (geometry.height, geometry.width):
        report.problems.append(f"config.yaml says {geometry.height}x{geometry.width} but the data reads as "
                               f"{best.height}x{best.width} (rows correlate {best.row_score:.2f}); "
                               "check spike_h/spike_w")
    return Geometry(geometry.height, geometry.width, geometry.flipud, geometry.source, ranked,
                    geometry.with_head)


def brightness_ratio(dat: Path, mean_rate: float) -> float | None:
    """Mean firing rate over the mean luma (0..1) of the sequence's blur frames, when the
    capture sits in a DATA_ROOT with RGB (``DATA_ROOT/blur/SEQ``); None without RGB."""
    seq_dir = dat.parent
    if seq_dir.parent.name != "spike":
        return None
    blur_dir = seq_dir.parent.parent / "blur" / seq_dir.name
    frames = list_images(blur_dir) if blur_dir.is_dir() else []
    if not frames:
        return None
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(BRIGHTNESS_FRAMES, len(frames))).astype(int)]
    luma = np.mean([cv2.cvtColor(read_rgb(p), cv2.COLOR_RGB2GRAY).mean() / 255.0 for p in picks])
    return round(float(mean_rate / luma), 4) if luma > 0 else None


def check_capture(dat: str | os.PathLike) -> CaptureReport:
    """Quality control of one `.dat` file; a failure to read it is the report's ``error``."""
    dat = Path(dat)
    report = CaptureReport(str(dat))
    try:
        _check(dat, report)
    except SpikeprepError as err:
        report.error = str(err)
    return report


def _check(dat: Path, report: CaptureReport) -> None:
    geometry = find_geometry(dat)
    report.geometry = geometry
    stream = SpikeStream(filepath=dat, spike_h=geometry.height, spike_w=geometry.width,
                         strip_head=geometry.with_head, print_dat_detail=False)
    report.frames = len(stream)
    if not len(stream):
        raise DatError("spike file holds no frame", path=dat, found="0 frames",
                       expected=f">= 1 frame of {frame_nbytes(geometry.height, geometry.width)} bytes")
    rate = firing_rate(stream)  # rows top-down, as read with flipud (firing_rate always flips)
    rate = rate if geometry.flipud else np.ascontiguousarray(rate[::-1])
    report.rate = rate
    if geometry.source == "config":
        report.geometry = _check_config_geometry(dat, geometry, rate, report)
    median, quartile = pixels.neighbourhood(rate)
    report.hot_pixels = pixels.as_list(pixels.hot_pixel_mask(rate, len(stream), median))
    report.dead_pixels = pixels.as_list(pixels.dead_pixel_mask(rate, len(stream), quartile))
    counts = frame_checks.frame_counts(stream)
    report.empty_frames = frame_checks.empty_frames(counts)
    report.saturated_frames = frame_checks.saturated_frames(counts, stream.height * stream.width)
    report.rate_jumps = frame_checks.rate_jumps(counts)
    mean = float(rate.mean())
    report.firing_rate = {"mean": round(mean, 6), "min": round(float(rate.min()), 6),
                          "max": round(float(rate.max()), 6)}
    report.brightness_ratio = brightness_ratio(dat, mean)
    for name, found in (("hot pixels", report.hot_pixels), ("dead pixels", report.dead_pixels),
                        ("empty frames", report.empty_frames), ("saturated frames", report.saturated_frames),
                        ("firing-rate jumps (dropped data?)", report.rate_jumps)):
        if found:
            report.problems.append(f"{len(found)} {name}")
    stream.close()

