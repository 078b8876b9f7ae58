"""A sequence's `spike/SEQ/config.yaml`: spike geometry, orientation and (optional) timing.

```yaml
spike_h: 250          # spike frame height, pixels
spike_w: 400          # spike frame width, pixels
flipud: true          # rows stored bottom-up (SpikeCV's default)
with_head: false      # sps10 layout: spike_w: 416 rows whose columns 400..415 are not image
spike_rate: 20000.0   # spike frames per second (Hz)             } timing: all three or none
frame_rate: 500.0     # RGB frames per second (Hz)                }
exposure: 0.5         # exposure as a fraction of the frame interval, in (0, 1]
offset: 0.0           # seconds from spike frame 0 to frame 0's exposure start
window_shift: 0       # spike frames added to every window, after any window source
window_spikes: 56     # per-frame .dat files: a centred window of N frames, begin = L//2 - N//2
margins: [20, 20]     #   or: drop LO frames at the start and HI at the end ([LO, L-HI))
registration:         # a registered rig (spikeprep register --fix writes it; `registration_block`)
  model: homography
  matrix: [[1.5, 0.0, 10.0], [0.0, 1.5, 6.0], [0.0, 0.0, 1.0]]   # spike px -> RGB px
  overlap: [10, 6, 310, 198]
  spike_size: [128, 200]
  rgb_size: [240, 320]
```

A dataset-level ``spike/config.yaml`` is the default for every sequence: a sequence's own
file overrides it key by key (`merge_raw`).

`Timing.window` implements the timing rule (stated in docs/timing.md).

``window_shift`` (integer spike frames, default 0) moves every window ``[b, e)`` to
``[b + s, e + s)`` whatever derived it (timing, timestamps, per-frame files, a preset); it is
what ``spikeprep check-sync --fix`` writes after measuring the offset from the data.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from ..errors import ConfigError, DatError, WindowError
from .dat import check_head_geometry
from .files import read_text_utf8, write_text_atomic
from .registration_block import Registration

#: Slack for float round-off when a time lands exactly on a spike sample.
_EPS = 1e-6
#: Larger window bounds (in spike samples) are beyond any stream: refused as non-finite.
_MAX_SAMPLE = 2.0 ** 53


@dataclass(frozen=True)
class Timing:
    """Fixed RGB/spike timing. Rates in Hz, exposure a fraction of the frame interval, offset in s."""

    spike_rate: float
    frame_rate: float
    exposure: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        values = {"spike_rate": self.spike_rate, "frame_rate": self.frame_rate,
                  "exposure": self.exposure, "offset": self.offset}
        odd = {k: v for k, v in values.items() if not math.isfinite(v)}
        if odd:
            raise ConfigError("timing values must be finite numbers",
                              found=", ".join(f"{k}={v}" for k, v in odd.items()),
                              expected="finite numbers (spike_rate, frame_rate > 0; 0 < exposure <= 1)",
                              fix="replace .inf/.nan with the real value")
        if not (self.spike_rate > 0 and self.frame_rate > 0):
            raise ConfigError("timing rates must be positive",
                              found=f"spike_rate={self.spike_rate}, frame_rate={self.frame_rate}",
                              expected="spike_rate > 0 and frame_rate > 0")
        if not 0 < self.exposure <= 1:
            raise ConfigError("exposure must be a fraction of the frame interval", found=self.exposure,
                              expected="0 < exposure <= 1")

    @property
    def spikes_per_frame(self) -> float:
        """Spike frames per RGB frame interval (may be fractional)."""
        return self.spike_rate / self.frame_rate

    def window(self, frame_index: int) -> tuple[int, int]:
        """Spike window ``(spike_begin, spike_end)`` (end exclusive) of RGB frame ``frame_index``."""
        start = self.offset + frame_index / self.frame_rate
        stop = start + self.exposure / self.frame_rate
        return first_sample_at_or_after(start * self.spike_rate), first_sample_at_or_after(stop * self.spike_rate)


def first_sample_at_or_after(position: float) -> int:
    """The first spike sample index at or after ``position`` (in spike samples)."""
    if not math.isfinite(position) or abs(position) > _MAX_SAMPLE:
        raise WindowError("a spike window bound is not a finite number of spike frames",
                          found=f"{position:.6g}",
                          expected="a finite time", fix="check spike_rate, frame_rate, offset and the "
                                                        "timestamps for inf/nan or extreme values")
    return math.ceil(position - _EPS)


@dataclass(frozen=True)
class SequenceConfig:
    """Contents of `config.yaml`; ``timing`` is None when the file gives no timing."""

    spike_h: int
    spike_w: int
    flipud: bool = True
    timing: Timing | None = None
    window_shift: int = 0
    window_spikes: int | None = None
    margins: tuple[int, int] | None = None
    #: SpikeCV's sps10 layout: rows of ``spike_w`` (416) pixels whose columns 400..415 are the
    #: camera's head; every reader drops them (`spikeprep.inputs.dat`), the image is 16 narrower
    with_head: bool = False
    #: a registered rig's ``registration:`` block, validated (`Registration.to_dict` form), or None
    registration: dict | None = None

    @property
    def image_width(self) -> int:
        """Width of the spike image once read: ``spike_w``, less 16 head columns with ``with_head``."""
        return self.spike_w - 16 if self.with_head else self.spike_w

    def to_yaml_dict(self) -> dict:
        out: dict = {"spike_h": self.spike_h, "spike_w": self.spike_w, "flipud": self.flipud}
        if self.timing is not None:
            out.update(asdict(self.timing))
        if self.window_shift:
            out["window_shift"] = self.window_shift
        if self.window_spikes is not None:
            out["window_spikes"] = self.window_spikes
        if self.margins is not None:
            out["margins"] = list(self.margins)
        if self.with_head:
            out["with_head"] = True
        if self.registration is not None:
            out["registration"] = self.registration
        return out


_TIMING_KEYS = {f.name for f in fields(Timing)}
_KNOWN_KEYS = {"spike_h", "spike_w", "flipud", "window_shift", "window_spikes", "margins",
               "with_head", "registration"} | _TIMING_KEYS


def _window_rule(raw: dict, path) -> tuple[int | None, tuple[int, int] | None]:
    """``window_spikes`` (a positive int) and ``margins`` (two ints >= 0); at most one of them."""
    window, margins = raw.get("window_spikes"), raw.get("margins")
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
        raise ConfigError("window_spikes must be a positive number of spike frames", path=path,
                          found=window, expected="an integer >= 1")
    if margins is not None:
        if (not isinstance(margins, (list, tuple)) or len(margins) != 2
                or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in margins)):
            raise ConfigError("margins must be two spike-frame counts [LO, HI]", path=path, found=margins,
                              expected="e.g. margins: [20, 20]")
        margins = (margins[0], margins[1])
    if window is not None and margins is not None:
        raise ConfigError("config.yaml gives both window_spikes and margins", path=path,
                          found=f"window_spikes={window}, margins={list(margins)}", expected="one of them",
                          fix="keep the one that describes the dataset's window")
    return window, margins


def parse_config(raw: object, path: str | os.PathLike | None = None) -> SequenceConfig:
    """Validate a loaded YAML mapping into a `SequenceConfig`; unknown keys are kept out (SpikeCV
    configs carry extra keys such as ``labeled_data_type``), wrong types are errors."""
    if not isinstance(raw, dict):
        raise ConfigError("config.yaml must be a mapping", path=path, found=type(raw).__name__,
                          expected="keys spike_h, spike_w, flipud, ...")
    for key in ("spike_h", "spike_w"):
        if not isinstance(raw.get(key), int) or isinstance(raw.get(key), bool) or raw[key] <= 0:
            raise ConfigError(f"config.yaml needs an integer {key}", path=path, found=raw.get(key),
                              expected="a positive integer", fix=f"add '{key}: N' to the file")
    flipud = raw.get("flipud", True)
    if not isinstance(flipud, bool):
        raise ConfigError("flipud must be true or false", path=path, found=flipud, expected="a boolean")
    timing_given = {k: raw[k] for k in _TIMING_KEYS if raw.get(k) is not None}
    timing = None
    if timing_given:
        if not {"spike_rate", "frame_rate"} <= timing_given.keys():
            raise ConfigError("incomplete timing in config.yaml", path=path, found=sorted(timing_given),
                              expected="spike_rate and frame_rate (exposure, offset optional)")
        flags = sorted(k for k, v in timing_given.items() if isinstance(v, bool))
        if flags:
            raise ConfigError("timing values must be numbers", path=path,
                              found=", ".join(f"{k}={timing_given[k]}" for k in flags), expected="floats")
        try:
            timing = Timing(**{k: float(v) for k, v in timing_given.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError("timing values must be numbers", path=path, found=timing_given,
                              expected="floats") from exc
        except ConfigError as exc:
            raise ConfigError(exc.what, path=path, found=exc.found, expected=exc.expected,
                              fix=exc.fix) from exc
    shift = raw.get("window_shift", 0)
    if shift is None:
        shift = 0
    if not isinstance(shift, int) or isinstance(shift, bool):
        raise ConfigError("window_shift must be a whole number of spike frames", path=path, found=shift,
                          expected="an integer (negative: windows move earlier)",
                          fix="write e.g. 'window_shift: -12' (spikeprep check-sync --fix writes it)")
    window, margins = _window_rule(raw, path)
    with_head = raw.get("with_head", False)
    if not isinstance(with_head, bool):
        raise ConfigError("with_head must be true or false", path=path, found=with_head, expected="a boolean")
    if with_head:
        try:
            check_head_geometry(raw["spike_h"], raw["spike_w"], path)
        except DatError as exc:
            raise ConfigError(exc.what, path=path, found=exc.found, expected=exc.expected, fix=exc.fix) from None
    registration = None
    if raw.get("registration") is not None:
        sensor = (raw["spike_h"], raw["spike_w"] - 16 if with_head else raw["spike_w"])
        registration = Registration.from_dict(raw["registration"], path, sensor_size=sensor).to_dict()
    return SequenceConfig(raw["spike_h"], raw["spike_w"], flipud, timing, shift, window, margins, with_head,
                          registration)


def read_raw(path: str | os.PathLike) -> dict:
    """The YAML mapping in a config.yaml (not yet validated)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(read_text_utf8(path, ConfigError))
    except yaml.YAMLError as exc:
        raise ConfigError("config.yaml is not valid YAML", path=path, found=str(exc).splitlines()[0],
                          expected="a YAML mapping") from exc
    if not isinstance(raw, dict):
        raise ConfigError("config.yaml must be a mapping", path=path, found=type(raw).__name__,
                          expected="keys spike_h, spike_w, flipud, ...")
    return raw


def load_config(path: str | os.PathLike, default: str | os.PathLike | None = None) -> SequenceConfig:
    """Read and validate a sequence's `config.yaml`; ``default`` (the dataset-level
    ``spike/config.yaml``), when it exists, supplies every key the sequence's file lacks."""
    path = Path(path)
    have_default = default is not None and Path(default).is_file()
    if not path.is_file() and not have_default:
        raise ConfigError("spike config not found", path=path, found="no such file",
                          expected="config.yaml with spike_h, spike_w",
                          fix="create it, e.g. 'spike_h: 250\\nspike_w: 400\\nflipud: true'")
    raw = read_raw(default) if have_default else {}
    if path.is_file():
        raw = {**raw, **read_raw(path)}
    return parse_config(raw, path if path.is_file() else default)


def save_config(path: str | os.PathLike, config: SequenceConfig) -> None:
    """Write `config.yaml` (atomically)."""
    write_text_atomic(path, yaml.safe_dump(config.to_yaml_dict(), sort_keys=False))
