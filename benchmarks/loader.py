"""Training-input throughput: ShardDataset (LMDB cache) vs KAIR's png path vs on-the-fly decoding.

One run, same simulated 720x1280 data (1 sequence x 8 frames, spikes voxelized to S=4 bins),
one process, no workers, T=6 frames per sample, 192x192 crops:

- shard:     `vrt_train.data.ShardDataset` items (uint8 RGB crops + raw spike crops, from LMDB)
- kair:      decode 2 x T full png frames (blur + sharp) with cv2, then crop (KAIR's
             VideoRecurrentTrainDataset on png folders)
- onthefly:  kair + per frame read the `.dat` file and decode its window SpikeCV-style
             (tests/support/reference.py::spikecv_decode on the file bytes) + numpy bins, then crop
- gather:    only the crop copies of a sample, out of already-read zero-copy LMDB record views
             (strided rows of full 720p frames: what ShardDataset does minus LMDB/header work)
- memcpy:    copying the bytes one sample holds (2 x T RGB crops + T spike crops) between
             preallocated contiguous buffers: the limit for any loader

Targets: shard >= 50x kair, shard >= 50% of memcpy. Usage: python benchmarks/loader.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support
import spikeprep  # noqa: E402
from tests.support.reference import spikecv_decode  # noqa: E402
from vrt_train.data import ShardDataset  # noqa: E402

T, GT, S = 6, 192, 4


def rate(fn, min_seconds: float, min_calls: int = 3) -> float:
    """Calls per second of ``fn(i)`` over at least ``min_seconds`` (after one warm-up call)."""
    fn(0)
    n, t0 = 0, time.perf_counter()
    while n < min_calls or time.perf_counter() - t0 < min_seconds:
        fn(n + 1)
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the data here and keep it (default: a temp dir)")
    ap.add_argument("--seconds", type=float, default=4.0, help="minimum seconds per measurement")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="loader_bench_"))
    data, cache = root / "data", root / "cache"

    t0 = time.perf_counter()
    if not (cache / "manifest.json").exists():
        spikeprep.simulate_dataset(data, sequences=1, frames=8, height=720, width=1280,
                                   spikes_per_frame=16, exposure=0.5, force=True)
        spikeprep.build_sync(data)
        spikeprep.voxelize_dataset(data, cache, S=S, progress=False, force=True)
    print(f"data: 1 sequence x 8 frames, 720x1280, S={S}, built in {time.perf_counter() - t0:.1f} s ({root})")

    ds = ShardDataset(os.fspath(cache), num_frames=T, gt_size=GT, samples_per_epoch=10_000)
    seq = ds.items.seqs[0]
    sync = spikeprep.load_sync(data / "spike" / seq / "sync.json")
    frames = sync.frames
    H, W = 720, 1280
    rng = np.random.default_rng(0)

    def shard(i):
        item = ds[(0, i)]
        return item["L_rgb"], item["L_spike"], item["H"]

    def crop_pos():
        start = int(rng.integers(len(frames) - T + 1))
        return start, int(rng.integers(H - GT + 1)), int(rng.integers(W - GT + 1))

    def png_crops(fr, top, left):
        """KAIR's way: decode the whole blur and sharp png, then crop."""
        return [cv2.imread(os.fspath(data / name), cv2.IMREAD_COLOR)[top:top + GT, left:left + GT].copy()
                for name in (fr.blur, fr.sharp)]

    def kair(i):
        start, top, left = crop_pos()
        return [crop for fr in frames[start:start + T] for crop in png_crops(fr, top, left)]

    def onthefly(i):
        start, top, left = crop_pos()
        out = []
        for fr in frames[start:start + T]:
            out += png_crops(fr, top, left)
            raw = np.fromfile(data / fr.spike_file, np.uint8)  # SpikeCV reads the whole file per call
            L = fr.spike_end - fr.spike_begin
            spikes = spikecv_decode(raw, sync.height, sync.width, fr.spike_begin, L)
            edges = [k * L // S for k in range(S + 1)]
            bins = np.stack([spikes[a:b].sum(0, dtype=np.uint16) for a, b in zip(edges[:-1], edges[1:])])
            out.append(bins[:, top:top + GT, left:left + GT].copy())
        return out

    item = ds[(0, 0)]
    sample_bytes = sum(item[k].numel() * item[k].element_size() for k in ("L_rgb", "L_spike", "H"))
    n_src = 64
    src = np.random.default_rng(1).integers(0, 255, (n_src, sample_bytes), np.uint8)
    dst = np.empty(sample_bytes, np.uint8)

    def memcpy(i):
        np.copyto(dst, src[i % n_src])
        return dst

    # the copies alone: the same crops gathered out of already-read zero-copy record views
    records = [ds.items.cache.read(seq, k) for k in range(len(frames))]

    def gather(i):
        start, top, left = crop_pos()
        recs = records[start:start + T]
        return (np.stack([np.asarray(r.blur)[top:top + GT, left:left + GT] for r in recs]),
                np.stack([np.asarray(r.sharp)[top:top + GT, left:left + GT] for r in recs]),
                np.stack([np.asarray(r.spike)[:, top:top + GT, left:left + GT] for r in recs]))

    results = {}
    for name, fn, secs in [("shard", shard, args.seconds), ("memcpy", memcpy, args.seconds),
                           ("gather", gather, args.seconds),
                           ("kair", kair, args.seconds), ("onthefly", onthefly, args.seconds)]:
        results[name] = rate(fn, secs)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}")
    print(f"sample: T={T} frames, {GT}x{GT} crop, RGB blur+sharp uint8 + spike {tuple(item['L_spike'].shape[1:])} "
          f"{item['L_spike'].dtype} = {sample_bytes / 1e6:.2f} MB")
    print(f"{'path':<10} {'samples/s':>10} {'ms/sample':>10} {'vs kair':>9}")
    for name in ("shard", "kair", "onthefly", "gather", "memcpy"):
        r = results[name]
        print(f"{name:<10} {r:10.1f} {1000 / r:10.3f} {r / results['kair']:8.1f}x")
    x_kair = results["shard"] / results["kair"]
    of_memcpy = results["shard"] / results["memcpy"]
    ok1, ok2 = x_kair >= 50, of_memcpy >= 0.5
    print(f"shard vs kair: {x_kair:.1f}x (target >= 50x): {'PASS' if ok1 else 'FAIL'}")
    print(f"shard vs memcpy: {100 * of_memcpy:.1f}% (target >= 50%): {'PASS' if ok2 else 'FAIL'}")
    print(f"(shard vs gather, the crop copies alone out of the mapped records: "
          f"{100 * results['shard'] / results['gather']:.1f}%)")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
