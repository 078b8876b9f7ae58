"""Tiny hand-built input datasets for tests (random pixels, random spikes, no simulator)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml

from spikeprep.inputs.dat import write_dat


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_dataset(root: Path, sequences=("seqA",), frames: int = 4, height: int = 16, width: int = 24,
                 spikes_per_frame: int = 10, exposure: float = 0.5, spike_rate: float = 1000.0,
                 sharp: bool = True, timing: bool = True, extra_spikes: int = 0, seed: int = 0) -> Path:
    """Our layout with random frames; the stream holds ``frames * spikes_per_frame + extra_spikes``."""
    rng = np.random.default_rng(seed)
    for seq in sequences:
        for i in range(frames):
            write_png(root / "blur" / seq / f"{i:06d}.png", rng.integers(0, 256, (height, width, 3), np.uint8))
            if sharp:
                write_png(root / "sharp" / seq / f"{i:06d}.png", rng.integers(0, 256, (height, width, 3), np.uint8))
        n = frames * spikes_per_frame + extra_spikes
        write_dat(root / "spike" / seq / "spikes.dat", rng.random((n, height, width)) < 0.2)
        config = {"spike_h": height, "spike_w": width, "flipud": True}
        if timing:
            config.update(spike_rate=spike_rate, frame_rate=spike_rate / spikes_per_frame, exposure=exposure)
        (root / "spike" / seq / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def make_recipe(root: Path, frames=3, T=2) -> Path:
    """The recipe's layout; ``T`` is VRT's clip length (frames per training sample), < frames."""
    make_dataset(root / "tmp", frames=frames, sharp=False)
    shutil.move(root / "tmp/blur/seqA", root / "gopro_rgb/seqA")
    shutil.move(root / "tmp/spike/seqA", root / "spike_raw/seqA")
    shutil.rmtree(root / "tmp")
    recipe = {"seq_name": "seqA", "T": T,
              "frames": [{"rgb": f"{i:06d}.png", "spike_begin": 10 * i + 1, "spike_end": 10 * i + 9}
                         for i in range(frames)]}
    (root / "spike_raw/seqA/sync.json").write_text(json.dumps(recipe))
    return root
