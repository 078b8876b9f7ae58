"""The model factory: `build_model(cfg, spike_chans)`, shared by training, inference and dry runs
(importing it does not import the training loop)."""

from __future__ import annotations

from spikeprep import ConfigError

from .config import Config


def build_model(cfg: Config, spike_chans: int):
    """``VRT(**cfg.netG, spike_chans=...)`` (`SpikeOnlyVRT` with ``data.use_rgb: false``); a bad
    netG becomes a ConfigError."""
    from .model import VRT, SpikeOnlyVRT
    from .spike_only import gt_channels
    try:
        if not cfg.data.use_rgb:  # vrt_train.spike_only: the guide image in the RGB slots
            return SpikeOnlyVRT(**dict(cfg.netG), spike_chans=spike_chans, gt_chans=gt_channels(cfg))
        return VRT(**dict(cfg.netG), spike_chans=spike_chans)
    except (TypeError, ValueError) as exc:
        raise ConfigError("netG is not a valid VRT configuration", found=str(exc)) from None
    except FileNotFoundError:
        raise ConfigError("the SpyNet weights file is missing", path=cfg.netG.get("spynet_path"),
                          found="no such file", expected="a local SpyNet .pth (nothing is downloaded)",
                          fix="download spynet_sintel_final-3d2a1287.pth there, or set netG.spynet_path: "
                              "null (random flow)") from None
