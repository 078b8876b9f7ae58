"""The manifest's ``params`` (what determines the stored bytes, `spikeprep.cache.manifest`): `CacheParams`,
each stored representation's `ReprSpec` and a registered rig's `RegistrationParams` (manifest
version 3), with the params hash (sha256 of the canonical JSON) that names them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import CacheError
from .manifest_fields import (
    _choice,
    _int,
    _need,
    _Record,
    _shape,
    _size,
    _spec,
)
from .records import (
    MATCH_MODES,
    STORAGES,
    spike_kind,
    stored_shape,
)

HOT_PIXEL_MODES = ("off", "detect", "list")


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def params_hash(params: dict) -> str:
    """sha256 hex of a params dict's canonical JSON."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


def diff_params(found: dict, expected: dict) -> list[str]:
    """``["S: found 4, expected 8", ...]`` for every differing top-level key."""
    keys = sorted(set(found) | set(expected))
    return [f"{k}: found {found.get(k)!r}, expected {expected.get(k)!r}"
            for k in keys if found.get(k) != expected.get(k)]


# -- params -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReprSpec(_Record):
    """One stored spike representation (manifest version 3): its name, what computes it and how its
    records look. ``shape`` is the logical ``(C, h, w)`` array the reader returns; the record holds
    `stored_shape` (``bitpacked``: the last axis packed 8 per byte). The cache's first
    representation is described by the params' top-level fields and stored as ``SEQ/NNNNNN/spike``;
    each further one (``CacheParams.more_representations``) as ``SEQ/NNNNNN/spike.NAME``."""

    name: str = _spec(lambda v, w, p: _name(v, w, p))
    repr: str = _spec(lambda v, w, p: str(v))
    S: int = _spec(_int)
    repr_params: dict = _spec(lambda v, w, p: dict(v), expected="an object")
    channels: int = _spec(_int)
    spike_dtype: str = _spec(lambda v, w, p: np.dtype(v).name, expected="a numpy dtype name")
    spike_shape: tuple = _spec(_shape)
    storage: str = _spec(_choice(STORAGES), default="array", omit_default=True)
    #: True for the cache's first representation (record kind ``spike``; not written to JSON)
    first: bool = field(default=False, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """The record kind: ``spike`` (the first representation) or ``spike.NAME``."""
        return spike_kind(None if self.first else self.name)

    @property
    def record_shape(self) -> tuple[int, ...]:
        """The shape in the record's header (`stored_shape`)."""
        return stored_shape(self.spike_shape, self.storage)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.spike_dtype)

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if k != "first"}

    def representation(self):
        """The `spikeprep.representations.catalog` object that computes it."""
        from ..representations.catalog import make_representation
        return make_representation(self.repr, self.S, **self.repr_params)


def _name(value, where, path) -> str:
    _need(isinstance(value, str) and value and all(c.isalnum() or c in "-_:" for c in value), where,
          repr(value), "a representation name (letters, digits, '-', '_', ':')", path)
    return value


@dataclass(frozen=True)
class RegistrationParams(_Record):
    """How a registered cache was cropped and resampled (manifest version 3).

    ``crop``: ``[height, width]`` in RGB pixels (spike pixels with ``--match spike``: the box is then
    cut from the spike frame), the one box size cut from every sequence's overlap
    (each sequence's box: `SequenceEntry.registration`); ``resample``: the interpolation that put
    spike values onto the crop's grid (``--match rgb``) or the RGB crop onto the spike grid
    (``--match spike``); ``dtype``: the float dtype of resampled representations (``spike_dtype``
    of each; bit-exact ones are never resampled)."""

    crop: tuple = _spec(_size)
    resample: str = _spec(lambda v, w, p: str(v))
    dtype: str = _spec(lambda v, w, p: np.dtype(v).name, expected="a numpy float dtype name")


def _registration_params(value, where, path):
    return None if value is None else RegistrationParams.from_dict(value, where, path)


def _more_representations(value, where, path) -> tuple:
    _need(isinstance(value, (list, tuple)), where, repr(value), "a list of representations", path)
    return tuple(ReprSpec.from_dict(v, f"{where}[{i}]", path) for i, v in enumerate(value))

@dataclass(frozen=True)
class CacheParams(_Record):
    """What determines the stored bytes; equal params (same `hash`) give equal records.

    ``rgb_shape``: stored ``(H, W, 3)``; ``spike_shape``: stored ``(C, h, w)``; ``repr_params``:
    the representation's own keyword parameters (`spikeprep.representations.catalog`).
    """

    S: int = _spec(_int)
    channels: int = _spec(_int)
    repr: str = _spec(lambda v, w, p: str(v))
    repr_params: dict = _spec(lambda v, w, p: dict(v), expected="an object")
    flipud: bool = _spec(lambda v, w, p: bool(v))
    match: str = _spec(_choice(MATCH_MODES))
    hot_pixels: str = _spec(_choice(HOT_PIXEL_MODES))
    spike_dtype: str = _spec(lambda v, w, p: np.dtype(v).name, expected="a numpy dtype name")
    rgb_shape: tuple = _spec(_shape)
    spike_shape: tuple = _spec(_shape)
    #: ``hot_pixels: list``: each sequence's repaired pixels ``[[row, col], ...]`` (from
    #: ``spikeprep qc``); left out of the JSON otherwise, so older params keep their hash
    hot_pixel_list: dict = _spec(lambda v, w, p: {str(k): [list(map(int, px)) for px in v[k]] for k in v},
                                 expected="an object of [row, col] lists", default_factory=dict,
                                 omit_default=True)
    #: how the first representation's records hold its array (``bitpacked``: raw windows)
    storage: str = _spec(_choice(STORAGES), default="array", omit_default=True)
    #: the representations after the first, in ``--repr`` order (records ``spike.NAME``)
    more_representations: tuple = _spec(_more_representations, expected="a list of representations",
                                        default=(), omit_default=True)
    #: False for spike-only data (no ``blur`` records; ``rgb_shape`` is then the GT's shape)
    has_blur: bool = _spec(lambda v, w, p: bool(v), default=True, omit_default=True)
    #: registered rigs: the crop size and resampling (None: spikes and RGB share one view)
    registration: RegistrationParams | None = _spec(_registration_params, expected="an object or null",
                                                    default=None, omit_default=True)

    def representations(self) -> tuple[ReprSpec, ...]:
        """Every stored representation, first one first (`ReprSpec`)."""
        first = ReprSpec(name=self.repr, repr=self.repr, S=self.S, repr_params=dict(self.repr_params),
                         channels=self.channels, spike_dtype=self.spike_dtype,
                         spike_shape=tuple(self.spike_shape), storage=self.storage, first=True)
        return (first, *self.more_representations)

    def representation_named(self, name: str) -> ReprSpec:
        """The `ReprSpec` called ``name``; CacheError listing the cache's names otherwise."""
        specs = {spec.name: spec for spec in self.representations()}
        if name not in specs:
            raise CacheError("the cache has no such spike representation", found=repr(name),
                             expected=" | ".join(specs),
                             fix="pick one of the cache's names, or add it: 'spikeprep voxelize DATA_ROOT "
                                 f"CACHE --add-repr {name}'")
        return specs[name]

    @property
    def hash(self) -> str:
        return params_hash(self.to_dict())

    def representation(self):
        """The `spikeprep.representations.catalog` object these params describe."""
        from ..representations.catalog import make_representation
        return make_representation(self.repr, self.S, **self.repr_params)


def params_v1_to_v2(raw: dict) -> dict:
    """Version 1 kept ``repr`` and ``S`` inside ``repr_params`` too."""
    rp = raw.get("repr_params")
    if isinstance(rp, dict):
        return {**raw, "repr_params": {k: v for k, v in rp.items() if k not in ("repr", "S")}}
    return raw
