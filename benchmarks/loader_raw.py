"""Training input of a 41-frame 0/1 spike representation: bit-packed and unpacked on the device
vs stored as bytes (uint8 0/1 per pixel).

One run, one process, no workers; a 1-sequence x 8-frame cache of 256x320 spikes, T=6 frames
per sample, 192x192 crops (left edge on a multiple of 8 pixels, so a packed crop is whole bytes):

- bytes:          the representation stored as ``(41, h, w)`` uint8 0/1; a sample is T crop copies
- packed+device:  stored bit-packed ``(41, h, w/8)``; read with ``open_cache(unpack=False)``, the
                  sample copies T packed crops (8x fewer bytes) and `vrt_train.bits.unpack_bits_torch`
                  unpacks the sample's ``(T, 41, 192, 24)`` tensor on the device (here: torch on CPU)
- packed+reader:  stored bit-packed, the reader unpacks each record with numpy (``unpack=True``),
                  then the sample copies T crops

Then the trainer's own path, ``data.inputs: [raw]`` (`vrt_train.data.ShardDataset` through
`vrt_train.data.make_loader`, then `vrt_train.packed_inputs.to_device` and
`vrt_train.augment.assemble` with the default augmentation on ``--device``), both ways:

- trainer, unpack in reader:  ``data.unpack_on_device: false`` (the default)
- trainer, unpack on device:  ``data.unpack_on_device: true`` (packed bytes to the device)

each as worker items/s (`ShardDataset` alone: what DataLoader workers do) and trainer samples/s

(the first batches of both are checked equal). The representation is ``raw:41`` (the centred
41 frames as 0/1), once bit-packed and once stored as bytes (`RawBytes`, registered here; the same
frames, so their samples are checked equal too). Usage: python benchmarks/loader_raw.py
[--keep DIR] [--seconds S] [--device cuda] [--workers N] [--batch B]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support
import spikeprep  # noqa: E402
from spikeprep.representations import catalog  # noqa: E402
from spikeprep.representations.raw import Raw  # noqa: E402
from tests.support.cache_datasets import make_dataset  # noqa: E402
from vrt_train.bits import unpack_bits_torch  # noqa: E402

T, GT, N, H, W = 6, 192, 41, 256, 320


@dataclasses.dataclass(frozen=True)
class RawBytes(Raw):
    """``raw`` stored as it is, one byte (0/1) per pixel and frame: the unpacked comparison."""

    name: ClassVar[str] = "raw-bytes"
    storage: ClassVar[str] = "array"


def rate(fn, min_seconds: float, min_calls: int = 3) -> float:
    fn(0)
    n, t0 = 0, time.perf_counter()
    while n < min_calls or time.perf_counter() - t0 < min_seconds:
        fn(n + 1)
        n += 1
    return n / (time.perf_counter() - t0)


def trainer_rates(cache: Path, name: str, device: str, seconds: float, batch: int, workers: int) -> dict:
    """``{path: (items/s of ShardDataset alone (a worker's part), samples/s of the trainer's data path
    (loader -> to_device -> assemble))}``, unpack_on_device off and on."""
    from vrt_train import packed_inputs
    from vrt_train.augment import SpikeNorm, assemble
    from vrt_train.config import AugmentConfig
    from vrt_train.data import ClipSampler, ShardDataset, effective_spike_norm, make_loader

    rates, firsts = {}, []
    for flag in (False, True):
        ds = ShardDataset(str(cache), T, GT, "train", seed=0, inputs=[name], unpack_on_device=flag)
        params = ds.items.manifest.params
        norm = SpikeNorm.from_manifest(ds.items.manifest, effective_spike_norm(params, "window", [name]), [name])
        loader = iter(make_loader(ds, batch, workers, ClipSampler(len(ds)), pin_memory=device.startswith("cuda")))

        def step(_, ds=ds, norm=norm, loader=loader):
            b = packed_inputs.to_device(next(loader), ds.items.packed, device)
            L, H = assemble(b, device, norm, AugmentConfig(), torch.Generator().manual_seed(0))
            if L.is_cuda:
                torch.cuda.synchronize()
            return L

        firsts.append(step(0).cpu())
        key = "unpack on device" if flag else "unpack in reader"
        rates[key] = (rate(lambda i, ds=ds: ds[(0, i % len(ds))], seconds), rate(step, seconds) * batch)
        del loader
    assert torch.equal(firsts[0], firsts[1]), "unpack_on_device changed the batch"
    return rates


def crops(i: int) -> tuple[int, int]:
    rng = np.random.default_rng(i)
    return int(rng.integers(H - GT + 1)), int(rng.integers((W - GT) // 8 + 1)) * 8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the data here and keep it (default: a temp dir)")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per measurement")
    ap.add_argument("--device", default="cpu", help="where packed+device unpacks (cpu, cuda)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the trainer path")
    ap.add_argument("--batch", type=int, default=2, help="batch size of the trainer path")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="loader_raw_"))
    catalog.REPRESENTATIONS[RawBytes.name] = RawBytes
    packed_name, bytes_name = "raw", RawBytes.name
    data = root / "data"
    if not (data / "spike").is_dir():
        make_dataset(data, sequences=("a",), frames=8, rgb_hw=(H, W), spike_hw=(H, W), window=48, sharp=True)
    for name in (packed_name, bytes_name):
        if not (root / name / "manifest.json").exists():
            spikeprep.voxelize_dataset(data, root / name, repr=["count", f"{name}:{N}"], progress=False)
    packed = spikeprep.open_cache(root / packed_name, unpack=False)
    reader = spikeprep.open_cache(root / packed_name)
    stored = spikeprep.open_cache(root / bytes_name)
    wb = GT // 8

    def bytes_sample(i):
        top, left = crops(i)
        out = np.empty((T, N, GT, GT), np.uint8)
        for t in range(T):
            out[t] = stored.read("a", t, names=[bytes_name]).spikes[bytes_name][:, top:top + GT, left:left + GT]
        return torch.from_numpy(out)

    def packed_sample(i):
        top, left = crops(i)
        out = np.empty((T, N, GT, wb), np.uint8)
        for t in range(T):
            rec = packed.read("a", t, names=[packed_name]).spikes[packed_name]
            out[t] = rec[:, top:top + GT, left // 8:left // 8 + wb]
        bits = unpack_bits_torch(torch.from_numpy(out).to(args.device, non_blocking=True), GT)
        if bits.is_cuda:
            torch.cuda.synchronize()
        return bits.cpu() if check[0] else bits

    check = [True]

    def reader_sample(i):
        top, left = crops(i)
        out = np.empty((T, N, GT, GT), np.uint8)
        for t in range(T):
            out[t] = reader.read("a", t, names=[packed_name]).spikes[packed_name][:, top:top + GT, left:left + GT]
        return torch.from_numpy(out)

    assert all(torch.equal(packed_sample(i), reader_sample(i)) for i in range(3))
    assert all(torch.equal(bytes_sample(i), packed_sample(i)) for i in range(3))  # the same frames
    check[0] = False
    results = {name: rate(fn, args.seconds) for name, fn in
               (("bytes", bytes_sample), ("packed+device", packed_sample), ("packed+reader", reader_sample))}
    trainer = trainer_rates(root / packed_name, packed_name, args.device, args.seconds, args.batch, args.workers)
    size = {n: sum(p.stat().st_size for p in (root / n).glob("shard-*/data.mdb")) for n in (packed_name, bytes_name)}
    print(f"# loader_raw: {N}-frame 0/1 representation, T={T}, {GT}x{GT} crops of {H}x{W}; {platform.processor() or ''}"
          f" python {platform.python_version()}, torch {torch.__version__} (CPU threads {torch.get_num_threads()}),"
          f" unpack on {args.device}")
    print(f"representation: {packed_name}:{N}, bit-packed vs {bytes_name}:{N}")
    print(f"cache bytes: packed {size[packed_name] / 1e6:.1f} MB, bytes {size[bytes_name] / 1e6:.1f} MB")
    print("| path | samples/s | vs bytes |\n|---|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} | {value / results['bytes']:.2f}x |")
    print(f"\ntrainer path (data.inputs [{packed_name}], batch {args.batch}, workers {args.workers}, {args.device}):")
    print("| data.unpack_on_device | worker items/s | vs reader | trainer samples/s | vs reader |")
    print("|---|---|---|---|---|")
    ref = trainer["unpack in reader"]
    for name, (items, samples) in trainer.items():
        print(f"| {name} | {items:.1f} | {items / ref[0]:.2f}x | {samples:.1f} | {samples / ref[1]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
