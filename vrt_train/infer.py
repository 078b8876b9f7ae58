"""``vrt-train --infer CACHE OUT``: restore every sequence of a cache into png files."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from spikeprep.errors import ConfigError

from .augment import SpikeNorm
from .checkpoint import resolve_resume
from .config import Config
from .data import ValDataset
from .train import build_model
from .validate import infer_to_png


def infer(cfg: Config, cache, out_dir, checkpoint=None, progress: bool = True, model_fn=None) -> list[Path]:
    """Restore every sequence of ``cache`` with the chunk/tile inference; write pngs under out_dir.

    checkpoint: a trainer checkpoint (EMA weights when it has them), default the latest in
    ``cfg.out_dir``; its stored spike normalisation (training statistics) is reused.
    """
    path = Path(checkpoint) if checkpoint else resolve_resume("auto", cfg.out_dir)
    if path is None or not path.is_file():
        raise ConfigError("no checkpoint to run inference with", path=path or cfg.out_dir,
                          fix="train first or pass --checkpoint PATH")
    state = torch.load(path, map_location="cpu", weights_only=False)
    spike_chans = state.get("spike_chans", 0)
    model = model_fn(spike_chans) if model_fn else build_model(cfg, spike_chans)
    model.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    norm = SpikeNorm(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                        for k, v in state["spike_norm"].items()})
    dataset = ValDataset(cache, None, spike_chans > 0, split=None, need_sharp=False)
    written = infer_to_png(model, dataset, cfg.val, norm, device, out_dir, spike_chans > 0)
    if progress:
        print(f"wrote {len(written)} frames of {len(dataset)} sequences to {out_dir}", file=sys.stderr)
    return written
