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

``--pipeline``: then what a rig owner runs after it, timed: `apply_registrations` (``register
--fix``), ``build_sync(force=True)``, ``voxelize_dataset(S=4)`` (RGB cropped to the overlap, spikes
warped onto it) and ``verify_cache(data_root=...)``, and the NCC of every cached frame's voxel sum
with its blurred luminance (min and mean; the issue's bar: >= 0.9).
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
    parser.add_argument("--pipeline", action="store_true",
                        help="then --fix, build-sync --force, voxelize --S 4, verify --data: times and NCC")
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
        if args.pipeline:
            pipeline(root, result, Path(tmp) / "cache")


def pipeline(root: Path, result, cache: Path) -> None:
    """The registered rig after ``register``: --fix, build-sync --force, voxelize --S 4, verify."""
    from spikeprep.registration.fix import apply_registrations

    steps = [("register --fix", lambda: apply_registrations(root, [result])),
             ("build-sync --force", lambda: spikeprep.build_sync(root, force=True)),
             ("voxelize --S 4", lambda: spikeprep.voxelize_dataset(root, cache, S=4, progress=False)),
             ("verify --data", lambda: spikeprep.verify_cache(cache, data_root=root))]
    for name, step in steps:
        t0 = time.perf_counter()
        out = step()
        print(f"{name:<20} {time.perf_counter() - t0:6.2f} s wall" +
              ("" if name != "verify --data" else f"  ok={out.ok}"))
    c = spikeprep.open_cache(cache)
    luma = np.array([0.299, 0.587, 0.114])
    nccs = [frame_ncc(s.spike.sum(axis=0), s.blur.astype(np.float64) @ luma)
            for s in (c.read("seq", i) for i in range(c.num_frames("seq")))]
    crop = c.manifest.params.registration.crop
    print(f"cached frames: {len(nccs)} of {crop[0]}x{crop[1]} (the crop), {c.manifest.params.spike_dtype}; "
          f"NCC(voxel sum, blur luma) min {min(nccs):.3f} mean {np.mean(nccs):.3f} (bar 0.9)")


def frame_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two same-shape images."""
    a, b = a.astype(np.float64) - a.mean(), b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


if __name__ == "__main__":
    main()
