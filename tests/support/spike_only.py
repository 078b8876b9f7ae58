"""`SpikeOnlyCache`: the `spikeprep.open_cache` API of a spike-only cache (manifest v3
``params.has_blur`` false, no blur, grayscale ``(H, W, 1)`` sharp frames or none), for the
spike-only trainer tests (tests/train/test_spike_only*.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from spikeprep import CacheParams, Manifest, SpikeStats
from tests.support.fakes import FakeListing

WINDOW = 20  # spike frames per sample window (4 bins of 5)


def rate_image(seq_index: int, size: int) -> np.ndarray:
    """``(size, size)`` float64 firing rates in [0.1, 0.9]: a smooth pattern per sequence."""
    y, x = np.mgrid[0:size, 0:size] / size
    return 0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.5 * y + 0.25 * seq_index)) * np.cos(np.pi * y)


class SpikeOnlyCache(FakeListing):
    """``n_seq`` sequences of ``n_frames`` frames (Spike-Zoo: 1), ``bins`` counts (S channels,
    ``WINDOW`` spike frames per window) drawn from `rate_image`, GT ``round(255 * (0.1 + 0.6 rate))``
    (brightness is not the firing rate: the net has to learn the mapping from its TFP guide)
    (``(H, W, 1)``, or ``(H, W, 3)`` with ``rgb_gt``; none with ``has_sharp`` false)."""

    def __init__(self, n_seq=4, n_frames=1, size=40, S=4, splits=None, has_sharp=True, rgb_gt=False):
        self.size, self.S, self.n_frames, self.has_sharp, self.rgb_gt = size, S, n_frames, has_sharp, rgb_gt
        self.seqs = [f"{i:04d}" for i in range(n_seq)]
        self._splits = dict(zip(self.seqs, splits or ["train"] * (n_seq - 1) + ["val"]))
        params = CacheParams(S=S, channels=S, repr="bins", repr_params={}, flipud=True, match="rgb",
                             hot_pixels="off", spike_dtype="uint8", rgb_shape=(size, size, 3 if rgb_gt else 1),
                             spike_shape=(S, size, size), has_blur=False)
        mean = WINDOW / S * 0.5
        stats = SpikeStats(mean=(mean,) * S, std=(1.5,) * S, q995=(WINDOW / S,) * S)
        self.manifest = Manifest(params, {}, stats, (), "test")

    @property
    def params(self):
        return self.manifest.params

    def frame_name(self, seq, i):
        return f"im_{seq}_{i:02d}"

    def read(self, seq, i):
        s = self.seqs.index(seq)
        rate = rate_image(s, self.size)
        rng = np.random.default_rng([s, i])
        spike = rng.binomial(WINDOW // self.S, rate, size=(self.S, self.size, self.size)).astype(np.uint8)
        sharp = None
        if self.has_sharp:
            gray = np.rint(255 * (0.1 + 0.6 * rate)).astype(np.uint8)[:, :, None]
            sharp = np.repeat(gray, 3, axis=2) if self.rgb_gt else gray
            sharp.flags.writeable = False
        return SimpleNamespace(blur=None, sharp=sharp, spike=spike, spike_begin=100, spike_end=100 + WINDOW,
                               sequence=seq, index=i)


class RealZooCache(SpikeOnlyCache):
    """The real Spike-Zoo REDS samples of ``SHARED_DATA/spike-reds`` as a spike-only cache: one
    1-frame sequence per ``.dat``, the ``window`` spike frames centred on frame 151 as ``window``
    one-frame bins (a raw 0/1 stack, 41 as Spike-Zoo's models read), the grayscale GT png."""

    def __init__(self, root, stems, window=41, splits=None):
        self.data_root, self.stems, self.window = root, list(stems), window
        self.begin = 151 - window // 2
        self.seqs = list(self.stems)
        self.n_frames, self.has_sharp = 1, True
        self._splits = dict(zip(self.seqs, splits or ["train"] * (len(self.seqs) - 1) + ["val"]))
        params = CacheParams(S=window, channels=window, repr="bins", repr_params={}, flipud=True, match="rgb",
                             hot_pixels="off", spike_dtype="uint8", rgb_shape=(250, 400, 1),
                             spike_shape=(window, 250, 400), has_blur=False)
        stats = SpikeStats(mean=(0.3,) * window, std=(0.45,) * window, q995=(1.0,) * window)
        self.manifest = Manifest(params, {}, stats, (), "test")

    def frame_name(self, seq, i):
        return seq

    def read(self, seq, i):
        import cv2

        from spikeprep import SpikeStream
        stream = SpikeStream(filepath=self.data_root / "spike" / f"{seq}.dat", spike_h=250, spike_w=400,
                             print_dat_detail=False)
        spike = stream.read(self.begin, self.begin + self.window).astype(np.uint8)
        sharp = cv2.imread(str(self.data_root / "gt" / f"{seq}.png"), cv2.IMREAD_GRAYSCALE)[:, :, None]
        return SimpleNamespace(blur=None, sharp=sharp, spike=spike, spike_begin=self.begin,
                               spike_end=self.begin + self.window, sequence=seq, index=i)
