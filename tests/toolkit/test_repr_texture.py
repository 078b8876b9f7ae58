"""--repr tfi (SpikeCV's TFI.spikes2frame on the stream around the window) and --repr tfp-ls
(S-SDM's cal_tfp long/short pair): against plain-numpy transcriptions of their rules, by hand,
the stream-end refusals, and through a cache build (window_of reads the context)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeprep
from spikeprep import voxelize
from spikeprep.cache.frames import FrameJob, window_of
from spikeprep.errors import UsageError, VoxelError
from spikeprep.representations.catalog import default_S, make_representation
from spikeprep.representations.context import StreamWindow
from tests.support.cache_datasets import make_dataset


def packed_of(spikes: np.ndarray) -> np.ndarray:
    return np.packbits(spikes[:, ::-1, :].reshape(len(spikes), -1), axis=1, bitorder="little")


def spikecv_tfi(spikes: np.ndarray, key_ts: int, half: int = 20) -> np.ndarray:
    """SpikeCV's ``TFI.spikes2frame`` restated with numpy, loops and quirks kept: float32
    ``255 / interval`` (SpikeCV then truncates to uint8). Raises where SpikeCV raises."""
    T = spikes.shape[0]
    if key_ts - half // 2 < 0 or key_ts + half // 2 > T:
        raise ValueError("stream too short for the half window")
    spikes = spikes.astype(np.float32)
    former = np.zeros(spikes.shape[1:], np.float32)
    latter = np.zeros(spikes.shape[1:], np.float32)
    start_t, end_t = max(key_ts - half + 1, 1), min(key_ts + half, T)
    for ii in range(key_ts, start_t - 1, -1):
        former += ii * spikes[ii] * (1 - np.sign(former))
    for ii in range(key_ts + 1, end_t + 1):
        latter += ii * spikes[ii] * (1 - np.sign(latter))  # spikes[T]: IndexError, as torch
    interval = latter - former
    interval[interval == 0] = 2 * half
    interval[latter == 0] = 2 * half
    interval[former == 0] = 2 * half
    return np.float32(255) / interval


def ssdm_cal_tfp(spike: np.ndarray, spike_idx: int, tfp_len: int) -> np.ndarray:
    """S-SDM's ``cal_tfp`` on one ``(T, H, W)`` float32 stream: the mean of the slice."""
    return spike[spike_idx - tfp_len // 2:spike_idx + tfp_len // 2 + 1].mean(0)


def in_stream(rep, spikes, begin, end):
    """What the cache hands tfi: the context frames of the whole stream, and the window's place."""
    lo, hi = rep.context(begin, end, len(spikes))
    return StreamWindow(packed_of(spikes)[lo:hi], lo, begin, end, len(spikes))


# -- tfi ----------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(T=st.integers(2, 70), data=st.data(), S=st.integers(1, 3), half=st.integers(1, 12),
       p=st.floats(0, 1), seed=st.integers(0, 99))
def test_tfi_equals_spikecv_on_the_stream(T, data, S, half, p, seed):
    begin = data.draw(st.integers(0, T - 1))
    end = data.draw(st.integers(begin + 1, T))
    spikes = (np.random.default_rng(seed).random((T, 4, 8)) < p).astype(np.uint8)
    rep = make_representation("tfi", S, half_window=half)
    keys = rep.keys(begin, end)
    try:
        want = [spikecv_tfi(spikes, int(k), half) for k in keys]
        assert end - begin >= S
    except (ValueError, IndexError, AssertionError):
        with pytest.raises(VoxelError):
            rep.compute(in_stream(rep, spikes, begin, end), 4, 8)
        return
    ours = rep.compute(in_stream(rep, spikes, begin, end), 4, 8)
    assert ours.dtype == np.float32 and ours.shape == (S, 4, 8)
    np.testing.assert_array_equal(ours, np.stack(want))
    np.testing.assert_array_equal(ours.astype(np.uint8), np.stack(want).astype(np.uint8))  # SpikeCV's output


def test_tfi_by_hand():
    # half_window 4, key 10: former searched in frames 7..10, latter in 11..14
    spikes = np.zeros((20, 2, 8), np.uint8)
    spikes[[8, 12], 0, 0] = 1       # interval 4: 255/4
    spikes[8, 0, 1] = 1             # nothing after: 255/8
    spikes[[10, 11], 0, 2] = 1      # interval 1: 255
    spikes[[6, 15], 0, 3] = 1       # both outside the search: 255/8
    rep = make_representation("tfi", 1, half_window=4)
    ours = rep.compute(StreamWindow(packed_of(spikes), 0, 7, 14, 20), 2, 8)[0]  # key (7 + 14)//2 = 10
    assert ours[0, :4].tolist() == [63.75, 31.875, 255.0, 31.875]
    # frame 0 is never seen: key 3 searches back to frame max(0, 1) = 1 only
    spikes = np.zeros((20, 2, 8), np.uint8)
    spikes[[0, 5], 0, 0] = 1
    spikes[[1, 5], 0, 1] = 1
    ours = rep.compute(StreamWindow(packed_of(spikes), 0, 3, 4, 20), 2, 8)[0]
    assert ours[0, :2].tolist() == [31.875, 63.75]


def test_tfi_refuses_where_spikecv_cannot():
    rep = make_representation("tfi", 1)  # half_window 20
    assert rep.context(0, 20, 100) == (0, 31)  # key 10 = 20 // 2: computable
    with pytest.raises(VoxelError, match=r"stream's start.*key_ts=9"):
        rep.context(0, 19, 100)
    assert rep.context(60, 100, 101) == (61, 101)  # key 80, reads frame 100 < 101
    with pytest.raises(VoxelError, match=r"stream's end.*key_ts=80.*100 frames.*IndexError"):
        rep.context(60, 100, 100)
    with pytest.raises(VoxelError, match="stream's end"):  # a plain window is its own stream
        voxelize(packed_of(np.zeros((40, 2, 8), np.uint8)), 2, 8, 1, repr="tfi")
    assert voxelize(packed_of(np.zeros((41, 2, 8), np.uint8)), 2, 8, 1, repr="tfi").max() == np.float32(255 / 40)
    with pytest.raises(VoxelError, match="fewer stream frames"):
        rep.compute(StreamWindow(packed_of(np.zeros((5, 2, 8), np.uint8)), 40, 40, 60, 100), 2, 8)
    with pytest.raises(UsageError, match="half_window"):
        make_representation("tfi", 1, half_window=0)


def test_tfi_through_a_cache(tmp_path):
    # 4 frames of 16-frame windows, 4 apart: [4, 20), [24, 40), [44, 60), [64, 80) of 84 frames
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=4, rgb_hw=(8, 16), spike_hw=(8, 16),
                        window=16, gap=4, rate=0.1)
    with pytest.raises(VoxelError, match=r"stream's end \(spike/a/spikes.dat, frame 3 of a\).*key_ts=72"):
        spikeprep.voxelize_dataset(data, tmp_path / "c20", repr="tfi", progress=False)
    cache = tmp_path / "c6"
    spikeprep.voxelize_dataset(data, cache, repr="tfi:2", repr_params={"half_window": 6}, progress=False)
    stream = spikeprep.SpikeStream(filepath=data / "spike" / "a" / "spikes.dat", spike_h=8, spike_w=16)
    spikes = stream.get_block_spikes(0, len(stream)).astype(np.uint8)
    with spikeprep.open_cache(cache) as c:
        assert (c.params.repr, c.params.S, c.params.spike_dtype) == ("tfi", 2, "float32")
        for i in range(4):
            s = c.read("a", i)
            keys = [s.spike_begin + 4, s.spike_begin + 12]  # bins of 8: midpoints 4 and 12
            np.testing.assert_array_equal(s.spike, np.stack([spikecv_tfi(spikes, k, 6) for k in keys]))
    assert spikeprep.verify_cache(cache, data_root=data).ok


def test_window_of_refuses_padded_windows_for_context(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=1, rgb_hw=(8, 16), spike_hw=(8, 16))
    stream = spikeprep.SpikeStream(filepath=data / "spike" / "a" / "spikes.dat", spike_h=8, spike_w=16)
    job = FrameJob("a", 0, "blur/a/000000.png", None, "spike/a/spikes.dat", 0, 10, pad_before=3)
    with pytest.raises(VoxelError, match="padded"):
        window_of(stream, job, make_representation("tfi", 1, half_window=2))
    bins = window_of(stream, job, make_representation("bins", 2))  # unchanged: padded array
    assert isinstance(bins, np.ndarray) and len(bins) == 13


# -- tfp-ls -------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(L=st.integers(1, 120), short=st.integers(1, 13), p=st.floats(0, 1), seed=st.integers(0, 99))
def test_tfp_ls_equals_ssdm_cal_tfp(L, short, p, seed):
    spikes = (np.random.default_rng(seed).random((L, 4, 8)) < p).astype(np.float32)
    packed = packed_of(spikes.astype(np.uint8))
    if L < 2 * (short // 2) + 1:
        with pytest.raises(VoxelError, match="tfp-ls"):
            voxelize(packed, 4, 8, 2, repr="tfp-ls", short=short)
        return
    ours = voxelize(packed, 4, 8, 2, repr="tfp-ls", short=short)
    assert ours.dtype == np.float32 and ours.shape == (2, 4, 8)
    np.testing.assert_array_equal(ours[0], ssdm_cal_tfp(spikes, L // 2, L))
    np.testing.assert_array_equal(ours[1], ssdm_cal_tfp(spikes, L // 2, short))


def test_tfp_ls_on_ssdm_files():
    # S-SDM's 137-frame files: the import window is [20, 117); train_deblur.py takes
    # cal_tfp(spike, 137 // 2, 97) (long) and cal_tfp(spike, 68, k) (short) of the whole file
    spikes = (np.random.default_rng(3).random((137, 4, 8)) < 0.3).astype(np.float32)
    ours = voxelize(packed_of(spikes[20:117].astype(np.uint8)), 4, 8, 2, repr="tfp-ls", short=9)
    np.testing.assert_array_equal(ours[0], ssdm_cal_tfp(spikes, 68, 97))
    np.testing.assert_array_equal(ours[1], ssdm_cal_tfp(spikes, 68, 9))


def test_tfp_ls_by_hand_and_protocol():
    spikes = np.zeros((10, 2, 8), np.uint8)
    spikes[:5, 0, 0] = 1      # long 5/10; short (7) frames [2, 9): 3 of 7
    spikes[5, 0, 1] = 1       # long 1/10; short 1/7
    ours = voxelize(packed_of(spikes), 2, 8, 2, repr="tfp-ls")
    assert ours[:, 0, 0].tolist() == [np.float32(0.5), np.float32(3 / 7)]
    assert ours[:, 0, 1].tolist() == [np.float32(0.1), np.float32(1 / 7)]
    rep = make_representation("tfp-ls", 2, short=8)  # even: 9 frames, as S-SDM slices
    assert rep.windows(20)[0].tolist() == [0, 6] and rep.windows(20)[1].tolist() == [20, 15]
    assert rep.to_dict() == {"repr": "tfp-ls", "S": 2, "short": 8} and default_S("tfp-ls") == 2
    assert rep.normalizer(10).tolist() == [1.0, 1.0] and rep.dtype_for(99) == np.float32
    with pytest.raises(UsageError, match="2 channels"):
        make_representation("tfp-ls", 3)
    with pytest.raises(UsageError, match="short"):
        make_representation("tfp-ls", 2, short=0)


def test_tfi_kernel_py_func_matches_jit():
    from spikeprep.representations.kernels import tfi_kernel

    spikes = (np.random.default_rng(1).random((30, 3, 8)) < 0.3).astype(np.uint8)
    flat = packed_of(spikes)[2:].reshape(-1)  # stream frames [2, 30)
    args = (flat, 3, 2, np.array([9, 15, 20]), 6, 3, 8, True)
    jit = tfi_kernel(*args, np.zeros((3, 3, 8), np.float32))
    np.testing.assert_array_equal(tfi_kernel.py_func(*args, np.zeros((3, 3, 8), np.float32)), jit)
    np.testing.assert_array_equal(jit, np.stack([spikecv_tfi(spikes, k, 6) for k in (9, 15, 20)]))
