"""Window attention for VRT: 3D (time, height, width) windows, shifted-window masks,
and the mutual attention between the two frames of a window (paper, Sec. 3.2).

Token layout: a window of size ``(wd, wh, ww)`` is flattened time-major, so with
``wd == 2`` the first ``wh * ww`` tokens belong to the first frame and the rest to
the second.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Size3 = tuple[int, int, int]
#: Additive attention bias between tokens that came from different regions of a shifted window.
MASKED = -100.0


def effective_window(sizes: Sequence[int], window: Sequence[int],
                     shift: Sequence[int]) -> tuple[Size3, Size3]:
    """Window and shift actually used for an input of ``sizes`` (D, H, W).

    An axis no longer than its window is covered by one window of its own size and
    is not shifted.
    """
    used_window = [s if s <= w else w for s, w in zip(sizes, window)]
    used_shift = [0 if s <= w else sh for s, w, sh in zip(sizes, window, shift)]
    return tuple(used_window), tuple(used_shift)  # type: ignore[return-value]


def padded_size(sizes: Sequence[int], window: Sequence[int]) -> Size3:
    """Each of ``sizes`` rounded up to a multiple of the window."""
    return tuple(-(-s // w) * w for s, w in zip(sizes, window))  # type: ignore[return-value]


def partition_windows(x: torch.Tensor, window: Size3) -> torch.Tensor:
    """``(B, D, H, W, C)`` (sizes multiples of the window) -> ``(B * nW, wd*wh*ww, C)``."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def merge_windows(windows: torch.Tensor, window: Size3, batch: int, sizes: Size3) -> torch.Tensor:
    """Inverse of :func:`partition_windows`: ``(B * nW, N, C)`` -> ``(B, D, H, W, C)``."""
    d, h, w = sizes
    wd, wh, ww = window
    x = windows.view(batch, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch, d, h, w, -1)


def _region_labels(length: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Label positions along one padded axis by the region they come from after a cyclic
    shift by ``shift``: the untouched part, the part that stays at the end, and the wrapped part."""
    labels = torch.zeros(length, device=device)
    if shift > 0:
        labels[length - window:length - shift] = 1
        labels[length - shift:] = 2
    return labels


def shifted_window_mask(sizes: Size3, window: Size3, shift: Size3, device: torch.device) -> torch.Tensor:
    """Attention bias that keeps tokens of a shifted window from attending across the wrap.

    Args:
        sizes: padded (D, H, W), multiples of ``window``.

    Returns:
        ``(nW, N, N)`` with 0 between tokens of the same region and ``MASKED`` otherwise.
    """
    d_lab, h_lab, w_lab = (_region_labels(n, win, s, device) for n, win, s in zip(sizes, window, shift))
    region = d_lab.view(-1, 1, 1) * 9 + h_lab.view(1, -1, 1) * 3 + w_lab.view(1, 1, -1)
    region_windows = partition_windows(region[None, ..., None], window).squeeze(-1)
    differs = region_windows.unsqueeze(1) != region_windows.unsqueeze(2)
    return torch.zeros(differs.shape, device=device).masked_fill(differs, MASKED)


def relative_position_index(window: Size3) -> torch.Tensor:
    """``(N, N)`` index into a table of ``(2wd-1)(2wh-1)(2ww-1)`` relative offsets."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    relative = relative + torch.tensor([w - 1 for w in window])
    spans = [2 * w - 1 for w in window]
    return relative[..., 0] * spans[1] * spans[2] + relative[..., 1] * spans[2] + relative[..., 2]


def sine_position_encoding(height: int, width: int, channels: int, temperature: float = 10000.0) -> torch.Tensor:
    """2D sine/cosine encoding (DETR style, coordinates normalised to (0, 2pi]).

    Returns ``(1, height * width, channels)``: the first half encodes the row, the second
    the column, each as interleaved (sin, cos) pairs over geometric frequencies.
    """
    per_axis = channels // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32).view(height, 1).expand(height, width)
    cols = torch.arange(1, width + 1, dtype=torch.float32).view(1, width).expand(height, width)
    eps = 1e-6
    rows = rows / (height + eps) * (2 * math.pi)
    cols = cols / (width + eps) * (2 * math.pi)
    freq_index = torch.arange(per_axis, dtype=torch.float32)
    wavelengths = temperature ** (2 * (freq_index // 2) / per_axis)

    def encode(coord: torch.Tensor) -> torch.Tensor:
        phase = coord[..., None] / wavelengths
        return torch.stack((phase[..., 0::2].sin(), phase[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat((encode(rows), encode(cols)), dim=-1).reshape(1, height * width, -1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
           position_bias: torch.Tensor | None, window_mask: torch.Tensor | None) -> torch.Tensor:
    """Multi-head softmax attention with additive biases.

    Args:
        q, k, v: ``(B * nW, heads, N, head_dim)``.
        position_bias: ``(heads, N, N)`` or None.
        window_mask: ``(nW, N, N)`` or None; windows are ordered batch-major in ``q``.

    Returns:
        ``(B * nW, N, heads * head_dim)``.
    """
    n_windows_total, heads, tokens, head_dim = q.shape
    bias = None if position_bias is None else position_bias.unsqueeze(0)
    if window_mask is not None:
        # Broadcast the per-window mask over the batch without materialising it per sample.
        n_windows = window_mask.shape[0]
        q, k, v = (t.reshape(-1, n_windows, heads, tokens, head_dim) for t in (q, k, v))
        mask = window_mask.unsqueeze(1)
        bias = mask if bias is None else bias + mask
    if bias is not None:
        bias = bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    out = out.reshape(n_windows_total, heads, tokens, head_dim)
    return out.transpose(1, 2).reshape(n_windows_total, tokens, heads * head_dim)


class WindowAttention(nn.Module):
    """Self attention within a window, plus (optionally) mutual attention between its two frames.

    Self attention uses a learned relative position bias. Mutual attention (paper eq. 4-5)
    lets each frame's tokens query the other frame with a shared sine position encoding
    so that it can act as implicit motion compensation; its output is concatenated with
    the self-attention output before the projection.

    Args:
        dim: channels C.
        window: window size (wd, wh, ww); mutual attention needs ``wd == 2``.
        num_heads: attention heads.
        qkv_bias: learn biases for the q, k, v projections.
        qk_scale: overrides the ``head_dim ** -0.5`` logit scale.
        mut_attn: add mutual attention.
    """

    def __init__(self, dim: int, window: Sequence[int], num_heads: int, qkv_bias: bool = False,
                 qk_scale: float | None = None, mut_attn: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = tuple(window)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.mut_attn = mut_attn

        table_size = math.prod(2 * w - 1 for w in self.window_size)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size))
        self.qkv_self = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(2 * dim if mut_attn else dim, dim)
        if mut_attn:
            frame_encoding = sine_position_encoding(self.window_size[1], self.window_size[2], dim)
            self.register_buffer("position_bias", frame_encoding)
            self.qkv_mut = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B', N, 3C)`` -> q, k, v each ``(B', heads, N, C / heads)``."""
        batch, tokens, _ = qkv.shape
        qkv = qkv.view(batch, tokens, 3, self.num_heads, self.dim // self.num_heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def _relative_bias(self, tokens: int) -> torch.Tensor:
        """``(heads, N, N)``. For a window clipped to a smaller input only the first N tokens'
        entries are used, as in the released models."""
        index = self.relative_position_index[:tokens, :tokens].reshape(-1)
        return self.relative_position_bias_table[index].view(tokens, tokens, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B * nW, N, C)`` window tokens; ``mask``: ``(nW, N, N)`` or None.
        Returns ``(B * nW, N, C)``."""
        tokens = x.shape[1]
        q, k, v = self._split_heads(self.qkv_self(x))
        window_mask = None if mask is None else mask[:, :tokens, :tokens]
        out = attend(q, k, v, self.scale, self._relative_bias(tokens), window_mask)
        if self.mut_attn:
            out = torch.cat([self._mutual(x, mask), out], dim=2)
        return self.proj(out)

    def _mutual(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Cross-frame attention for a two-frame window; ``(B * nW, N, C)`` -> same shape.

        The tokens of frame 1 receive frame 1's content as queried from frame 2's
        positions, and vice versa (the arrangement the released weights use).
        """
        half = x.shape[1] // 2
        q, k, v = self._split_heads(self.qkv_mut(x + self.position_bias.repeat(1, 2, 1)))
        (q1, q2), (k1, k2), (v1, v2) = (t.split(half, dim=2) for t in (q, k, v))
        frame_mask = None if mask is None else mask[:, :half, :half]
        first = attend(q2, k1, v1, self.scale, None, frame_mask)
        second = attend(q1, k2, v2, self.scale, None, frame_mask)
        return torch.cat([first, second], dim=1)
