"""spikeprep: spike-camera recordings + RGB video -> verified training caches for VRT."""

from importlib.metadata import version as _installed_version

from .dat import SpikeStream, write_dat
from .errors import SpikeprepError
from .simulate import simulate_dataset
from .sync import SyncFile, load_sync
from .syncbuild import SyncOptions, build_sync
from .voxel import voxelize
from .cache import Cache, Sample, open_cache
from .cache_build import voxelize_dataset
from .verify import verify_cache

__version__ = _installed_version("spikeprep")  # pyproject.toml is the only source

__all__ = ["Cache", "Sample", "open_cache", "verify_cache", "voxelize_dataset", "SpikeStream", "SpikeprepError", "SyncFile", "SyncOptions", "build_sync", "load_sync", "simulate_dataset", "voxelize", "write_dat", "__version__"]
