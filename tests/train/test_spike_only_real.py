"""The spike-only input on the real Spike-Zoo REDS samples (SHARED_DATA/spike-reds): the TFP
guide that replaces RGB is an image of the GT's scene, in the GT's orientation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.support.paths import REAL_STEMS, SHARED_DATA  # noqa: E402
from tests.support.spike_only import RealZooCache  # noqa: E402
from vrt_train.augment import SpikeNorm, assemble  # noqa: E402
from vrt_train.data import ValDataset  # noqa: E402

ROOT = SHARED_DATA / "spike-reds"
pytestmark = pytest.mark.skipif(not (ROOT / "spike").is_dir(), reason="no real spike data beside the checkout")


def test_guide_of_real_spikes_is_the_gt_scene():
    cache = RealZooCache(ROOT, REAL_STEMS)
    ds = ValDataset(cache, None, True, split=None, use_rgb=False, gt_channels=1)
    for i in range(len(ds)):
        item = ds[i]
        batch = {k: (v.unsqueeze(0) if torch.is_tensor(v) else [v]) for k, v in item.items()}
        L, H = assemble(batch, "cpu", SpikeNorm("window"), None)
        assert L.shape == (1, 1, 3 + 41, 250, 400) and H.shape == (1, 1, 1, 250, 400)
        guide, gt = L[0, 0, 0].numpy(), H[0, 0, 0].numpy()
        # independent: the mean of the 41 raw 0/1 frames read here
        frames = cache.read(item["seq"], 0).spike.astype(np.float64)
        np.testing.assert_allclose(guide, frames.mean(axis=0), atol=1e-6)
        r = np.corrcoef(guide.ravel(), gt.ravel())[0, 1]
        flipped = np.corrcoef(guide[::-1].ravel(), gt.ravel())[0, 1]
        assert r > 0.9 and flipped < r - 0.3, (item["seq"], r, flipped)
