"""spikeprep: spike-camera recordings + RGB video -> verified training caches for VRT."""

from .dat import SpikeStream, write_dat
from .errors import SpikeprepError

__version__ = "0.1.0"

__all__ = ["SpikeStream", "SpikeprepError", "write_dat", "__version__"]
