"""Optical flow for VRT: backward warping, SpyNet, and chaining flows over several frames.

Conventions: a flow is a ``(N, 2, H, W)`` tensor in pixels, channel 0 the horizontal
(x) and channel 1 the vertical (y) displacement. ``warp(img, flow)`` samples ``img`` at
``p + flow(p)``, so a flow "from frame a to frame b" brings frame b onto frame a's grid.
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPYNET_LEVELS = 6
#: SpyNet works on a pyramid of ``SPYNET_LEVELS`` levels, each half the previous size.
SPYNET_SIZE_MULTIPLE = 2 ** (SPYNET_LEVELS - 1)


class SpyNetWeightsWarning(UserWarning):
    """SpyNet was built without pretrained weights."""


def _sampling_grid(flow: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Absolute sampling positions ``p + flow(p)`` in pixels, shape ``(N, H, W, 2)`` as (x, y)."""
    _, _, height, width = flow.shape
    rows = torch.arange(height, dtype=dtype, device=flow.device)
    cols = torch.arange(width, dtype=dtype, device=flow.device)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    base = torch.stack((grid_x, grid_y), dim=2).float()
    return base + flow.permute(0, 2, 3, 1)


def _to_unit_square(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinate -> ``grid_sample``'s ``[-1, 1]`` range (``align_corners=True``)."""
    return 2.0 * coord / max(size - 1, 1) - 1.0


def flow_warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear",
              padding_mode: str = "zeros") -> torch.Tensor:
    """Backward-warp ``image`` (N, C, H, W) with ``flow`` (N, 2, H, W); returns (N, C, H, W)."""
    height, width = image.shape[-2:]
    position = _sampling_grid(flow, image.dtype)
    grid = torch.stack((_to_unit_square(position[..., 0], width),
                        _to_unit_square(position[..., 1], height)), dim=3)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def flow_warp_four_neighbours(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp with each of the four integer pixels around ``p + flow(p)`` (no interpolation).

    VRT warps the *input frames* this way so that no sub-pixel blur is introduced.
    Returns ``(N, 4C, H, W)``: blocks of C channels for the corners (floor x, floor y),
    (floor x, ceil y), (ceil x, floor y), (ceil x, ceil y), in that order.
    """
    height, width = image.shape[-2:]
    position = _sampling_grid(flow, image.dtype)
    xs = [_to_unit_square(torch.floor(position[..., 0]), width),
          _to_unit_square(torch.ceil(position[..., 0]), width)]
    ys = [_to_unit_square(torch.floor(position[..., 1]), height),
          _to_unit_square(torch.ceil(position[..., 1]), height)]
    corners = [F.grid_sample(image, torch.stack((gx, gy), dim=3), mode="nearest",
                             padding_mode="zeros", align_corners=True)
               for gx in xs for gy in ys]
    return torch.cat(corners, dim=1)


def _spynet_level_module() -> nn.Sequential:
    """Five 7x7 convolutions: (reference, warped support, upsampled flow) -> flow residual."""
    widths = [8, 32, 64, 32, 16, 2]
    layers: list[nn.Module] = []
    for index, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Conv2d(c_in, c_out, kernel_size=7, stride=1, padding=3))
        if index < len(widths) - 2:
            layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


class SpyNetLevel(nn.Module):
    """One pyramid level of SpyNet: ``(N, 8, h, w) -> (N, 2, h, w)`` flow residual."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = _spynet_level_module()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict from a local file, unwrapping a ``params`` entry if present."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {os.fspath(path)!r} (nothing is downloaded; "
                                "pass a local file or None)")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("params"), dict):
        loaded = loaded["params"]
    if not isinstance(loaded, dict):
        raise ValueError(f"{os.fspath(path)!r} does not hold a state dict (found {type(loaded).__name__})")
    return loaded


class SpyNet(nn.Module):
    """SpyNet (Ranjan & Black, "Optical Flow Estimation using a Spatial Pyramid Network").

    Args:
        weights_path: local ``.pth`` file with the pretrained weights (a bare state dict
            or one under ``params``), or None for a random initialisation (warns once).
        return_levels: pyramid levels whose flows are returned; level 5 is full
            resolution, level ``5 - k`` is downscaled by ``2**k``.
    """

    def __init__(self, weights_path: str | os.PathLike | None = None,
                 return_levels: Sequence[int] = (2, 3, 4, 5)) -> None:
        super().__init__()
        self.return_levels = tuple(return_levels)
        self.basic_module = nn.ModuleList([SpyNetLevel() for _ in range(SPYNET_LEVELS)])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if weights_path is None:
            warnings.warn("SpyNet has no pretrained weights (spynet_path=None): flows start from a "
                          "random initialisation. Ignore this if a full VRT checkpoint is loaded next.",
                          SpyNetWeightsWarning, stacklevel=3)
        else:
            self.load_weights(weights_path)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load the pyramid's weights from a local file; normalisation buffers are kept."""
        state = {key: value for key, value in read_state_dict(path).items()
                 if key not in ("mean", "std")}
        self.basic_module.load_state_dict(
            {key.removeprefix("basic_module."): value for key, value in state.items()}, strict=True)

    def _pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Normalised image and its 2x average-pooled versions, coarsest first."""
        levels = [(image - self.mean) / self.std]
        for _ in range(SPYNET_LEVELS - 1):
            levels.insert(0, F.avg_pool2d(levels[0], kernel_size=2, stride=2, count_include_pad=False))
        return levels

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> list[torch.Tensor]:
        """Flow from ``ref`` to ``supp`` (warping ``supp`` with it aligns it to ``ref``).

        Args:
            ref, supp: RGB images in [0, 1], ``(N, 3, H, W)``.

        Returns:
            One flow per entry of ``return_levels``, finest first:
            ``(N, 2, H // 2**k, W // 2**k)`` for ``k = 5 - level``, in pixels of that size.
        """
        height, width = ref.shape[-2:]
        # The pyramid needs sizes divisible by 2**5: resize (not pad) to the next multiple.
        height_r = -(-height // SPYNET_SIZE_MULTIPLE) * SPYNET_SIZE_MULTIPLE
        width_r = -(-width // SPYNET_SIZE_MULTIPLE) * SPYNET_SIZE_MULTIPLE
        ref = F.interpolate(ref, size=(height_r, width_r), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(height_r, width_r), mode="bilinear", align_corners=False)

        ref_levels, supp_levels = self._pyramid(ref), self._pyramid(supp)
        coarsest = ref_levels[0]
        flow = coarsest.new_zeros(coarsest.shape[0], 2, coarsest.shape[2] // 2, coarsest.shape[3] // 2)
        outputs: list[torch.Tensor] = []
        for level, (ref_l, supp_l) in enumerate(zip(ref_levels, supp_levels)):
            # Doubling the resolution doubles the displacement in pixels.
            coarse = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            if coarse.shape[2] != ref_l.shape[2]:
                coarse = F.pad(coarse, [0, 0, 0, 1], mode="replicate")
            if coarse.shape[3] != ref_l.shape[3]:
                coarse = F.pad(coarse, [0, 1, 0, 0], mode="replicate")
            supp_warped = flow_warp(supp_l, coarse, mode="bilinear", padding_mode="border")
            flow = self.basic_module[level](torch.cat([ref_l, supp_warped, coarse], dim=1)) + coarse
            if level in self.return_levels:
                factor = 2 ** (SPYNET_LEVELS - 1 - level)
                outputs.insert(0, _resize_flow(flow, (height // factor, width // factor),
                                               (height_r // factor, width_r // factor)))
        return outputs


def _resize_flow(flow: torch.Tensor, size: tuple[int, int], computed_size: tuple[int, int]) -> torch.Tensor:
    """Resize a flow computed at ``computed_size`` (h, w) to ``size`` and rescale its pixel units."""
    resized = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale_x = float(size[1]) / float(computed_size[1])
    scale_y = float(size[0]) / float(computed_size[0])
    return torch.cat([resized[:, :1] * scale_x, resized[:, 1:] * scale_y], dim=1)


def compose_flows(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Chain two flows: ``first`` (a -> b) then ``second`` (b -> c) gives a -> c.

    Shapes ``(B, K, 2, H, W)`` each (K frame pairs); returns ``(B, K, 2, H, W)``.
    """
    batch, pairs = first.shape[:2]
    first_flat, second_flat = first.flatten(0, 1), second.flatten(0, 1)
    chained = first_flat + flow_warp(second_flat, first_flat)
    return chained.view(batch, pairs, *chained.shape[1:])


def chain_neighbour_flows(adjacent: torch.Tensor, far: torch.Tensor, backward: bool) -> torch.Tensor:
    """Flows to the neighbour ``k + 1`` frames away from flows ``k`` and ``1`` frames away.

    Args:
        adjacent: flows between frames ``t`` and ``t + 1``, ``(B, T - 1, 2, H, W)``.
        far: flows between frames ``t`` and ``t + k``, ``(B, T - k, 2, H, W)``.
        backward: True for flows that bring later frames onto earlier ones
            (entry ``t`` maps frame ``t + k`` to frame ``t``), False for the opposite
            direction (entry ``t`` maps frame ``t`` to frame ``t + k``).

    Returns:
        Flows between frames ``t`` and ``t + k + 1``, ``(B, T - k - 1, 2, H, W)``.
    """
    k = adjacent.shape[1] - far.shape[1] + 1
    if backward:
        # t -> t+k, then t+k -> t+k+1
        return compose_flows(far[:, :-1], adjacent[:, k:])
    # t+k+1 -> t+1, then t+1 -> t
    return compose_flows(far[:, 1:], adjacent[:, :adjacent.shape[1] - k])
