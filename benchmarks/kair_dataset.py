"""KAIR-format samples: `vrt_train.kair.VideoTrainDataset` vs KAIR's png path, one run.

Same simulated 720x1280 data (1 sequence x 8 frames; spikes voxelized to S=8 bins), one
process with one thread (as a DataLoader worker), KAIR's 006 sample: T=6 frames, 192x192 crop,
hflip/rot augmentation, i.e.
``L (6, 3+8, 192, 192)`` + ``H (6, 3, 192, 192)`` float32 = 6 x 14 x 192 x 192 x 4 B = 12.4 MB:

- ours:    ``VideoTrainDataset(opt)[i]`` (LMDB crops -> float32, spike channels normalised)
- kair:    KAIR's ``VideoRecurrentTrainDataset`` on png folders, re-done here step by step:
           per frame read the blur and sharp png bytes, decode, whole image to float32 / 255,
           crop, flip/rotate, BGR -> RGB, HWC -> CHW, stack (12 png decodes per sample; RGB
           only: KAIR has no spike input at all)
- memcpy:  copying 12.4 MB between preallocated float32 buffers (the floor for any path that
           writes a fresh sample)

Target: ours >= 30x kair. Usage: python benchmarks/kair_dataset.py [--keep DIR] [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages
import spikeprep  # noqa: E402
from vrt_train.kair import VideoTrainDataset, sample_nbytes  # noqa: E402

T, GT, S = 6, 192, 8


def rate(fn, min_seconds: float, min_calls: int = 3) -> tuple[float, float]:
    """Calls of ``fn(i)`` per wall second and per CPU second of this (one-thread) process, over at
    least ``min_seconds`` of wall time (after one warm-up call). On a shared machine the CPU-time
    rate is what one worker with a core of its own would reach; the wall rate includes waiting
    for a core."""
    fn(0)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while n < min_calls or time.perf_counter() - t0 < min_seconds:
        fn(n + 1)
        n += 1
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)


def kair_png_sample(data: Path, frames, rng: random.Random) -> dict:
    """KAIR's png path for one 6-frame sample (see the module docstring)."""
    start = rng.randint(0, len(frames) - T)
    top, left = rng.randint(0, 720 - GT), rng.randint(0, 1280 - GT)
    hflip, vflip, rot = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
    out = {"L": [], "H": []}
    for fr in frames[start:start + T]:
        for key, name in (("L", fr.blur), ("H", fr.sharp)):
            raw = np.fromfile(data / name, np.uint8)                      # file client: bytes
            img = cv2.imdecode(raw, cv2.IMREAD_COLOR).astype(np.float32) / 255.0
            img = img[top:top + GT, left:left + GT]
            if hflip:
                img = img[:, ::-1]
            if vflip:
                img = img[::-1]
            if rot:
                img = img.transpose(1, 0, 2)
            out[key].append(torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))))
    return {"L": torch.stack(out["L"]), "H": torch.stack(out["H"]), "key": f"seq/{start:06d}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the data here and keep it (default: a temp dir)")
    ap.add_argument("--seconds", type=float, default=4.0, help="minimum seconds per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker (one thread each)
    cv2.setNumThreads(1)
    root = Path(args.keep or tempfile.mkdtemp(prefix="kair_bench_"))
    data, cache = root / "data", root / "cache"
    t0 = time.perf_counter()
    if not (cache / "manifest.json").exists():
        spikeprep.simulate_dataset(data, sequences=1, frames=8, height=720, width=1280,
                                   spikes_per_frame=16, exposure=0.5, force=True)
        spikeprep.build_sync(data)
        spikeprep.voxelize_dataset(data, cache, S=S, progress=False, force=True)
    print(f"data: 1 sequence x 8 frames, 720x1280, S={S}, built in {time.perf_counter() - t0:.1f} s ({root})")

    ds = VideoTrainDataset({"dataroot": os.fspath(cache), "num_frame": T, "gt_size": GT, "use_hflip": True,
                            "use_rot": True, "random_reverse": False})
    seq = ds.items.seqs[0]
    frames = spikeprep.load_sync(data / "spike" / seq / "sync.json").frames
    random.seed(0)
    sample = ds[0]
    nbytes = sample_nbytes(sample)
    src = torch.rand(nbytes // 4)
    dst = torch.empty_like(src)
    rng = random.Random(0)

    results = {"ours": rate(lambda i: ds[i % len(ds)], args.seconds),
               "kair": rate(lambda i: kair_png_sample(data, frames, rng), args.seconds),
               "memcpy": rate(lambda i: dst.copy_(src), args.seconds)}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"opencv {cv2.__version__}; torch threads {torch.get_num_threads()}")
    print(f"sample: L {tuple(sample['L'].shape)} + H {tuple(sample['H'].shape)} float32 = {nbytes / 1e6:.1f} MB")
    print(f"{'path':<8} {'samples/s':>10} {'ms/sample':>10} {'vs kair':>9}   "
          f"{'per CPU-s':>10} {'CPU ms':>8} {'vs kair':>9}")
    for name in ("ours", "kair", "memcpy"):
        (w, c), (kw, kc) = results[name], results["kair"]
        print(f"{name:<8} {w:10.1f} {1000 / w:10.2f} {w / kw:8.1f}x   {c:10.1f} {1000 / c:8.2f} {c / kc:8.1f}x")
    x = results["ours"][1] / results["kair"][1]
    print(f"ours vs kair (CPU time): {x:.1f}x (target >= 30x): {'PASS' if x >= 30 else 'FAIL'}; wall time "
          f"{results['ours'][0] / results['kair'][0]:.1f}x; "
          f"ours at {100 * results['ours'][1] / results['memcpy'][1]:.0f}% "
          f"of memcpy (CPU time)")
    return 0 if x >= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
