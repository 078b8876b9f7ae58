"""`Registration`: a rig's registration, the ``registration:`` block ``register --fix`` writes into
config.yaml (spike/SEQ/config.yaml, or spike/config.yaml for a fixed rig), that build-sync copies
into sync.json and voxelize, verify and check-sync read.

```yaml
registration:
  model: homography              # similarity | affine | homography
  matrix: [[a, b, c], [d, e, f], [g, h, 1]]   # spike px (x, y, 1) -> full-size RGB px
  overlap: [x0, y0, x1, y1]      # RGB box the spike camera sees; x1, y1 exclusive
  spike_size: [h, w]             # spike frame the matrix was measured on (sensor size)
  rgb_size: [H, W]               # full-size RGB frame
```

Pixel coordinates: x right, y down, pixel centres at integers; the spike frame in image
orientation (as `SpikeStream.read` returns it with the sequence's flipud). `from_dict` refuses
anything a camera's view cannot be, naming what is wrong (`ConfigError`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: the registration models (`spikeprep.registration.refine` fits each)
MODELS = ("similarity", "affine", "homography")

_FIX = "re-run 'spikeprep register DATA_ROOT' and take its matrix"


def _error(what, path, found, expected):
    return ConfigError(f"registration: {what}", path=path, found=found, expected=expected, fix=_FIX)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _size(raw, name, path) -> tuple[int, int]:
    if not (isinstance(raw, (list, tuple)) and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw)):
        raise _error(f"{name} must be [height, width]", path, raw, "two positive integers")
    return int(raw[0]), int(raw[1])


def _matrix(raw, path) -> tuple[tuple[float, ...], ...]:
    if not (isinstance(raw, (list, tuple)) and len(raw) == 3
            and all(isinstance(r, (list, tuple)) and len(r) == 3 for r in raw)):
        raise _error("matrix is not 3x3", path, raw, "three rows of three numbers")
    if not all(_is_number(v) for r in raw for v in r):
        raise _error("matrix holds something that is not a number", path, raw, "numbers")
    m = np.array(raw, np.float64)
    if not np.isfinite(m).all():
        raise _error("matrix is not finite", path, raw, "finite numbers")
    if abs(m[2, 2]) < 1e-12:
        raise _error("matrix[2][2] is 0", path, raw, "matrix[2][2] == 1 (normalised)")
    m = m / m[2, 2]
    det = float(np.linalg.det(m[:2, :2]))
    if det < 0:
        raise _error("matrix mirrors the spike image", path, f"det of the 2x2 linear part {det:.4g}",
                     "a positive determinant (check flipud in config.yaml, or a mirrored rig)")
    if det < 1e-9 or abs(float(np.linalg.det(m))) < 1e-12:
        raise _error("matrix is singular", path, f"det {det:.4g}", "a positive determinant")
    return tuple(tuple(float(v) for v in row) for row in m)


@dataclass(frozen=True)
class Registration:
    """A sequence's spike -> RGB registration (see the module docstring): ``matrix`` 3x3 tuple
    with ``matrix[2][2] == 1``, ``overlap`` (x0, y0, x1, y1) RGB px (exclusive ends),
    ``spike_size`` (h, w) and ``rgb_size`` (H, W) in px. Validated on construction."""

    model: str
    matrix: tuple[tuple[float, ...], ...]
    overlap: tuple[int, int, int, int]
    spike_size: tuple[int, int]
    rgb_size: tuple[int, int]

    def __post_init__(self) -> None:
        checked = self.check(self.to_dict())
        object.__setattr__(self, "matrix", checked["matrix"])

    @staticmethod
    def check(raw, path=None, sensor_size: tuple[int, int] | None = None) -> dict:
        """Validated fields of a raw mapping (ConfigError naming the first thing wrong)."""
        if not isinstance(raw, dict):
            raise _error("must be a mapping", path, type(raw).__name__, "keys model, matrix, overlap, ...")
        missing = [k for k in ("model", "matrix", "overlap", "spike_size", "rgb_size") if k not in raw]
        if missing:
            raise _error("keys missing", path, ", ".join(missing), "model, matrix, overlap, spike_size, rgb_size")
        if raw["model"] not in MODELS:
            raise _error("unknown model", path, repr(raw["model"]), " | ".join(MODELS))
        matrix = _matrix(raw["matrix"], path)
        if raw["model"] != "homography" and (matrix[2][0] or matrix[2][1]):
            raise _error(f"a {raw['model']} matrix has perspective terms", path, list(matrix[2]), "[0, 0, 1]")
        spike_size = _size(raw["spike_size"], "spike_size", path)
        if sensor_size is not None and spike_size != tuple(sensor_size):
            raise _error("spike_size differs from the sequence's sensor size", path,
                         f"{spike_size[0]}x{spike_size[1]}", f"{sensor_size[0]}x{sensor_size[1]} (spike_h x spike_w)")
        H, W = _size(raw["rgb_size"], "rgb_size", path)
        box = raw["overlap"]
        if not (isinstance(box, (list, tuple)) and len(box) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) for v in box)):
            raise _error("overlap must be [x0, y0, x1, y1]", path, box, "four integers")
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
            raise _error("overlap is empty or outside the RGB frame", path, list(box),
                         f"0 <= x0 < x1 <= {W} and 0 <= y0 < y1 <= {H}")
        return {"model": raw["model"], "matrix": matrix, "overlap": tuple(box), "spike_size": spike_size,
                "rgb_size": (H, W)}

    def to_dict(self) -> dict:
        return {"model": self.model, "matrix": [list(r) for r in self.matrix], "overlap": list(self.overlap),
                "spike_size": list(self.spike_size), "rgb_size": list(self.rgb_size)}

    @classmethod
    def from_dict(cls, raw, path=None, sensor_size: tuple[int, int] | None = None) -> "Registration":
        """A validated `Registration` from its `to_dict` form (``sensor_size``: the sequence's
        spike_h x spike_w, checked against spike_size when given)."""
        return cls(**cls.check(raw, path, sensor_size))

    @property
    def array(self) -> np.ndarray:
        """The matrix as a ``(3, 3)`` float64 array."""
        return np.array(self.matrix, np.float64)

