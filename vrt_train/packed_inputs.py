"""``data.unpack_on_device: true``: bit-packed spike inputs travel packed and are unpacked on the device.

A ``bitpacked`` representation (``raw:N``: ``(N, h, w)`` 0/1) is stored ``(N, h, ceil(w/8))``
uint8, 8 pixels per byte along w, bit order little (`spikeprep.cache.records.pack_bits`). By
default the reader unpacks every record in the DataLoader worker and the worker copies 0/1 bytes.
With this option the training set (`vrt_train.data.ShardDataset`) reads records with
``unpack=False`` and ships, per item:

===================  ============================  ==============================================
key                  shape                         meaning
===================  ============================  ==============================================
``L_packed``         (T, Cp, h, nb) uint8          the packed bytes covering the spike crop
``packed_shift``     () int64                      the crop's first pixel within the first byte
``L_spike``          (T, Cn, h, w) spike dtype     the inputs that are not bit-packed (Cn may be 0)
===================  ============================  ==============================================

``nb = (w + 14) // 8`` bytes cover ``w`` pixels starting anywhere in a byte (bytes past the
record's end are zero), so crop positions are NOT restricted: the crop is drawn exactly as the
default path draws it (any ``x0``, any ``gt_size``) and costs one extra byte per row. `to_device`
unpacks the batch with `vrt_train.bits.unpack_bits_torch`, cuts each sample's ``w`` pixels at its
shift and interleaves the packed and unpacked inputs back into the channel order of ``data.inputs``:
the resulting ``L_spike (B, T, C, h, w)`` equals the default path's bit for bit (same dtype), so
`vrt_train.augment.assemble` (gain/Poisson, TFP guide, normalisation, flips/rotations, which all
follow) and the loss are unchanged. Validation (`ValDataset`, whole frames, rank 0) keeps reading
unpacked records.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeprep import ConfigError

from .bits import unpack_bits_torch


class PackedInputs:
    """How a training set's spike inputs are read packed: ``parts`` ``(name, channels, packed)``
    in ``data.inputs`` order (picklable, for DataLoader workers)."""

    def __init__(self, parts):
        self.parts = tuple(parts)
        self.names = [name for name, _, _ in self.parts]
        self.packed_channels = sum(c for _, c, p in self.parts if p)
        self.other_channels = sum(c for _, c, p in self.parts if not p)

    @classmethod
    def of(cls, items) -> "PackedInputs":
        """The layout of `vrt_train.data._CacheItems` ``items``; ConfigError when none of its spike
        inputs is bit-packed or spikes are not used."""
        specs = items.inputs or [items.params.representations()[0]]
        parts = [(s.name, s.channels, s.storage == "bitpacked") for s in specs]
        if not items.use_spike or not any(p for _, _, p in parts):
            raise ConfigError("data.unpack_on_device is true but no spike input is bit-packed",
                              found=(", ".join(f"{s.name} ({s.storage})" for s in specs)
                                     if items.use_spike else "data.use_spike false"),
                              expected="a bit-packed representation among the inputs (e.g. raw:41)",
                              fix="set data.unpack_on_device: false (it only applies to bit-packed inputs)")
        return cls(parts)

    def read_clip(self, items, seq: str, frames, top: int, left: int, height: int, width: int,
                  need_sharp: bool = True) -> dict:
        """`vrt_train.data._CacheItems.read_clip` with the bit-packed inputs as packed bytes (module
        docstring); ``L_rgb``/``H``/``window``/``seq``/``frames`` as the default path gives them."""
        from .spike_only import to_channels
        f, frames = items.f, [int(i) for i in frames]
        T, h, w = len(frames), height // f, width // f
        y0, x0 = top // f, left // f
        byte0, shift, nb = x0 // 8, x0 % 8, (w + 14) // 8
        packed = np.zeros((T, self.packed_channels, h, nb), np.uint8)
        other = np.empty((T, self.other_channels, h, w), items.spike_dtype)
        rgb_c = 3 if items.use_rgb else 0
        h_c = 3 if items.use_rgb else items.gt_channels
        rgb = np.empty((T, height, width, rgb_c), np.uint8)
        sharp = np.zeros((T, height, width, h_c), np.uint8)
        divisors = np.ones((T, items.channels), np.float32)
        for t, i in enumerate(frames):
            s = items.cache.read(seq, i, names=self.names, unpack=False)
            if items.use_rgb:
                rgb[t] = s.blur[top:top + height, left:left + width]
            if s.sharp is not None:
                crop = np.asarray(s.sharp)[top:top + height, left:left + width]
                sharp[t] = crop if items.use_rgb else to_channels(crop, h_c)
            elif need_sharp:
                raise ConfigError("cache has no sharp frames to train against", found=f"{seq} frame {i}",
                                  fix="build the cache from a dataset with sharp (ground-truth) frames")
            cp = cn = 0
            for name, c, is_packed in self.parts:
                record = s.spikes[name]
                if is_packed:
                    cols = record[:, y0:y0 + h, byte0:byte0 + nb]
                    packed[t, cp:cp + c, :, :cols.shape[-1]] = cols
                    cp += c
                else:
                    other[t, cn:cn + c] = record[:, y0:y0 + h, x0:x0 + w]
                    cn += c
            if items._divisor:
                divisors[t] = items._divisor(int(s.spike_end) - int(s.spike_begin))
        return {"L_rgb": torch.from_numpy(rgb), "H": torch.from_numpy(sharp), "L_spike": torch.from_numpy(other),
                "L_packed": torch.from_numpy(packed), "packed_shift": torch.tensor(shift, dtype=torch.int64),
                "window": torch.from_numpy(divisors), "seq": seq,
                "frames": torch.as_tensor(np.asarray(frames, np.int64))}


def to_device(batch: dict, layout: PackedInputs | None, device) -> dict:
    """A collated batch with ``L_packed`` -> the same batch with ``L_spike (B, T, C, h, w)`` on
    ``device``, unpacked there (equal to the default path's ``L_spike``); other batches (``layout``
    None) are returned as they are."""
    if layout is None or "L_packed" not in batch:
        return batch
    packed = batch["L_packed"].to(device, non_blocking=True)
    other = batch["L_spike"].to(device, non_blocking=True)
    B, T, _, h, w = other.shape
    bits = unpack_bits_torch(packed, 8 * packed.shape[-1])  # (B, T, Cp, h, 8 nb)
    shifts = [int(s) for s in batch["packed_shift"]]
    spike = torch.empty((B, T, layout.packed_channels + layout.other_channels, h, w), dtype=other.dtype,
                        device=other.device)
    c = cp = cn = 0
    for _, n, is_packed in layout.parts:
        if is_packed:  # each sample's w pixels from its shift into the first byte
            for b, s in enumerate(shifts):
                spike[b, :, c:c + n] = bits[b, :, cp:cp + n, :, s:s + w]
            cp += n
        else:
            spike[:, :, c:c + n] = other[:, :, cn:cn + n]
            cn += n
        c += n
    out = {k: v for k, v in batch.items() if k not in ("L_packed", "packed_shift")}
    out["L_spike"] = spike
    return out
