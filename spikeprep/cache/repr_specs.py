"""Several spike representations in one cache: parse what ``--repr`` (repeatable) asks for and
fix each one's `ReprSpec` (manifest version 3).

``--repr bins:8 --repr raw:41 --repr tfi``: ``KIND:N`` is ``--repr KIND --S N``; a kind without
``:N`` takes ``--S`` (or its own default). The name of a representation is its kind, so a kind
twice is refused. ``--repr-param KEY=VALUE``: ``KIND.KEY=VALUE`` goes to that representation;
an unqualified ``KEY=VALUE`` goes to the first one (the single-representation meaning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError, VoxelError
from ..representations.catalog import default_S, make_representation, params_of
from .manifest_params import ReprSpec


@dataclass(frozen=True)
class ReprRequest:
    """One asked-for representation: its kind (= its name), S (None: the kind's default) and
    its own keyword parameters."""

    name: str
    S: int | None
    params: dict


def _split(text: str, S) -> tuple[str, int | None]:
    """``"bins:8"`` -> ``("bins", 8)``; ``"tfi"`` -> ``("tfi", S)``; UsageError for a bad N."""
    name, sep, n = str(text).strip().partition(":")
    if not sep:
        return name, S
    try:
        value = int(n)
    except ValueError:
        value = 0
    if value < 1 or not name:
        raise UsageError("--repr must be KIND or KIND:N", found=repr(text),
                         expected="e.g. bins, bins:8, raw:41 (N: a positive integer)")
    return name, value


def parse_requests(repr="bins", S=None, repr_params=None) -> list[ReprRequest]:
    """The representations asked for, first one first. ``repr``: a kind (``"bins"``), a
    ``"KIND:N"`` string or a list/tuple of them; ``S`` applies to those without ``:N``;
    ``repr_params``: ``{KEY: value}`` for the first, ``{"KIND.KEY": value}`` for any.
    UsageError for a kind twice, an empty list or a parameter naming a kind not asked for."""
    items = [repr] if isinstance(repr, str) else list(repr or ())
    if not items:
        raise UsageError("no representation asked for", found="an empty --repr list",
                         expected="at least one --repr KIND[:N]")
    pairs = [_split(item, S) for item in items]
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError("the same representation is asked for twice", found=", ".join(twice),
                         expected="each kind once (a representation is named by its kind)",
                         fix="drop the repeated --repr")
    own: dict[str, dict] = {name: {} for name in names}
    for key, value in dict(repr_params or {}).items():
        kind, dot, sub = str(key).rpartition(".")
        if not dot:
            kind, sub = names[0], key
        if sub in ("S", "repr"):
            raise UsageError(f"{sub} is not a representation parameter", found=_quoted(key),
                             expected="a parameter of the representation's own",
                             fix="give S as --repr KIND:N or --S N, the kind as --repr KIND")
        if kind not in own:
            raise UsageError("--repr-param names a representation that is not asked for",
                             found=_quoted(key), expected="KEY=VALUE (the first) or KIND.KEY=VALUE with "
                             "KIND among " + ", ".join(names))
        own[kind][sub] = value
    return [ReprRequest(name, s, own[name]) for name, s in pairs]


def _quoted(key) -> str:
    return repr(key)


def resolve(name: str, S: int | None, params: dict, window_lengths=()):
    """``(S, the representation's own params, channels, rep)``; S None: the representation's
    default. raw's S=0 (the whole window) resolves to the
    dataset's one window length (``window_lengths``: every frame's); VoxelError when they differ."""
    rep = make_representation(name, default_S(name) if S is None else S, **params)
    if name == "raw" and rep.S == 0:
        lengths = sorted(set(int(n) for n in window_lengths))
        if len(lengths) != 1:
            raise VoxelError("--repr raw without N keeps whole windows, but the windows differ in length",
                             found="window lengths " + (", ".join(map(str, lengths[:10])) or "none")
                             + (f" and {len(lengths) - 10} more" if len(lengths) > 10 else ""),
                             expected="one window length, or N given",
                             fix=f"pass --repr raw:N (the centred N frames of each window, N <= "
                                 f"{lengths[0] if lengths else 'the shortest'})")
        rep = make_representation(name, lengths[0], **params)
    if name == "raw" and window_lengths and rep.S > min(window_lengths):
        raise VoxelError(f"--repr raw:{rep.S} keeps the centred {rep.S} frames, but some windows are shorter",
                         found=f"windows of {min(window_lengths)} frames",
                         expected=f"every window >= {rep.S} frames",
                         fix=f"pass --repr raw:N with N <= {min(window_lengths)}")
    return int(rep.S), params_of(rep.to_dict()), int(rep.channels), rep



def build_spec(request: ReprRequest, window_lengths, spike_hw: tuple[int, int],
               first: bool = False) -> ReprSpec:
    """The `ReprSpec` of one request (`resolve`; ``window_lengths``: every frame's window length):
    channels and dtype from the representation (its ``dtype_for`` the longest window), stored at
    ``(channels, *spike_hw)`` (the stored spike size), bit-packed when the representation says
    ``storage = "bitpacked"``."""
    _, _, _, rep = resolve(request.name, request.S, dict(request.params), window_lengths)
    return ReprSpec(name=request.name, repr=request.name, S=int(rep.S), repr_params=params_of(rep.to_dict()),
                    channels=int(rep.channels), spike_dtype=np.dtype(rep.dtype_for(max(window_lengths))).name,
                    spike_shape=(int(rep.channels), *map(int, spike_hw)),
                    storage=getattr(rep, "storage", "array"), first=first)


def logical(spec: ReprSpec, stored: np.ndarray) -> np.ndarray:
    """A record's array as the representation defines it: bit-packed ones unpacked to
    ``(C, h, w)`` uint8 0/1 (`spikeprep.cache.records.unpack_bits`), others as they are."""
    if spec.storage != "bitpacked":
        return stored
    from .records import unpack_bits
    return unpack_bits(stored, spec.spike_shape[-1])


def stats_of(hists, spec: ReprSpec, over: list[str]):
    """`spikeprep.cache.manifest.SpikeStats` of one representation from its merged channel
    histograms (`spikeprep.cache.stats`) over the train sequences ``over``."""
    from . import stats
    from .manifest import SpikeStats

    float_dtype = spec.dtype.kind == "f"
    final = stats.finalize(hists, float_dtype)
    out = final.to_dict(over) if final else {"mean": [], "std": [], "q995": [], "over": []}
    out["method"] = "float16-rounded value histograms" if float_dtype else "exact (value histograms)"
    return SpikeStats.from_dict(out, f"representation_stats.{spec.name}")


def more_stats(params, done: dict) -> dict:
    """``representation_stats``: name -> `SpikeStats` of each further representation, from the
    journal entries ``done`` (their ``more_hists``) of the train sequences."""
    from . import stats

    out = {}
    for spec in params.more_representations:
        hists, over = None, []
        for name in sorted(done):
            entry = done[name]
            if entry["split"] == "train":
                hists = stats.merge(hists, stats.from_json(entry.get("more_hists", {})[spec.name]))
                over.append(name)
        out[spec.name] = stats_of(hists, spec, over)
    return out
