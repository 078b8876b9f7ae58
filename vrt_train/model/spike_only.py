"""VRT for spike-only input (``data.use_rgb: false``, see `vrt_train.spike_only`).

`SpikeOnlyVRT` is `VRT` (same parameters, state-dict keys and checkpoint format) whose input's
RGB slot holds the TFP guide image built from the spikes, with two additions:

- clips shorter than VRT needs (a single-sample cache: T = 1) are padded by repeating the last
  frame up to ``max(2, pa_frames / 2 + 1)`` frames rounded up to the temporal window
  ``window_size[0]`` (what ``vrt_train.validate`` pads a 1-frame chunk to as well), and only the
  first T outputs are kept;
- ``gt_chans = 1``: the 3 output channels (guide residual included) are averaged to one.
"""

from __future__ import annotations

import torch

from .network import VRT


class SpikeOnlyVRT(VRT):
    """``(B, T, 3 + S, H, W)`` (guide in the 3 RGB slots) -> ``(B, T, gt_chans, H, W)``."""

    def __init__(self, *args, gt_chans: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if gt_chans not in (1, 3):
            raise ValueError(f"gt_chans must be 1 or 3, got {gt_chans}")
        self.gt_chans = gt_chans

    def frames_needed(self, frames: int) -> int:
        """The clip length a ``frames``-frame clip is padded to (>= frames)."""
        need = max(2, self.pa_frames // 2 + 1)
        if frames >= need:
            return frames
        wd = int(self.window_size[0])
        return -(-need // wd) * wd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[1] if x.dim() == 5 else 0
        need = self.frames_needed(frames) if frames else frames
        if need > frames:
            x = torch.cat([x, x[:, -1:].expand(-1, need - frames, -1, -1, -1)], dim=1)
        out = super().forward(x)[:, :frames]
        return out.mean(dim=2, keepdim=True) if self.gt_chans == 1 else out
