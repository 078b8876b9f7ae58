"""`cache_info`: what a cache holds (params, a row per sequence, shard sizes), for `spikeprep info`."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .manifest import load_manifest
from .records import shard_name


def cache_info(cache) -> dict:
    """Params and a row per sequence (split, frames, shard, bytes, spike rate, hot pixels)."""
    root = Path(cache)
    if not root.is_dir():
        raise UsageError("CACHE directory not found", path=root, found="no such directory",
                         expected="a CACHE written by 'spikeprep voxelize'")
    manifest = load_manifest(root)
    rows = []
    for seq, e in manifest.sequences.items():
        rows.append({"sequence": seq, "split": e.split, "frames": e.num_frames,
                     "shard": shard_name(e.shard), "bytes": e.bytes, "spike_rate": e.spike_rate,
                     "hot_pixels": "off" if e.hot_pixels.get("mode") == "off" else e.hot_pixels.get("count")})
    shard_bytes = {}
    for name in manifest.shards:
        data = root / name / "data.mdb"
        shard_bytes[name] = data.stat().st_size if data.is_file() else None
    return {"cache": str(root), "params": manifest.params.to_dict(), "params_hash": manifest.params_hash,
            "spike_stats": manifest.spike_stats.to_dict(), "sequences": rows, "shards": shard_bytes,
            "created": manifest.created, "spikeprep_version": manifest.spikeprep_version}
