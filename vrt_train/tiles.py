"""``val.size_patch_testing: auto``: the validation tile from the device's free memory.

Inference memory of VRT grows linearly with the pixels of a piece (attention windows have a
fixed size), so two measured no-grad forwards of a temporal chunk at small tiles give
``peak = a + b x pixels``; the tile is then the largest multiple of 8 whose predicted peak stays
under ``BUDGET`` x the free memory, or 0 (whole frames) when the whole frame fits. On CPU
whole frames are the rule and tiles appear only when RAM is short. The answer is cached per
(model, input shape, chunk length, device) for the rest of the run.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

from .memory import available_bytes, fit_line, measure

BUDGET = 0.7          # fraction of the free memory a validation piece may take
_CACHE: dict = {}


def _probe_sizes(minimum: int, limit: int) -> list[int]:
    """Two small square tiles (multiples of 8, at least the model's minimum) to measure at."""
    s1 = max(minimum, 16)
    s2 = min(-(-int(s1 * 1.5) // 8) * 8, limit)
    return sorted({min(s1, limit), s2})


def choose_tile(a: float, b: float, budget: float, height: int, width: int, minimum: int,
                overlap: int) -> int:
    """0 when ``a + b*H*W <= budget``, else the largest multiple of 8 (>= minimum, > overlap)
    whose ``a + b*s*s`` fits; the smallest legal tile when none does."""
    if a + b * height * width <= budget:
        return 0
    smallest = max(minimum, -(-(overlap + 1) // 8) * 8)
    best = smallest
    for s in range(smallest, max(height, width) + 1, 8):
        if a + b * s * s <= budget:
            best = s
    return best


def resolve_tiles(model, val_cfg, shape, device, run_piece, minimum: int):
    """``val_cfg`` with ``size_patch_testing`` an int, for input ``shape (B, T, C, H, W)``.

    run_piece: ``(model, lq (1, T, C, h, w), device) -> output`` (`validate._run_padded`);
    minimum: the smallest H/W the model accepts.
    """
    if val_cfg.size_patch_testing != "auto":
        return val_cfg
    _, T, C, H, W = shape
    frames = min(val_cfg.num_frame_testing or T, T)
    key = (id(model), frames, C, H, W, str(device))
    if key not in _CACHE:
        sizes = _probe_sizes(minimum, max(H, W))
        peaks = []
        for s in sizes:
            x = torch.zeros(1, frames, C, s, s)
            _, m = measure(lambda: run_piece(model, x, device), device)
            peaks.append(m.peak_bytes)
        a, b = fit_line([s * s for s in sizes], peaks)
        budget = BUDGET * available_bytes(device)
        tile = choose_tile(a, b, budget, H, W, minimum, val_cfg.tile_overlap)
        if tile and a + b * tile * tile > budget:
            warnings.warn(f"val.size_patch_testing auto: even a {tile}x{tile} tile is predicted to need "
                          f"{(a + b * tile * tile) / 2**20:.0f} MiB of {budget / 2**20:.0f} MiB available",
                          stacklevel=2)
        _CACHE[key] = tile
    return dataclasses.replace(val_cfg, size_patch_testing=_CACHE[key])
