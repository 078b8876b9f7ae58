"""Unpacking bit-packed spike representations on the training device.

A cache stores a ``bitpacked`` representation (``raw``: 0/1 spike frames) 8 pixels per byte
along the last axis, bit order little (`spikeprep.cache.records.pack_bits`). Read with
``spikeprep.open_cache(CACHE, unpack=False)``, a loader then moves 8x fewer bytes per sample and
the device unpacks the batch with `unpack_bits_torch`.
"""

from __future__ import annotations

import torch

_TABLES: dict = {}


def _table(device) -> torch.Tensor:
    """``(256, 8)`` uint8: the 8 bits of every byte value, bit 0 first (one per device)."""
    key = str(device)
    if key not in _TABLES:
        values = torch.arange(256).unsqueeze(1) >> torch.arange(8)
        _TABLES[key] = (values & 1).to(torch.uint8).to(device)
    return _TABLES[key]


def unpack_bits_torch(packed: torch.Tensor, width: int) -> torch.Tensor:
    """``(..., ceil(width/8))`` uint8 -> ``(..., width)`` uint8 0/1 on ``packed``'s device: pixel
    ``8*j + b`` is bit ``b`` of byte ``j`` (equal to `spikeprep.cache.records.unpack_bits`).

    One table lookup per byte (``index_select`` into a 256 x 8 table): on CPU 3x faster than
    eight shifts (measured, benchmarks/loader_raw.py)."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed spikes must be uint8, got {packed.dtype}")
    if not 0 <= width <= 8 * packed.shape[-1]:
        raise ValueError(f"width {width} does not fit {packed.shape[-1]} bytes of 8 pixels")
    bits = _table(packed.device).index_select(0, packed.reshape(-1).long())
    return bits.view(*packed.shape[:-1], 8 * packed.shape[-1])[..., :width]
