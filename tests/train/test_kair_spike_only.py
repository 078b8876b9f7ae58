"""`vrt_train.kair` datasets with ``use_rgb: false``: KAIR samples whose L is the trainer's
spike-only input (TFP guide + normalised spikes) and whose H is the grayscale target."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikeprep import ConfigError  # noqa: E402
from tests.support.fakes import FakeCache  # noqa: E402
from tests.support.spike_only import SpikeOnlyCache  # noqa: E402
from vrt_train import data as data_mod  # noqa: E402
from vrt_train.augment import SpikeNorm, assemble  # noqa: E402
from vrt_train.data import ValDataset  # noqa: E402
from vrt_train.kair import VideoTestDataset, VideoTrainDataset  # noqa: E402


@pytest.fixture
def caches(monkeypatch):
    found = {"spk": SpikeOnlyCache(n_seq=3, size=24), "rgb": FakeCache(size=24, S=4)}
    monkeypatch.setattr(data_mod, "open_any", lambda c: found[str(c)] if isinstance(c, str) else c)
    return found


@pytest.mark.parametrize("name, norm", [("spk", "window"), ("spk", "standardize"), ("rgb", "quantile")])
def test_test_sample_is_the_trainers_input(caches, name, norm):
    opt = {"dataroot": name, "use_rgb": False, "spike_norm": norm, "split": None}
    kair = VideoTestDataset(opt)[0]
    item = ValDataset(caches[name], None, True, split=None, use_rgb=False, gt_channels=1)[0]
    batch = {k: (v.unsqueeze(0) if torch.is_tensor(v) else [v]) for k, v in item.items()}
    L, H = assemble(batch, "cpu", SpikeNorm.from_manifest(caches[name].manifest, norm), None)
    assert kair["L"].shape == L[0].shape and kair["H"].shape == H[0].shape == (L.shape[1], 1, 24, 24)
    torch.testing.assert_close(kair["L"], L[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(kair["H"], H[0], rtol=0, atol=1e-7)


def test_train_sample_single_frames_and_rgb_target(caches):
    ds = VideoTrainDataset({"dataroot": "spk", "use_rgb": False, "num_frame": 1, "gt_size": 16,
                            "gt_channels": 3})
    sample = ds[0]
    assert sample["L"].shape == (1, 7, 16, 16) and sample["H"].shape == (1, 3, 16, 16)
    assert torch.equal(sample["H"][:, 0], sample["H"][:, 2])
    assert float(sample["L"][:, :3].min()) >= 0 and float(sample["L"][:, :3].max()) <= 1


def test_option_errors(caches):
    with pytest.raises(ConfigError, match="use_rgb and use_spike"):
        VideoTestDataset({"dataroot": "spk", "use_rgb": False, "use_spike": False})
    with pytest.raises(ConfigError, match="gt_channels"):
        VideoTestDataset({"dataroot": "spk", "use_rgb": False, "gt_channels": 2})
    with pytest.raises(ConfigError, match="use_rgb: false"):
        VideoTestDataset({"dataroot": "spk"})  # a spike-only cache has no RGB input
    assert np.isfinite(VideoTestDataset({"dataroot": "rgb"})[0]["L"].numpy()).all()  # RGB as before
