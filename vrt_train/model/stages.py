"""Temporal mutual self attention (TMSA) blocks and groups, and the VRT stages built from them.

Tensors between modules are ``(B, C, T, H, W)``; inside a TMSA block they are
channels-last ``(B, T, H, W, C)``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .alignment import FlowGuidedDeformConv, align_neighbours
from .attention import (
    WindowAttention,
    effective_window,
    merge_windows,
    padded_size,
    partition_windows,
    shifted_window_mask,
)
from .layers import (
    ChannelsToSpaceLast,
    GEGLUMlp,
    SpaceToChannelsLast,
    ToChannelsFirst,
    ToChannelsLast,
    along_channels,
    drop_path_or_identity,
)

NormFactory = Callable[[int], nn.Module]


def _maybe_checkpointed(function: Callable[..., torch.Tensor], enabled: bool,
                        *args: torch.Tensor | None) -> torch.Tensor:
    """Run ``function(*args)``, recomputing it in the backward pass instead of storing
    activations when ``enabled`` (gradient checkpointing)."""
    if enabled:
        return checkpoint(function, *args, use_reentrant=False)
    return function(*args)


class TMSA(nn.Module):
    """One TMSA block: (shifted) window attention and a GEGLU feed-forward, each pre-norm residual.

    Args:
        dim: channels C.
        num_heads: attention heads.
        window_size: (wd, wh, ww).
        shift_size: cyclic shift before windowing, each ``0 <= shift < window``.
        mut_attn: add mutual attention (needs ``wd == 2``).
        mlp_ratio: feed-forward hidden width / C.
        drop_path: stochastic depth probability for both branches.
        use_checkpoint_attn, use_checkpoint_ffn: gradient checkpointing per branch.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Sequence[int], shift_size: Sequence[int],
                 mut_attn: bool, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop_path: float, norm_layer: NormFactory, use_checkpoint_attn: bool,
                 use_checkpoint_ffn: bool) -> None:
        super().__init__()
        if not all(0 <= s < w for s, w in zip(shift_size, window_size)):
            raise ValueError(f"shift_size {tuple(shift_size)} must be in [0, window) for window {tuple(window_size)}")
        self.window_size = tuple(window_size)
        self.shift_size = tuple(shift_size)
        self.use_checkpoint_attn = use_checkpoint_attn
        self.use_checkpoint_ffn = use_checkpoint_ffn
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias=qkv_bias,
                                    qk_scale=qk_scale, mut_attn=mut_attn)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = GEGLUMlp(dim, int(dim * mlp_ratio))

    def _attention_branch(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``(B, D, H, W, C) -> (B, D, H, W, C)``; ``mask`` as from :func:`shifted_window_mask`."""
        batch, depth, height, width, _ = x.shape
        window, shift = effective_window((depth, height, width), self.window_size, self.shift_size)
        x = self.norm1(x)
        padded = padded_size((depth, height, width), window)
        # Zero-pad after the norm so that the padding tokens are exactly zero.
        x = F.pad(x, (0, 0, 0, padded[2] - width, 0, padded[1] - height, 0, padded[0] - depth))
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = self.attn(partition_windows(x, window), mask=mask if shifted else None)
        x = merge_windows(windows, window, batch, padded)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return self.drop_path(x[:, :depth, :height, :width, :])

    def _feed_forward_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(B, D, H, W, C)``; returns the same shape."""
        x = x + _maybe_checkpointed(self._attention_branch, self.use_checkpoint_attn, x, mask)
        return x + _maybe_checkpointed(self._feed_forward_branch, self.use_checkpoint_ffn, x)


class TMSAG(nn.Module):
    """A group of TMSA blocks; every second block uses shifted windows.

    Args:
        depth: number of blocks.
        shift_size: shift of the shifted blocks; default half the window.
        drop_path: one rate for all blocks, or a list indexed by block.
        Other arguments as for :class:`TMSA`.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int], mut_attn: bool,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop_path: float | Sequence[float], norm_layer: NormFactory,
                 use_checkpoint_attn: bool, use_checkpoint_ffn: bool,
                 shift_size: Sequence[int] | None = None) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.shift_size = tuple(w // 2 for w in window_size) if shift_size is None else tuple(shift_size)
        rates = list(drop_path) if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.ModuleList([
            TMSA(dim, num_heads, self.window_size, (0, 0, 0) if index % 2 == 0 else self.shift_size,
                 mut_attn, mlp_ratio, qkv_bias, qk_scale, rates[index], norm_layer,
                 use_checkpoint_attn, use_checkpoint_ffn)
            for index in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, D, H, W) -> (B, C, D, H, W)``."""
        sizes = tuple(x.shape[2:])
        window, shift = effective_window(sizes, self.window_size, self.shift_size)
        mask = None
        if self.blocks and any(s > 0 for s in shift):
            mask = shifted_window_mask(padded_size(sizes, window), window, shift, x.device)
        x = x.permute(0, 2, 3, 4, 1)
        for block in self.blocks:
            x = block(x, mask)
        return x.permute(0, 4, 1, 2, 3)


class RTMSA(nn.Module):
    """Residual TMSA group without mutual attention (the reconstruction blocks, "stage 8").

    ``(B, C, D, H, W) -> (B, C, D, H, W)``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int], mlp_ratio: float,
                 qkv_bias: bool, qk_scale: float | None, drop_path: float | Sequence[float],
                 norm_layer: NormFactory, use_checkpoint_attn: bool, use_checkpoint_ffn: bool) -> None:
        super().__init__()
        self.residual_group = TMSAG(dim, depth, num_heads, window_size, False, mlp_ratio, qkv_bias,
                                    qk_scale, drop_path, norm_layer, use_checkpoint_attn, use_checkpoint_ffn)
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + along_channels(self.linear, self.residual_group(x))


def _resolution_change(kind: str, in_dim: int, dim: int) -> nn.Sequential:
    """The layer at a stage's entry: keep (LayerNorm), halve (2x2 space-to-channels, LayerNorm,
    Linear) or double (channels-to-space, LayerNorm, Linear) the spatial size."""
    if kind == "none":
        return nn.Sequential(ToChannelsLast(), nn.LayerNorm(dim), ToChannelsFirst())
    if kind == "down":
        return nn.Sequential(SpaceToChannelsLast(), nn.LayerNorm(4 * in_dim), nn.Linear(4 * in_dim, dim),
                             ToChannelsFirst())
    if kind == "up":
        return nn.Sequential(ChannelsToSpaceLast(), nn.LayerNorm(in_dim // 4), nn.Linear(in_dim // 4, dim),
                             ToChannelsFirst())
    raise ValueError(f"unknown resolution change {kind!r}; expected 'none', 'down' or 'up'")


class Stage(nn.Module):
    """One of VRT's seven multi-scale stages (paper Fig. 2).

    Resolution change, then a TMSA group with mutual attention on two-frame windows
    (``mul_attn_ratio`` of the blocks), then a TMSA group of self attention only, each
    with a linear layer and a residual connection, and finally parallel warping: every
    frame's features are fused with its neighbours' features aligned onto it.

    Args:
        in_dim, dim: channels before and after the resolution change.
        depth: TMSA blocks in the stage.
        window_size: (wd, wh, ww) of the self-attention group.
        reshape: 'none', 'down' or 'up'.
        max_residue_magnitude: bound of the deformable offsets around the flow, in pixels.
        pa_frames: neighbours used in parallel warping (0 disables it).
    """

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, window_size: Sequence[int],
                 mul_attn_ratio: float, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop_path: Sequence[float], norm_layer: NormFactory, pa_frames: int, deformable_groups: int,
                 reshape: str, max_residue_magnitude: float, use_checkpoint_attn: bool,
                 use_checkpoint_ffn: bool) -> None:
        super().__init__()
        self.pa_frames = pa_frames
        self.reshape = _resolution_change(reshape, in_dim, dim)
        mutual_depth = int(depth * mul_attn_ratio)
        self.residual_group1 = TMSAG(dim, mutual_depth, num_heads, (2, window_size[1], window_size[2]), True,
                                     mlp_ratio, qkv_bias, qk_scale, drop_path, norm_layer,
                                     use_checkpoint_attn, use_checkpoint_ffn)
        self.linear1 = nn.Linear(dim, dim)
        # The self-attention group always checkpoints its attention (as in the released
        # training setup); only the mutual group follows use_checkpoint_attn.
        self.residual_group2 = TMSAG(dim, depth - mutual_depth, num_heads, window_size, False,
                                     mlp_ratio, qkv_bias, qk_scale, drop_path, norm_layer,
                                     True, use_checkpoint_ffn)
        self.linear2 = nn.Linear(dim, dim)
        if pa_frames:
            self.pa_deform = FlowGuidedDeformConv(dim, dim, deformable_groups, max_residue_magnitude, pa_frames)
            self.pa_fuse = GEGLUMlp(3 * dim, 3 * dim, dim)

    def forward(self, x: torch.Tensor, flows_backward: list[torch.Tensor],
                flows_forward: list[torch.Tensor]) -> torch.Tensor:
        """``x``: ``(B, C_in, T, H_in, W_in)`` -> ``(B, C, T, H, W)``.

        ``flows_backward`` / ``flows_forward``: flows at this stage's resolution, one per
        neighbour distance, as for :func:`~vrt_train.model.alignment.align_neighbours`.
        """
        x = self.reshape(x)
        x = along_channels(self.linear1, self.residual_group1(x)) + x
        x = along_channels(self.linear2, self.residual_group2(x)) + x
        if not self.pa_frames:
            return x
        frames = x.transpose(1, 2)
        from_later, from_earlier = align_neighbours(frames, flows_backward, flows_forward, self.pa_deform)
        fused = self.pa_fuse(torch.cat([frames, from_later, from_earlier], dim=2).permute(0, 1, 3, 4, 2))
        return fused.permute(0, 4, 1, 2, 3)


class Upsample(nn.Sequential):
    """Sub-pixel upsampling of ``(B, C, T, H, W)`` by ``scale`` (a power of 2, or 3) per frame."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            steps = [2] * int(math.log2(scale))
        elif scale == 3:
            steps = [3]
        else:
            raise ValueError(f"upscale {scale} is not supported; use a power of 2 or 3")
        for factor in steps:
            layers += [nn.Conv3d(num_feat, factor * factor * num_feat, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
                       _SwapChannelsAndTime(), nn.PixelShuffle(factor), _SwapChannelsAndTime(),
                       nn.LeakyReLU(negative_slope=0.1, inplace=True)]
        layers.append(nn.Conv3d(num_feat, num_feat, kernel_size=(1, 3, 3), padding=(0, 1, 1)))
        super().__init__(*layers)


class _SwapChannelsAndTime(nn.Module):
    """``(B, C, T, H, W) <-> (B, T, C, H, W)``, so that ``PixelShuffle`` shuffles each frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)
