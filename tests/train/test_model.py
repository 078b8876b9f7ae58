"""Tests of vrt_train.model: shapes, gradients, spike handling, checkpoints and input checks.

All on CPU with a tiny configuration (the smallest window that still exercises mutual
attention, shifted windows and temporal padding), except the 006 parameter counts,
which only construct the network.
"""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

from tests.support.tiny_vrt import FRAMES, GOPRO_006, SIZE, build, clip, randomize_
from vrt_train.model import VRT, CheckpointMismatchError, SpyNetWeightsWarning, load_pretrained
from vrt_train.model.pretrained import read_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("spike_chans, frames", [(0, 2), (4, 3), (8, 2)])
def test_forward_backward_reaches_every_input_channel(spike_chans, frames):
    model = randomize_(build(spike_chans=spike_chans), seed=2).train()
    model.spynet.requires_grad_(False)  # its weight gradients are the slowest part on CPU
    x = clip(spike_chans, frames=frames).requires_grad_(True)
    out = model(x)
    assert out.shape == (1, frames, 3, SIZE, SIZE)
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    per_channel = x.grad.abs().sum(dim=(0, 1, 3, 4))
    assert (per_channel[:3] > 0).all()
    assert (per_channel[3:] > 0).all(), "spike channels get no gradient"
    assert model.conv_first.weight.grad.abs().sum() > 0


def test_conv_first_sees_nine_blocks_of_rgb_and_spikes():
    model = build(spike_chans=8)
    assert model.conv_first.weight.shape[1] == (3 + 8) * 9


def test_upscale_output_is_upscaled_rgb():
    model = build(spike_chans=4, upscale=2).eval()
    with torch.no_grad():
        out = model(clip(4))
    assert out.shape == (1, FRAMES, 3, 2 * SIZE, 2 * SIZE)


def test_global_residual_adds_rgb_only():
    model = build(spike_chans=4).eval()
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    x = clip(4)
    with torch.no_grad():
        assert torch.equal(model(x), x[:, :, :3])


def test_gradient_checkpointing_matches_plain_forward_and_backward():
    plain = randomize_(build(spike_chans=4), seed=3).train()
    checkpointed = build(spike_chans=4, use_checkpoint_attn=True, use_checkpoint_ffn=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    for model in (plain, checkpointed):
        model.spynet.requires_grad_(False)
    x = clip(4)
    outputs, grads = [], []
    for model in (plain, checkpointed):
        out = model(x)
        out.sum().backward()
        outputs.append(out.detach())
        grads.append(model.stage1.residual_group1.blocks[0].attn.qkv_self.weight.grad.clone())
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_state_dict_round_trip_is_strict_and_exact(tmp_path):
    source = randomize_(build(spike_chans=4), seed=4).eval()
    path = tmp_path / "vrt.pth"
    torch.save({"params": source.state_dict()}, path)
    target = build(seed=9, spike_chans=4).eval()
    target.load_state_dict(torch.load(path, weights_only=True)["params"], strict=True)
    x = clip(4)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("wrap", [None, "params"])
def test_load_pretrained_rgb_into_spike_model_computes_the_rgb_model(tmp_path, wrap):
    rgb_model = randomize_(build(spike_chans=0), seed=5).eval()
    state = rgb_model.state_dict()
    checkpoint = tmp_path / "rgb.pth"
    torch.save(state if wrap is None else {wrap: state}, checkpoint)
    spike_model = build(seed=6, spike_chans=4).eval()

    report = load_pretrained(spike_model, checkpoint)

    assert [(a.key, a.checkpoint_shape, a.model_shape) for a in report.adapted] == [
        ("conv_first.weight", (8, 27, 1, 3, 3), (8, 63, 1, 3, 3))]
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert report.param_key == wrap
    x = clip(4, seed=7)
    with torch.no_grad():
        expected = rgb_model(x[:, :, :3])
        for seed in (8, 9):  # whatever the spikes are
            x[:, :, 3:] = torch.rand(x[:, :, 3:].shape, generator=torch.Generator().manual_seed(seed)) * 5
            torch.testing.assert_close(spike_model(x), expected, atol=1e-5, rtol=0)


def test_read_checkpoint_unwraps_params_ema_and_ddp_prefixes():
    state = {"module.conv_first.weight": torch.zeros(1)}
    assert read_checkpoint({"params_ema": state}) == ({"conv_first.weight": state["module.conv_first.weight"]},
                                                      "params_ema")
    assert read_checkpoint({"params": state, "params_ema": {}})[1] == "params"


def test_load_pretrained_places_rgb_blocks_and_zero_spikes_at_the_right_channels():
    rgb_model = randomize_(build(spike_chans=0, nonblind_denoising=True), seed=10)
    spike_model = build(spike_chans=2, nonblind_denoising=True)
    load_pretrained(spike_model, rgb_model.state_dict())
    old, new = rgb_model.conv_first.weight, spike_model.conv_first.weight
    assert new.shape[1] == 9 * 5 + 1
    for block in range(9):
        torch.testing.assert_close(new[:, 5 * block:5 * block + 3], old[:, 3 * block:3 * block + 3])
        assert not new[:, 5 * block + 3:5 * block + 5].any()
    torch.testing.assert_close(new[:, -1], old[:, -1])  # noise level map


def test_load_pretrained_rejects_mismatches_beyond_conv_first():
    other = build(embed_dims=[8] * 7 + [16, 16])
    with pytest.raises(CheckpointMismatchError, match="stage8"):
        load_pretrained(build(spike_chans=4), other.state_dict())
    spike_8 = build(spike_chans=8)
    with pytest.raises(CheckpointMismatchError, match="conv_first"):
        load_pretrained(build(spike_chans=4), spike_8.state_dict())


def test_load_pretrained_strictness_on_keys():
    state = build().state_dict()
    del state["conv_last.bias"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_pretrained(build(spike_chans=4), state)
    report = load_pretrained(build(spike_chans=4), state, strict=False)
    assert report.missing_keys == ["conv_last.bias"] and report.unexpected_keys == ["extra.weight"]


@pytest.mark.parametrize("spike_chans, expected", [(0, 18_320_007), (8, 18_382_215)])
def test_parameter_count_of_the_gopro_006_configuration(spike_chans, expected):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpyNetWeightsWarning)
        model = VRT(**GOPRO_006, spike_chans=spike_chans)
    assert sum(p.numel() for p in model.parameters()) == expected
