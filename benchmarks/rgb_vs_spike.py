"""Does the spike input help? The tiny demo VRT trained twice, same seed and iterations:
RGB only (``data.use_spike=false``) vs RGB + S=4 spike bins, on a simulated blurred dataset.

Prints the validation PSNR/SSIM of both outputs and of the blurred input. ~5 minutes on 2 cores.
Usage: python benchmarks/rgb_vs_spike.py [--iters 120] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

import spikeprep
from vrt_train.config import load_config
from vrt_train.train import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo_tiny_cpu.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="work folder to keep (default: a temp dir)")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="rgb_vs_spike_"))
    data, cache = root / "data", root / "cache"
    t0 = time.perf_counter()
    if not (cache / "manifest.json").exists():
        spikeprep.simulate_dataset(data, sequences=3, frames=12, height=64, width=64, exposure=1.0,
                                   seed=args.seed, force=True)
        spikeprep.build_sync(data)
        spikeprep.voxelize_dataset(data, cache, S=4, val=("seq002",), progress=False, force=True)
    print(f"data: 3 sequences x 12 frames x 64x64 (exposure 1.0), S=4, val seq002 ({time.perf_counter() - t0:.1f} s)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    rows = {}
    for name, use_spike in (("rgb", False), ("rgb+spike", True)):
        cfg = load_config(CONFIG, [f"data.cache={cache}", f"out_dir={root / name}", f"seed={args.seed}",
                                   f"data.use_spike={str(use_spike).lower()}", f"train.total_iter={args.iters}",
                                   f"train.scheduler_periods={args.iters}", f"train.fix_iter={args.iters}",
                                   f"train.val_every={args.iters}", f"train.checkpoint_every={args.iters}"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows[name] = train(cfg, progress=False)
        r = rows[name]
        print(f"  trained {name:<10} {args.iters} iterations in {r['seconds']:.1f} s")
    inp = rows["rgb"]
    print(f"{'':<12} {'PSNR dB':>8} {'SSIM':>7}")
    print(f"{'blur input':<12} {inp['psnr_input']:8.3f} {inp['ssim_input']:7.4f}")
    for name, r in rows.items():
        print(f"{name:<12} {r['psnr']:8.3f} {r['ssim']:7.4f}")
    gain = rows["rgb+spike"]["psnr"] - rows["rgb"]["psnr"]
    print(f"spike - rgb: {gain:+.3f} dB after {args.iters} iterations (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
