"""Hot and dead pixels from a whole recording's firing-rate image.

Both are judged against the pixel's own neighbourhood, so scene content does not count:

* **hot**: fires far above its neighbours: ``rate - m > max(HOT_MARGIN, HOT_SIGMAS * sigma)``
  and ``rate > HOT_RATIO * m``, where ``m`` is the median rate of the 24 other pixels of its 5x5
  neighbourhood and ``sigma`` the binomial spread of a rate ``m`` over the recording's frames;
  or stuck: fires in (almost) every frame (``rate >= STUCK_RATE``) where ``m < STUCK_RATE``.
* **dead**: never fires, where even the quietest quarter of its 24 neighbours fires at least
  `DEAD_EXPECTED` times over the recording (a live pixel like them would stay silent with
  probability ``< e**-10``; the lower quartile, not the median, keeps the dark side of an edge
  from being called dead).

A 5x5 median keeps a cluster of up to 12 bad pixels from hiding one another.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

HOT_MARGIN = 0.15
HOT_SIGMAS = 8.0
HOT_RATIO = 1.3
STUCK_RATE = 0.99
DEAD_EXPECTED = 10.0


def neighbourhood(rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(median, lower quartile)``, each ``(H, W)``, of every pixel's 24 5x5 neighbours (borders
    mirrored, the pixel itself left out)."""
    height, width = rate.shape
    padded = np.pad(rate.astype(np.float32), 2, mode="reflect" if min(height, width) > 2 else "edge")
    ring = np.delete(sliding_window_view(padded, (5, 5)).reshape(height, width, 25), 12, axis=2)
    ordered = np.partition(ring, (5, 6, 11, 12), axis=2)
    median = (ordered[..., 11] + ordered[..., 12]) / 2
    quartile = (ordered[..., 5] + ordered[..., 6]) / 2
    return median, quartile


def hot_pixel_mask(rate: np.ndarray, frames: int, median: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: hot pixels of an ``(H, W)`` firing-rate image over ``frames`` frames;
    ``median`` from `neighbourhood`."""
    m = median
    sigma = np.sqrt(np.maximum(m * (1 - m), 1.0 / frames) / frames)
    far_above = (rate - m > np.maximum(HOT_MARGIN, HOT_SIGMAS * sigma)) & (rate > HOT_RATIO * m)
    stuck = (rate >= STUCK_RATE) & (m < STUCK_RATE)
    return far_above | stuck


def dead_pixel_mask(rate: np.ndarray, frames: int, quartile: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels that never fire where most neighbours fire >= `DEAD_EXPECTED`
    times; ``quartile`` from `neighbourhood`."""
    return (rate == 0) & (quartile * frames >= DEAD_EXPECTED)


def as_list(mask: np.ndarray) -> list[list[int]]:
    """``[[row, col], ...]`` of a mask's pixels, row-major."""
    return [[int(r), int(c)] for r, c in zip(*np.nonzero(mask))]
