"""A headerless `.dat` file's sensor geometry, inferred from its bits.

A file of ``N`` bytes fits every ``(frames, height, width)`` with ``frames * height * width / 8
== N``; the bits tell which one is right in two steps, each a property of real scenes:

1. **frame size** ``F`` (pixels): cut a sample of the file into frames of ``F`` bits and take
   each position's firing rate over those frames. At the true ``F`` (or a multiple, which stacks
   whole frames) every position is one pixel, and the rates vary with the scene far beyond the
   binomial noise of a rate over ``K`` frames; at any other ``F`` a position mixes pixels of
   different places and the excess variance collapses. The smallest ``F`` within
   `FRAME_TOLERANCE` of the best excess variance wins.
2. **width** ``w`` (a divisor of ``F``): the rate image ``F/w x w`` of the true width has rows
   that resemble their neighbours (scenes are smooth); a wrong width shears the rows apart. The
   width with the highest correlation between vertically adjacent pixels wins; known sensor
   sizes (`KNOWN_SIZES`) win ties within `KNOWN_BONUS`.

A file whose size is not a whole number of frames of a known sensor is tried at that sensor too
(its last frame truncated), so a truncated recording is named, not mistaken for another size.
Rows as stored (bottom-up under ``flipud``) do not change either score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatError

#: Sensor sizes (height, width) seen in SpikeCV's cameras and the public datasets, first in ties.
KNOWN_SIZES = ((250, 400), (360, 640), (180, 320), (720, 1280), (480, 854), (1000, 1000))
#: Plausible sensor sides (pixels) and aspect ratios (width / height) for sizes not known.
MIN_SIDE, MAX_SIDE = 32, 4096
MIN_ASPECT, MAX_ASPECT = 0.25, 8.0
#: A frame size scoring at least this fraction of the best excess variance is a candidate for
#: the smallest whole frame (multiples of the true size score as high as it).
FRAME_TOLERANCE = 0.8
#: Row-correlation advantage a known sensor size gets over an unknown one.
KNOWN_BONUS = 0.02
#: Bytes of the file the frame-size score reads (whole frames of each candidate from the start)...
SAMPLE_BYTES = 1 << 20
#: ... but at least this many frames of a large candidate (its rate noise shrinks with frames) ...
MIN_SAMPLE_FRAMES = 64
#: ... and never more than this.
MAX_SAMPLE_BYTES = 32 << 20
#: Least excess variance (in noise variances) that shows a scene: below it no frame size fits.
MIN_STRUCTURE = 0.5
#: Candidates kept in the ranking.
TOP = 8


@dataclass(frozen=True)
class Candidate:
    """One way to read the file: ``frames`` whole frames of ``height x width`` pixels (plus
    ``leftover_bytes`` of a truncated last frame); scores as described in the module."""

    height: int
    width: int
    frames: int
    leftover_bytes: int
    frame_score: float  # excess rate variance relative to the best frame size, 0..1
    row_score: float    # correlation of vertically adjacent rates, -1..1
    known: bool

    @property
    def score(self) -> float:
        return self.frame_score * (self.row_score + (KNOWN_BONUS if self.known else 0.0))

    def to_dict(self) -> dict:
        return {"spike_h": self.height, "spike_w": self.width, "frames": self.frames,
                "leftover_bytes": self.leftover_bytes, "score": round(self.score, 4),
                "frame_score": round(self.frame_score, 4), "row_score": round(self.row_score, 4),
                "known_size": self.known}


def frame_byte_candidates(size: int) -> list[int]:
    """Frame sizes in bytes that divide ``size`` and hold a plausible sensor (at least
    `MIN_SAMPLE_FRAMES` frames, sides within `MIN_SIDE`..`MAX_SIDE`)."""
    low, high = MIN_SIDE * MIN_SIDE // 8, MAX_SIDE * MAX_SIDE // 8
    out = set()
    for d in range(1, int(size ** 0.5) + 1):
        if size % d == 0:
            out.update((d, size // d))
    return sorted(d for d in out if low <= d <= high and size // d >= 2)


def excess_variance(sample: np.ndarray, frame_bytes: int) -> tuple[float, float]:
    """``(excess, ratio)``: how far the variance of the per-position firing rates over the
    sample's whole frames exceeds the binomial noise of a rate over that many frames, as a
    variance (comparable between frame sizes) and in units of that noise (0: no structure; a
    real scene at its true frame size: several)."""
    frames = min(len(sample) // frame_bytes, 512)
    if frames < 2:
        return 0.0, 0.0
    bits = np.unpackbits(sample[:frames * frame_bytes].reshape(frames, frame_bytes), axis=1, bitorder="little")
    rate = bits.mean(axis=0, dtype=np.float32)
    mean = float(rate.mean())
    noise = mean * (1 - mean) / frames
    if noise <= 0:
        return 0.0, 0.0
    excess = max(float(rate.var()) - noise, 0.0)
    return excess, excess / noise


def row_correlation(rate: np.ndarray, width: int) -> float:
    """Correlation between vertically adjacent pixels of ``rate`` (flat) read ``width`` wide."""
    image = rate.reshape(-1, width)
    if image.shape[0] < 2:
        return -1.0
    upper, lower = image[:-1].ravel(), image[1:].ravel()
    upper, lower = upper - upper.mean(), lower - lower.mean()
    denom = float(np.sqrt((upper * upper).sum() * (lower * lower).sum()))
    return float((upper * lower).sum() / denom) if denom > 0 else 0.0


def seam_correlation(rate: np.ndarray, width: int, part: int) -> float:
    """Correlation of horizontally adjacent pixels across the column seams at multiples of
    ``part`` when ``rate`` is read ``width`` wide. If the true width is ``part``, a ``width`` that
    is a multiple of it puts the end of one true row beside the start of the next one there:
    the seams then correlate far less than neighbours do elsewhere."""
    image = rate.reshape(-1, width)
    left = np.concatenate([image[:, j - 1] for j in range(part, width, part)])
    right = np.concatenate([image[:, j] for j in range(part, width, part)])
    left, right = left - left.mean(), right - right.mean()
    denom = float(np.sqrt((left * left).sum() * (right * right).sum()))
    return float((left * right).sum() / denom) if denom > 0 else 0.0


def _row_score(rate: np.ndarray, width: int, widths: list[int]) -> float:
    """`row_correlation`, unless the seams of a smaller candidate width dividing this one
    correlate under half as well as horizontal neighbours do overall: then this width lays true
    rows side by side (it correlates vertically almost as well as the true one) and scores its
    seam correlation instead."""
    score = row_correlation(rate, width)
    neighbours = seam_correlation(rate, width, 1)
    for part in widths:
        if part < width and width % part == 0:
            seam = seam_correlation(rate, width, part)
            if seam < 0.5 * neighbours:
                score = min(score, seam)
    return score


def _widths(pixels: int) -> list[int]:
    """Plausible widths of a frame of ``pixels``: divisors with both sides and the aspect ratio
    in range."""
    out = []
    for w in range(MIN_SIDE, min(MAX_SIDE, pixels // MIN_SIDE) + 1):
        if pixels % w == 0:
            h = pixels // w
            if MIN_SIDE <= h <= MAX_SIDE and MIN_ASPECT <= w / h <= MAX_ASPECT:
                out.append(w)
    return out


def _rates(path: Path, frame_bytes: int, frames: int) -> np.ndarray:
    """Per-position firing rate over up to 128 frames spread over the file: ``(8*frame_bytes,)``."""
    take = min(frames, 128)
    picks = np.unique(np.linspace(0, frames - 1, take).astype(np.int64))
    data = np.memmap(path, np.uint8, "r", shape=(frames, frame_bytes))
    total = np.zeros(frame_bytes * 8, np.float64)
    for start in range(0, len(picks), 64):
        block = np.asarray(data[picks[start:start + 64]])
        total += np.unpackbits(block, axis=1, bitorder="little").sum(axis=0)
    del data
    return (total / len(picks)).astype(np.float32)


def rank_geometries(path: str | Path) -> list[Candidate]:
    """Every plausible geometry of ``path``, best first (see the module); `DatError` for an
    empty file or one no geometry fits."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DatError("spike file is empty", path=path, found="0 bytes",
                       expected="frames of H*W/8 bytes", fix="re-copy or re-record the file")
    sizes = [(d, 0) for d in frame_byte_candidates(size)]
    sizes += [(h * w // 8, size % (h * w // 8)) for h, w in KNOWN_SIZES
              if size % (h * w // 8) and size // (h * w // 8) >= 2]
    wanted = {d: min(size // d, max(MIN_SAMPLE_FRAMES, SAMPLE_BYTES // d)) * d for d, _ in sizes}
    with open(path, "rb") as handle:
        sample = np.frombuffer(handle.read(min(max(wanted.values(), default=0), MAX_SAMPLE_BYTES)), np.uint8)
    scored, ratios = {}, {}
    for frame_bytes, _ in sizes:
        scored[frame_bytes], ratios[frame_bytes] = excess_variance(sample[:wanted[frame_bytes]], frame_bytes)
    best = max(scored.values(), default=0.0)
    if best <= 0 or max(ratios.values()) < MIN_STRUCTURE:
        raise DatError("spike file fits no sensor geometry", path=path,
                       found=f"{size} bytes; no frame size shows pixels that keep their rate",
                       expected="a SpikeCV .dat recording of a scene",
                       fix="give spike_h and spike_w in the sequence's config.yaml if you know them")
    candidates = []
    for frame_bytes, leftover in sizes:
        relative = scored[frame_bytes] / best
        if relative < FRAME_TOLERANCE:
            continue
        frames = size // frame_bytes
        rate = _rates(path, frame_bytes, frames)
        widths = _widths(frame_bytes * 8)
        for width in widths:
            height = frame_bytes * 8 // width
            known = (height, width) in KNOWN_SIZES
            if leftover and not known:
                continue
            candidates.append(Candidate(height, width, frames, leftover, relative,
                                        _row_score(rate, width, widths), known))
    smallest = min((c.height * c.width for c in candidates if c.frame_score >= FRAME_TOLERANCE),
                   default=None)
    candidates.sort(key=lambda c: (c.height * c.width != smallest, -c.score))
    return candidates[:TOP]
