"""Checkpoints: atomic writes, keep-last-K, resume lookup, RNG state, ``--init-from``."""

from __future__ import annotations

import glob
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from spikeprep import ConfigError, write_text_atomic

from .config import Config, dump_config

CKPT_RE = re.compile(r"iter_(\d+)\.pt$")


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then os.replace (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def list_checkpoints(out_dir) -> list[Path]:
    """``out_dir/checkpoints/iter_*.pt`` sorted by iteration."""
    paths = [Path(p) for p in glob.glob(os.path.join(out_dir, "checkpoints", "iter_*.pt"))]
    return sorted(paths, key=lambda p: int(CKPT_RE.search(p.name).group(1)))


def save_checkpoint(state: dict, cfg: Config, out_dir, it: int, keep_last: int) -> Path:
    folder = Path(out_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"iter_{it:08d}.pt"
    atomic_save(state, path)
    write_text_atomic(path.with_suffix(".yaml"), dump_config(cfg))
    for old in list_checkpoints(out_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
        old.with_suffix(".yaml").unlink(missing_ok=True)
    return path


def resolve_resume(resume, out_dir) -> Path | None:
    if resume in (None, False, ""):
        return None
    if str(resume) == "auto":
        found = list_checkpoints(out_dir)
        return found[-1] if found else None
    if not Path(resume).is_file():
        raise ConfigError("checkpoint to resume from not found", path=resume)
    return Path(resume)


def init_weights(model, path, log) -> None:
    """``--init-from``: a KAIR/official checkpoint (``params``/``params_ema``/bare state dict) via
    `load_pretrained` (RGB -> RGB + spike adaptation), or one of our checkpoints (its EMA/model)."""
    from .model import load_pretrained
    source = path
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
            source = raw["ema"] if raw.get("ema") is not None else raw["model"]
    except Exception as exc:  # unreadable: let load_pretrained report it
        log.print(f"note: {path} is not a trainer checkpoint ({type(exc).__name__})")
    try:
        report = load_pretrained(model, source)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError("--init-from checkpoint does not fit the model", path=path, found=str(exc)) from None
    log.print(f"init-from {path}: {len(report.adapted)} tensors adapted (spike input weights zero), "
              f"{len(report.missing_keys)} missing, {len(report.unexpected_keys)} unexpected keys")
