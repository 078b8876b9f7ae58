"""Small building blocks shared by the stages: GEGLU feed-forward, stochastic depth,
and the layout changes between channels-first video tensors and channels-last tokens."""

from __future__ import annotations

import torch
from torch import nn


class GEGLUMlp(nn.Module):
    """Feed-forward network with a GELU-gated linear unit ("GLU Variants Improve Transformer").

    ``out = fc2(gelu(fc11(x)) * fc12(x))`` on the last axis; shape ``(..., in_features)``
    to ``(..., out_features)``.
    """

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc11 = nn.Linear(in_features, hidden_features)
        self.fc12 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc11(x)) * self.fc12(x))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole sample's residual branch with
    probability ``drop_prob`` and rescale the kept ones by ``1 / (1 - drop_prob)``."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        per_sample = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep = torch.rand(per_sample, dtype=x.dtype, device=x.device).add_(keep_prob).floor_()
        return x / keep_prob * keep


def drop_path_or_identity(drop_prob: float) -> nn.Module:
    """A :class:`DropPath`, or a parameter-free identity when there is nothing to drop."""
    return DropPath(drop_prob) if drop_prob > 0.0 else nn.Identity()


class ToChannelsLast(nn.Module):
    """``(B, C, T, H, W) -> (B, T, H, W, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 4, 1)


class ToChannelsFirst(nn.Module):
    """``(B, T, H, W, C) -> (B, C, T, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 4, 1, 2, 3)


class SpaceToChannelsLast(nn.Module):
    """Fold each 2x2 pixel neighbourhood into channels: ``(B, C, T, H, W) -> (B, T, H/2, W/2, 4C)``.

    The folded channel index is ``(dx * 2 + dy) * C + c`` for the pixel at offset
    ``(dy, dx)`` inside the neighbourhood (column offset varies slowest); this order
    is what released VRT weights were trained with.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t, h // 2, 2, w // 2, 2)          # b c t h dy w dx
        x = x.permute(0, 2, 3, 5, 6, 4, 1)                     # b t h w dx dy c
        return x.reshape(b, t, h // 2, w // 2, 4 * c)


class ChannelsToSpaceLast(nn.Module):
    """Inverse of :class:`SpaceToChannelsLast`: ``(B, 4C, T, H, W) -> (B, T, 2H, 2W, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c4, t, h, w = x.shape
        c = c4 // 4
        x = x.reshape(b, 2, 2, c, t, h, w)                     # b dx dy c t h w
        x = x.permute(0, 4, 5, 2, 6, 1, 3)                     # b t h dy w dx c
        return x.reshape(b, t, 2 * h, 2 * w, c)


def along_channels(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` (acting on the last axis, e.g. ``nn.Linear``) to the channel axis
    of a ``(B, C, T, H, W)`` tensor; returns ``(B, C', T, H, W)``."""
    return module(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
