"""`cache_info`: what a cache holds (params, a row per sequence, shard sizes), for `spikeprep info`."""

from __future__ import annotations

from pathlib import Path

from ..errors import CacheError, UsageError
from .lock_holders import writers_note
from .manifest import SequenceEntry, load_manifest
from .records import shard_name


def cache_info(cache) -> dict:
    """Params, a row per sequence (split, frames, shard, bytes, spike rate, hot pixels), shard
    sizes, spike_stats, ``spike_only`` (no blur records: spike-only data) and ``warnings``
    (input warnings recorded at build time; first, a note
    when a voxelize run is writing CACHE now). CacheError without a manifest (naming the running
    build, if any)."""
    root = Path(cache)
    if not root.is_dir():
        raise UsageError("CACHE directory not found", path=root, found="no such directory",
                         expected="a CACHE written by 'spikeprep voxelize'")
    writing = writers_note(root)
    try:
        manifest = load_manifest(root)
    except CacheError as err:
        if writing is None:
            raise
        raise CacheError("cache is being built", path=root, found=f"{err.found}; {writing}",
                         expected="a finished build (manifest.json)",
                         fix="wait for that voxelize run to finish, then run info again") from None
    rows, warnings = [], [writing] if writing else []
    for seq, e in manifest.sequences.items():
        warnings.extend(sequence_warnings(seq, e))
        rows.append({"sequence": seq, "split": e.split, "frames": e.num_frames,
                     "shard": shard_name(e.shard), "bytes": e.bytes, "spike_rate": e.firing_rate,
                     "hot_pixels": "off" if e.hot_pixels.get("mode") == "off" else e.hot_pixels.get("count")})
        if e.registration is not None:  # a registered rig: the box each frame was cut from
            rows[-1]["crop_box"] = list(e.registration.crop_box)
    shard_bytes = {}
    for name in manifest.shards:
        data = root / name / "data.mdb"
        shard_bytes[name] = data.stat().st_size if data.is_file() else None
    return {"cache": str(root), "params": manifest.params.to_dict(), "params_hash": manifest.params_hash,
            "spike_stats": manifest.spike_stats.to_dict(), "sequences": rows, "shards": shard_bytes,
            "created": manifest.created, "spikeprep_version": manifest.spikeprep_version,
            "warnings": warnings, "spike_only": not manifest.params.has_blur,
            "representations": representation_rows(manifest)}


def representation_rows(manifest) -> list[dict]:
    """A row per stored representation, first one first: name, record kind, S, shape, dtype,
    storage, its own parameters and its statistics (`Manifest.stats_of`)."""
    return [{"name": p.name, "record": p.kind, "S": p.S, "shape": list(p.spike_shape), "dtype": p.spike_dtype,
             "storage": p.storage, "params": dict(p.repr_params), "stats": manifest.stats_of(p.name).to_dict()}
            for p in manifest.params.representations()]


def sequence_warnings(name: str, entry: SequenceEntry) -> list[str]:
    """The input warnings recorded for a sequence, plus an all-zero spike warning derived from
    ``spike_rate == 0`` for caches built before warnings were recorded."""
    out = list(entry.warnings)
    if entry.firing_rate == 0 and not any("no spike" in w for w in out):
        out.append(f"sequence {name}: no spike in any of its frames' windows (spike rate 0), so its "
                   "spike voxels are all zero; check the recording")
    return out
