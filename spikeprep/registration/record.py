"""`Registration`, the validated record ``register --fix`` stores: defined with the config.yaml
parser (`spikeprep.inputs.registration_block`), which build-sync and sync.json read too."""

from ..inputs.registration_block import MODELS, Registration

__all__ = ["MODELS", "Registration"]
