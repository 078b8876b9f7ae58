"""The tiny VRT configuration and inputs shared by the model tests."""

from __future__ import annotations

import warnings

import torch

from vrt_train.model import VRT, SpyNetWeightsWarning

TINY = dict(upscale=1, img_size=[3, 40, 40], window_size=[2, 4, 4], depths=[2] * 7 + [1, 1],
            indep_reconsts=[8], embed_dims=[8] * 7 + [12, 12], num_heads=[2] * 9, pa_frames=2,
            deformable_groups=2, drop_path_rate=0.0)
GOPRO_006 = {"net_type": "vrt", "upscale": 1, "img_size": [6, 192, 192], "window_size": [6, 8, 8],
             "depths": [8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4], "indep_reconsts": [9, 10],
             "embed_dims": [96, 96, 96, 96, 96, 96, 96, 120, 120, 120, 120],
             "num_heads": [6] * 11, "spynet_path": None, "pa_frames": 2, "deformable_groups": 16,
             "nonblind_denoising": False, "use_checkpoint_attn": True, "use_checkpoint_ffn": True,
             "no_checkpoint_attn_blocks": [2, 3, 4], "no_checkpoint_ffn_blocks": [1, 2, 3, 4, 5, 9],
             "init_type": "default"}
FRAMES, SIZE = 2, 40  # the smallest clip the tiny configuration accepts


def build(seed: int = 0, **overrides) -> VRT:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpyNetWeightsWarning)
        return VRT(**{**TINY, **overrides})


def randomize_(model: VRT, seed: int) -> VRT:
    """Non-trivial weights everywhere (the default init zeroes e.g. the offset predictors)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


def clip(spike_chans: int, seed: int = 1, frames: int = FRAMES, size: int = SIZE, extra: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, frames, 3 + spike_chans + extra, size, size, generator=generator)
