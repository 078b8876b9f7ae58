"""``data.unpack_on_device``: bit-packed inputs shipped packed and unpacked on the device give the
default path's batches and losses exactly (RGB+spike, mixed data.inputs, spike-only), for crops
at any x offset and widths that are not a multiple of 8 (the last byte padded)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import spikeprep  # noqa: E402
from spikeprep import ConfigError  # noqa: E402
from tests.support.cache_datasets import make_dataset  # noqa: E402
from tests.support.tiny_train import TinyNet, small_cfg  # noqa: E402
from vrt_train import packed_inputs  # noqa: E402
from vrt_train.config import replace  # noqa: E402
from vrt_train.data import ShardDataset  # noqa: E402
from vrt_train.train import train  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """``raw`` first (20 px wide: 3 bytes, the last one half used), and ``bins`` + ``raw`` (24 px)."""
    root = tmp_path_factory.mktemp("unpack")
    narrow = make_dataset(root / "narrow", sequences=("a", "b"), frames=4, rgb_hw=(16, 20), spike_hw=(16, 20))
    wide = make_dataset(root / "wide", sequences=("a", "b"), frames=4, rgb_hw=(16, 24), spike_hw=(16, 24), seed=1)
    spikeprep.voxelize_dataset(narrow, root / "raw", repr=["raw:5"], val=["b"], progress=False)
    spikeprep.voxelize_dataset(wide, root / "mixed", repr=["bins:3", "raw:6"], val=["b"], progress=False)
    return root


def batch_pair(cache, n_items, **kw):
    """One collated batch of ``n_items`` items from the default and the packed datasets (seed 5)."""
    from torch.utils.data import default_collate
    plain = ShardDataset(str(cache), seed=5, **kw)
    packed = ShardDataset(str(cache), seed=5, unpack_on_device=True, **kw)
    keys = [(0, k % len(plain)) for k in range(n_items)]
    a = default_collate([plain[k] for k in keys])
    b = default_collate([packed[k] for k in keys])
    return a, b, packed.items.packed


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[key].dtype and torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


@pytest.mark.parametrize("name, kw", [
    ("raw", {"num_frames": 2, "gt_size": 8}),             # x0 anywhere in 0..12
    ("raw", {"num_frames": 2, "gt_size": 12}),            # width not a multiple of 8, padded byte
    ("raw", {"num_frames": 1, "gt_size": 12, "use_rgb": False, "gt_channels": 1}),
    ("mixed", {"num_frames": 2, "gt_size": 8, "inputs": ["raw", "bins"]}),
    ("mixed", {"num_frames": 2, "gt_size": 8, "inputs": ["bins", "raw"]}),
    ("mixed", {"num_frames": 2, "gt_size": 16, "use_rgb": False, "gt_channels": 3, "inputs": ["raw"]}),
])
def test_packed_batches_unpack_to_the_default_batches(caches, name, kw):
    a, b, layout = batch_pair(caches / name, 12, **kw)
    assert "L_packed" in b and b["L_packed"].dtype == torch.uint8
    assert set(b["packed_shift"].tolist()) != {0}  # crops start inside bytes too
    assert_same(a, packed_inputs.to_device(b, layout, "cpu"))


def _items(records, W):
    """`_CacheItems` stand-in over one frame's packed records ``[(name, array)]`` of width ``W``."""
    from types import SimpleNamespace
    sample = SimpleNamespace(blur=np.zeros((4, W, 3), np.uint8), sharp=np.zeros((4, W, 3), np.uint8),
                             spikes=dict(records), spike_begin=0, spike_end=5)
    cache = SimpleNamespace(read=lambda seq, i, names, unpack: sample)
    return SimpleNamespace(f=1, spike_dtype=np.dtype(np.uint8), use_rgb=True, gt_channels=3, cache=cache,
                           channels=sum(len(r) for _, r in records), _divisor=None)


def test_packed_crop_by_hand():
    """A 1-channel 1x20 record: bytes cover the crop from its shift, past the end is zero."""
    bits = np.array([[[1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1]]], np.uint8)
    record = np.packbits(bits, axis=-1, bitorder="little")  # (1, 1, 3)
    items, layout = _items([("raw", record)], 20), packed_inputs.PackedInputs([("raw", 1, True)])
    for x0, w in ((0, 8), (3, 8), (9, 11), (13, 7), (5, 15)):
        item = layout.read_clip(items, "s", [0], 0, x0, 1, w)
        assert item["L_packed"].shape[-1] == (w + 14) // 8 and int(item["packed_shift"]) == x0 % 8
        batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in item.items()}
        out = packed_inputs.to_device(batch, layout, "cpu")["L_spike"]
        assert out.tolist() == [[bits[:, :, x0:x0 + w].tolist()]]


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(1, 40), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_packed_crops_equal_numpy_crops(data, W, n_items, seed):
    """Any record width, crop x0/width/rows and a mix of packed and plain inputs, several items
    with different shifts in one batch: `to_device` gives the numpy crop of the 0/1 arrays."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2, (2, 4, W), dtype=np.uint8)
    plain = rng.integers(0, 9, (1, 4, W), dtype=np.uint8)
    records = [("raw", np.packbits(raw, axis=-1, bitorder="little")), ("bins", plain)]
    items = _items(records, W)
    layout = packed_inputs.PackedInputs([("bins", 1, False), ("raw", 2, True)])
    w = data.draw(st.integers(1, W))
    y0, h = data.draw(st.integers(0, 3)), 1
    crops = [data.draw(st.integers(0, W - w)) for _ in range(n_items)]
    from torch.utils.data import default_collate
    batch = default_collate([layout.read_clip(items, "s", [0], y0, x0, h, w) for x0 in crops])
    out = packed_inputs.to_device(batch, layout, "cpu")["L_spike"].numpy()
    full = np.concatenate([plain, raw])
    assert np.array_equal(out, np.stack([full[None, :, y0:y0 + h, x0:x0 + w] for x0 in crops]))


def test_refused_without_bit_packed_inputs(caches):
    with pytest.raises(ConfigError, match="no spike input is bit-packed") as err:
        ShardDataset(str(caches / "mixed"), num_frames=2, gt_size=8, unpack_on_device=True)
    assert "bins (array)" in str(err.value)
    with pytest.raises(ConfigError, match="data.use_spike false"):
        ShardDataset(str(caches / "raw"), num_frames=2, gt_size=8, unpack_on_device=True, use_spike=False)


def test_loader_workers_give_the_same_batches(caches):
    """The packed dataset pickles into DataLoader workers: 2 workers give the 0-worker batches."""
    from vrt_train.data import ClipSampler, make_loader
    ds = ShardDataset(str(caches / "mixed"), num_frames=2, gt_size=8, seed=5, inputs=["bins", "raw"],
                      unpack_on_device=True)
    batches = []
    for workers in (0, 2):
        loader = iter(make_loader(ds, 2, workers, ClipSampler(len(ds))))
        batches.append([packed_inputs.to_device(next(loader), ds.items.packed, "cpu") for _ in range(3)])
        del loader
    for a, b in zip(*batches):
        assert_same(a, b)


def _losses(out_dir) -> list[str]:
    return re.findall(r"iter \d+: loss ([0-9.e+-]+)", (out_dir / "train.log").read_text())


@pytest.mark.parametrize("data", [
    {"gt_size": 12, "inputs": ["raw"]},
    {"gt_size": 12, "num_frames": 1, "use_rgb": False, "gt_channels": 3, "num_frames_val": 1},
])
def test_training_gives_the_same_losses_and_weights(caches, tmp_path, single_thread, data):
    """A few steps with hflip/rot/gain/Poisson augmentation: identical losses and weights."""
    base = small_cfg(tmp_path / "a", None, total_iter=4, fix_iter=2, val_every=100, checkpoint_every=100)
    base = replace(base, data={"cache": str(caches / "raw"), "spike_norm": "window", **data,
                               "augment": {"hflip": True, "rot": True, "spike_gain": 0.2, "spike_poisson": True}},
                   val={"size_patch_testing": 0, "num_frame_testing": 0, "num_frame_overlapping": 0,
                        "tile_overlap": 0})
    packed = replace(base, out_dir=str(tmp_path / "b" / "run"), data={"unpack_on_device": True})
    results = [train(cfg, progress=False, model_fn=TinyNet) for cfg in (base, packed)]
    a, b = (_losses(tmp_path / d / "run") for d in ("a", "b"))
    assert len(a) == 4 and a == b
    # the key may change on resume: 2 steps unpacked by the reader, 2 more on the device
    half = replace(base, out_dir=str(tmp_path / "c" / "run"), train={"total_iter": 2, "checkpoint_every": 2})
    train(half, progress=False, model_fn=TinyNet)
    rest = replace(half, train={"total_iter": 4}, data={"unpack_on_device": True})
    results.append(train(rest, progress=False, model_fn=TinyNet, resume="auto"))
    ckpts = [torch.load(r["checkpoint"], map_location="cpu", weights_only=False)["model"] for r in results]
    for other in ckpts[1:]:
        assert all(torch.equal(ckpts[0][k], other[k]) for k in ckpts[0])
