"""A synthetic two-camera rig with a KNOWN registration: tests, the benchmark and the docs' picture.

A textured scene (random texture at several scales, luma in [0.05, 0.95]) drifts slowly; the
RGB camera sees it directly (blurry frames: the mean over the exposure), the spike camera sees
it through ``matrix`` (spike px -> RGB px, the registration convention of `geometry`): spike
pixel ``x`` shows the scene at RGB position ``matrix @ x``. Spikes are Bernoulli draws with a
firing probability rising with the luma, for every spike frame. Writes DATA_ROOT in the input
layout (blur/SEQ/*.png, spike/SEQ/spikes.dat, spike/SEQ/config.yaml with fixed timing), ready
for `build_sync`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..inputs.dat import DatWriter
from .geometry import apply, frame_corners, translation


@dataclass(frozen=True)
class Rig:
    """What `write_rig` draws. Sizes (h, w) in px; ``drift`` RGB px per frame interval (x, y);
    ``texture``: 'random' or 'flat'; ``mirror``: spike images mirrored left-right."""

    matrix: tuple
    rgb_size: tuple[int, int] = (240, 320)
    spike_size: tuple[int, int] = (128, 200)
    frames: int = 8
    spikes_per_frame: int = 40
    exposure: float = 0.5
    drift: tuple[float, float] = (0.7, 0.4)
    texture: str = "random"
    mirror: bool = False
    seed: int = 0


def texture(size: tuple[int, int], detail: float, rng: np.random.Generator) -> np.ndarray:
    """``(h, w)`` float32 luma in [0.05, 0.95]: noise blurred at several scales (``detail`` px the finest)."""
    out = np.zeros(size, np.float32)
    for sigma, weight in ((1.0, 0.6), (2.5, 1.0), (6.0, 1.0), (15.0, 0.8)):
        layer = cv2.GaussianBlur(rng.standard_normal(size).astype(np.float32), (0, 0), sigma * detail)
        out += weight * layer / (layer.std() + 1e-12)
    lo, hi = np.percentile(out, (1, 99))
    return np.clip(0.05 + 0.9 * (out - lo) / (hi - lo), 0.05, 0.95).astype(np.float32)


def _world(rig: Rig, rng) -> tuple[np.ndarray, np.ndarray]:
    """The scene canvas and its origin: RGB point X is canvas point X + origin at time 0."""
    H, W = rig.rgb_size
    quad = apply(np.asarray(rig.matrix, float), frame_corners(rig.spike_size))
    pts = np.vstack([quad, frame_corners(rig.rgb_size)])
    travel = np.abs(rig.drift) * rig.frames + 8
    lo = np.floor(pts.min(axis=0) - travel)
    hi = np.ceil(pts.max(axis=0) + travel)
    size = (int(hi[1] - lo[1]), int(hi[0] - lo[0]))
    if rig.texture == "flat":
        return np.full(size, 0.5, np.float32), -lo
    return texture(size, max(1.0, H / 240), rng), -lo


def _view(world, origin, matrix, t, drift, size) -> np.ndarray:
    """What a camera whose px map to RGB px by ``matrix`` sees at time ``t`` (frame intervals)."""
    to_world = translation(origin[0] - drift[0] * t, origin[1] - drift[1] * t) @ matrix
    return cv2.warpPerspective(world, to_world, (size[1], size[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)


def write_rig(data_root: str | os.PathLike, sequence: str, rig: Rig, spike_rate: float = 20000.0) -> Path:
    """Write one sequence of ``rig`` into DATA_ROOT (see the module docstring); returns DATA_ROOT."""
    root = Path(data_root)
    rng = np.random.default_rng(rig.seed)
    world, origin = _world(rig, rng)
    matrix = np.asarray(rig.matrix, np.float64)
    spike_world = cv2.GaussianBlur(world, (0, 0), max(0.3, 0.4 * np.sqrt(abs(np.linalg.det(matrix[:2, :2])))))
    blur_dir, spike_dir = root / "blur" / sequence, root / "spike" / sequence
    blur_dir.mkdir(parents=True, exist_ok=True)
    spike_dir.mkdir(parents=True, exist_ok=True)
    eye, sub = np.eye(3), 4  # spike luma re-rendered `sub` times per frame interval
    per = rig.spikes_per_frame // sub
    with DatWriter(spike_dir / "spikes.dat", *rig.spike_size, flipud=True) as dat:
        for i in range(rig.frames):
            times = i + rig.exposure * (np.arange(sub) + 0.5) / sub
            blur = np.mean([_view(world, origin, eye, t, rig.drift, rig.rgb_size) for t in times], axis=0)
            grey = np.clip(blur * 255 + 0.5, 0, 255).astype(np.uint8)
            cv2.imwrite(str(blur_dir / f"{i:06d}.png"), np.dstack([grey] * 3))
            for j in range(sub):
                luma = _view(spike_world, origin, matrix, i + (j + 0.5) / sub, rig.drift, rig.spike_size)
                if rig.mirror:
                    luma = luma[:, ::-1]
                n = per if j < sub - 1 else rig.spikes_per_frame - per * (sub - 1)
                dat.write(rng.random((n, *rig.spike_size), np.float32) < 0.05 + 0.85 * luma)
    config = {"spike_h": rig.spike_size[0], "spike_w": rig.spike_size[1], "flipud": True,
              "spike_rate": spike_rate, "frame_rate": spike_rate / rig.spikes_per_frame,
              "exposure": rig.exposure}
    (spike_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root
