"""Procedural scenes for `spikeprep simulate`: an RGB image as a continuous function of time.

A `SyntheticScene` is a textured background that pans slowly plus 2-4 textured objects
(rectangles, ellipses, discs) moving with constant velocities and bouncing off the frame
borders. Positions are closed-form functions of time (no state), so ``render(t)`` can be
called for any ``t`` in any order; sub-pixel motion uses bilinear ``cv2.warpAffine``, so
averaging renders over an exposure gives real motion blur. `FrameSequenceScene` does the
same for a folder of high-frame-rate images (linear interpolation between neighbours).

Images are ``(H, W, 3) float32`` RGB in ``[0, 1]``; speeds are in pixels per RGB frame
interval, times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..inputs.images import decode_rgb

#: Background margin (pixels each side) the background may pan over.
_PAN_MARGIN_PX = 8
#: Supersampling factor for anti-aliased object masks.
_MASK_SUPERSAMPLE = 4


# -- textures: (h, w, 3) float32 in [0, 1] -----------------------------------------------------
def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.08, 0.92, 3).astype(np.float32)


def _mix(weight: np.ndarray, colour_a: np.ndarray, colour_b: np.ndarray) -> np.ndarray:
    """Blend two colours with a ``(h, w)`` weight in [0, 1] -> ``(h, w, 3)`` float32."""
    weight = weight.astype(np.float32)[..., None]
    return colour_a * (1 - weight) + colour_b * weight


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return ys, xs


def _size_scale(height: int, width: int) -> float:
    """Feature sizes and speeds grow with frames larger than 128 pixels (smaller side)."""
    return max(1.0, min(height, width) / 128.0)


def smooth_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Seeded value noise: a coarse random grid upsampled with bicubic interpolation."""
    cell_px = rng.uniform(4.0, 12.0) * _size_scale(height, width)
    coarse = rng.random((int(height / cell_px) + 3, int(width / cell_px) + 3, 3), dtype=np.float32)
    fine = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    low, high = fine.min(), fine.max()
    return np.clip((fine - low) / max(high - low, 1e-6), 0, 1).astype(np.float32)


def stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Soft sinusoidal stripes at a random angle and period between two random colours."""
    ys, xs = _grid(height, width)
    angle = rng.uniform(0, math.pi)
    period_px = rng.uniform(4.0, 14.0)
    phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period_px)
    return _mix(0.5 + 0.5 * np.sin(phase), _colour(rng), _colour(rng))


def checkerboard(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A hard-edged checkerboard with random cell size and colours (strong blur cues)."""
    ys, xs = _grid(height, width)
    cell_px = int(rng.integers(3, 9))
    parity = ((ys // cell_px + xs // cell_px) % 2).astype(np.float32)
    return _mix(parity, _colour(rng), _colour(rng))


def gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A linear colour gradient in a random direction."""
    ys, xs = _grid(height, width)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return _mix(ramp, _colour(rng), _colour(rng))


def background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradient + smooth noise + faint stripes: ``(height, width, 3)`` float32 in [0, 1]."""
    texture = (0.4 * gradient(rng, height, width) + 0.4 * smooth_noise(rng, height, width)
               + 0.2 * stripes(rng, height, width))
    return np.clip(texture, 0, 1).astype(np.float32)


_OBJECT_TEXTURES = (checkerboard, stripes, smooth_noise)


# -- motion ------------------------------------------------------------------------------------
def bounce(start_px: float, velocity_px_per_frame: float, low_px: float, high_px: float,
           time_frames: float) -> float:
    """Position at ``time_frames`` of a point moving at constant speed, reflected at the limits."""
    span = high_px - low_px
    if span <= 0:
        return low_px
    travelled = (start_px - low_px) + velocity_px_per_frame * time_frames
    folded = travelled % (2 * span)
    return low_px + (span - abs(folded - span))


def _shape_alpha(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Anti-aliased ``(height, width)`` float32 coverage of a rectangle, ellipse or disc."""
    kind = rng.choice(["rectangle", "ellipse", "disc"])
    if kind == "rectangle":
        return np.ones((height, width), np.float32)
    big_h, big_w = height * _MASK_SUPERSAMPLE, width * _MASK_SUPERSAMPLE
    ys, xs = _grid(big_h, big_w)
    ry, rx = big_h / 2, big_w / 2
    if kind == "disc":
        ry = rx = min(ry, rx)
    inside = ((ys + 0.5 - big_h / 2) / ry) ** 2 + ((xs + 0.5 - big_w / 2) / rx) ** 2 <= 1
    return cv2.resize(inside.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec.601 luma ``0.299 R + 0.587 G + 0.114 B`` of ``(..., 3)`` RGB (as cv2's RGB2GRAY)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2GRAY)


def shift_bilinear(image: np.ndarray, x_px: float, y_px: float, height: int, width: int) -> np.ndarray:
    """``(height, width, C)`` window of ``image`` whose pixel (0, 0) samples ``image`` at
    ``(y_px, x_px)`` with bilinear interpolation; needs ``floor + size + 1`` pixels inside."""
    col, row = int(math.floor(x_px)), int(math.floor(y_px))
    frac_x, frac_y = x_px - col, y_px - row
    kernel = np.float32([[(1 - frac_x) * (1 - frac_y), frac_x * (1 - frac_y)],
                         [(1 - frac_x) * frac_y, frac_x * frac_y]])
    crop = image[row:row + height + 1, col:col + width + 1]
    out = cv2.filter2D(crop, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return out[:height, :width]


@dataclass(frozen=True, eq=False)
class MovingObject:
    """A textured sprite with a transparent 1-pixel border: premultiplied colour layers
    ``colour_rgb`` ``(h, w, 3)`` and ``colour_luma`` ``(h, w)`` (colour * alpha) and ``alpha``
    ``(h, w)``, float32. Its top-left corner bounces within ``[0, limit]`` pixels per axis."""

    colour_rgb: np.ndarray
    colour_luma: np.ndarray
    alpha: np.ndarray
    start_xy_px: tuple[float, float]
    velocity_xy_px_per_frame: tuple[float, float]
    limit_xy_px: tuple[float, float]

    def position(self, time_frames: float) -> tuple[float, float]:
        return tuple(bounce(start, speed, 0.0, limit, time_frames) for start, speed, limit
                     in zip(self.start_xy_px, self.velocity_xy_px_per_frame, self.limit_xy_px))

    def paint(self, frame: np.ndarray, time_frames: float) -> None:
        """Alpha-composite onto ``frame`` in place: ``(H, W, 3)`` RGB or ``(H, W)`` luma."""
        colour = self.colour_rgb if frame.ndim == 3 else self.colour_luma
        x_px, y_px = self.position(time_frames)
        col, row = int(math.floor(x_px)), int(math.floor(y_px))
        sprite_h, sprite_w = self.alpha.shape
        # frame pixel (row + 1 + i, col + 1 + j) samples the sprite at (i + 1 - frac_y, j + 1 - frac_x)
        at = (col + 1 - x_px, row + 1 - y_px, sprite_h - 1, sprite_w - 1)
        shifted_colour, shifted_alpha = shift_bilinear(colour, *at), shift_bilinear(self.alpha, *at)
        transmit = 1 - shifted_alpha
        if frame.ndim == 3:
            transmit = cv2.cvtColor(transmit, cv2.COLOR_GRAY2RGB)
        region = frame[row + 1:row + sprite_h, col + 1:col + sprite_w]
        region[...] = cv2.add(cv2.multiply(region, transmit), shifted_colour)


def _pad(layer: np.ndarray) -> np.ndarray:
    """Surround a layer with a 1-pixel border of zeros (transparent / black)."""
    return cv2.copyMakeBorder(layer.astype(np.float32), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)


def random_object(rng: np.random.Generator, height: int, width: int, motion: float = 1.0) -> MovingObject:
    """A random textured shape, 15-35 % of the frame's smaller side, moving 1.5-4 px per RGB
    frame (times smaller side / 128 for frames larger than 128 pixels, times ``motion``)."""
    side = min(height, width)
    obj_h, obj_w = (max(3, int(side * rng.uniform(0.15, 0.35))) for _ in range(2))
    texture = _OBJECT_TEXTURES[int(rng.integers(len(_OBJECT_TEXTURES)))](rng, obj_h, obj_w)
    alpha = _shape_alpha(rng, obj_h, obj_w)
    # the padded box (obj + 2) plus one pixel for the sub-pixel shift stays inside the frame
    limit = (float(width - obj_w - 3), float(height - obj_h - 3))
    start = (rng.uniform(0, limit[0]), rng.uniform(0, limit[1]))
    speed, angle = rng.uniform(1.5, 4.0) * _size_scale(height, width) * motion, rng.uniform(0, 2 * math.pi)
    velocity = (speed * math.cos(angle), speed * math.sin(angle))
    return MovingObject(_pad(texture * alpha[..., None]), _pad(luma(texture) * alpha), _pad(alpha),
                        start, velocity, limit)


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """Panning background + moving objects. ``render(t)``: ``(H, W, 3)`` float32 RGB in [0, 1];
    ``render_luma(t)``: ``(H, W)`` float32, equal to ``luma(render(t))`` up to float round-off
    (compositing is linear) but about 3x cheaper, since spikes need luma at every sample."""

    height: int
    width: int
    frame_rate_hz: float
    background_rgb: np.ndarray  # (H + 2m, W + 2m, 3) float32
    background_luma: np.ndarray  # (H + 2m, W + 2m) float32
    pan_start_xy_px: tuple[float, float]
    pan_velocity_xy_px_per_frame: tuple[float, float]
    objects: tuple[MovingObject, ...]

    def pan_offset(self, time_frames: float) -> tuple[float, float]:
        limit = 2.0 * _PAN_MARGIN_PX - 1.0
        return tuple(bounce(start, speed, 0.0, limit, time_frames) for start, speed
                     in zip(self.pan_start_xy_px, self.pan_velocity_xy_px_per_frame))

    def _compose(self, time_s: float, background: np.ndarray) -> np.ndarray:
        time_frames = time_s * self.frame_rate_hz
        pan_x, pan_y = self.pan_offset(time_frames)
        frame = shift_bilinear(background, pan_x, pan_y, self.height, self.width)
        for obj in self.objects:
            obj.paint(frame, time_frames)
        return frame

    def render(self, time_s: float) -> np.ndarray:
        return self._compose(time_s, self.background_rgb)

    def render_luma(self, time_s: float) -> np.ndarray:
        return self._compose(time_s, self.background_luma)


def random_scene(rng: np.random.Generator, height: int, width: int, frame_rate_hz: float,
                 motion: float = 1.0) -> SyntheticScene:
    """A seeded random scene of ``height x width`` pixels (both >= 16); ``motion`` scales the
    objects' speeds (1.0: 1.5-4 px per RGB frame at 128 px)."""
    margin = _PAN_MARGIN_PX
    background = background_texture(rng, height + 2 * margin, width + 2 * margin)
    pan_start = (rng.uniform(0, 2 * margin - 1), rng.uniform(0, 2 * margin - 1))
    pan_speed, pan_angle = rng.uniform(0.1, 0.5), rng.uniform(0, 2 * math.pi)
    pan_velocity = (pan_speed * math.cos(pan_angle), pan_speed * math.sin(pan_angle))
    objects = tuple(random_object(rng, height, width, motion) for _ in range(int(rng.integers(2, 5))))
    return SyntheticScene(height, width, frame_rate_hz, background, luma(background),
                          pan_start, pan_velocity, objects)


class FrameSequenceScene:
    """High-frame-rate source images as a scene: image ``j`` is shown at time
    ``j / (images_per_frame * frame_rate_hz)`` and linearly interpolated in between (clamped
    at the ends). Decodes lazily and keeps only a few images, so memory does not grow."""

    _CACHE_SIZE = 4

    def __init__(self, paths: Sequence[Path], images_per_frame: int, frame_rate_hz: float) -> None:
        self.paths = list(paths)
        self.images_per_frame = images_per_frame
        self.frame_rate_hz = frame_rate_hz
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _layers(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(RGB (H, W, 3), luma (H, W))`` float32 in [0, 1] of source image ``index``."""
        if index not in self._cache:
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.pop(max(self._cache, key=lambda cached: abs(cached - index)))
            # decoded from bytes: cv2.imread crashes on a path with non-UTF-8 bytes
            rgb, _ = decode_rgb(Path(self.paths[index]).read_bytes(), self.paths[index])
            rgb = rgb.astype(np.float32) / np.float32(255)
            self._cache[index] = (rgb, luma(rgb))
        return self._cache[index]

    def _blend(self, time_s: float, layer: int) -> np.ndarray:
        position = time_s * self.frame_rate_hz * self.images_per_frame
        position = min(max(position, 0.0), len(self.paths) - 1.0)
        index = min(int(math.floor(position)), max(len(self.paths) - 2, 0))
        weight = position - index
        if weight <= 0:
            return self._layers(index)[layer].copy()
        return cv2.addWeighted(self._layers(index)[layer], 1 - weight,
                               self._layers(index + 1)[layer], weight, 0.0)

    def render(self, time_s: float) -> np.ndarray:
        return self._blend(time_s, 0)

    def render_luma(self, time_s: float) -> np.ndarray:
        return self._blend(time_s, 1)
