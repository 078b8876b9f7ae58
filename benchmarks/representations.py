"""Representations side by side: per-frame build time and stored bytes of each, against bins.

Usage: ``python benchmarks/representations.py [--frames 1000] [--window 97] [--reps 7] [--json OUT]``.

One 250x400 stream of ``--frames`` frames at 10% spikes in a temporary `.dat`; windows of
``--window`` frames (97: S-SDM's exposure) spread over it. Per representation, a frame is what
the cache does for it: `window_of` (the stream around the window for tfi), ``compute``, and the
record as stored (`spike_record`: bit-packed for raw and svrt-encoding25). Time: best of
``--reps`` frames, ms per frame; bytes: the record (48-byte header included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spikeprep.cache.frames import FrameJob, spike_record, window_of  # noqa: E402
from spikeprep.cache.manifest_params import ReprSpec  # noqa: E402
from spikeprep.inputs.dat import SpikeStream  # noqa: E402
from spikeprep.representations.catalog import make_representation, params_of  # noqa: E402

HEIGHT, WIDTH, DENSITY = 250, 400, 0.10
#: (label, --repr, S, params)
CASES = (
    ("bins:8", "bins", 8, {}),
    ("count", "count", 1, {}),
    ("temporal4", "temporal4", 4, {}),
    ("tfp:8", "tfp", 8, {}),
    ("svrt-tfp:4", "svrt-tfp", 4, {}),
    ("ema:8", "ema", 8, {}),
    ("raw (whole window)", "raw", None, {}),
    ("raw:41", "raw", 41, {}),
    ("tfi", "tfi", 1, {}),
    ("tfi:4", "tfi", 4, {}),
    ("tfp-ls", "tfp-ls", 2, {}),
    ("svrt-encoding25:1", "svrt-encoding25", 1, {}),
    ("svrt-encoding25:4", "svrt-encoding25", 4, {}),
)


def measure(stream: SpikeStream, path: str, window: int, reps: int) -> list[dict]:
    starts = np.linspace(40, len(stream) - window - 40, reps).astype(int)
    rows, bins_ms, bins_bytes = [], None, None
    for label, name, S, params in CASES:
        rep = make_representation(name, window if S is None else S, **params)
        dtype = np.dtype(rep.dtype_for(window))
        spec = ReprSpec(name=name, repr=name, S=rep.S, repr_params=params_of(rep.to_dict()),
                        channels=rep.channels, spike_dtype=dtype.name,
                        spike_shape=(rep.channels, HEIGHT, WIDTH), storage=getattr(rep, "storage", "array"))
        best, nbytes = float("inf"), 0
        for begin in [starts[0], *starts]:  # the first: warm-up (numba compiles, pages load)
            job = FrameJob("s", 0, "b.png", None, path, int(begin), int(begin) + window)
            t0 = time.perf_counter()
            out = np.empty((rep.channels, HEIGHT, WIDTH), dtype)
            voxels = rep.compute(window_of(stream, job, rep), HEIGHT, WIDTH, flipud=True, out=out)
            _, value = spike_record(job, spec, voxels)
            best = min(best, time.perf_counter() - t0)
            nbytes = len(value)
        if bins_ms is None:
            bins_ms, bins_bytes = best * 1e3, nbytes
        rows.append({"repr": label, "channels": rep.channels, "dtype": dtype.name, "storage": spec.storage,
                     "ms_per_frame": best * 1e3, "vs_bins_time": best * 1e3 / bins_ms,
                     "bytes_per_frame": nbytes, "vs_bins_bytes": nbytes / bins_bytes})
    return rows


def write_stream(path: Path, frames: int, chunk: int = 100) -> None:
    """A ``.dat`` of random spikes at DENSITY, written 100 frames at a time (SpikeCV's layout)."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for begin in range(0, frames, chunk):
            bits = rng.random((min(chunk, frames - begin), HEIGHT * WIDTH), dtype=np.float32) < DENSITY
            f.write(np.packbits(bits, axis=1, bitorder="little").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--window", type=int, default=97)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.dat"
        write_stream(path, args.frames)
        with SpikeStream(filepath=path, spike_h=HEIGHT, spike_w=WIDTH, print_dat_detail=False) as stream:
            rows = measure(stream, str(path), args.window, args.reps)
    print(f"250x400, windows of {args.window} frames, {DENSITY:.0%} spikes; best of {args.reps} frames")
    print(f"{'repr':<20} {'C':>4} {'dtype':>8} {'storage':>9} {'ms/frame':>9} {'x bins':>7} "
          f"{'bytes/frame':>12} {'x bins':>7}")
    for r in rows:
        print(f"{r['repr']:<20} {r['channels']:>4} {r['dtype']:>8} {r['storage']:>9} {r['ms_per_frame']:>9.2f} "
              f"{r['vs_bins_time']:>7.2f} {r['bytes_per_frame']:>12,} {r['vs_bins_bytes']:>7.2f}")
    if args.json:
        args.json.write_text(json.dumps({"window": args.window, "frames": args.frames, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
