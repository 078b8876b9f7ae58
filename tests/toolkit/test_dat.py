"""SpikeStream equals SpikeCV's algorithm bit for bit; errors are clear; windows cost O(window)."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep import SpikeStream, write_dat
from spikeprep.errors import DatError, UsageError, WindowError
from spikeprep.inputs.dat import count_frames, pack_frames
from tests.support.paths import REAL_STEMS
from tests.support.reference import spikecv_decode, spikecv_matrix


def open_stream(path, h, w, **kw):
    return SpikeStream(filepath=str(path), spike_h=h, spike_w=w, print_dat_detail=False, **kw)


def random_file(tmp_path: Path, n: int, h: int, w: int, seed: int = 0, p: float = 0.3) -> Path:
    """A file of random bytes: every bit pattern, independent of our writer."""
    path = tmp_path / f"r{n}_{h}x{w}_{seed}.dat"
    rng = np.random.default_rng(seed)
    (rng.random(n * h * w // 8 * 8) < p).reshape(-1, 8).dot(1 << np.arange(8)).astype(np.uint8).tofile(path)
    return path


geometries = st.sampled_from([(1, 8), (2, 4), (4, 6), (8, 8), (5, 16), (3, 40), (16, 24), (250, 400)[::-1]])


@settings(max_examples=40, deadline=None)
@given(geom=geometries, n=st.integers(1, 12), data=st.data(), flipud=st.booleans())
def test_block_equals_spikecv_on_random_streams(tmp_path_factory, geom, n, data, flipud):
    h, w = geom
    path = random_file(tmp_path_factory.mktemp("dat"), n, h, w, seed=n)
    raw = np.fromfile(path, np.uint8)
    begin = data.draw(st.integers(0, n - 1))
    length = data.draw(st.integers(1, n - begin))
    ours = open_stream(path, h, w).get_block_spikes(begin, length, flipud=flipud)
    theirs = spikecv_decode(raw, h, w, begin, length, flipud)
    assert ours.dtype == theirs.dtype == bool
    assert ours.shape == theirs.shape == (length, h, w)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("flipud", [True, False])
def test_whole_matrix_equals_spikecv(tmp_path, flipud):
    path = random_file(tmp_path, 7, 12, 20)
    ours = open_stream(path, 12, 20).get_spike_matrix(flipud=flipud)
    theirs = spikecv_matrix(np.fromfile(path, np.uint8), 12, 20, flipud)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape and np.array_equal(ours, theirs)


def test_the_shared_streams_are_the_ones_these_tests_read(shared_data):
    spike, gt = shared_data / "spike-reds" / "spike", shared_data / "spike-reds" / "gt"
    assert tuple(sorted(p.stem for p in spike.glob("*.dat"))) == REAL_STEMS
    assert tuple(sorted(p.stem for p in gt.glob("*.png"))) == REAL_STEMS


@pytest.mark.parametrize("stem", REAL_STEMS)
@pytest.mark.parametrize("begin,length", [(0, 5), (0, 1), (296, 5), (300, 1), (131, 40)])
@pytest.mark.parametrize("flipud", [True, False])
def test_real_streams_equal_spikecv_at_both_ends(shared_data, stem, begin, length, flipud):
    path = shared_data / "spike-reds" / "spike" / f"{stem}.dat"
    raw = np.fromfile(path, np.uint8)
    ours = open_stream(path, 250, 400).get_block_spikes(begin, length, flipud=flipud)
    assert np.array_equal(ours, spikecv_decode(raw, 250, 400, begin, length, flipud))


@pytest.mark.parametrize("stem", REAL_STEMS)
def test_real_stream_orientation_matches_ground_truth(shared_data, stem):
    path = shared_data / "spike-reds" / "spike" / f"{stem}.dat"
    stream = open_stream(path, 250, 400)
    assert len(stream) == 301
    counts = stream.get_block_spikes(131, 40).sum(axis=0).astype(float)
    gt = cv2.imread(str(shared_data / "spike-reds" / "gt" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE).astype(float)
    right = np.corrcoef(counts.ravel(), gt.ravel())[0, 1]
    flipped = np.corrcoef(counts[::-1].ravel(), gt.ravel())[0, 1]
    assert right > 0.9
    assert flipped < right - 0.5


def test_spikecv_raises_index_error_past_the_end_and_we_raise_window_error(tmp_path):
    path = random_file(tmp_path, 5, 8, 8)
    with pytest.raises(IndexError):
        spikecv_decode(np.fromfile(path, np.uint8), 8, 8, 3, 4)
    with pytest.raises(WindowError) as err:
        open_stream(path, 8, 8).get_block_spikes(3, 4)
    assert "frames [3, 7)" in str(err.value) and "<= 5" in str(err.value)


@pytest.mark.parametrize("begin,length", [(-3, 2), (-5, 4), (-1, 0)])
def test_negative_start_counts_from_the_end_like_spikecv(tmp_path, begin, length):
    path = random_file(tmp_path, 5, 8, 8)
    theirs = spikecv_decode(np.fromfile(path, np.uint8), 8, 8, begin, length)
    assert np.array_equal(open_stream(path, 8, 8).get_block_spikes(begin, length), theirs)


@pytest.mark.parametrize("begin,length", [(-2, 2), (-1, 3)])
def test_negative_start_reaching_the_end_fails_like_spikecv(tmp_path, begin, length):
    path = random_file(tmp_path, 5, 8, 8)
    with pytest.raises(IndexError):
        spikecv_decode(np.fromfile(path, np.uint8), 8, 8, begin, length)
    with pytest.raises(WindowError):
        open_stream(path, 8, 8).get_block_spikes(begin, length)


def test_pad_zero_pads_past_the_end(tmp_path):
    path = random_file(tmp_path, 5, 8, 8)
    stream = open_stream(path, 8, 8)
    padded = stream.get_block_spikes(3, 4, pad=True)
    assert padded.shape == (4, 8, 8)
    assert np.array_equal(padded[:2], stream.get_block_spikes(3, 2))
    assert not padded[2:].any()


def test_empty_block_like_spikecv(tmp_path):
    path = random_file(tmp_path, 3, 8, 8)
    block = open_stream(path, 8, 8).get_block_spikes(1, 0)
    assert block.shape == (0, 8, 8) and block.dtype == bool


def test_missing_file(tmp_path):
    with pytest.raises(DatError, match="not found"):
        open_stream(tmp_path / "nope.dat", 8, 8)


def test_extension_appended_like_spikecv(tmp_path):
    path = random_file(tmp_path, 2, 8, 8)
    assert len(open_stream(str(path)[:-4], 8, 8)) == 2


def test_size_not_a_multiple_names_everything(tmp_path):
    path = tmp_path / "cut.dat"
    path.write_bytes(bytes(100 * 3 + 7))  # 10x80 frames are 100 bytes
    with pytest.raises(DatError) as err:
        open_stream(path, 10, 80)
    text = str(err.value)
    for piece in ("307 bytes", "3 frames of 100 bytes", "7 leftover bytes", "wrong H/W", str(path)):
        assert piece in text
    assert len(open_stream(path, 10, 80, allow_partial=True)) == 3


def test_pixel_count_not_multiple_of_8(tmp_path):
    path = tmp_path / "odd.dat"
    path.write_bytes(bytes(30))
    with pytest.raises(DatError, match="multiple of 8"):
        open_stream(path, 3, 5)


@settings(max_examples=25, deadline=None)
@given(geom=geometries, n=st.integers(1, 6), seed=st.integers(0, 99), flipud=st.booleans(),
       as_uint8=st.booleans())
def test_write_dat_round_trips(tmp_path_factory, geom, n, seed, flipud, as_uint8):
    h, w = geom
    spikes = np.random.default_rng(seed).random((n, h, w)) < 0.4
    path = tmp_path_factory.mktemp("w") / "s.dat"
    assert write_dat(path, spikes.astype(np.uint8) if as_uint8 else spikes, flipud=flipud) == n
    assert path.stat().st_size == n * h * w // 8
    assert np.array_equal(open_stream(path, h, w).get_spike_matrix(flipud=flipud), spikes)
    raw = np.fromfile(path, np.uint8)
    assert np.array_equal(spikecv_matrix(raw, h, w, flipud), spikes)


def test_write_dat_streams_chunks_and_rejects_bad_input(tmp_path):
    a, b = np.ones((2, 8, 8), bool), np.zeros((3, 8, 8), bool)
    assert write_dat(tmp_path / "c.dat", iter([a, b])) == 5
    assert count_frames(tmp_path / "c.dat", 8, 8) == 5
    with pytest.raises(UsageError, match="binary"):
        write_dat(tmp_path / "bad.dat", np.full((1, 8, 8), 2, np.uint8))
    with pytest.raises(UsageError, match="wrong shape"):
        write_dat(tmp_path / "bad.dat", iter([a, np.zeros((1, 8, 16), bool)]))
    assert not (tmp_path / "bad.dat").exists() and not list(tmp_path.glob("*.partial"))


def test_bit_layout_by_hand(tmp_path):
    # frame 2x8, flipud: image row 0 is the second stored row; pixel 8j+k is bit k of byte j
    spikes = np.zeros((1, 2, 8), bool)
    spikes[0, 0, 0] = True   # image top-left -> stored row 1 -> byte 1, bit 0
    spikes[0, 1, 7] = True   # image bottom-right -> stored row 0 -> byte 0, bit 7
    assert pack_frames(spikes).tolist() == [[0b1000_0000, 0b0000_0001]]
    assert pack_frames(spikes, flipud=False).tolist() == [[0b0000_0001, 0b1000_0000]]


def test_packed_is_a_zero_copy_view(tmp_path):
    path = random_file(tmp_path, 6, 8, 16)
    stream = open_stream(path, 8, 16)
    view = stream.packed(2, 5)
    assert view.shape == (3, 16) and view.dtype == np.uint8
    assert np.shares_memory(view, stream.packed(0, 6))
    assert np.array_equal(view.ravel(), np.fromfile(path, np.uint8)[2 * 16:5 * 16])
    with pytest.raises(WindowError):
        stream.packed(4, 7)
    with pytest.raises(WindowError):
        stream.packed(-1, 2)


def test_window_costs_o_window_not_o_file(tmp_path):
    path = tmp_path / "big.dat"
    frame = 250 * 400 // 8
    with open(path, "wb") as f:
        f.truncate(2000 * frame)  # 25 MB of zeros, sparse
    stream = open_stream(path, 250, 400)
    tracemalloc.start()
    stream.get_block_spikes(1000, 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    window_bools = 10 * 250 * 400
    assert peak < 3 * window_bools  # a couple of copies of the 1 MB window, not the 25 MB file


def test_pickles_without_the_map(tmp_path):
    path = random_file(tmp_path, 4, 8, 8)
    stream = open_stream(path, 8, 8)
    stream.packed(0, 4)
    clone = pickle.loads(pickle.dumps(stream))
    assert np.array_equal(clone.get_spike_matrix(), stream.get_spike_matrix())


def test_with_head_drops_the_header_columns(tmp_path):
    path = random_file(tmp_path, 2, 2, 416)
    stream = open_stream(path, 2, 416)
    full = stream.get_block_spikes(0, 2)
    assert np.array_equal(stream.get_block_spikes(0, 2, with_head=True), full[:, :, :400])
    with pytest.raises(UsageError):
        open_stream(random_file(tmp_path, 1, 8, 8), 8, 8).get_block_spikes(0, 1, with_head=True)


def test_print_dat_detail(tmp_path, capsys):
    path = random_file(tmp_path, 2, 8, 8)
    SpikeStream(filepath=str(path), spike_h=8, spike_w=8).get_block_spikes(0, 1)
    assert "8x8" in capsys.readouterr().out
