"""Trainer configuration: a YAML file validated into frozen dataclasses.

``load_config(path, overrides)`` reads the YAML, applies dotted ``--set`` overrides
(``train.total_iter=200``; values parsed as YAML), and validates every key against the
dataclasses below: unknown keys and wrong types raise `spikeprep.errors.ConfigError` naming the
dotted key. ``netG`` is passed to ``VRT(**netG)`` as it is (VRT checks its own keywords);
``spike_chans`` is filled in by the trainer from the cache manifest (``data.use_spike``).

Defaults are KAIR's ``006_train_vrt_videodeblurring_gopro`` numbers. ``data.batch_size`` is
the GLOBAL batch (split over ranks): KAIR's json says ``dataloader_batch_size: 8`` and, when
distributed, divides it by the number of GPUs (8 GPUs: 1 clip per GPU, 8 clips per step in
total), so 8 here is KAIR's batch; 64 would be 8x KAIR's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import yaml

from spikeprep import ConfigError

SPIKE_NORMS = ("window", "quantile", "standardize", "none")
AMP_MODES = (None, "bf16", "fp16")


@dataclass(frozen=True)
class AugmentConfig:
    hflip: bool = True              # KAIR use_hflip
    rot: bool = True                # KAIR use_rot: vflip + rot90 (transpose)
    brightness: float = 0.0         # RGB (input and target) scaled by 1 + U(-b, b); 0 = off
    contrast: float = 0.0           # RGB (input and target) contrast 1 + U(-c, c) about the mean
    spike_gain: float = 0.0         # spike counts scaled by 1 + U(-g, g); 0 = off
    spike_poisson: bool = False     # resample integer spike counts ~ Poisson(count * gain)


@dataclass(frozen=True)
class DataConfig:
    cache: str = ""                 # LMDB cache folder (spikeprep voxelize output)
    use_spike: bool = True          # False: RGB only (netG.spike_chans = 0)
    inputs: Optional[list[str]] = None  # the cache's representations given to the model, concatenated
                                    # along channels in order (e.g. [bins, raw]); null: the first only
    use_rgb: bool = True            # False: spike-only input (vrt_train.spike_only: a TFP image of
                                    # each frame's window takes RGB's place for SpyNet and the residual)
    gt_channels: Optional[int] = None   # target channels: null = 3 with RGB, 1 (luma) spike-only
    num_frames: Optional[int] = 6   # T frames per training clip; null: the cache's smallest training T
    gt_size: int = 192              # RGB crop size (pixels)
    batch_size: int = 8             # GLOBAL batch, split over ranks
    workers: int = 4                # DataLoader workers per rank
    samples_per_epoch: Optional[int] = None   # None: one item per valid clip start
    unpack_on_device: bool = False  # bit-packed inputs (raw) ship packed, unpacked on the training
                                    # device (vrt_train.packed_inputs; same values, 8x fewer bytes)
    spike_norm: str = "window"      # window | quantile | standardize | none
    num_frames_val: Optional[int] = None      # None: whole validation sequences
    val_from_train: int = 0         # N > 0: validate on the last N training sequences (sorted
                                    # by name, held out of training) instead of the cache's val
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 4e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    total_iter: int = 300000
    scheduler_periods: int = 300000          # CosineAnnealingWarmRestarts T_0
    eta_min: float = 1e-7
    charbonnier_eps: float = 1e-9
    fix_iter: int = 20000
    fix_lr_mul: float = 0.125
    fix_keys: list[str] = field(default_factory=lambda: ["spynet", "deform"])
    ema_decay: float = 0.0                   # KAIR E_decay; 0 = no EMA
    clip_grad: Optional[float] = None        # max global grad norm; None = off
    amp: Optional[str] = None                # None | bf16 | fp16
    deterministic: bool = False              # torch.use_deterministic_algorithms
    compile: bool = False                    # torch.compile the model (in place; first steps compile)
    zero_init_last: bool = False             # not KAIR: zero VRT's conv_last, so training starts
                                             # from output = blurred input (short CPU demos)
    checkpoint_every: int = 5000
    keep_last: int = 3
    print_every: int = 200
    val_every: int = 5000
    tensorboard: bool = False
    max_nonfinite_steps: int = 5             # skipped non-finite steps in a row before stopping


@dataclass(frozen=True)
class ValConfig:
    num_frame_testing: int = 18     # temporal chunk (0 = whole sequence)
    num_frame_overlapping: int = 2
    size_patch_testing: Union[int, str] = 192   # spatial tile (0 = whole frame; "auto": sized
                                                # from the device's free memory, vrt_train.tiles)
    tile_overlap: int = 20


@dataclass(frozen=True)
class Config:
    name: str = "vrt"
    seed: int = 0
    out_dir: str = "experiments/vrt"
    data: DataConfig = field(default_factory=DataConfig)
    netG: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    val: ValConfig = field(default_factory=ValConfig)


# -- validation -------------------------------------------------------------------------------

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str, source) -> Any:
    """``value`` checked against the annotation ``tp``; raises ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], key, source)
        for option in inner:  # the first type that accepts the value
            try:
                return _coerce(value, option, key, source)
            except ConfigError:
                pass
        raise ConfigError(f"config key {key} has the wrong type", path=source,
                          found=f"{value!r} ({type(value).__name__})",
                          expected=" or ".join(_type_name(a) for a in inner))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key} has the wrong type", path=source,
                              found=repr(value), expected=f"a list of {_type_name(typing.get_args(tp)[0])}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} has the wrong type", path=source,
                              found=repr(value), expected="a mapping")
        return dict(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = (isinstance(value, bool) if tp is bool
          else isinstance(value, int) and not isinstance(value, bool) if tp is int
          else isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float
          else isinstance(value, tp))
    if not ok:
        raise ConfigError(f"config key {key} has the wrong type", path=source,
                          found=f"{value!r} ({type(value).__name__})", expected=_type_name(tp))
    return float(value) if tp is float else value


def _build(cls, raw: Any, prefix: str, source):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {prefix or '<top>'} must be a mapping", path=source,
                          found=repr(raw))
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown config key {dotted}", path=source,
                              expected="one of " + ", ".join(sorted(names)),
                              fix="check the spelling (see vrt_train/config.py)")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k, source)
              for k, v in raw.items()}
    return cls(**kwargs)


def _check(cfg: Config, source) -> None:
    def bad(key, found, expected):
        raise ConfigError(f"config key {key} is invalid", path=source, found=found, expected=expected,
                          fix=f"set {key} in the YAML, or override it with --set {key}=VALUE")
    d, t, v = cfg.data, cfg.train, cfg.val
    if d.spike_norm not in SPIKE_NORMS:
        bad("data.spike_norm", repr(d.spike_norm), " | ".join(SPIKE_NORMS))
    if t.amp not in AMP_MODES:
        bad("train.amp", repr(t.amp), "null | bf16 | fp16")
    for key, value in [("data.num_frames", d.num_frames or 1), ("data.gt_size", d.gt_size),
                       ("data.batch_size", d.batch_size), ("train.total_iter", t.total_iter),
                       ("train.scheduler_periods", t.scheduler_periods),
                       ("train.checkpoint_every", t.checkpoint_every),
                       ("train.keep_last", t.keep_last), ("train.print_every", t.print_every),
                       ("train.val_every", t.val_every)]:
        if value < 1:
            bad(key, value, ">= 1")
    if d.val_from_train < 0:
        bad("data.val_from_train", d.val_from_train, ">= 0")
    if d.workers < 0 or t.fix_iter < 0:
        bad("data.workers / train.fix_iter", (d.workers, t.fix_iter), ">= 0")
    if len(t.betas) != 2:
        bad("train.betas", t.betas, "two numbers")
    if v.num_frame_testing and v.num_frame_overlapping >= v.num_frame_testing:
        bad("val.num_frame_overlapping", v.num_frame_overlapping, "< val.num_frame_testing")
    if isinstance(v.size_patch_testing, str) and v.size_patch_testing != "auto":
        bad("val.size_patch_testing", repr(v.size_patch_testing), "an integer >= 0 or auto")
    if isinstance(v.size_patch_testing, int) and v.size_patch_testing and v.tile_overlap >= v.size_patch_testing:
        bad("val.tile_overlap", v.tile_overlap, "< val.size_patch_testing")
    if "in_chans" in cfg.netG or "spike_chans" in cfg.netG:
        bad("netG.spike_chans", "set in the YAML", "absent: filled from the cache (data.use_spike)")
    _check_numbers(cfg, bad)
    from .spike_only import check_spike_only
    check_spike_only(cfg, bad)


MIN_FRAMES = 2  # VRT aligns each frame with a neighbour and attends over frame pairs


def _check_numbers(cfg: Config, bad) -> None:
    """Ranges that make sense: finite numbers, positive rates, frames VRT can process."""
    d, t, v, a = cfg.data, cfg.train, cfg.val, cfg.data.augment
    floats = {"train.lr": t.lr, "train.eta_min": t.eta_min, "train.weight_decay": t.weight_decay,
              "train.charbonnier_eps": t.charbonnier_eps, "train.fix_lr_mul": t.fix_lr_mul,
              "train.ema_decay": t.ema_decay, "train.clip_grad": t.clip_grad or 0.0,
              "data.augment.brightness": a.brightness, "data.augment.contrast": a.contrast,
              "data.augment.spike_gain": a.spike_gain, **{f"train.betas[{i}]": b for i, b in enumerate(t.betas)}}
    for key, value in floats.items():
        if not math.isfinite(value):
            bad(key, value, "a finite number")
    for key, value in [("train.lr", t.lr), ("train.charbonnier_eps", t.charbonnier_eps)]:
        if value <= 0:
            bad(key, value, "> 0")
    if t.clip_grad is not None and t.clip_grad <= 0:
        bad("train.clip_grad", t.clip_grad, "> 0, or null for no clipping")
    for key, value in [("train.eta_min", t.eta_min), ("train.weight_decay", t.weight_decay),
                       ("train.fix_lr_mul", t.fix_lr_mul), ("data.augment.brightness", a.brightness),
                       ("data.augment.contrast", a.contrast), ("data.augment.spike_gain", a.spike_gain),
                       ("seed", cfg.seed), ("val.num_frame_testing", v.num_frame_testing),
                       ("val.num_frame_overlapping", v.num_frame_overlapping),
                       ("val.size_patch_testing", v.size_patch_testing), ("val.tile_overlap", v.tile_overlap)]:
        if not isinstance(value, str) and value < 0:  # size_patch_testing may be "auto"
            bad(key, value, ">= 0")
    if t.eta_min > t.lr:
        bad("train.eta_min", t.eta_min, f"<= train.lr ({t.lr})")
    for key, value in [("train.ema_decay", t.ema_decay), ("train.betas[0]", t.betas[0]),
                       ("train.betas[1]", t.betas[1])]:
        if not 0 <= value < 1:
            bad(key, value, "in [0, 1)")
    if t.max_nonfinite_steps < 1:
        bad("train.max_nonfinite_steps", t.max_nonfinite_steps, ">= 1")
    if d.samples_per_epoch is not None and d.samples_per_epoch < 1:
        bad("data.samples_per_epoch", d.samples_per_epoch, ">= 1, or null for one item per clip start")
    for key, value in [("data.num_frames", d.num_frames), ("data.num_frames_val", d.num_frames_val)]:
        if value is not None and value < MIN_FRAMES and (d.use_rgb or value < 1):
            bad(key, value, f">= {MIN_FRAMES} (VRT aligns every frame with a neighbour)")


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """``raw["a"]["b"] = value`` for ``dotted == "a.b"`` (creating sections)."""
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted} goes through a non-mapping key {part}")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.total_iter=200"`` -> ``("train.total_iter", 200)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError("an override must look like key.sub=value", found=repr(text))
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key} has an unreadable value", found=repr(value),
                          fix=str(exc).splitlines()[0]) from None


def config_from_dict(raw: dict, overrides: list[str] | tuple[str, ...] = (), source=None) -> Config:
    """Validate a plain dict (plus dotted overrides) into a frozen `Config`."""
    raw = yaml.safe_load(yaml.safe_dump(raw or {}))  # deep copy, plain types only
    for text in overrides:
        set_dotted(raw, *parse_override(text))
    cfg = _build(Config, raw, "", source)
    _check(cfg, source)
    return cfg


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read and validate a trainer YAML file (see the module docstring)."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path, fix="pass --opt configs/<name>.yaml") from None
    except yaml.YAMLError as exc:
        raise ConfigError("config file is not valid YAML", path=path, found=str(exc).splitlines()[0]) from None
    return config_from_dict(raw or {}, overrides, source=path)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def replace(cfg: Config, **sections) -> Config:
    """``replace(cfg, train={"total_iter": 10})``: a copy with some keys of some sections changed."""
    raw = to_dict(cfg)
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:
            raw[section] = values
    return config_from_dict(raw)
