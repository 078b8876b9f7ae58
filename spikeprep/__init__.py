"""spikeprep: spike-camera recordings + RGB video -> verified training caches for VRT.

The public API, by pipeline stage (everything `vrt_train`, the tests and the benchmarks use):

* spike streams: `SpikeStream` (SpikeCV-compatible memory-mapped reader), `write_dat`
* simulation: `simulate_dataset`
* alignment: `build_sync`, `SyncOptions`, `load_sync`, `SyncFile`; checking it from the data:
  `check_sync` (`CheckOptions`), `score_orientations` (one window against one image)
* voxels: `voxelize` (one window), `make_representation`, `REPRESENTATIONS`
* the cache: `voxelize_dataset` (build), `open_cache` -> `Cache` (read, ``cache.manifest`` is a
  `Manifest` with `CacheParams`, `SequenceEntry`, `SpikeStats`), `is_cache`, `verify_cache`,
  `cache_info`
* errors: `SpikeprepError` and its families (`UsageError`, `ConfigError`, `LayoutError`,
  `SyncError`, `DatError`, `WindowError`, `VoxelError`, `CacheError`, `DependencyError`)
* files: `write_text_atomic`

Importing spikeprep never imports torch or `vrt_train`.
"""

from importlib.metadata import version as _installed_version

from .alignment import score_orientations
from .cache import Cache, CacheParams, Manifest, Sample, SequenceEntry, SpikeStats, open_cache
from .cache.build import voxelize_dataset
from .cache.info import cache_info
from .cache.records import MANIFEST_NAME
from .cache.verify import verify_cache
from .checksync import CheckOptions, check_sync
from .dat import SpikeStream, write_dat
from .errors import (CacheError, ConfigError, DatError, DependencyError, LayoutError,
                     SpikeprepError, SyncError, UsageError, VoxelError, WindowError)
from .files import write_text_atomic
from .representations import REPRESENTATIONS, make_representation
from .simulate import simulate_dataset
from .sync import SyncFile, load_sync
from .syncbuild import SyncOptions, build_sync
from .voxel import voxelize

__version__ = _installed_version("spikeprep")  # pyproject.toml is the only source


def is_cache(path) -> bool:
    """True when ``path`` is a directory holding a cache manifest (finished or not validated)."""
    from pathlib import Path
    return (Path(path) / MANIFEST_NAME).is_file()


__all__ = [
    "SpikeStream", "write_dat",
    "simulate_dataset",
    "build_sync", "SyncOptions", "load_sync", "SyncFile", "check_sync", "CheckOptions", "score_orientations",
    "voxelize", "make_representation", "REPRESENTATIONS",
    "voxelize_dataset", "open_cache", "Cache", "Sample", "Manifest", "CacheParams", "SequenceEntry",
    "SpikeStats", "is_cache", "verify_cache", "cache_info",
    "SpikeprepError", "UsageError", "ConfigError", "LayoutError", "SyncError", "DatError",
    "WindowError", "VoxelError", "CacheError", "DependencyError",
    "write_text_atomic",
    "__version__",
]
