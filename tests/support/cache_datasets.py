"""Tiny datasets for the cache tests, built directly (pngs, write_dat, save_sync): no simulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from spikeprep.cache.reader import acquire_env, release_env
from spikeprep.inputs.dat import write_dat
from spikeprep.sync import FrameWindow, SyncFile, save_sync


def make_dataset(root: Path, sequences=("a", "b", "c"), frames: int = 4, rgb_hw=(32, 48),
                 spike_hw=(32, 48), window: int = 16, gap: int = 4, sharp: bool = True,
                 rate: float = 0.2, seed: int = 0, stuck: dict | None = None) -> Path:
    """DATA_ROOT with blur/SEQ/*.png, sharp/SEQ/*.png, spike/SEQ/spikes.dat and sync.json.

    Frame ``i``'s window is ``[gap + i*(window+gap), ... + window)``; ``stuck`` maps a sequence to
    a (row, col) pixel (image orientation) that fires every spike frame.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    h, w = spike_hw
    for seq in sequences:
        n_spike = gap + frames * (window + gap)
        spikes = rng.random((n_spike, h, w)) < rate
        if stuck and seq in stuck:
            spikes[:, stuck[seq][0], stuck[seq][1]] = True
        write_dat(root / "spike" / seq / "spikes.dat", spikes, flipud=True)
        windows = []
        for i in range(frames):
            for kind in ("blur", "sharp") if sharp else ("blur",):
                img = rng.integers(0, 256, (*rgb_hw, 3), dtype=np.uint8)
                (root / kind / seq).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / kind / seq / f"{i:06d}.png"), img)
            begin = gap + i * (window + gap)
            windows.append(FrameWindow(f"blur/{seq}/{i:06d}.png",
                                       f"sharp/{seq}/{i:06d}.png" if sharp else None,
                                       f"spike/{seq}/spikes.dat", begin, begin + window))
        save_sync(root / "spike" / seq / "sync.json", SyncFile(seq, h, w, True, tuple(windows)))
    return root


def copy_dataset(source: tuple[Path, Path], into: Path) -> tuple[Path, Path]:
    """A private copy of a built ``(DATA_ROOT, CACHE)`` pair as ``into/data``, ``into/cache``,
    for a test that damages one of them (module-scoped originals stay intact)."""
    data, cache = source
    shutil.copytree(data, into / "data")
    shutil.copytree(cache, into / "cache")
    return into / "data", into / "cache"


def all_records(cache: Path) -> dict[str, bytes]:
    out = {}
    for shard in sorted(cache.glob("shard-*.lmdb")):
        env = acquire_env(shard)  # py-lmdb opens a path once per process: share the readers' env
        with env.begin() as txn:
            out.update({f"{shard.name}:{k.decode()}": bytes(v) for k, v in txn.cursor()})
        release_env(shard)
    return out


def manifest_without_time(cache: Path) -> dict:
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest.pop("created")
    return manifest
