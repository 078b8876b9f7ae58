"""Hot-pixel rates, detection and repair on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from spikeprep.errors import UsageError
from spikeprep.inputs.dat import SpikeStream, write_dat
from spikeprep.representations.hot_pixels import detect_hot_pixels, firing_rate, repair_hot_pixels


def test_firing_rate_streams_in_chunks(tmp_path):
    rng = np.random.default_rng(0)
    spikes = rng.random((53, 6, 8)) < 0.2
    spikes[:, 1, 2] = True  # stuck pixel (image orientation)
    path = tmp_path / "s.dat"
    write_dat(path, spikes)
    stream = SpikeStream(filepath=path, spike_h=6, spike_w=8, print_dat_detail=False)
    for chunk in (1, 10, 53, 4096):
        rate = firing_rate(stream, chunk_frames=chunk)
        np.testing.assert_allclose(rate, spikes.mean(0))
    assert rate[1, 2] == 1.0
    with pytest.raises(UsageError):
        firing_rate(stream, chunk_frames=0)


def test_detect_hot_pixels():
    rate = np.full((5, 6), 0.1)
    rate[0, 0] = 0.6   # 6x median, above the floor: hot
    rate[2, 3] = 0.4   # 4x median: not hot with factor 5
    rate[4, 5] = 0.999  # stuck
    mask = detect_hot_pixels(rate, factor=5.0, floor=0.05)
    assert np.argwhere(mask).tolist() == [[0, 0], [4, 5]]
    dark = np.zeros((4, 4))
    dark[1, 1] = 0.01  # infinitely above a zero median, but below the floor
    assert not detect_hot_pixels(dark).any()
    dark[2, 2] = 0.2
    assert np.argwhere(detect_hot_pixels(dark)).tolist() == [[2, 2]]


def test_repair_uses_median_of_unmasked_neighbours():
    voxels = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    voxels[:, 1, 1] = 250
    mask = np.zeros((4, 5), bool)
    mask[1, 1] = mask[0, 0] = True
    mask[3, 3] = mask[3, 4] = mask[2, 3] = mask[2, 4] = True  # a hot corner cluster
    repaired = repair_hot_pixels(voxels, mask)
    assert repaired.dtype == np.uint8 and voxels[0, 1, 1] == 250  # input untouched
    for c in range(2):
        v = voxels[c]
        # (1,1): neighbours minus the hot (0,0): 7 values
        good = [v[0, 1], v[0, 2], v[1, 0], v[1, 2], v[2, 0], v[2, 1], v[2, 2]]
        assert repaired[c, 1, 1] == sorted(good)[3]
        # corner (0,0): neighbours (0,1), (1,0); (1,1) is hot -> lower middle of 2
        assert repaired[c, 0, 0] == min(v[0, 1], v[1, 0])
        # corner (3,4): only (2,4),(3,3),(2,3) around it, all hot -> left as is
        assert repaired[c, 3, 4] == v[3, 4]
        unmasked = ~mask
        assert (repaired[c][unmasked] == v[unmasked]).all()


def test_repair_shape_errors():
    with pytest.raises(UsageError):
        repair_hot_pixels(np.zeros((2, 3, 3)), np.zeros((3, 4), bool))
