"""SpikeCV's sps10 layout (``with_head``): rows of 416 pixels whose columns 400..415 are the
camera's head. Read bit for bit as SpikeCV's ``get_block_spikes(with_head=True)`` reads it
(restated here in plain numpy), through config.yaml, build-sync and sync.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeprep
from spikeprep.errors import ConfigError, DatError, UsageError
from spikeprep.inputs.dat import SpikeStream


def spikecv_with_head(raw: np.ndarray, height: int, width: int, begin: int, length: int,
                      flipud: bool = True) -> np.ndarray:
    """SpikeCV's ``get_block_spikes(begin, length, flipud, with_head=True)``: LSB-first bits of
    the block's bytes (``byte & (1 << p % 8)``), columns 400..415 deleted, then flipped."""
    frame_pixels = height * width
    pixel = np.arange(length * frame_pixels).reshape(length, height, width)
    mask = np.left_shift(1, pixel % 8)
    block = raw[begin * frame_pixels // 8:(begin + length) * frame_pixels // 8]
    spikes = np.bitwise_and(block[pixel // 8], mask) == mask
    spikes = np.delete(spikes, np.arange(400, 416), 2)
    return spikes[:, ::-1, :] if flipud else spikes


def sps10_file(path, height=6, frames=5, width=416, seed=0):
    raw = np.random.default_rng(seed).integers(0, 256, frames * height * width // 8, dtype=np.uint8)
    path.write_bytes(raw.tobytes())
    return raw


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 4), st.booleans(),
       st.sampled_from([416, 424, 480]), st.integers(0, 2**32 - 1))
def test_strip_head_reads_what_spikecv_reads(tmp_path_factory, height, frames, begin, flipud, width, seed):
    path = tmp_path_factory.mktemp("sps10") / "x.dat"
    raw = sps10_file(path, height, frames, width, seed)
    begin = min(begin, frames - 1)
    length = frames - begin
    expected = spikecv_with_head(raw, height, width, begin, length, flipud)
    stream = SpikeStream(filepath=path, spike_h=height, spike_w=width, strip_head=True, print_dat_detail=False)
    assert (stream.height, stream.width) == (height, width - 16)
    assert np.array_equal(stream.read(begin, frames, flipud), expected)
    assert np.array_equal(stream.get_block_spikes(begin, length, flipud), expected)
    plain = SpikeStream(filepath=path, spike_h=height, spike_w=width, print_dat_detail=False)
    assert np.array_equal(plain.get_block_spikes(begin, length, flipud, with_head=True), expected)
    # the packed frames are valid frames of the image width: unpacking them gives the same bits
    packed = stream.packed(begin, frames)
    assert packed.shape == (length, height * (width - 16) // 8)
    bits = np.unpackbits(packed, axis=1, bitorder="little").reshape(length, height, width - 16)
    assert np.array_equal(bits[:, ::-1] if flipud else bits, expected)


def test_strip_head_refusals(tmp_path):
    sps10_file(tmp_path / "x.dat", width=400)
    with pytest.raises(DatError, match="with_head needs rows of at least 416 pixels"):
        SpikeStream(filepath=tmp_path / "x.dat", spike_h=6, spike_w=400, strip_head=True)
    sps10_file(tmp_path / "y.dat")
    stream = SpikeStream(filepath=tmp_path / "y.dat", spike_h=6, spike_w=416, strip_head=True,
                         print_dat_detail=False)
    with pytest.raises(UsageError, match="already stripped"):
        stream.get_block_spikes(0, 1, with_head=True)


def test_config_with_head(tmp_path):
    from spikeprep.inputs.sequence_config import parse_config

    config = parse_config({"spike_h": 250, "spike_w": 416, "with_head": True})
    assert (config.with_head, config.image_width) == (True, 400)
    assert config.to_yaml_dict()["with_head"] is True
    with pytest.raises(ConfigError, match="with_head needs rows of at least 416"):
        parse_config({"spike_h": 250, "spike_w": 400, "with_head": True}, tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match="with_head must be true or false"):
        parse_config({"spike_h": 250, "spike_w": 416, "with_head": "yes"})


def sps10_data_root(tmp_path, seed: int):
    """A DATA_ROOT of an sps10 camera: 3 blur frames 8x400, a 416-wide stream of 60 frames."""
    import cv2

    root = tmp_path / "data"
    (root / "blur/seq").mkdir(parents=True)
    (root / "spike/seq").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / f"blur/seq/{i:06d}.png"), np.full((8, 400, 3), 100 + i, np.uint8))
    raw = sps10_file(root / "spike/seq/spikes.dat", height=8, frames=3 * 20, seed=seed)
    (root / "spike/seq/config.yaml").write_text(
        "spike_h: 8\nspike_w: 416\nflipud: true\nwith_head: true\n"
        "spike_rate: 20000\nframe_rate: 1000\nexposure: 1.0\n")
    spikeprep.build_sync(root)
    return root, raw


def test_build_sync_records_the_head_and_readers_strip_it(tmp_path):
    """A DATA_ROOT of an sps10 camera: sync.json keeps the file's row width (416) and says
    ``with_head``; every reader then sees 400-wide frames, equal to SpikeCV's with_head read."""
    root, raw = sps10_data_root(tmp_path, seed=3)
    written = json.loads((root / "spike/seq/sync.json").read_text())
    assert written["spike"] == {"height": 8, "width": 416, "flipud": True, "with_head": True}
    sync = spikeprep.load_sync(root / "spike/seq/sync.json")
    assert (sync.height, sync.width, sync.file_width, sync.with_head) == (8, 400, 416, True)
    frame = sync.frames[1]
    stream = sync.open_stream(root, frame.spike_file)
    expected = spikecv_with_head(raw, 8, 416, frame.spike_begin, frame.spike_end - frame.spike_begin)
    assert np.array_equal(stream.read(frame.spike_begin, frame.spike_end), expected)


def test_voxelize_and_verify_an_sps10_data_root(tmp_path):
    """The cache of an sps10 DATA_ROOT holds 400-wide voxels equal to counts of SpikeCV's
    with_head read, and verify --data re-derives them."""
    root, raw = sps10_data_root(tmp_path, seed=4)
    spikeprep.voxelize_dataset(root, tmp_path / "cache", S=1, repr="count", progress=False)
    cache = spikeprep.open_cache(tmp_path / "cache")
    sync = spikeprep.load_sync(root / "spike/seq/sync.json")
    for i, frame in enumerate(sync.frames):
        expected = spikecv_with_head(raw, 8, 416, frame.spike_begin, frame.spike_end - frame.spike_begin).sum(0)
        assert np.array_equal(np.asarray(cache.read("seq", i).spike)[0], expected)
    assert spikeprep.verify_cache(tmp_path / "cache", data_root=root).ok
