"""--repr svrt-tfp equals S-VRT's TFP input (tests/replicas.svrt_tfp, transcribed from S-VRT's
voxelize_spikes_tfp + prepare_spike_tfp.py) within 1 grey level; today's tfp is not that."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep import voxelize
from spikeprep.errors import UsageError, VoxelError
from tests.support import replicas


def packed_of(spikes: np.ndarray) -> np.ndarray:
    return np.packbits(spikes[:, ::-1, :].reshape(len(spikes), -1), axis=1, bitorder="little")


@settings(max_examples=40, deadline=None)
@given(L=st.integers(41, 140), S=st.integers(1, 9), hw=st.integers(0, 20), p=st.floats(0.0, 1.0),
       seed=st.integers(0, 99))
def test_matches_svrt_within_one_grey_level(L, S, hw, p, seed):
    if L <= 2 * hw:
        return
    spikes = np.random.default_rng(seed).random((L, 8, 16)) < p
    ours = voxelize(packed_of(spikes), 8, 16, S, repr="svrt-tfp", half_window=hw)
    want = replicas.svrt_tfp(spikes.astype(np.uint8), S, hw)
    assert ours.dtype == np.uint8 and ours.shape == (S, 8, 16)
    assert np.abs(ours.astype(int) - want.astype(int)).max() <= 1


def test_hand_computed_windows_and_default_half_window():
    # L = 56, S = 4, hw = 20: segment centres 7, 21, 35, 49 clamp to 20, 21, 35, 36;
    # the last slice [16, 57) stops at 56 (40 frames, one shorter than the 41 of the others).
    # Frames 16..55 fire: channel 3 averages 40 of 40 (255), channel 2 [15, 56) 40 of 41 (248),
    # channel 1 [1, 42) 26 of 41 (161), channel 0 [0, 41) 25 of 41 (155).
    spikes = np.zeros((56, 8, 8), bool)
    spikes[16:] = True
    ours = voxelize(packed_of(spikes), 8, 8, 4, repr="svrt-tfp")
    assert [int(c.min()) for c in ours] == [int(c.max()) for c in ours] == [155, 161, 248, 255]
    spikes[:] = True
    assert (voxelize(packed_of(spikes), 8, 8, 4, repr="svrt-tfp") == 255).all()


def test_today_tfp_is_not_svrt_tfp():
    spikes = np.random.default_rng(0).random((56, 8, 8)) < 0.5
    svrt = voxelize(packed_of(spikes), 8, 8, 4, repr="svrt-tfp").astype(float)
    ours = voxelize(packed_of(spikes), 8, 8, 4, repr="tfp").astype(float) / 14 * 255  # 14-frame windows
    assert np.abs(svrt - ours).max() > 10


def test_errors():
    packed = packed_of(np.zeros((40, 8, 8), bool))
    with pytest.raises(VoxelError, match="L > 40"):
        voxelize(packed, 8, 8, 4, repr="svrt-tfp")
    with pytest.raises(UsageError, match="half_window"):
        voxelize(packed, 8, 8, 4, repr="svrt-tfp", half_window=-1)
