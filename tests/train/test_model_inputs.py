"""Construction options and up-front input checks of vrt_train.model.VRT."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

from tests.support.tiny_vrt import TINY, build, clip
from vrt_train.model import VRT, InputShapeError, SpyNetWeightsWarning
from vrt_train.model.flow import SpyNet

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("shape, message", [
    ((3, 3, 40, 40), "5 dimensions"),
    ((1, 3, 3, 40, 40), "channels per frame"),          # spike model given RGB only
    ((1, 3, 9, 40, 40), "channels per frame"),
    ((1, 1, 7, 40, 40), "T = 1 frames"),
    ((1, 3, 7, 44, 40), "multiples of 8"),
    ((1, 3, 7, 40, 36), "multiples of 8"),
    ((1, 3, 7, 32, 40), "at least 40 x 40"),            # SpyNet needs sides > 32
])
def test_input_shape_errors_are_raised_up_front(shape, message):
    model = build(spike_chans=4)
    with pytest.raises(InputShapeError, match=message) as caught:
        model(torch.zeros(shape))
    assert str(tuple(shape)) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_window_sets_the_minimum_size():
    model = build(window_size=[2, 8, 8])
    assert model.minimum_size() == (64, 64)
    with pytest.raises(InputShapeError, match="at least 64 x 64"):
        model(torch.zeros(1, 2, 3, 56, 64))


def test_more_parallel_warping_frames_need_more_input_frames():
    model = build(pa_frames=4)
    with pytest.raises(InputShapeError, match="at least 3"):
        model(torch.zeros(1, 2, 3, 40, 40))


def test_frame_interpolation_needs_img_size_frames():
    model = build(pa_frames=0, img_size=[2, 32, 32])
    with pytest.raises(InputShapeError, match="img_size"):
        model(torch.zeros(1, 3, 3, 32, 32))
    with torch.no_grad():
        assert model(torch.rand(1, 2, 3, 32, 32)).shape == (1, 1, 3, 32, 32)


def test_in_chans_is_rejected_with_a_pointer_to_spike_chans():
    with pytest.raises(TypeError, match="spike_chans=8"):
        VRT(**TINY, in_chans=11)


def test_kair_bookkeeping_keys_are_accepted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpyNetWeightsWarning)
        VRT(**TINY, net_type="vrt", init_type="default")


@pytest.mark.parametrize("overrides, message", [
    ({"pa_frames": 3}, "pa_frames"),
    ({"embed_dims": [6] * 7 + [12, 12]}, "multiple of 4"),
    ({"depths": [2] * 7}, "one entry per layer"),
    ({"spike_chans": -1}, "spike_chans"),
])
def test_invalid_configurations_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        VRT(**{**TINY, **overrides})


def test_spynet_without_weights_warns_exactly_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        VRT(**TINY)
    spynet_warnings = [w for w in caught if issubclass(w.category, SpyNetWeightsWarning)]
    assert len(spynet_warnings) == 1
    assert spynet_warnings[0].filename == __file__


@pytest.mark.parametrize("wrapped", [False, True])
def test_spynet_path_loads_bare_and_params_wrapped_files(tmp_path, wrapped):
    torch.manual_seed(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpyNetWeightsWarning)
        reference = SpyNet(None)
    weights = reference.basic_module.state_dict()
    state = {f"basic_module.{key}": value for key, value in weights.items()}
    path = tmp_path / "spynet.pth"
    torch.save({"params": state} if wrapped else state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpyNetWeightsWarning)
        model = VRT(**TINY, spynet_path=path)
    for key, value in weights.items():
        assert torch.equal(model.spynet.basic_module.state_dict()[key], value)


def test_missing_spynet_file_is_an_error_not_a_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        VRT(**TINY, spynet_path=tmp_path / "absent.pth")


def test_flows_come_from_rgb_only():
    model = build(spike_chans=4).eval()
    x = clip(4)
    y = x.clone()
    y[:, :, 3:] = 0
    with torch.no_grad():
        flows_x = model.compute_flows(x[:, :, :3])
        flows_y = model.compute_flows(y[:, :, :3])
    assert torch.equal(flows_x[0][0][0], flows_y[0][0][0])
