"""The model factory: `build_model(cfg, spike_chans)`, shared by training, inference and dry runs
(importing it does not import the training loop)."""

from __future__ import annotations

from spikeprep import ConfigError

from .config import Config


def build_model(cfg: Config, spike_chans: int):
    """``VRT(**cfg.netG, spike_chans=...)``; a bad netG becomes a ConfigError."""
    from .model import VRT
    try:
        return VRT(**dict(cfg.netG), spike_chans=spike_chans)
    except (TypeError, ValueError) as exc:
        raise ConfigError("netG is not a valid VRT configuration", found=str(exc)) from None
