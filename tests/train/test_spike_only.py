"""Spike-only restoration (data.use_rgb false): config rules, the data layer (grayscale and RGB
targets, no blur, no GT), the TFP guide in `assemble`, `SpikeOnlyVRT` (1-frame clips, one
output channel) and the RGB path left as it was."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikeprep import ConfigError  # noqa: E402
from tests.support.fakes import FakeCache  # noqa: E402
from tests.support.spike_only import WINDOW, SpikeOnlyCache  # noqa: E402
from tests.support.tiny_vrt import TINY, build, randomize_  # noqa: E402
from vrt_train.augment import SpikeNorm, assemble  # noqa: E402
from vrt_train.config import config_from_dict  # noqa: E402
from vrt_train.data import ShardDataset, ValDataset  # noqa: E402
from vrt_train.spike_only import gt_channels  # noqa: E402


def cfg(**data):
    return config_from_dict({"data": {"use_rgb": False, "num_frames": 1, **data}})


# -- config --------------------------------------------------------------------------------------

def test_defaults_keep_the_rgb_path():
    plain = config_from_dict({})
    assert plain.data.use_rgb is True and plain.data.gt_channels is None and gt_channels(plain) == 3
    assert gt_channels(cfg()) == 1 and gt_channels(cfg(gt_channels=3)) == 3


@pytest.mark.parametrize("data, key", [
    ({"use_spike": False}, "data.use_spike"),
    ({"gt_channels": 2}, "data.gt_channels"),
    ({"augment": {"brightness": 0.1}}, "data.augment.brightness"),
    ({"num_frames": 0}, "data.num_frames"),
])
def test_spike_only_config_errors(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfg(**data)


def test_rgb_configs_keep_their_rules():
    with pytest.raises(ConfigError, match=r"data\.num_frames"):
        config_from_dict({"data": {"num_frames": 1}})  # 1-frame clips: spike-only only
    with pytest.raises(ConfigError, match=r"data\.gt_channels"):
        config_from_dict({"data": {"gt_channels": 1}})  # the RGB residual needs 3 channels
    with pytest.raises(ConfigError, match=r"netG\.pa_frames"):
        config_from_dict({"data": {"use_rgb": False}, "netG": {"pa_frames": 0}})


# -- data ----------------------------------------------------------------------------------------

def test_rgb_cache_read_spike_only_gives_luma_targets_and_no_rgb():
    cache = FakeCache(size=32, S=4)
    ds = ShardDataset(cache, 3, 16, seed=1, use_rgb=False, gt_channels=1)
    item = ds[5]
    assert item["L_rgb"].shape == (3, 16, 16, 0) and item["H"].shape == (3, 16, 16, 1)
    rgb = ShardDataset(cache, 3, 16, seed=1)[5]  # the same clip and crop with RGB
    sharp = rgb["H"].numpy().astype(np.float64)
    luma = np.clip(np.rint(0.299 * sharp[..., 0] + 0.587 * sharp[..., 1] + 0.114 * sharp[..., 2]), 0, 255)
    assert np.array_equal(item["H"].numpy()[..., 0], luma.astype(np.uint8))
    assert torch.equal(item["L_spike"], rgb["L_spike"]) and torch.equal(item["window"], rgb["window"])
    three = ShardDataset(cache, 3, 16, seed=1, use_rgb=False, gt_channels=3)[5]
    assert torch.equal(three["H"], rgb["H"])


def test_spike_only_cache_single_frames_and_gray_records():
    cache = SpikeOnlyCache(n_seq=3, size=24)
    ds = ShardDataset(cache, 1, 16, seed=0, use_rgb=False, gt_channels=1)
    assert len(ds) == 2 and ds.num_frames == 1  # one clip per (1-frame) training sequence
    item = ds[0]
    assert item["H"].shape == (1, 16, 16, 1) and item["L_spike"].shape == (1, 4, 16, 16)
    three = ValDataset(cache, None, True, split=None, use_rgb=False, gt_channels=3)[0]
    assert three["H"].shape == (1, 24, 24, 3)
    assert torch.equal(three["H"][..., 0], three["H"][..., 2])  # gray repeated
    with pytest.raises(ConfigError, match="at least 2 frames"):
        ShardDataset(FakeCache(size=32), 1, 16)  # RGB clips still need 2 frames


def test_spike_only_cache_refuses_rgb_input():
    with pytest.raises(ConfigError, match="use_rgb: false"):
        ShardDataset(SpikeOnlyCache(n_seq=3, size=24), 2, 16)


def test_no_ground_truth():
    cache = SpikeOnlyCache(n_seq=2, size=24, has_sharp=False)
    item = ValDataset(cache, None, True, split=None, need_sharp=False, use_rgb=False, gt_channels=1)[1]
    assert item["H"].shape == (1, 24, 24, 1) and not item["H"].any()
    with pytest.raises(ConfigError, match="no sharp frames"):
        ValDataset(cache, None, True, split=None, use_rgb=False, gt_channels=1)[0]


# -- the guide -----------------------------------------------------------------------------------

def test_assemble_puts_the_tfp_guide_in_the_rgb_slots():
    cache = SpikeOnlyCache(n_seq=2, size=24)
    item = ValDataset(cache, None, True, split=None, use_rgb=False, gt_channels=1)[0]
    batch = {k: (v.unsqueeze(0) if torch.is_tensor(v) else [v]) for k, v in item.items()}
    norm = SpikeNorm.from_manifest(cache.manifest, "standardize")
    L, H = assemble(batch, "cpu", norm, None)
    spike = cache.read("0000", 0).spike.astype(np.float64)
    tfp = np.clip((spike / (WINDOW / 4)).mean(axis=0), 0, 1)  # spikes per spike frame
    assert L.shape == (1, 1, 3 + 4, 24, 24) and H.shape == (1, 1, 1, 24, 24)
    for c in range(3):
        np.testing.assert_allclose(L[0, 0, c].numpy(), tfp, atol=1e-6)
    np.testing.assert_allclose(L[0, 0, 3:].numpy(), (spike - WINDOW / 8) / 1.5, atol=1e-5)
    np.testing.assert_allclose(H[0, 0, 0].numpy(), cache.read("0000", 0).sharp[..., 0] / 255.0, atol=1e-6)


def test_guide_without_spike_channels_is_an_error():
    from vrt_train.spike_only import guide
    with pytest.raises(ConfigError, match="no spike channels"):
        guide(torch.zeros(1, 1, 0, 8, 8), torch.ones(1, 1, 0))


# -- the model -----------------------------------------------------------------------------------

def spike_only_vrt(seed=0, **kw):
    import warnings

    from vrt_train.model import SpikeOnlyVRT, SpyNetWeightsWarning
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpyNetWeightsWarning)
        return SpikeOnlyVRT(**{**TINY, **kw})


def test_single_frame_is_repeated_and_gray_is_the_channel_mean(single_thread):
    model = randomize_(spike_only_vrt(spike_chans=2, gt_chans=1), 4).eval()
    plain = build(spike_chans=2)
    plain.load_state_dict(model.state_dict())  # same parameters, same keys
    x = torch.rand(1, 1, 5, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x)
        ref = plain.eval()(x.repeat(1, 2, 1, 1, 1))[:, :1].mean(dim=2, keepdim=True)
    assert out.shape == (1, 1, 1, 40, 40)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_frames_needed_follows_the_temporal_window():
    assert spike_only_vrt(spike_chans=1).frames_needed(1) == 2
    assert spike_only_vrt(spike_chans=1, window_size=[3, 4, 4]).frames_needed(1) == 3
    assert spike_only_vrt(spike_chans=1).frames_needed(4) == 4
    with pytest.raises(ValueError, match="gt_chans"):
        spike_only_vrt(spike_chans=1, gt_chans=2)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_build_model_picks_the_spike_only_network():
    from vrt_train.factory import build_model
    from vrt_train.model import VRT, SpikeOnlyVRT
    net = {**TINY}
    spk = build_model(config_from_dict({"data": {"use_rgb": False}, "netG": net}), 3)
    rgb = build_model(config_from_dict({"netG": net}), 3)
    assert isinstance(spk, SpikeOnlyVRT) and spk.gt_chans == 1
    assert type(rgb) is VRT and set(spk.state_dict()) == set(rgb.state_dict())
