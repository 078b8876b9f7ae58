"""Windows with the stream around them, for representations that read past a window's edges.

A representation may define ``context(begin, end, stream_len) -> (lo, hi)``: the stream frames
``[lo, hi)`` it reads to compute the window ``[begin, end)`` (stream frame numbers). Without it,
the stream range is the window itself. The cache's `window_of` reads ``[lo, hi)`` and hands
``compute`` a `StreamWindow`, so the representation knows where the window lies in the stream
(SpikeCV's TFI at ``key_ts = (begin + end) // 2`` sees frames on both sides of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StreamWindow:
    """``packed``: ``(hi - lo, H*W/8)`` uint8 frames ``[lo, hi)`` of a stream of ``stream_len``
    frames, read for the window ``[begin, end)`` (stream frame numbers; ``[lo, hi)`` is what the
    representation's ``context`` asked for, which need not cover the whole window)."""

    packed: np.ndarray
    lo: int
    begin: int
    end: int
    stream_len: int

    @property
    def hi(self) -> int:
        return self.lo + len(self.packed)


def stream_window(window) -> StreamWindow:
    """A `StreamWindow` as is; a plain ``(L, H*W/8)`` packed array as a stream of its own (the
    window is the whole stream, frame 0 its first frame)."""
    if isinstance(window, StreamWindow):
        return window
    n_frames = len(window) if hasattr(window, "__len__") else 0
    return StreamWindow(window, 0, 0, n_frames, n_frames)

