"""A dataset of the GoPro shape for the cache-build benchmarks, written directly (no simulator).

720x1280 RGB pngs (blur and sharp; a smooth texture plus fine noise, ~1.2 MB each, about what
GoPro frames weigh), 360x640 spikes at ~12% firing, 88 spike frames per RGB frame (the window
of each frame), one sequence ``seq`` of ``frames`` frames. Deterministic for ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from spikeprep.sync import FrameWindow, SyncFile, save_sync

RGB_HW = (720, 1280)
SPIKE_HW = (360, 640)
WINDOW = 88


def texture(rng: np.random.Generator, shift: int) -> np.ndarray:
    """``(720, 1280, 3)`` uint8: upsampled coarse noise + fine noise (png ~1.2 MB)."""
    h, w = RGB_HW
    coarse = rng.random((h // 16, w // 16, 3), dtype=np.float32) * 255
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 3, (h, w, 3)).astype(np.float32)
    return np.clip(np.roll(smooth, shift, axis=1) + fine, 0, 255).astype(np.uint8)


def make_realistic(root: Path, frames: int, seed: int = 0, name: str = "seq") -> Path:
    """DATA_ROOT with ``frames`` RGB frames of one sequence ``name`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for kind in ("blur", "sharp"):
        (root / kind / name).mkdir(parents=True, exist_ok=True)
    spike_dir = root / "spike" / name
    spike_dir.mkdir(parents=True, exist_ok=True)
    h, w = SPIKE_HW
    frame_bytes = h * w // 8
    windows = []
    with open(spike_dir / "spikes.dat", "wb") as dat:
        for i in range(frames):
            for kind in ("blur", "sharp"):
                cv2.imwrite(str(root / kind / name / f"{i:06d}.png"), texture(rng, 3 * i))
            # AND of three random bytes: each bit fires with probability 1/8
            packed = [rng.integers(0, 256, WINDOW * frame_bytes, dtype=np.uint8) for _ in range(3)]
            dat.write((packed[0] & packed[1] & packed[2]).tobytes())
            windows.append(FrameWindow(f"blur/{name}/{i:06d}.png", f"sharp/{name}/{i:06d}.png",
                                       f"spike/{name}/spikes.dat", i * WINDOW, (i + 1) * WINDOW))
    save_sync(spike_dir / "sync.json", SyncFile(name, h, w, True, tuple(windows)))
    return root
