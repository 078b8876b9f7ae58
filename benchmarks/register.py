"""register benchmark: `spikeprep register` on a 720p synthetic rig, per sequence, one core.

Usage: ``python benchmarks/register.py [--frames 12] [--models homography,affine,similarity]
[--repeat 1] [--data DIR]``.

Data (synthesized once into ``--data``, default a temp folder; reused when it exists): one
sequence of a synthetic two-camera rig (`spikeprep.registration.rig`): 720x1280 blurry RGB pngs,
a 250x400 spike stream (flipud) seeing the scene through a known homography (scale 3.0,
rotation 2 degrees, shift (40, 25) RGB px, slight perspective), 40 spike frames per RGB frame,
exposure 0.5 (windows of 20 spike frames). Everything runs on one core (numba, BLAS and
OpenCV threads set to 1).

Rows: per model, the library call `register_sequence` (png reads, spike counts, the search,
ECC on every frame, the verdict): CPU seconds and wall seconds (best of ``--repeat``), the
verdict, NCC after, and the largest corner error against the true matrix (RGB px).
Target: < 10 CPU seconds per sequence.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import spikeprep  # noqa: E402
from spikeprep.registration import RegisterOptions, register_sequence  # noqa: E402
from spikeprep.registration.geometry import apply, centre_corners, similarity  # noqa: E402
from spikeprep.registration.rig import Rig, write_rig  # noqa: E402

RGB, SPIKE = (720, 1280), (250, 400)
TARGET_S = 10.0


def true_matrix() -> np.ndarray:
    m = similarity(3.0, 2.0, 40.0, 25.0)
    m[2, :2] = (5e-6, -4e-6)
    return m


def make_data(root: Path, frames: int) -> Path:
    if not (root / "spike" / "seq" / "sync.json").is_file():
        write_rig(root, "seq", Rig(tuple(map(tuple, true_matrix())), rgb_size=RGB, spike_size=SPIKE, frames=frames))
        spikeprep.build_sync(root)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="RGB frames in the sequence (all used)")
    parser.add_argument("--models", default="homography", help="comma-separated models to time")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data", type=Path, help="keep the synthetic data here (reused when present)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_data(args.data or Path(tmp) / "data", args.frames)
        corners = centre_corners(SPIKE)
        truth = apply(true_matrix(), corners)
        print(f"register: one sequence, {RGB[0]}x{RGB[1]} RGB, {SPIKE[0]}x{SPIKE[1]} spikes, "
              f"{args.frames} frames, one core (load average {os.getloadavg()[0]:.1f})")
        print(f"{'model':<12} {'CPU s':>7} {'wall s':>7} {'verdict':<8} {'NCC after':>9} {'corner err px':>13}")
        for model in args.models.split(","):
            cpu = wall = float("inf")
            for _ in range(args.repeat):
                c0, w0 = time.process_time(), time.perf_counter()
                result = register_sequence(root, "seq", RegisterOptions(model=model, frames=args.frames))
                cpu = min(cpu, time.process_time() - c0)
                wall = min(wall, time.perf_counter() - w0)
            e = result.estimate
            err = "-" if e.matrix is None else f"{np.linalg.norm(apply(e.matrix, corners) - truth, axis=1).max():.3f}"
            ncc = "-" if e.ncc_after is None else f"{e.ncc_after:.3f}"
            flag = "" if cpu < TARGET_S else f"  (above the {TARGET_S:g} s target)"
            print(f"{model:<12} {cpu:7.2f} {wall:7.2f} {e.verdict:<8} {ncc:>9} {err:>13}{flag}")


if __name__ == "__main__":
    main()
