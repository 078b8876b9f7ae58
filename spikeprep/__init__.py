"""spikeprep: spike-camera recordings + RGB video -> verified training caches for VRT.

The public API, by pipeline stage (everything `vrt_train`, the tests and the benchmarks use):

* spike streams: `SpikeStream` (SpikeCV-compatible memory-mapped reader), `write_dat`
* simulation: `simulate_dataset`
* public datasets: `import_dataset`, `ImportOptions` (``spikeprep import PRESET SOURCE DATA_ROOT``)
* alignment: `build_sync`, `SyncOptions`, `load_sync`, `SyncFile`; checking it from the data:
  `check_sync` (`CheckOptions`), `score_orientations` (one window against one image)
* raw captures: `qc_paths` (``spikeprep qc``: geometry, hot/dead pixels, frames)
* a rig's registration: `register` (``spikeprep register``), `Registration`
* voxels: `voxelize` (one window), `make_representation`, `REPRESENTATIONS`
* the cache: `voxelize_dataset` (build), `open_cache` -> `Cache` (read, ``cache.manifest`` is a
  `Manifest` with `CacheParams`, `SequenceEntry`, `SpikeStats`), `is_cache`, `verify_cache`,
  `cache_info`
* errors: `SpikeprepError` and its families (`UsageError`, `ConfigError`, `LayoutError`,
  `SyncError`, `DatError`, `WindowError`, `VoxelError`, `CacheError`, `DependencyError`,
  `OutputError`)
* files: `write_text_atomic`

Importing spikeprep never imports torch or `vrt_train`; the names above load their modules on
first use.
"""

from importlib import import_module as _import_module
from importlib.metadata import version as _installed_version

from .errors import (
    CacheError,
    ConfigError,
    DatError,
    DependencyError,
    LayoutError,
    OutputError,
    SpikeprepError,
    SyncError,
    UsageError,
    VoxelError,
    WindowError,
)

__version__ = _installed_version("spikeprep")  # pyproject.toml is the only source

#: Public name -> the module that defines it. Imported on first use (PEP 562), so that
#: ``import spikeprep`` (every command, every DataLoader worker of vrt_train) does not load
#: numba, OpenCV and the dataset importers before something needs them.
_WHERE = {
    "score_orientations": ".alignment.scores",
    **dict.fromkeys(("Cache", "CacheParams", "Manifest", "Sample", "SequenceEntry", "SpikeStats",
                     "open_cache"), ".cache"),
    "voxelize_dataset": ".cache.build",
    "cache_info": ".cache.info",
    "verify_cache": ".cache.verify",
    "CheckOptions": ".alignment.check", "check_sync": ".alignment.check",
    "SpikeStream": ".inputs.dat", "write_dat": ".inputs.dat",
    "ImportOptions": ".datasets", "import_dataset": ".datasets",
    "write_text_atomic": ".inputs.files",
    "REPRESENTATIONS": ".representations.catalog", "make_representation": ".representations.catalog",
    "simulate_dataset": ".simulate",
    "qc_paths": ".qc",
    "Registration": ".registration", "register": ".registration",
    "SyncFile": ".sync", "load_sync": ".sync",
    "SyncOptions": ".alignment.build", "build_sync": ".alignment.build",
    "voxelize": ".voxel",
}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(_import_module(_WHERE[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'spikeprep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


def is_cache(path) -> bool:
    """True when ``path`` is a directory holding a cache manifest (finished or not validated)."""
    from pathlib import Path

    from .cache.records import MANIFEST_NAME
    return (Path(path) / MANIFEST_NAME).is_file()


__all__ = [
    "SpikeStream", "write_dat",
    "simulate_dataset",
    "import_dataset", "ImportOptions",
    "build_sync", "SyncOptions", "load_sync", "SyncFile", "check_sync", "CheckOptions", "score_orientations",
    "qc_paths", "register", "Registration",
    "voxelize", "make_representation", "REPRESENTATIONS",
    "voxelize_dataset", "open_cache", "Cache", "Sample", "Manifest", "CacheParams", "SequenceEntry",
    "SpikeStats", "is_cache", "verify_cache", "cache_info",
    "SpikeprepError", "UsageError", "ConfigError", "LayoutError", "SyncError", "DatError",
    "WindowError", "VoxelError", "CacheError", "DependencyError", "OutputError",
    "write_text_atomic",
    "__version__",
]
