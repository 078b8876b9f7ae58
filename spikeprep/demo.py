"""`spikeprep demo`: the whole pipeline on a small synthetic dataset, on CPU, in a few minutes.

simulate -> build-sync -> voxelize -> verify -> train a tiny RGB+spike VRT -> validate.
Every stage reuses what an earlier run finished: the dataset is kept when its parameters
match, build-sync and voxelize are idempotent/resumable, training resumes from its latest
checkpoint and is skipped once it reached its last iteration.

The demo writes only into a folder it made: a new or empty OUT gets the marker
``OUT/.spikeprep-demo`` first, and a later run reuses (or rebuilds) ``OUT/data``, ``OUT/cache``
and ``OUT/train`` only where the marker is. Any other non-empty OUT is refused untouched (as
``spikeprep simulate`` refuses one without ``--force``). A demo folder from before the marker
(only ``data``/``cache``/``train``, with the dataset's ``data/demo-params.json``) is recognised.

Training needs the ``train`` extra (torch): without it the demo stops before its first stage
and says how to install it. Its trainer config ships inside the package (vrt_train/configs/,
package data), so an installed wheel runs the demo as a clone does. spikeprep never imports
vrt_train: the training stage runs ``python -m vrt_train.demo`` as a child process (its progress
on this terminal, its summary back as one JSON line).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import errors
from .errors import CacheError, ConfigError, DependencyError, SpikeprepError

#: The demo's trainer config: package data of vrt_train (the repository's configs/ has the same file).
DEMO_CONFIG_NAME = "demo_tiny_cpu.yaml"
#: The ``train`` extra's modules and install command, as in vrt_train.requirements (a test keeps
#: them equal): checked here without importing vrt_train.
_TRAIN_MODULES = ("torch", "torchvision")
_INSTALL_TRAIN = 'pip install "spikeprep[train]"'


@dataclass(frozen=True)
class DemoData:
    """The simulated dataset: 8 sequences, the last one held out for validation.

    Chosen so that the spikes carry information the blurred RGB lacks: fast motion (strong
    blur), a full-frame exposure, 160 spike samples per frame and threshold 1.0 (luma 1 fires
    at every sample: the finest luma resolution without saturating), S=4 bins (the middle two
    see mid-exposure). Many short sequences rather than few long ones, so what is learned from
    the training sequences carries over to the held-out one.
    """

    sequences: int = 8
    frames: int = 6
    height: int = 64
    width: int = 64
    spikes_per_frame: int = 160
    exposure: float = 1.0
    threshold: float = 1.0
    motion: float = 5.0
    seed: int = 0
    S: int = 4

    @property
    def val_sequence(self) -> str:
        return f"seq{self.sequences - 1:03d}"


@dataclass
class DemoSummary:
    """What the demo did: per-stage seconds, the files it wrote, and the validation PSNRs."""

    out: str
    stages: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)


#: The file that says OUT is the demo's own (what it made may be rebuilt there).
OWNER_MARKER = ".spikeprep-demo"
_OWN_ENTRIES = {OWNER_MARKER, "data", "cache", "train"}


def claim_output(out: Path) -> None:
    """Make sure the demo may write into ``out``: create it with the marker, or find the marker
    (or a demo folder from before it); anything else is a `UsageError` and nothing is touched."""
    if out.exists() and not out.is_dir():
        raise errors.UsageError("demo output is not a folder", path=out, found="a file", expected="a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    legacy = set(entries) <= _OWN_ENTRIES and (out / "data" / "demo-params.json").is_file()
    if entries and not (out / OWNER_MARKER).is_file() and not legacy:
        raise errors.UsageError(
            "demo output folder holds files the demo did not make", path=out,
            found=", ".join(entries[:5]) + (" ..." if len(entries) > 5 else ""),
            expected=f"a new or empty folder, or one an earlier demo made (it holds {OWNER_MARKER})",
            fix="pick another folder: spikeprep demo NEW_FOLDER (nothing was changed)")
    out.mkdir(parents=True, exist_ok=True)
    marker = out / OWNER_MARKER
    if not marker.is_file():
        marker.write_text("made by spikeprep demo: data/, cache/ and train/ here may be rebuilt\n")


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _simulate(data: Path, params: DemoData) -> str:
    from .simulate import simulate_dataset

    marker = data / "demo-params.json"
    wanted = json.dumps(asdict(params), sort_keys=True)
    if marker.is_file() and marker.read_text() == wanted:
        return "reused"
    simulate_dataset(data, sequences=params.sequences, frames=params.frames, height=params.height,
                     width=params.width, spikes_per_frame=params.spikes_per_frame,
                     exposure=params.exposure, threshold=params.threshold, motion=params.motion,
                     seed=params.seed, force=True)
    marker.write_text(wanted)
    return "simulated"


def _training_config(config: str | os.PathLike | None) -> Path:
    """The trainer YAML for the demo: ``config``, or the one shipped as package data.

    Checked before the first stage: raises DependencyError when torch/torchvision are not
    installed, ConfigError when the file is missing.
    """
    from importlib.util import find_spec

    missing = [name for name in _TRAIN_MODULES if find_spec(name) is None]
    if missing:
        raise DependencyError("spikeprep demo trains a tiny VRT, which needs the trainer's extra",
                              found=f"{' and '.join(missing)} not installed",
                              expected=" and ".join(_TRAIN_MODULES),
                              fix=f"Install them with: {_INSTALL_TRAIN} (or run: spikeprep demo --no-train)")
    if config is None:  # package data of vrt_train, found without importing it
        trainer = find_spec("vrt_train")
        package = Path(trainer.origin).parent if trainer and trainer.origin else Path("vrt_train")
        config = package / "configs" / DEMO_CONFIG_NAME
    config = Path(config)
    if not config.is_file():
        raise ConfigError("demo training config not found", path=config, found="no such file",
                          expected=f"{DEMO_CONFIG_NAME}, shipped in vrt_train/configs/",
                          fix=f"pass an existing trainer YAML, or reinstall ({_INSTALL_TRAIN})")
    return config


def _train(out: Path, cache: Path, config: Path, progress: bool) -> dict:
    """Train in a child process, ``python -m vrt_train.demo``, into ``out/train``; returns its
    summary (iteration, PSNR/SSIM of output and input, checkpoint paths), or raises the error
    it reported (same message, same exit code)."""
    command = [sys.executable, "-m", "vrt_train.demo", str(cache), str(out / "train"), "--config", str(config)]
    if not progress:
        command.append("--quiet")
    # the child imports vrt_train from where this process would; its stderr (progress) is ours
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    *others, last = done.stdout.splitlines() or [""]
    reply = _reply(last)
    if reply is None:
        others.append(last)
    if any(others):  # printed by something else in the child: pass it on
        print("\n".join(others))
    if done.returncode in (130, -2):  # Ctrl-C (the whole terminal got it): stopped quietly
        raise KeyboardInterrupt
    if done.returncode == 0 and reply and "summary" in reply:
        return reply["summary"]
    raise _child_error(reply, done.returncode)


def _reply(line: str) -> dict | None:
    """The training child's JSON line, or None when ``line`` is not one."""
    try:
        reply = json.loads(line)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def _child_error(reply: dict | None, returncode: int) -> SpikeprepError:
    """The error the training child reported in ``reply`` (``{"error": fields}``), to raise here
    with the child's message and exit code; a generic one when it reported none (it crashed)."""
    fields = (reply or {}).get("error")
    if fields is None:
        err = SpikeprepError("the demo's training stopped", found=f"exit status {returncode}",
                             fix="see the messages above; re-running the demo resumes it")
    else:
        cls = getattr(errors, fields["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, SpikeprepError)):
            cls = SpikeprepError  # one of the trainer's own classes: same message, same exit code
        err = cls(fields["what"], path=fields["path"], found=fields["found"], expected=fields["expected"],
                  fix=fields["fix"])
    err.exit_code = returncode if returncode > 0 else 1
    return err


def run_demo(out: str | os.PathLike = "spikeprep-demo", *, params: DemoData = DemoData(),
             train: bool = True, config: str | os.PathLike | None = None, progress: bool = True,
             report=print) -> DemoSummary:
    """Run (or finish) the demo in ``out``; ``report(str)`` is told each stage as it ends.

    ``config``: the trainer YAML (default: the packaged `DEMO_CONFIG_NAME`); unused when
    ``train`` is false, which needs no torch.
    """
    from .alignment.build import build_sync
    from .cache.build import voxelize_dataset
    from .cache.verify import verify_cache

    config = _training_config(config) if train else None  # fail before the first stage
    out = Path(out)
    data, cache = out / "data", out / "cache"
    summary = DemoSummary(str(out))

    def stage(name, fn):
        t0 = time.perf_counter()
        result = fn()
        summary.stages[name] = round(time.perf_counter() - t0, 1)
        report(f"{name}: done in {summary.stages[name]:.1f} s")
        return result

    claim_output(out)
    if stage("simulate", lambda: _simulate(data, params)) == "simulated":
        for derived in (cache, out / "train"):  # built from older data: start them again
            shutil.rmtree(derived, ignore_errors=True)
    stage("build-sync", lambda: build_sync(data))
    stage("voxelize", lambda: voxelize_dataset(data, cache, S=params.S, val=(params.val_sequence,),
                                               progress=progress))
    verified = stage("verify", lambda: verify_cache(cache, data_root=data))
    if not verified.ok:
        first = verified.problems[0]
        raise CacheError("the demo cache does not verify", path=cache,
                         found=f"{len(verified.problems)} problems, first: {first}",
                         expected="none", fix="delete the demo folder and run again")
    if train:
        summary.training = stage("train", lambda: _train(out, cache, config, progress))
    summary.files = {
        "dataset": (str(data), _dir_size(data)),
        "cache": (str(cache), _dir_size(cache)),
    }
    if train:
        summary.files["training"] = (str(out / "train"), _dir_size(out / "train"))
    return summary
