"""Does the spike input help? The tiny demo VRT trained twice, same seed and iterations:
RGB only (``data.use_spike=false``) vs RGB + S=4 spike bins, on the demo's simulated dataset
(`spikeprep.demo.DemoData` defaults, built by the demo's own stages) with the demo's config.

Prints the validation PSNR/SSIM of both outputs and of the blurred input. ~4-5 minutes on 2 cores.
Usage: python benchmarks/rgb_vs_spike.py [--iters N (default: the config's)] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from importlib.resources import files
from pathlib import Path

import torch

from spikeprep.demo import DEMO_CONFIG_NAME, DemoData, run_demo
from vrt_train.config import load_config
from vrt_train.train import train

#: the demo's trainer config, shipped as package data (as `spikeprep demo` finds it)
CONFIG = str(files("vrt_train") / "configs" / DEMO_CONFIG_NAME)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=None, help="default: train.total_iter of the config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="work folder to keep (default: a temp dir)")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="rgb_vs_spike_"))
    params = DemoData(seed=args.seed)
    t0 = time.perf_counter()
    run_demo(root, params=params, train=False, progress=False, report=lambda _: None)  # reuses what exists
    cache = root / "cache"
    iters = args.iters or load_config(CONFIG).train.total_iter
    print(f"data: {params.sequences} sequences x {params.frames} frames x {params.height}x{params.width}, "
          f"{params.spikes_per_frame} spikes/frame, exposure {params.exposure}, motion {params.motion}, "
          f"threshold {params.threshold}, S={params.S}, val {params.val_sequence} "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    rows = {}
    for name, use_spike in (("rgb", False), ("rgb+spike", True)):
        cfg = load_config(CONFIG, [f"data.cache={cache}", f"out_dir={root / name}", f"seed={args.seed}",
                                   f"data.use_spike={str(use_spike).lower()}", f"train.total_iter={iters}",
                                   f"train.fix_iter={iters}", f"train.val_every={iters}",
                                   f"train.checkpoint_every={iters}"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows[name] = train(cfg, progress=False)
        r = rows[name]
        print(f"  trained {name:<10} {iters} iterations in {r['seconds']:.1f} s")
    inp = rows["rgb"]
    print(f"{'':<12} {'PSNR dB':>8} {'SSIM':>7}")
    print(f"{'blur input':<12} {inp['psnr_input']:8.3f} {inp['ssim_input']:7.4f}")
    for name, r in rows.items():
        print(f"{name:<12} {r['psnr']:8.3f} {r['ssim']:7.4f}")
    gain = rows["rgb+spike"]["psnr"] - rows["rgb"]["psnr"]
    print(f"spike - rgb: {gain:+.3f} dB after {iters} iterations (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
