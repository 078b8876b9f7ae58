"""spikeprep: spike-camera recordings + RGB video -> verified training caches for VRT."""

from .dat import SpikeStream, write_dat
from .errors import SpikeprepError
from .sync import SyncFile, load_sync
from .syncbuild import SyncOptions, build_sync

__version__ = "0.1.0"

__all__ = ["SpikeStream", "SpikeprepError", "SyncFile", "SyncOptions", "build_sync", "load_sync", "write_dat", "__version__"]
