"""End-to-end: `spikeprep voxelize` (workers 0 and 2) vs the SpikeCV-style on-the-fly path;
with ``--realistic``, `voxelize` against the png-decoding bound on the GoPro shape.

    python benchmarks/voxelize_e2e.py [--sequences 3 --frames 16 --spikes-per-frame 200] [--json OUT]
    python benchmarks/voxelize_e2e.py --realistic [--repeat 3] [--json OUT]

``--realistic`` (`realistic_scale.py`): 720x1280 RGB png, 360x640 spikes, 88 spike frames per RGB
frame, one sequence of 8 and one of 40 frames; every path runs as a fresh process per sequence,
and throughput is marginal, ``32 / (t40 - t8)`` frames/s, so start-up cancels. It prints the
issue's ratios side by side: ``--workers 1`` over the decode bound (target >= 60%),
``--workers 2`` over ``--workers 1`` (target >= 1.4x), and peak memory at 8 vs 40 frames.

Makes a simulated 400x250 dataset (`spikeprep.simulate.simulate_dataset` + `build_sync`), then
runs each path in its own subprocess and reports frames/s, MB/s (bytes of blur + sharp + voxel
arrays produced) and peak RSS (the child's own ``ru_maxrss``; for the worker run also the largest
worker's, from ``RUSAGE_CHILDREN``). Paths:

* on-the-fly (what the recipe's Dataset does per frame): re-read the whole ``.dat`` file and
  decode the window the way SpikeCV's ``get_block_spikes`` does
  (``tests/support/reference.py::spikecv_decode``), numpy bin sums, ``cv2.imread`` blur and sharp;
* voxelize, workers 0 / 2: `spikeprep.voxelize_dataset` into a fresh cache (JIT cache warm);
* cache read: ``open_cache(...).read(seq, i)`` of every frame plus a copy of its arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine  # noqa: E402


def child(mode: str, data: Path, cache: Path, S: int) -> dict:
    """Run one path in this process; return timings (printed as JSON by main)."""
    import resource

    import cv2
    import numpy as np

    sys.path.insert(0, str(HERE.parent))  # the repository root: tests.support
    import spikeprep
    from spikeprep.sync import find_sync_files, load_sync
    from tests.support.reference import spikecv_decode

    syncs = [load_sync(p) for p in find_sync_files(data)]
    frames = sum(len(s.frames) for s in syncs)
    t0 = time.perf_counter()
    nbytes = 0
    if mode == "onthefly":
        for sync in syncs:
            for f in sync.frames:
                raw = np.fromfile(data / f.spike_file, np.uint8)  # SpikeCV reads the whole file
                L = f.spike_end - f.spike_begin
                spikes = spikecv_decode(raw, sync.height, sync.width, f.spike_begin, L, sync.flipud)
                edges = [k * L // S for k in range(S + 1)]
                bins = np.stack([spikes[edges[k]:edges[k + 1]].sum(0) for k in range(S)]).astype(np.uint8)
                blur = cv2.cvtColor(cv2.imread(str(data / f.blur)), cv2.COLOR_BGR2RGB)
                sharp = cv2.cvtColor(cv2.imread(str(data / f.sharp)), cv2.COLOR_BGR2RGB)
                nbytes += bins.nbytes + blur.nbytes + sharp.nbytes
    elif mode.startswith("voxelize"):
        workers = int(mode.split("-")[1])
        summary = spikeprep.voxelize_dataset(data, cache, S=S, workers=workers, force=True, progress=False)
        nbytes = summary.bytes_written
    elif mode == "read":
        c = spikeprep.open_cache(cache)
        for seq in c.sequences:
            for i in range(c.num_frames(seq)):
                s = c.read(seq, i)
                nbytes += s.blur.copy().nbytes + s.sharp.copy().nbytes + s.spike.copy().nbytes
    seconds = time.perf_counter() - t0
    return {"mode": mode, "frames": frames, "seconds": seconds, "bytes": nbytes,
            "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def run_child(mode: str, data: Path, cache: Path, S: int) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(data), str(cache), str(S)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{mode} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    # wait4's ru_maxrss (KiB on Linux) is the largest of the child and its reaped workers
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, data, cache, S = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(child(mode, data, cache, S)))
        return
    if "--realistic" in sys.argv:
        from realistic_scale import main as realistic_main
        realistic_main([a for a in sys.argv[1:] if a != "--realistic"])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=3)
    ap.add_argument("--frames", type=int, default=56,
                    help="RGB frames per sequence (56: the on-the-fly path takes ~40 s on 2 cores)")
    ap.add_argument("--spikes-per-frame", type=int, default=200, help="window = exposure * this")
    ap.add_argument("--S", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None, help="keep data and caches here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()

    from spikeprep import build_sync
    from spikeprep.simulate import simulate_dataset

    work = args.workdir or Path(tempfile.mkdtemp(prefix="voxelize_e2e_"))
    data, cache = work / "data", work / "cache"
    t = time.perf_counter()
    simulate_dataset(data, sequences=args.sequences, frames=args.frames, height=250, width=400,
                     spikes_per_frame=args.spikes_per_frame, exposure=0.5, seed=0, force=True)
    build_sync(data, force=True)
    setup = time.perf_counter() - t
    # warm the numba cache (compiles once per machine) so the timed runs measure steady work
    run_child("voxelize-0", data, cache, args.S)
    results = [run_child(m, data, cache, args.S) for m in ("onthefly", "voxelize-0", "voxelize-2", "read")]

    info = machine()
    dat_mb = sum(p.stat().st_size for p in data.glob("spike/*/*.dat")) / 1e6
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, python {info['python']}, "
          f"numpy {info['numpy']}")
    print(f"dataset: {args.sequences} sequences x {args.frames} frames, 400x250 RGB and spikes, window "
          f"{args.spikes_per_frame // 2} spike frames, S={args.S}, {dat_mb:.0f} MB of .dat "
          f"(simulated in {setup:.1f} s)")
    labels = {"onthefly": "on-the-fly (SpikeCV decode)", "voxelize-0": "voxelize --workers 0",
              "voxelize-2": "voxelize --workers 2", "read": "open_cache().read"}
    base = results[0]["frames"] / results[0]["seconds"]
    header = f"{'path':<30}{'frames':>7}{'seconds':>9}{'frames/s':>10}{'MB/s':>8}{'speedup':>9}{'peak RSS MB':>13}"
    print(header)
    print("-" * len(header))
    for r in results:
        fps = r["frames"] / r["seconds"]
        rss = f"{r['self_peak_rss_mb']:.0f}"
        if r["mode"] == "voxelize-2":  # the writer process, then each worker's peak
            rss += f" +2x{r['workers_peak_rss_mb']:.0f}"
        print(f"{labels[r['mode']]:<30}{r['frames']:>7}{r['seconds']:>9.2f}{fps:>10.1f}"
              f"{r['bytes'] / 1e6 / r['seconds']:>8.1f}{fps / base:>8.1f}x{rss:>13}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=1))
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
