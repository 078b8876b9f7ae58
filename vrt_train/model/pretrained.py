"""Load VRT checkpoints, including RGB checkpoints into an RGB + spike model.

Only ``conv_first`` depends on the number of input channels. Its input is, per frame,
``INPUT_BLOCKS_WITH_WARPING`` (9) blocks of ``3 + S`` channels (the frame, then its later
neighbour warped with four integer corners, then its earlier neighbour likewise), each
block RGB first, optionally followed by one noise-level channel. An RGB checkpoint has
the same layout with ``S = 0``; its 3-channel blocks are copied onto the RGB positions
of each block and the spike positions get zero weights, so the adapted model computes
exactly what the RGB model computed, whatever the spike input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

import torch

from .errors import CheckpointMismatchError
from .network import INPUT_BLOCKS_WITH_WARPING, RGB_CHANNELS, VRT

CONV_FIRST = "conv_first.weight"
WRAPPER_KEYS = ("params", "params_ema")
DDP_PREFIX = "module."


@dataclass(frozen=True)
class AdaptedKey:
    """A checkpoint entry that was reshaped to fit the model."""

    key: str
    checkpoint_shape: tuple[int, ...]
    model_shape: tuple[int, ...]


@dataclass
class PretrainedLoadReport:
    """What :func:`load_pretrained` did."""

    adapted: list[AdaptedKey] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    param_key: str | None = None


def read_checkpoint(checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
                    param_key: str | None = None) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict in ``checkpoint`` (a path or a mapping), and the wrapper key it was under.

    ``param_key=None`` picks ``params``, else ``params_ema``, else the mapping itself.
    A ``module.`` prefix on every key (DistributedDataParallel) is removed.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(f"checkpoint is a {type(checkpoint).__name__}, not a state dict")
    if param_key is None:
        param_key = next((key for key in WRAPPER_KEYS if isinstance(checkpoint.get(key), Mapping)), None)
    if param_key is not None:
        if param_key not in checkpoint:
            raise CheckpointMismatchError(f"checkpoint has no {param_key!r} entry; keys: {sorted(checkpoint)[:10]}")
        checkpoint = checkpoint[param_key]
    state = dict(checkpoint)
    if state and all(key.startswith(DDP_PREFIX) for key in state):
        state = {key[len(DDP_PREFIX):]: value for key, value in state.items()}
    return state, param_key


def rgb_to_spike_conv_first(weight: torch.Tensor, model: VRT) -> torch.Tensor:
    """Spread an RGB model's ``conv_first`` weight over the model's RGB + spike input.

    Args:
        weight: ``(E, blocks * 3 [+ 1], 1, 3, 3)`` from an RGB checkpoint.
        model: the target model (``spike_chans`` S, ``frame_chans = 3 + S``).

    Returns:
        ``(E, blocks * (3 + S) [+ 1], 1, 3, 3)``, zero at every spike channel.
    """
    blocks = INPUT_BLOCKS_WITH_WARPING if model.pa_frames else 1
    extra = int(model.nonblind_denoising)
    target = model.conv_first.weight
    adapted = torch.zeros(target.shape, dtype=target.dtype)
    source = weight.to(target.dtype)
    for block in range(blocks):
        start = block * model.frame_chans
        adapted[:, start:start + RGB_CHANNELS] = source[:, block * RGB_CHANNELS:(block + 1) * RGB_CHANNELS]
    if extra:
        adapted[:, -extra:] = source[:, -extra:]
    return adapted


def _is_rgb_conv_first(shape: torch.Size, model: VRT) -> bool:
    blocks = INPUT_BLOCKS_WITH_WARPING if model.pa_frames else 1
    expected = model.conv_first.weight.shape
    rgb_in = blocks * RGB_CHANNELS + int(model.nonblind_denoising)
    return len(shape) == len(expected) and shape[0] == expected[0] and shape[1] == rgb_in \
        and tuple(shape[2:]) == tuple(expected[2:])


def load_pretrained(model: VRT, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], *,
                    param_key: str | None = None, strict: bool = True) -> PretrainedLoadReport:
    """Load a VRT checkpoint, adapting an RGB checkpoint to an RGB + spike model.

    Args:
        model: the :class:`VRT` to load into (any ``spike_chans``).
        checkpoint: path to a ``.pth`` file or a state dict, bare or under
            ``params`` / ``params_ema``.
        param_key: wrapper key to use; by default ``params``, then ``params_ema``, then bare.
        strict: raise on missing or unexpected keys (otherwise they are only reported).

    Returns:
        A :class:`PretrainedLoadReport` listing adapted, missing and unexpected keys.

    Raises:
        CheckpointMismatchError: a shape differs anywhere except an adaptable ``conv_first``,
            or (``strict``) keys are missing or unexpected.
    """
    state, used_key = read_checkpoint(checkpoint, param_key)
    model_state = model.state_dict()
    report = PretrainedLoadReport(param_key=used_key,
                                  missing_keys=sorted(set(model_state) - set(state)),
                                  unexpected_keys=sorted(set(state) - set(model_state)))

    weight = state.get(CONV_FIRST)
    if weight is not None and weight.shape != model_state[CONV_FIRST].shape and _is_rgb_conv_first(weight.shape, model):
        state[CONV_FIRST] = rgb_to_spike_conv_first(weight, model)
        report.adapted.append(AdaptedKey(CONV_FIRST, tuple(weight.shape), tuple(state[CONV_FIRST].shape)))

    mismatched = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(model_state[key].shape)}"
                  for key, value in state.items() if key in model_state and value.shape != model_state[key].shape]
    if mismatched:
        raise CheckpointMismatchError("checkpoint does not fit the model (only conv_first of an RGB checkpoint "
                                      "can be adapted; check the netG settings):\n  " + "\n  ".join(mismatched))
    if strict and (report.missing_keys or report.unexpected_keys):
        raise CheckpointMismatchError(f"checkpoint keys differ from the model's: missing {report.missing_keys[:10]}"
                                      f" ({len(report.missing_keys)}), unexpected {report.unexpected_keys[:10]}"
                                      f" ({len(report.unexpected_keys)}); pass strict=False to load anyway")
    model.load_state_dict(state, strict=strict)
    return report
