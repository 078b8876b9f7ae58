"""Resume rules: which checkpoint, whether it fits, and which config changes are allowed.

* `pick_checkpoint`: ``--resume auto`` takes the newest checkpoint that loads and holds finite
  weights; broken newer ones (truncated, zero bytes, non-finite) are reported and skipped with a
  warning; when none is usable, a `CheckpointError` lists why. An explicit ``--resume PATH``
  is used as it is or refused, never replaced by another file.
* `check_config`: the run's config must equal the checkpoint's, except for `ALLOWED_CHANGES`
  (logged); otherwise a `ConfigError` with a table of the differing keys. ``data.cache`` may
  move when the cache it points to has the same parameters (S, representation, sizes).
* `restore`: model, EMA, optimizer, scheduler, GradScaler and RNG states; a network or S that
  differs becomes a `CheckpointError` naming the first mismatching tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spikeprep import ConfigError

from .checkpoint import list_checkpoints, set_rng_state
from .config import Config, config_from_dict, to_dict
from .errors import CheckpointError
from .guard import finite_tensors

# Keys that change how a run is driven or reported, never what it computes.
ALLOWED_CHANGES = ("name", "out_dir", "data.workers", "train.total_iter", "train.val_every",
                   "train.print_every", "train.checkpoint_every", "train.keep_last",
                   "train.tensorboard", "train.max_nonfinite_steps", "train.compile",
                   "data.unpack_on_device")
CACHE_KEYS = ("S", "repr", "repr_params", "rgb_shape", "spike_shape", "spike_dtype")


def cache_identity(manifest) -> dict:
    """What a checkpoint's training depends on in a cache manifest (compared on resume)."""
    params = manifest.params  # spikeprep.CacheParams
    return {k: _plain(getattr(params, k, None)) for k in CACHE_KEYS}


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- which checkpoint -------------------------------------------------------------------------

def read_checkpoint(path: Path) -> tuple[dict | None, str | None]:
    """``(state, None)`` for a usable trainer checkpoint, else ``(None, why)``."""
    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
        return None, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "iter" not in state:
        return None, "not a vrt-train checkpoint (no model/iter)"
    if not finite_tensors(list(state["model"].values()) + list((state.get("ema") or {}).values())):
        return None, "non-finite weights"
    return state, None


def pick_checkpoint(resume, out_dir, log) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume from and its state, or ``(None, None)`` for a fresh start."""
    if resume in (None, False, ""):
        return None, None
    if str(resume) != "auto":
        path = Path(resume)
        if not path.is_file():
            raise ConfigError("checkpoint to resume from not found", path=path,
                              fix="pass an existing .pt file or --resume auto")
        state, why = read_checkpoint(path)
        if state is None:
            raise CheckpointError("checkpoint to resume from is not usable", path=path, found=why,
                                  fix="pass another checkpoint, or --resume auto for the newest usable one")
        return path, state
    broken = []
    for path in reversed(list_checkpoints(out_dir)):
        state, why = read_checkpoint(path)
        if state is None:
            broken.append(f"{path.name}: {why}")
            log.print(f"warning: checkpoint {path} skipped: {why}")
            continue
        if broken:
            log.print(f"warning: resuming from the older {path.name}; newer checkpoint(s) unusable "
                      f"({'; '.join(broken)})")
        return path, state
    if broken:
        raise CheckpointError("no usable checkpoint to resume from", path=Path(out_dir) / "checkpoints",
                              found="; ".join(broken),
                              fix="restore a good copy and pass --resume PATH, or move the broken files "
                                  "away to start afresh")
    return None, None


# -- does the run still match it --------------------------------------------------------------

def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key != "netG":
            out.update(_flatten(value, dotted + "."))
        elif isinstance(value, dict):  # netG: compared key by key, named netG.<key>
            out.update({f"{dotted}.{k}": v for k, v in value.items()})
        else:
            out[dotted] = value
    return out


def config_changes(saved: dict, cfg: Config) -> list[tuple[str, object, object]]:
    """``(dotted key, checkpoint value, current value)`` for every key that differs."""
    try:  # fill keys added since the checkpoint was written with their defaults
        saved = to_dict(config_from_dict(saved))
    except ConfigError:
        pass
    old, new = _flatten(saved), _flatten(to_dict(cfg))
    missing = object()
    return [(k, old.get(k, missing), new.get(k, missing)) for k in sorted(set(old) | set(new))
            if old.get(k, missing) != new.get(k, missing)]


def _table(rows) -> str:
    def show(v):
        return "(absent)" if type(v) is object else repr(v)
    cells = [("key", "checkpoint", "now")] + [(k, show(a), show(b)) for k, a, b in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(3)]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


class ConfigChanged(ConfigError):
    """A resume with changed keys: the message carries a table (key, checkpoint, now)."""

    def __init__(self, what: str, table: str, **kw):
        self.table = table
        super().__init__(what, **kw)

    def _render(self) -> str:
        return f"{self.what} ({self.path}):\n{self.table}\n{self.fix}."


def check_config(state: dict, cfg: Config, path: Path, cache_manifest, spike_chans: int, log) -> None:
    """Refuse a resume whose config, cache or spike channels differ from the checkpoint's."""
    saved_chans = state.get("spike_chans")
    if saved_chans is not None and saved_chans != spike_chans:
        raise ConfigError("the cache gives the model another number of spike channels than the checkpoint",
                          path=path, found=f"{spike_chans} channels (data.cache {cfg.data.cache})",
                          expected=f"{saved_chans} as trained",
                          fix="resume with the cache the run was trained on, or start a new run "
                              "(another out_dir) with --init-from this checkpoint")
    saved_cache = state.get("cache")
    same_cache = saved_cache is None or saved_cache == cache_identity(cache_manifest)
    if not same_cache:
        raise ConfigError("the cache's parameters differ from the checkpoint's", path=path,
                          found=cache_identity(cache_manifest), expected=saved_cache,
                          fix="resume with the cache the run was trained on")
    if state.get("config") is None:
        log.print(f"warning: {path} holds no config: cannot check it against this run's")
        return
    changes = config_changes(state["config"], cfg)
    allowed = set(ALLOWED_CHANGES) | ({"data.cache"} if same_cache else set())
    refused = [c for c in changes if c[0] not in allowed]
    if refused:
        raise ConfigChanged(f"the config differs from the checkpoint's in {len(refused)} key(s) that "
                            "cannot change on resume", _table(refused), path=path,
                            fix="Restore the checkpoint's values (its config is saved beside it, .yaml); "
                                "to train with new ones, start a new run in another out_dir with "
                                "--init-from this checkpoint. Keys that may change on resume: "
                                + ", ".join(ALLOWED_CHANGES))
    for key, before, after in changes:
        log.print(f"resume: {key} changed from {before!r} to {after!r} (allowed)")


# -- load it -------------------------------------------------------------------------------------

def load_weights(module, weights: dict, path, what: str = "model") -> None:
    """``module.load_state_dict(weights)`` with a shape/key mismatch as a `CheckpointError`."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError) as exc:
        detail = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CheckpointError(f"the checkpoint's {what} does not fit this network", path=path,
                              found="; ".join(detail[1:4]) or detail[0] if detail else type(exc).__name__,
                              fix="use the netG and cache (S) the checkpoint was trained with (its config "
                                  "is saved beside it, .yaml)") from None


def restore(state: dict, path: Path, *, model, ema, optimizer, scheduler, scaler, world: int,
            log) -> tuple[int, float]:
    """Load every training state from ``state``; returns ``(iteration, best PSNR)``."""
    load_weights(model, state["model"], path)
    if ema is not None and state.get("ema") is not None:
        load_weights(ema, state["ema"], path, "EMA model")
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError("the checkpoint's optimizer state does not fit this run", path=path,
                              found=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                              fix="use the config the checkpoint was trained with") from None
    set_rng_state(state["rng"])
    if state.get("world_size", world) != world:
        log.print(f"warning: resuming with {world} processes, checkpoint had {state['world_size']}: "
                  "the data stream differs from an uninterrupted run")
    log.print(f"resumed from {path} at iteration {state['iter']}")
    return state["iter"], state.get("best_psnr", float("-inf"))
