"""The cache manifest (``CACHE/manifest.json``) as typed data, declared once.

`Manifest` holds `CacheParams` (what changes the stored bytes), one `SequenceEntry` per sequence
and `SpikeStats`; `load_manifest` is the one read path (parse, validate, upgrade) and
`write_manifest` the one write path. Readers use attributes (``cache.manifest.params.S``);
``manifest["spike_stats"]`` still gives the JSON form of a top-level key, for scripts.

Schema versions: ``manifest_version`` (`MANIFEST_VERSION`) versions this JSON; the record bytes
have their own ``FORMAT_VERSION`` (`spikeprep.cache.records`), stored as ``version`` as before.

* version 1 (no ``manifest_version`` key): ``params.repr_params`` repeated ``repr`` and ``S``.
* version 2: ``repr_params`` holds only the representation's own parameters; source
  fingerprints and record checksums name their hash algorithm (`spikeprep.inputs.fingerprint`).
* version 3 (one design for registration, representations, spike-only data and imports): optional
  ``params.storage`` (``bitpacked`` raw windows), ``params.more_representations`` (several
  representations, records ``spike.NAME``), ``params.has_blur`` (false: spike-only data),
  ``params.registration`` (the crop and resampling of registered rigs), per sequence
  ``registration`` (its matrix and crop box), ``representation_stats`` and a validated
  ``import``. Every new key is left out while it has its default, so a cache that uses none of them
  has the params (and hash) version 2 gave it: version 1 and 2 caches open, verify and resume.

Adding a field is one line in the dataclass that owns it: give it a default, and `to_dict` leaves
it out while it equals that default, so the params hash of caches written before it is unchanged.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError
from ..inputs.files import write_text_atomic
from .manifest_fields import (
    _box,
    _choice,
    _int,
    _invalid,
    _matrix,
    _need,
    _number,
    _numbers,
    _Record,
    _spec,
)
from .manifest_params import CacheParams, params_hash, params_v1_to_v2
from .records import (
    FORMAT,
    FORMAT_VERSION,
    JOURNAL_NAME,
    MANIFEST_NAME,
    frame_key,
    hot_pixels_key,
    record_checksum_algorithm,
)

MANIFEST_VERSION = 3
#: every manifest version this code reads (older ones are upgraded in memory on load)
READABLE_MANIFEST_VERSIONS = (1, 2, 3)
SPLITS = ("train", "val")


# -- sequences --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SequenceRegistration(_Record):
    """A registered sequence's map and crop (manifest version 3). ``matrix``: 3x3, spike pixel
    ``(x, y, 1)`` (image orientation, pixel centres at integers) -> full-size RGB pixel;
    ``overlap``: the largest RGB box ``[x0, y0, x1, y1)`` both cameras see; ``crop_box``: the box
    of the cache's one crop size (``params.registration.crop``) cut from it."""

    model: str = _spec(_choice(("similarity", "affine", "homography")))
    matrix: tuple = _spec(_matrix, expected="3x3 numbers")
    overlap: tuple = _spec(_box)
    crop_box: tuple = _spec(_box)


@dataclass(frozen=True)
class SequenceEntry(_Record):
    """One sequence of the cache: where it is, what it came from, the checksum of each record.

    ``sources``: DATA_ROOT-relative path -> fingerprint (`spikeprep.inputs.fingerprint`);
    ``records``: record key -> checksum hex; ``firing_rate``: mean spikes per pixel per spike
    frame (count representations only; JSON key ``spike_rate``); ``source_stats``: the sources' size, mtime and inode
    when they were read (the cheap pre-check of a resume; absent in older caches); ``warnings``:
    input warnings of the build; ``T``: VRT clip length from the recipe (None:
    unknown); ``frame_names``: each frame's name in the source dataset, for inference output.
    """

    shard: int = _spec(_int)
    num_frames: int = _spec(_int)
    split: str = _spec(_choice(SPLITS))
    has_sharp: bool = _spec(lambda v, w, p: bool(v))
    sources: dict = _spec(lambda v, w, p: dict(v), expected="an object")
    records: dict = _spec(lambda v, w, p: dict(v), expected="an object")
    hot_pixels: dict = _spec(lambda v, w, p: dict(v), expected="an object")
    bytes: int | None = _spec(lambda v, w, p: None if v is None else _int(v, w, p), default=None)
    spike_frames: int | None = _spec(lambda v, w, p: None if v is None else _int(v, w, p), default=None)
    #: spikes per pixel per spike frame; the JSON key stays ``spike_rate`` (written before the
    #: code said ``spike_rate`` for Hz only)
    firing_rate: float | None = _spec(lambda v, w, p: None if v is None else _number(v, w, p),
                                      expected="a number or null", default=None, key="spike_rate")
    #: input warnings of the build (converted pngs, an all-zero spike stream); `spikeprep info`
    #: shows them. Left out of the JSON while empty.
    warnings: tuple = _spec(lambda v, w, p: tuple(str(x) for x in v), expected="a list of strings",
                            default=(), omit_default=True)
    #: path -> ``{"size", "mtime_ns", "ino"}`` stat'ed before reading (`spikeprep.cache.staleness`)
    source_stats: dict = _spec(lambda v, w, p: dict(v), expected="an object", default_factory=dict,
                               omit_default=True)
    T: int | None = _spec(lambda v, w, p: None if v is None else _int(v, w, p), default=None,
                          omit_default=True)
    frame_names: tuple = _spec(lambda v, w, p: tuple(str(x) for x in v), expected="a list of names",
                               default=(), omit_default=True)
    #: registered rigs (manifest version 3): ``{"model", "matrix", "overlap", "crop_box"}``, the
    #: sync.json registration and the RGB box ``[x0, y0, x1, y1)`` cut for the cache
    registration: SequenceRegistration | None = _spec(
        lambda v, w, p: None if v is None else SequenceRegistration.from_dict(v, w, p),
        expected="an object or null", default=None, omit_default=True)

    def sync_path(self, sequence: str) -> str:
        """The DATA_ROOT-relative sync.json this entry fingerprinted (``spike/SEQ/sync.json`` when
        its sources name none)."""
        return next((k for k in self.sources if k.endswith("sync.json")), f"spike/{sequence}/sync.json")

    def frame_name(self, index: int) -> str:
        """Frame ``index``'s source name (``000000``-style when the manifest has none)."""
        return self.frame_names[index] if index < len(self.frame_names) else f"{index:06d}"

    def expected_records(self, params: CacheParams, sequence: str) -> dict[str, tuple[tuple, np.dtype]]:
        """``{key: (shape, dtype)}`` of every record this entry promises (record shapes: bit-packed
        representations as stored)."""
        rgb, specs = params.rgb_shape, params.representations()
        out = {}
        for i in range(self.num_frames):
            if params.has_blur:
                out[frame_key(sequence, i, "blur")] = (rgb, np.dtype("u1"))
            if self.has_sharp:
                out[frame_key(sequence, i, "sharp")] = (rgb, np.dtype("u1"))
            for spec in specs:
                out[frame_key(sequence, i, spec.kind)] = (spec.record_shape, spec.dtype)
        if params.hot_pixels != "off":
            out[hot_pixels_key(sequence)] = (params.spike_shape[1:], np.dtype("u1"))
        return out


@dataclass(frozen=True)
class SpikeStats(_Record):
    """Per-channel statistics of the training sequences' voxels (``over``: which sequences)."""

    mean: tuple = _spec(_numbers, expected="a list of finite numbers", default=())
    std: tuple = _spec(_numbers, expected="a list of finite numbers", default=())
    q995: tuple = _spec(_numbers, expected="a list of finite numbers", default=())
    over: tuple = _spec(lambda v, w, p: tuple(v), expected="a list", default=())
    method: str = ""


# -- the manifest -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest(_Record):
    """A finished cache's manifest. ``manifest["key"]`` returns the JSON form of a top-level key."""

    params: CacheParams
    sequences: dict  # name -> SequenceEntry, sorted by name
    spike_stats: SpikeStats
    shards: tuple
    spikeprep_version: str
    created: str = ""
    record_checksum: str = ""
    format: str = FORMAT
    version: int = FORMAT_VERSION
    manifest_version: int = MANIFEST_VERSION
    params_hash: str = ""
    #: what ``spikeprep import`` recorded in DATA_ROOT/import.json for this cache's sequences
    #: (`import_record`); JSON key ``import``, left out when DATA_ROOT had no import.json
    import_record: dict | None = _spec(key="import", omit_default=True, default=None)
    #: per-channel statistics of each further representation (name -> `SpikeStats`); the first
    #: representation's are ``spike_stats``. Left out while empty.
    representation_stats: dict = _spec(omit_default=True, default_factory=dict)

    def __post_init__(self):
        if not self.params_hash:
            object.__setattr__(self, "params_hash", self.params.hash)

    @classmethod
    def new(cls, params: CacheParams, sequences: dict, spike_stats: SpikeStats, shards,
            spikeprep_version: str, record_checksum: str, import_record: dict | None = None,
            representation_stats: dict | None = None) -> "Manifest":
        return cls(params, dict(sorted(sequences.items())), spike_stats, tuple(shards),
                   spikeprep_version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   record_checksum, import_record=import_record,
                   representation_stats=dict(sorted((representation_stats or {}).items())))

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["sequences"] = {name: e.to_dict() for name, e in self.sequences.items()}
        return out

    def stats_of(self, name: str | None = None) -> SpikeStats:
        """The `SpikeStats` of representation ``name`` (None or the first's name: ``spike_stats``)."""
        if name is None or name == self.params.repr:
            return self.spike_stats
        self.params.representation_named(name)
        return self.representation_stats.get(name, SpikeStats())

    @cached_property
    def _json(self) -> dict:
        return self.to_dict()

    def __getitem__(self, key: str):
        return self._json[key]

    def get(self, key: str, default=None):
        return self._json.get(key, default)

    @property
    def record_algorithm(self) -> str:
        """The hash algorithm of ``sequences[*].records`` (named in ``record_checksum``)."""
        return record_checksum_algorithm(self.record_checksum)

    def meta_info_lines(self) -> list[str]:
        """KAIR meta_info lines ``SEQ NFRAMES (H,W,3) 0`` for every sequence, sorted."""
        h, w, c = self.params.rgb_shape
        return [f"{seq} {e.num_frames} ({h},{w},{c}) 0" for seq, e in self.sequences.items()]


def manifest_from_dict(raw, path=None) -> Manifest:
    """Validate a parsed manifest (any supported version) and return it, upgraded to the current one."""
    _need(isinstance(raw, dict), "not a JSON object", type(raw).__name__, "an object", path)
    _need(raw.get("format") == FORMAT, "not a spikeprep cache", raw.get("format"), FORMAT, path)
    _need(raw.get("version") == FORMAT_VERSION, "unsupported record format version",
          raw.get("version"), FORMAT_VERSION, path)
    version = raw.get("manifest_version", 1)
    _need(version in READABLE_MANIFEST_VERSIONS, "unsupported manifest version", version,
          " or ".join(map(str, READABLE_MANIFEST_VERSIONS)) + " (a newer spikeprep wrote it: upgrade)", path)
    stored = raw.get("params")
    _need(isinstance(stored, dict), "params missing", type(stored).__name__, "an object", path)
    _need(raw.get("params_hash") == params_hash(stored), "params_hash does not match params",
          raw.get("params_hash"), params_hash(stored), path)
    params = CacheParams.from_dict(params_v1_to_v2(stored) if version == 1 else stored, "params", path)
    seqs = raw.get("sequences")
    _need(isinstance(seqs, dict), "no sequences", type(seqs).__name__, "an object", path)
    sequences = {name: SequenceEntry.from_dict(entry, f"sequence {name!r}", path)
                 for name, entry in sorted(seqs.items())}
    stats = SpikeStats.from_dict(raw.get("spike_stats"), "spike_stats", path)
    try:
        record_checksum_algorithm(str(raw.get("record_checksum", "")))
    except CacheError as err:
        raise _invalid("record_checksum names an unknown algorithm", err.found, err.expected, path) from None
    shards = raw.get("shards", [])
    _need(isinstance(shards, list) and all(isinstance(x, str) for x in shards), "shards",
          repr(shards), "a list of shard folder names", path)
    names = [spec.name for spec in params.representations()]
    _need(len(set(names)) == len(names), "params name a representation twice", repr(names),
          "distinct names", path)
    more = raw.get("representation_stats", {})
    _need(isinstance(more, dict) and set(more) <= set(names[1:]), "representation_stats",
          repr(sorted(more) if isinstance(more, dict) else more), f"names among {names[1:]}", path)
    return Manifest(params, sequences, stats, tuple(shards),
                    str(raw.get("spikeprep_version", "")), str(raw.get("created", "")),
                    str(raw.get("record_checksum", "")), params_hash=raw["params_hash"],
                    import_record=check_import_record(raw.get("import"), path),
                    representation_stats={n: SpikeStats.from_dict(v, f"representation_stats.{n}", path)
                                          for n, v in sorted(more.items())})


#: keys of one sequence in the manifest's optional ``import`` key (from DATA_ROOT/import.json,
#: plus ``blur_folder``: the source folder the blurred frames were linked from, e.g. blur_gamma)
IMPORT_SEQUENCE_KEYS = ("preset", "source", "split", "frames", "fingerprint")


def check_import_record(raw, path=None) -> dict | None:
    """The optional top-level ``import`` key: None, or ``{"format", "version", "sequences":
    {SEQ: {preset, source, split, frames, fingerprint[, blur_folder]}}}``; CacheError otherwise."""
    if raw is None:
        return None
    _need(isinstance(raw, dict) and isinstance(raw.get("sequences"), dict), "import has no sequences",
          type(raw).__name__, 'an object with "sequences"', path)
    for name, entry in raw["sequences"].items():
        missing = [k for k in IMPORT_SEQUENCE_KEYS if not isinstance(entry, dict) or k not in entry]
        _need(not missing, f"import.sequences[{name!r}] incomplete", f"missing {', '.join(missing)}",
              ", ".join(IMPORT_SEQUENCE_KEYS), path)
    return raw


def load_manifest(cache: str | os.PathLike) -> Manifest:
    """Read and validate ``CACHE/manifest.json``; CacheError when missing or invalid."""
    cache = Path(cache)
    if not cache.is_dir():
        raise CacheError("cache directory not found", path=cache, found="no such directory",
                         expected="a CACHE written by 'spikeprep voxelize'")
    path = cache / MANIFEST_NAME
    if not path.is_file():
        journal = (cache / JOURNAL_NAME).is_file()
        raise CacheError("cache has no manifest", path=path, found="no manifest.json" +
                         (" (an unfinished build: progress.jsonl exists)" if journal else ""),
                         expected="a finished cache",
                         fix="re-run the same 'spikeprep voxelize' command to finish it")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError("cache manifest is not valid JSON", path=path, found=str(exc),
                         expected="JSON", fix="rebuild with 'spikeprep voxelize ... --force'") from exc
    return manifest_from_dict(raw, path)


def write_manifest(cache: str | os.PathLike, manifest: Manifest) -> None:
    """Write ``CACHE/manifest.json`` atomically (temp file, fsync, rename)."""
    write_json_atomic(Path(cache) / MANIFEST_NAME, manifest.to_dict())


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via temp file + fsync + rename."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")
