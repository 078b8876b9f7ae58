"""``vrt-train --infer CACHE_OR_DATA OUT``: restore every sequence of a cache (or of a DATA_ROOT,
voxelized on the way with the training cache's parameters) into png files."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from spikeprep import ConfigError

from .augment import SpikeNorm
from .config import Config
from .data import ValDataset
from .factory import build_model
from .resume import load_weights, pick_checkpoint
from .spike_only import dataset_kwargs
from .validate import infer_to_png


def _voxelize_like_training(data_root: Path, cfg: Config, into: Path, progress: bool) -> Path:
    """Voxelize DATA_ROOT (with its spike/SEQ/sync.json) into ``into`` exactly as the training
    cache ``cfg.data.cache`` was built, so the model sees the same spike channels."""
    from spikeprep import open_cache, voxelize_dataset

    with open_cache(cfg.data.cache) as training_cache:
        params = training_cache.params
    voxelize_dataset(data_root, into, S=params.S, repr=params.repr, repr_params=params.repr_params,
                     match=params.match, hot_pixels=params.hot_pixels, progress=progress)
    return into


def infer(cfg: Config, cache, out_dir, checkpoint=None, progress: bool = True, model_fn=None,
          options=None) -> list[Path]:
    """Restore every sequence of ``cache`` with the chunk/tile inference; write pngs under out_dir.

    cache: a spikeprep cache, or a DATA_ROOT with spike/SEQ/sync.json (sharp frames optional),
    voxelized into a temporary cache (removed afterwards) with the training cache's parameters.
    checkpoint: a trainer checkpoint (EMA weights when it has them), default the latest in
    ``cfg.out_dir``; its stored spike normalisation (training statistics) is reused.
    options: `vrt_train.outputs.OutputOptions` (pngs, and ``OUT/SEQ.mp4`` with ``video``).
    With ``data.use_rgb: false`` (spike-only) each png is the grayscale (``data.gt_channels`` 1)
    output at the cache's GT size (its frame size when it has no GT), named by the frame's name.
    """
    from spikeprep import is_cache

    if not isinstance(cache, (str, os.PathLike)):  # an opened Cache
        return _infer_cache(cfg, cache, out_dir, checkpoint, progress, model_fn, options)
    source = Path(cache)
    if is_cache(source) or not (source / "spike").is_dir():
        return _infer_cache(cfg, source, out_dir, checkpoint, progress, model_fn, options)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".infer-cache-", dir=out_dir))
    try:
        _voxelize_like_training(source, cfg, scratch / "cache", progress)
        return _infer_cache(cfg, scratch / "cache", out_dir, checkpoint, progress, model_fn, options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Quiet:
    """A logger for `pick_checkpoint` that prints its warnings to stderr."""

    def print(self, text: str) -> None:
        print(text, file=sys.stderr)


def _infer_cache(cfg: Config, cache, out_dir, checkpoint, progress: bool, model_fn, options=None) -> list[Path]:
    path, state = pick_checkpoint(checkpoint or "auto", cfg.out_dir, _Quiet())
    if state is None:
        raise ConfigError("no checkpoint to run inference with", path=Path(cfg.out_dir) / "checkpoints",
                          found="none", fix="train first or pass --checkpoint PATH")
    spike_chans = state.get("spike_chans", 0)
    dataset = ValDataset(cache, None, spike_chans > 0, split=None, need_sharp=False, **dataset_kwargs(cfg))
    if spike_chans and dataset.items.channels != spike_chans:
        raise ConfigError("the cache to restore has another number of spike channels (S) than the "
                          "checkpoint was trained with", path=cache if isinstance(cache, (str, os.PathLike)) else None,
                          found=f"{dataset.items.channels} channels", expected=f"{spike_chans} (checkpoint {path})",
                          fix=f"voxelize the data with the training cache's parameters (--S {spike_chans}), "
                              "or pass the DATA_ROOT itself: --infer voxelizes it like the training cache")
    model = model_fn(spike_chans) if model_fn else build_model(cfg, spike_chans)
    load_weights(model, state["ema"] if state.get("ema") is not None else state["model"], path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    norm = SpikeNorm(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                        for k, v in state["spike_norm"].items()})
    written = infer_to_png(model, dataset, cfg.val, norm, device, out_dir, spike_chans > 0, options)
    if progress:
        print(f"wrote {len(written)} files for {len(dataset)} sequences to {out_dir}", file=sys.stderr)
    return written
