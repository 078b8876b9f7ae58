"""Test doubles: `FakeListing` (the listing half of the `spikeprep.open_cache` API) and `FakeCache`,
the whole API over arrays that encode their position."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from spikeprep import CacheParams, Manifest, SpikeStats


class FakeListing:
    """The listing half of the `spikeprep.open_cache` API over ``seqs`` (names), ``n_frames`` (per
    sequence) and ``_splits`` (name -> train | val), which a fake sets."""

    @property
    def sequences(self):
        return list(self.seqs)

    def num_frames(self, seq):
        return self.n_frames

    def split(self, seq):
        return self._splits[seq]

    def frame_name(self, seq, i):
        return f"{i:06d}"

    def clip_length(self, seq):
        return None


class FakeCache(FakeListing):
    """The `spikeprep.open_cache` API over numpy arrays whose values encode their position.

    blur[y, x] = (y, x, frame), sharp = blur + 1 (channel 2), spike[c, y', x'] = (y', x',
    frame + 100 c, ...) on the spike grid (RGB size / f), dtype uint16. Window L of frame i is
    ``10 + i`` spike frames.
    """

    def __init__(self, n_seq=3, n_frames=8, size=32, f=1, S=4, splits=("train", "train", "val"),
                 dtype=np.uint16, repr="bins", repr_params=None):
        self.size, self.f, self.S = size, f, S
        self.seqs = [f"seq{i:03d}" for i in range(n_seq)]
        self._splits = dict(zip(self.seqs, splits))
        self.n_frames = n_frames
        self.dtype = dtype
        h = size // f
        params = CacheParams(S=S, channels=S, repr=repr, repr_params=dict(repr_params or {}),
                             flipud=True, match="none" if f > 1 else "rgb", hot_pixels="off",
                             spike_dtype=np.dtype(dtype).name, rgb_shape=(size, size, 3),
                             spike_shape=(S, h, h))
        stats = SpikeStats(mean=tuple(1.0 + c for c in range(S)), std=(2.0,) * S,
                           q995=tuple(4.0 * (c + 1) for c in range(S)))
        self.manifest = Manifest(params, {}, stats, (), "test")


    def read(self, seq, i):
        s = self.seqs.index(seq)
        y, x = np.mgrid[0:self.size, 0:self.size]
        blur = np.stack([y, x, np.full_like(y, i + 10 * s)], -1).astype(np.uint8)
        sharp = blur.copy()
        sharp[..., 2] += 1
        h = self.size // self.f
        yy, xx = np.mgrid[0:h, 0:h]
        spike = np.stack([yy, xx] + [np.full_like(yy, i + 100 * c) for c in range(2, self.S)]).astype(self.dtype)
        blur.flags.writeable = False  # like the real cache's zero-copy views
        return SimpleNamespace(blur=blur, sharp=sharp, spike=spike, spike_begin=5, spike_end=15 + i,
                               sequence=seq, index=i)
