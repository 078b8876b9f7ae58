"""`spikecv`: real spike recordings in SpikeCV's dataset layout (Zyj061/SpikeCV,
SpikeCV/spkData/load_dat.py and the datasets' ``config.yaml``), e.g. recVidarReal2019.

Layout (one dataset folder; scenes may sit in sub-folders, e.g. ``classA/``)::

    DATASET/config.yaml          spike_h, spike_w (and filename, is_labeled, ... : ignored)
    DATASET/[GROUP/]SCENE.dat    one spike stream per scene (SpikeCV layout, flipud)

There is neither an RGB input nor a ground truth: each scene becomes a spike-only sequence
(``GROUP_SCENE``) whose frames are non-overlapping windows of ``--window N`` spike frames
(default 41), as many as fit, centred in the stream (the ``L mod N`` frames left over are split
between its two ends, the extra one at the end). A frame is named after its centre spike frame,
``begin + N//2``, six digits. The cache then holds spike records only (for ``vrt-train --infer``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError, LayoutError, UsageError
from .base import FramePlan, ImportOptions, ImportPlan, SequencePlan, join_name, reject_options
from .scan import stream_length

NAME = "spikecv"
CONFIG = "config.yaml"
WINDOW = 41


def windows(length: int, n: int) -> list[tuple[int, int]]:
    """Non-overlapping ``[begin, end)`` windows of ``n`` frames centred in a ``length``-frame stream."""
    count = length // n
    start = (length - count * n) // 2
    return [(start + i * n, start + (i + 1) * n) for i in range(count)]


def read_size(config: Path) -> tuple[int, int]:
    """``(spike_h, spike_w)`` from a SpikeCV dataset ``config.yaml``."""
    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError("SpikeCV config.yaml cannot be read", path=config, found=str(exc).splitlines()[0],
                          expected="YAML with spike_h and spike_w") from None
    size = tuple(raw.get(k) if isinstance(raw, dict) else None for k in ("spike_h", "spike_w"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ConfigError("SpikeCV config.yaml has no spike size", path=config, found=f"spike_h, spike_w = {size}",
                          expected="positive integers spike_h and spike_w",
                          fix="add them, or pass --spike-size HxW")
    return size


def plan(source: Path, options: ImportOptions) -> ImportPlan:
    """Every ``.dat`` under SOURCE (the folder holding ``config.yaml``), one sequence each."""
    reject_options(NAME, options, {"window"})
    n = WINDOW if options.window is None else options.window
    if n <= 0:
        raise UsageError("--window must be positive", found=n, expected="spike frames per frame, e.g. 41")
    config = source / CONFIG
    if options.spike_size is None and not config.is_file():
        raise LayoutError("SOURCE does not look like a SpikeCV dataset", path=source, found=f"no {CONFIG}",
                          expected="DATASET/config.yaml (spike_h, spike_w) beside the scenes' .dat files",
                          fix="pass the dataset folder, or give the size with --spike-size HxW")
    h, w = options.spike_size or read_size(config)
    dats = sorted(p for p in source.rglob("*.dat") if not any(part.startswith(".") for part in p.parts))
    if not dats:
        raise LayoutError("SpikeCV dataset has no recordings", path=source, found="no .dat files",
                          expected="one SCENE.dat per scene")
    sequences, notes = [], []
    for dat in dats:
        length = stream_length(dat, h, w)
        spans = windows(length, n)
        name = join_name(dat.relative_to(source).with_suffix("").parts)
        if not spans:
            notes.append(f"{name}: {length} spike frames < --window {n}: left out")
            continue
        frames = tuple(FramePlan(f"{b + n // 2:06d}", None, None, dat, b, e) for b, e in spans)
        rule = f"non-overlapping windows of {n}, centred in the stream"
        sequences.append(SequencePlan(name, "test", h, w, frames, (h, w), rule, {"window_spikes": n}))
    if not sequences:
        raise LayoutError("every recording is shorter than one window", path=source, found="; ".join(notes[:3]),
                          expected=f">= {n} spike frames", fix="pass a smaller --window")
    notes.append("spike-only recordings without ground truth: the cache is for inference (vrt-train --infer)")
    return ImportPlan(NAME, source, tuple(sequences), tuple(notes))
