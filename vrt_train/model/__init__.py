"""VRT (Video Restoration Transformer), KAIR-compatible, with optional spike voxel input channels.

``VRT(**netG, spike_chans=S)`` builds the network from a KAIR ``netG`` dict;
:func:`load_pretrained` loads an RGB checkpoint into an RGB + spike model.
"""

from .errors import CheckpointMismatchError, InputShapeError
from .flow import SpyNetWeightsWarning
from .network import VRT
from .pretrained import PretrainedLoadReport, load_pretrained
from .spike_only import SpikeOnlyVRT

__all__ = ["VRT", "SpikeOnlyVRT", "load_pretrained", "PretrainedLoadReport", "InputShapeError",
           "CheckpointMismatchError", "SpyNetWeightsWarning"]
