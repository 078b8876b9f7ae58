"""Unpacking bit-packed spike representations on the training device.

A cache stores a ``bitpacked`` representation (``raw``: 0/1 spike frames) 8 pixels per byte
along the last axis, bit order little (`spikeprep.cache.records.pack_bits`). Read with
``spikeprep.open_cache(CACHE, unpack=False)``, a loader then moves 8x fewer bytes per sample and
the device unpacks the batch with `unpack_bits_torch` (elementwise shifts, no lookup tables).
"""

from __future__ import annotations

import torch


def unpack_bits_torch(packed: torch.Tensor, width: int) -> torch.Tensor:
    """``(..., ceil(width/8))`` uint8 -> ``(..., width)`` uint8 0/1 on ``packed``'s device: pixel
    ``8*j + b`` is bit ``b`` of byte ``j`` (equal to `spikeprep.cache.records.unpack_bits`)."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed spikes must be uint8, got {packed.dtype}")
    if not 0 <= width <= 8 * packed.shape[-1]:
        raise ValueError(f"width {width} does not fit {packed.shape[-1]} bytes of 8 pixels")
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = torch.bitwise_and(torch.bitwise_right_shift(packed.unsqueeze(-1), shifts), 1)
    return bits.flatten(-2)[..., :width]
