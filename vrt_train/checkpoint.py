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
from .errors import OutputError, os_error

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
    """torch.save to a temp file in the same folder, fsync, then os.replace (never half-written).

    On any failure (disk full, read-only, a signal) the temp file is removed and the previous
    ``path`` is left as it was; an OSError becomes an `OutputError`."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = _os_error_in(exc)
        if cause is not None:  # torch.save may wrap it: RuntimeError during handling of OSError
            raise os_error(cause, f"writing checkpoint {path}") from None
        if isinstance(exc, RuntimeError) and "file write failed" in str(exc):  # torch's C++ writer
            raise OutputError(f"writing checkpoint {path} failed", path=path, found=str(exc).splitlines()[0],
                              fix="free space on that file system (or set out_dir elsewhere), "
                                  "then --resume auto") from None
        raise


def _os_error_in(exc: BaseException | None) -> OSError | None:
    """``exc`` or the first OSError in its chain of causes/contexts."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def clean_temp_files(out_dir) -> list[Path]:
    """Remove temp files a killed run left in ``out_dir/checkpoints``; returns them."""
    folder = Path(out_dir) / "checkpoints"
    stale = [Path(p) for pattern in (".*.pt.tmp*", "*.yaml.partial")
             for p in glob.glob(os.path.join(glob.escape(str(folder)), pattern))]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def prepare_out_dir(out_dir) -> None:
    """Create ``out_dir`` and prove it writable (a probe file), or raise `OutputError` naming
    the reason (a file in the way, a read-only or full file system)."""
    out = Path(out_dir)
    blocker = next((p for p in [out, *out.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError("out_dir cannot be created: a file is in the way", path=blocker,
                          found="a file", expected="a folder (or nothing)",
                          fix="set out_dir to a folder path (--set out_dir=...) or move the file")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise os_error(exc, f"preparing out_dir {out}") from None


def list_checkpoints(out_dir) -> list[Path]:
    """``out_dir/checkpoints/iter_*.pt`` sorted by iteration."""
    paths = [Path(p) for p in glob.glob(os.path.join(out_dir, "checkpoints", "iter_*.pt"))]
    return sorted(paths, key=lambda p: int(CKPT_RE.search(p.name).group(1)))


def save_checkpoint(state: dict, cfg: Config, out_dir, it: int, keep_last: int) -> Path:
    folder = Path(out_dir) / "checkpoints"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, f"creating {folder}") from None
    path = folder / f"iter_{it:08d}.pt"
    atomic_save(state, path)
    write_text_atomic(path.with_suffix(".yaml"), dump_config(cfg))
    for old in list_checkpoints(out_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
        old.with_suffix(".yaml").unlink(missing_ok=True)
    return path


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
        raise ConfigError("--init-from checkpoint does not fit the model", path=path,
                          found=" ".join(str(exc).split()), fix="use a checkpoint of the same netG") from None
    log.print(f"init-from {path}: {len(report.adapted)} tensors adapted (spike input weights zero), "
              f"{len(report.missing_keys)} missing, {len(report.unexpected_keys)} unexpected keys")
