"""The training half of `spikeprep demo`: train the demo's tiny VRT on the demo cache.

`spikeprep` never imports `vrt_train`, so the demo runs this module as a child process::

    python -m vrt_train.demo CACHE OUT_DIR --config YAML [--quiet]

It trains per YAML with ``data.cache=CACHE`` and ``out_dir=OUT_DIR``, resuming from the latest
checkpoint there (nothing left to do once the last iteration is reached), shows its progress on
stderr as `vrt-train` does, and prints one JSON line on stdout (`reply`): ``{"summary": ...}``,
the dict `train_demo` returns, or ``{"error": ...}``, a `SpikeprepError`'s class name, fields
and exit code, exiting with that code. It dies with the process that started it; Ctrl-C ends
it quietly with exit code 130 (the demo reports the interruption).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

from spikeprep import DependencyError, SpikeprepError

from .errors import os_error
from .requirements import missing_train_message, missing_train_packages
from .workers import as_worker_error, die_with_parent


def train_demo(cache: str | os.PathLike, out_dir: str | os.PathLike, config: str | os.PathLike,
               progress: bool = True) -> dict:
    """Train (or finish training) into ``out_dir``; returns `vrt_train.train.train`'s summary
    (iteration, checkpoint paths, seconds, and PSNR in dB / SSIM of output and input on the
    validation sequence: from ``val.csv`` when training had already finished)."""
    from .config import load_config
    from .model import SpyNetWeightsWarning
    from .train import train

    cfg = load_config(config, [f"data.cache={cache}", f"out_dir={out_dir}"])
    with warnings.catch_warnings():  # the demo trains from scratch on purpose: SpyNet is random
        warnings.simplefilter("ignore", SpyNetWeightsWarning)
        result = train(cfg, resume="auto", progress=progress)
    if "psnr" not in result:  # training had already finished: report its last validation
        result.update(last_validation(Path(out_dir) / "val.csv"))
    return result


def last_validation(csv_path: Path) -> dict:
    """The last row of a ``val.csv`` as floats (psnr, ssim, psnr_input, ssim_input), or {}."""
    if not csv_path.is_file():
        return {}
    rows = list(csv.DictReader(csv_path.open()))
    return {k: float(v) for k, v in rows[-1].items() if k != "iter"} if rows else {}


def error_reply(err: SpikeprepError) -> dict:
    """``{"error": ...}``: enough for the demo to raise an error that prints the same line."""
    fields = {"type": type(err).__name__, "what": err.what, "path": err.path, "exit_code": err.exit_code}
    for name in ("found", "expected", "fix"):
        value = getattr(err, name)
        fields[name] = None if value is None else str(value)
    return {"error": fields}


def user_error(exc: BaseException) -> SpikeprepError | None:
    """``exc`` as the one-line error `vrt-train` would print, or None for a bug."""
    if isinstance(exc, SpikeprepError):
        return exc
    err = as_worker_error(exc)
    if err is None and isinstance(exc, OSError):
        err = os_error(exc, "a file operation")
    return err


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vrt_train.demo", description=__doc__.splitlines()[0])
    ap.add_argument("cache", help="the demo's voxel cache")
    ap.add_argument("out_dir", help="the training folder (checkpoints, logs)")
    ap.add_argument("--config", required=True, help="trainer YAML (the demo's: demo_tiny_cpu.yaml)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or log lines on the terminal")
    args = ap.parse_args(argv)
    die_with_parent(os.getppid())
    try:
        missing = missing_train_packages()
        if missing:
            raise DependencyError(missing_train_message("spikeprep demo", missing))
        reply = {"summary": train_demo(args.cache, args.out_dir, args.config, progress=not args.quiet)}
    except KeyboardInterrupt:
        sys.exit(130)
    except (SpikeprepError, OSError, RuntimeError) as exc:
        err = user_error(exc)
        if err is None:
            raise
        print(json.dumps(error_reply(err)), flush=True)
        sys.exit(err.exit_code)
    print(json.dumps(reply, default=_plain), flush=True)


def _plain(value):
    """JSON for numpy/torch scalars in a summary."""
    return value.item()


if __name__ == "__main__":
    main()
