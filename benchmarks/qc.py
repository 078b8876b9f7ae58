"""`spikeprep qc` on headerless captures of one byte size and several geometries, side by side
with the decode bound (reading and unpacking every bit of the file once with numpy).

    python benchmarks/qc.py [--mbytes 3.6] [--json OUT]

Each capture is a smooth random texture drifting under Bernoulli spikes, with 4 hot and 4 dead
pixels planted; the table says whether the geometry and every planted pixel were found, how many
other pixels were flagged, and the CPU seconds of the whole check vs the decode bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

SIZES = ((250, 400), (360, 640), (180, 320), (480, 854))


def capture(path: Path, height: int, width: int, frames: int, seed: int):
    """Write a capture; return the planted ``(hot, dead)`` pixel sets (image orientation)."""
    from spikeprep import write_dat

    rng = np.random.default_rng(seed)
    pad = 16
    texture = sum(cv2.GaussianBlur(rng.standard_normal((height + 2 * pad, width + 2 * pad)).astype(np.float32),
                                   (0, 0), s) * s for s in (2, 6, 18))
    texture = 0.05 + 0.55 * (texture - texture.min()) / np.ptp(texture)
    spikes = np.empty((frames, height, width), bool)
    for t in range(frames):
        shift = np.float32([[1, 0, -pad + 0.04 * t], [0, 1, -pad + 0.025 * t]])
        spikes[t] = rng.random((height, width)) < cv2.warpAffine(texture, shift, (width, height))
    hot = {(int(rng.integers(3, height - 3)), int(rng.integers(3, width - 3))) for _ in range(4)}
    dead = {(int(rng.integers(3, height - 3)), int(rng.integers(3, width - 3))) for _ in range(4)}
    for r, c in hot:
        spikes[:, r, c] = True
    for r, c in dead:
        spikes[:, r, c] = False
    write_dat(path, spikes)
    return hot, dead


def decode_bound(path: Path) -> float:
    """CPU seconds to read the file and unpack every bit once (numpy)."""
    start = time.process_time()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            np.unpackbits(np.frombuffer(chunk, np.uint8)).sum()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbytes", type=float, default=3.6, help="bytes per capture, millions")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    from spikeprep.qc import check_capture

    nbytes = int(args.mbytes * 1e6)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (h, w) in enumerate(SIZES):
            frames = nbytes * 8 // (h * w)
            path = Path(tmp) / f"{h}x{w}.dat"
            hot, dead = capture(path, h, w, frames, seed=i)
            bound = decode_bound(path)
            start = time.process_time()
            report = check_capture(path)
            seconds = time.process_time() - start
            found_hot = {tuple(p) for p in report.hot_pixels}
            found_dead = {tuple(p) for p in report.dead_pixels}
            rows.append({"geometry": f"{h}x{w}", "frames": frames, "bytes": path.stat().st_size,
                         "found": f"{report.geometry.height}x{report.geometry.width}",
                         "planted_found": f"{len(hot & found_hot) + len(dead & found_dead)}/8",
                         "others_flagged": len(found_hot - hot) + len(found_dead - dead),
                         "qc_cpu_s": round(seconds, 2), "decode_bound_cpu_s": round(bound, 2)})
    print(f"spikeprep qc, captures of {nbytes} bytes each ({machine()['cpu']}, {machine()['cores']} cores)")
    print("| geometry | frames | inferred | planted found | others flagged | qc CPU s | decode bound CPU s |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['geometry']} | {r['frames']} | {r['found']} | {r['planted_found']} | {r['others_flagged']} "
              f"| {r['qc_cpu_s']} | {r['decode_bound_cpu_s']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
