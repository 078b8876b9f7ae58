"""The trainer's stand-ins shared by the trainer tests (tests/train/, tests/faults/train/) and the
fault runner: TinyNet (a per-pixel stand-in for VRT), a small config and a run of the real training
loop with TinyNet."""

from __future__ import annotations

from torch import nn

from vrt_train.config import config_from_dict
from vrt_train.train import train


class TinyNet(nn.Module):
    """Stand-in for VRT: per-pixel convs, with parameters named like VRT's flow/deform ones."""

    def __init__(self, spike_chans):
        super().__init__()
        c = 3 + spike_chans
        self.spynet = nn.Conv2d(3, 3, 1)
        self.deform_offset = nn.Conv2d(c, 3, 1)
        self.body = nn.Sequential(nn.Conv2d(c, 8, 1), nn.GELU(), nn.Conv2d(8, 3, 1))
        self.drop = nn.Dropout(0.2)  # exercises torch's global RNG (resume must restore it)

    def forward(self, x):
        b, t, c, h, w = x.shape
        y = x.reshape(b * t, c, h, w)
        out = self.body(self.drop(y)) + 0.1 * self.spynet(y[:, :3]) + 0.1 * self.deform_offset(y)
        return x[:, :, :3] + out.reshape(b, t, 3, h, w)


def small_cfg(tmp_path, cache, **train):
    raw = {"name": "t", "seed": 3, "out_dir": str(tmp_path / "run"),
           "data": {"cache": "unused", "num_frames": 3, "gt_size": 16, "batch_size": 2, "workers": 0,
                    "num_frames_val": 4},
           "train": {"lr": 1e-2, "total_iter": 6, "fix_iter": 3, "checkpoint_every": 1, "keep_last": 10,
                     "print_every": 1, "val_every": 3, "scheduler_periods": 4, "deterministic": True, **train},
           "val": {"num_frame_testing": 3, "num_frame_overlapping": 1, "size_patch_testing": 24, "tile_overlap": 4}}
    return config_from_dict(raw)


def run(cfg, **kw):
    return train(cfg, progress=False, model_fn=TinyNet, **kw)
