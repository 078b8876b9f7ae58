"""--repr raw[:N] (Spike-Zoo's centred N frames, bit-packed) and --repr svrt-encoding25 (S-VRT's
SCFlow input): against plain-numpy restatements of the rules, by hand, hypothesis over window
lengths, every error path, and end to end on the real SpikeCV streams."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeprep
from spikeprep import voxelize
from spikeprep.cache.records import decode_record, stored_shape
from spikeprep.errors import UsageError, VoxelError
from spikeprep.representations.catalog import default_S, make_representation, split_repr
from spikeprep.sync import FrameWindow, SyncFile, save_sync
from tests.support.cache_datasets import all_records, make_dataset
from tests.support.reference import spikecv_decode


def packed_of(spikes: np.ndarray) -> np.ndarray:
    """``(L, H, W)`` image-orientation 0/1 -> ``(L, H*W/8)`` as on disk (rows bottom-up, LSB first)."""
    return np.packbits(spikes[:, ::-1, :].reshape(len(spikes), -1), axis=1, bitorder="little")


def spikezoo_centre(spikes: np.ndarray, n: int) -> np.ndarray:
    """Spike-Zoo's rule: of an L-frame window keep ``[L//2 - n//2, L//2 - n//2 + n)``."""
    start = len(spikes) // 2 - n // 2
    return spikes[start:start + n]


def svrt_encoding25(spikes: np.ndarray, subframes: int, short_policy: str = "pad_edge") -> np.ndarray:
    """S-VRT's prepare_scflow_encoding25.py, restated: ``(S, 25, H, W)`` (S = 1: ``(25, H, W)``)."""
    t = len(spikes)
    if subframes == 1:
        if t >= 25:
            st_ = (t - 25) // 2
            return spikes[st_:st_ + 25].astype(np.float32)
        if short_policy == "strict":
            raise ValueError("T < 25 under strict")
        left = (25 - t) // 2
        mode = "edge" if short_policy == "pad_edge" else "constant"
        return np.pad(spikes, ((left, 25 - t - left), (0, 0), (0, 0)), mode=mode).astype(np.float32)
    if t < 25:
        raise ValueError("too short")
    lo, hi = 12, t - 12 - 1
    centres = [int(round(c)) for c in np.linspace(lo, hi, subframes)]
    return np.stack([spikes[c - 12:c + 13] for c in centres]).astype(np.float32)


# -- raw ----------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(L=st.integers(1, 64), data=st.data(), p=st.floats(0, 1), seed=st.integers(0, 99))
def test_raw_keeps_spikezoo_centred_frames(L, data, p, seed):
    n = data.draw(st.integers(0, L + 3))
    spikes = (np.random.default_rng(seed).random((L, 4, 16)) < p).astype(np.uint8)
    packed = packed_of(spikes)
    if n > L:
        with pytest.raises(VoxelError, match=f"raw:{n}"):
            voxelize(packed, 4, 16, n, repr="raw")
        return
    ours = voxelize(packed, 4, 16, n, repr="raw")
    want = spikes if n == 0 else spikezoo_centre(spikes, n)  # S=0: the whole window
    assert ours.dtype == np.uint8 and ours.shape == want.shape
    np.testing.assert_array_equal(ours, want)
    unflipped = voxelize(packed, 4, 16, n, repr="raw", flipud=False)
    np.testing.assert_array_equal(unflipped, want[:, ::-1])


def test_raw_by_hand():
    # L = 10, N = 4: frames [5 - 2, 5 + 2) = 3..6; L = 9, N = 3: [4 - 1, 4 + 2) = 3..5
    spikes = np.zeros((10, 2, 8), np.uint8)
    for f in range(10):
        spikes[f, 0, f % 8] = 1
    ours = voxelize(packed_of(spikes), 2, 8, 4, repr="raw")
    assert [int(np.argmax(c[0])) for c in ours] == [3, 4, 5, 6]
    ours = voxelize(packed_of(spikes[:9]), 2, 8, 3, repr="raw")
    assert [int(np.argmax(c[0])) for c in ours] == [3, 4, 5]


def test_raw_protocol():
    rep = make_representation("raw", 41)
    assert rep.storage == "bitpacked" and type(rep).storage == "bitpacked"
    assert rep.channels == rep.min_frames == 41 and rep.dtype_for(10**6) == np.uint8
    assert rep.to_dict() == {"repr": "raw", "S": 41}
    assert rep.normalizer(97).tolist() == [1.0] * 41
    assert default_S("raw") == 0 and make_representation("raw", 0).S == 0
    assert split_repr("raw:41") == ("raw", 41) and split_repr("raw", 5) == ("raw", 5)
    assert split_repr("bins:8", 8) == ("bins", 8)
    with pytest.raises(UsageError, match="disagree"):
        split_repr("raw:41", 8)
    with pytest.raises(UsageError, match="whole number"):
        split_repr("raw:x")
    with pytest.raises(UsageError, match="positive integer"):
        make_representation("bins", 0)
    with pytest.raises(UsageError, match="positive integer"):
        make_representation("raw", -1)


def test_raw_cache_errors(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=3, rgb_hw=(8, 16), spike_hw=(8, 16),
                        window=12, gap=2)
    with pytest.raises(VoxelError, match=r"raw:13.*12 frames.*raw:N with N <= 12"):
        spikeprep.voxelize_dataset(data, tmp_path / "c0", repr="raw:13", progress=False)
    sync_path = data / "spike" / "a" / "sync.json"
    raw = json.loads(sync_path.read_text())
    raw["frames"][1]["spike_end"] -= 3  # windows of 12, 9, 12 frames
    sync_path.write_text(json.dumps(raw))
    with pytest.raises(VoxelError, match=r"window lengths 9, 12.*--repr raw:N"):
        spikeprep.voxelize_dataset(data, tmp_path / "c1", repr="raw", progress=False)
    summary = spikeprep.voxelize_dataset(data, tmp_path / "c2", repr="raw", S=9, progress=False)
    assert summary is not None and spikeprep.open_cache(tmp_path / "c2").params.S == 9


def test_raw_cache_round_trip_and_verify(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=3, rgb_hw=(8, 20), spike_hw=(8, 20),
                        window=10, gap=3)
    cache = tmp_path / "cache"
    spikeprep.voxelize_dataset(data, cache, repr="raw", progress=False)  # S resolved: 10
    params = spikeprep.open_cache(cache).params
    assert (params.repr, params.S, params.storage, params.spike_shape) == ("raw", 10, "bitpacked", (10, 8, 20))
    records = all_records(cache)
    header, payload = decode_record(next(v for k, v in records.items() if k.endswith("a/000001/spike")))
    assert header.shape == stored_shape((10, 8, 20), "bitpacked") == (10, 8, 3)
    with spikeprep.open_cache(cache) as c:
        s = c.read("a", 1)
        stream = spikeprep.SpikeStream(filepath=data / "spike" / "a" / "spikes.dat", spike_h=8, spike_w=20)
        np.testing.assert_array_equal(s.spike, stream.get_block_spikes(s.spike_begin, 10).astype(np.uint8))
    assert spikeprep.verify_cache(cache, data_root=data).ok


# -- end to end on the real streams --------------------------------------------------------------

def real_root(tmp_path, shared_data, windows):
    """DATA_ROOT whose sequence ``r`` is a real 250x400 stream (a symlink) with the given windows."""
    root = tmp_path / "data"
    (root / "spike" / "r").mkdir(parents=True)
    (root / "blur" / "r").mkdir(parents=True)
    os.symlink(shared_data / "spike-reds" / "spike" / "200_part1_key_id151.dat", root / "spike" / "r" / "s.dat")
    frames = []
    for i, (begin, end) in enumerate(windows):
        cv2.imwrite(str(root / "blur" / "r" / f"{i:06d}.png"), np.full((250, 400, 3), 7 * i, np.uint8))
        frames.append(FrameWindow(f"blur/r/{i:06d}.png", None, "spike/r/s.dat", begin, end))
    save_sync(root / "spike" / "r" / "sync.json", SyncFile("r", 250, 400, True, tuple(frames)))
    return root


def test_real_raw_bits_equal_spikecv(tmp_path, shared_data):
    windows = [(0, 41), (131, 172), (260, 301)]
    data = real_root(tmp_path, shared_data, windows)
    raw = np.fromfile(data / "spike" / "r" / "s.dat", np.uint8)
    for spec, n in (("raw", 41), ("raw:21", 21)):
        cache = tmp_path / spec.replace(":", "_")
        spikeprep.voxelize_dataset(data, cache, repr=spec, progress=False)
        with spikeprep.open_cache(cache) as c:
            for i, (begin, end) in enumerate(windows):
                s = c.read("r", i)
                first = begin + (end - begin) // 2 - n // 2
                want = spikecv_decode(raw, 250, 400, first, n)
                assert s.spike.shape == (n, 250, 400) and (s.spike_begin, s.spike_end) == (begin, end)
                np.testing.assert_array_equal(s.spike, want.astype(np.uint8))
        assert spikeprep.verify_cache(cache, data_root=data).ok


# -- svrt-encoding25 ----------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(L=st.integers(1, 90), S=st.integers(1, 6), policy=st.sampled_from(["pad_edge", "pad_zero", "strict"]),
       p=st.floats(0, 1), seed=st.integers(0, 99))
def test_encoding25_matches_svrt(L, S, policy, p, seed):
    spikes = (np.random.default_rng(seed).random((L, 4, 8)) < p).astype(np.uint8)
    try:
        want = svrt_encoding25(spikes, S, policy)
    except ValueError:
        with pytest.raises(VoxelError, match="svrt-encoding25"):
            voxelize(packed_of(spikes), 4, 8, S, repr="svrt-encoding25", short_policy=policy)
        return
    ours = voxelize(packed_of(spikes), 4, 8, S, repr="svrt-encoding25", short_policy=policy)
    assert ours.dtype == np.uint8 and ours.shape == (25 * S, 4, 8)
    np.testing.assert_array_equal(ours, want.reshape(25 * S, 4, 8))


def test_encoding25_by_hand_and_protocol():
    # L = 100, S = 4: linspace(12, 87, 4) = 12, 37, 62, 87 -> windows start at 0, 25, 50, 75
    # L = 50, S = 4: linspace(12, 37, 4) = 12, 20.33, 28.67, 37 -> 12, 20, 29, 37
    rep = make_representation("svrt-encoding25", 4)
    assert [s + 12 for s in rep.starts(100)] == [12, 37, 62, 87]
    assert [s + 12 for s in rep.starts(50)] == [12, 20, 29, 37]
    # L = 62, S = 3: linspace(12, 49, 3) = 12, 30.5, 49: 30.5 rounds half to even -> 30
    assert [s + 12 for s in make_representation("svrt-encoding25", 3).starts(62)] == [12, 30, 49]
    assert rep.storage == "bitpacked" and rep.channels == 100 and default_S("svrt-encoding25") == 4
    assert rep.to_dict() == {"repr": "svrt-encoding25", "S": 4, "short_policy": "pad_edge"}
    with pytest.raises(UsageError, match="short_policy"):
        make_representation("svrt-encoding25", 1, short_policy="pad")
    with pytest.raises(VoxelError, match="L >= 25"):
        voxelize(packed_of(np.zeros((24, 4, 8), np.uint8)), 4, 8, 2, repr="svrt-encoding25")


def test_cli_repr_name_colon_s_and_error_without_traceback(tmp_path):
    from click.testing import CliRunner

    from spikeprep.cli import main

    data = make_dataset(tmp_path / "data", sequences=("a",), frames=2, rgb_hw=(8, 16), spike_hw=(8, 16),
                        window=12, gap=2)
    done = CliRunner().invoke(main, ["voxelize", str(data), str(tmp_path / "c"), "--repr", "raw:5"])
    assert done.exit_code == 0, done.output
    params = spikeprep.open_cache(tmp_path / "c").params
    assert (params.repr, params.S, params.channels, params.storage) == ("raw", 5, 5, "bitpacked")
    done = CliRunner().invoke(main, ["voxelize", str(data), str(tmp_path / "d"), "--repr", "raw:20"])
    assert done.exit_code == 1 and "raw:N with N <= 12" in done.output and "Traceback" not in done.output
