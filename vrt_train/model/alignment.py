"""Parallel warping: flow-guided deformable alignment of neighbouring frames' features.

Each stage of VRT aligns, for every frame ``t``, the features of its next and previous
``pa_frames // 2`` frames onto frame ``t`` (paper, Sec. 3.3). A neighbour is first
warped with the optical flow; a small CNN then predicts, from the warped features,
the current features and the flows, residual offsets and modulation masks for a
modulated deformable convolution (DCNv2) that samples the *unwarped* neighbour
(the BasicVSR++ recipe).
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import nn

from .flow import flow_warp

KERNEL_SIZE = 3


class FlowGuidedDeformConv(nn.Module):
    """Flow-guided modulated deformable 3x3 convolution (``DCNv2PackFlowGuided`` in KAIR).

    Args:
        in_channels: channels C of one frame's features.
        out_channels: output channels (C in VRT).
        deformable_groups: offset groups per neighbour.
        max_residue_magnitude: bound (pixels) of the learned offset residual on top of the flow.
        pa_frames: neighbours aligned in parallel (2, 4 or 6); ``pa_frames // 2`` per direction.
    """

    def __init__(self, in_channels: int, out_channels: int, deformable_groups: int,
                 max_residue_magnitude: float, pa_frames: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deformable_groups = deformable_groups
        self.max_residue_magnitude = max_residue_magnitude
        self.pa_frames = pa_frames
        self.neighbours = pa_frames // 2

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, KERNEL_SIZE, KERNEL_SIZE))
        self.bias = nn.Parameter(torch.empty(out_channels))
        taps = KERNEL_SIZE * KERNEL_SIZE
        # Input: warped neighbours, the current frame and one flow per neighbour.
        predictor_in = (self.neighbours + 1) * in_channels + 2 * self.neighbours
        self.conv_offset = nn.Sequential(
            nn.Conv2d(predictor_in, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            # per tap: y offset, x offset (two blocks) and a mask (third block)
            nn.Conv2d(out_channels, 3 * taps * deformable_groups, 3, 1, 1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform kernel as for a conv with ``in_channels * 9`` fan-in, zero bias, and a zero
        last offset layer so that training starts from pure flow warping with mask 0.5."""
        bound = 1.0 / math.sqrt(self.in_channels * KERNEL_SIZE * KERNEL_SIZE)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, neighbours: torch.Tensor, warped: list[torch.Tensor], current: torch.Tensor,
                flows: list[torch.Tensor]) -> torch.Tensor:
        """Align ``k = pa_frames // 2`` neighbours onto the current frame.

        Args:
            neighbours: unwarped neighbour features, concatenated, ``(N, k*C, H, W)``.
            warped: the k neighbours flow-warped onto the current frame, each ``(N, C, H, W)``.
            current: the current frame's features ``(N, C, H, W)``.
            flows: the k flows (current frame -> neighbour), each ``(N, 2, H, W)``.

        Returns:
            ``(N, out_channels, H, W)``.
        """
        prediction = self.conv_offset(torch.cat(warped + [current] + flows, dim=1))
        offset_y_x, mask = prediction.split([2 * prediction.shape[1] // 3, prediction.shape[1] // 3], dim=1)
        residual = self.max_residue_magnitude * torch.tanh(offset_y_x)
        # torchvision wants (dy, dx) pairs per tap and group; the flow is stored as (dx, dy).
        # Offset groups are split evenly between the neighbours, in the order given.
        per_neighbour = residual.chunk(self.neighbours, dim=1)
        offset = torch.cat([part + flow.flip(1).repeat(1, part.shape[1] // 2, 1, 1)
                            for part, flow in zip(per_neighbour, flows)], dim=1)
        # torchvision's deform_conv2d segfaults on NaN/inf offsets (diverged weights or input):
        # make them 0 (finite offsets are unchanged; the NaN still reaches the loss, whose
        # check skips the step: vrt_train.guard).
        offset = torch.nan_to_num(offset, nan=0.0, posinf=0.0, neginf=0.0)
        # With k > 1 neighbours the input has k*C channels for a C-channel kernel, which
        # torchvision treats as k weight groups (as the released weights were trained).
        return torchvision.ops.deform_conv2d(neighbours, offset, self.weight, self.bias,
                                             stride=(1, 1), padding=(1, 1), dilation=(1, 1),
                                             mask=torch.sigmoid(mask))


def _neighbour_sequence(x: torch.Tensor, distance: int, later: bool) -> torch.Tensor:
    """For each target frame, its neighbour ``distance`` frames later (or earlier).

    Targets are frames ``0 .. T-2`` when ``later`` (backward alignment) and ``1 .. T-1``
    otherwise; missing neighbours (past the clip's ends) are zeros.
    ``x``: ``(B, T, ...)`` -> ``(B, T - 1, ...)``.
    """
    frames = x.shape[1]
    missing = x.new_zeros(x.shape[0], distance - 1, *x.shape[2:])
    if later:
        return torch.cat([x[:, distance:], missing], dim=1)
    return torch.cat([missing, x[:, :frames - distance]], dim=1)


def align_neighbours(x: torch.Tensor, flows_backward: list[torch.Tensor], flows_forward: list[torch.Tensor],
                     deform: FlowGuidedDeformConv) -> tuple[torch.Tensor, torch.Tensor]:
    """Align each frame's later and earlier neighbours onto it (parallel warping).

    Args:
        x: features ``(B, T, C, H, W)``.
        flows_backward: for distance ``k = 1 .. pa_frames/2``, ``(B, T - k, 2, H, W)``; entry
            ``t`` brings frame ``t + k`` onto frame ``t``.
        flows_forward: same, entry ``t`` brings frame ``t`` onto frame ``t + k``.
        deform: the stage's :class:`FlowGuidedDeformConv`.

    Returns:
        ``(from_later, from_earlier)``, each ``(B, T, C, H, W)``: frame ``t``'s later
        (earlier) neighbours aligned onto it; zeros for the last (first) frame.
    """
    zero_frame = torch.zeros_like(x[:, :1])
    from_later = _align_one_direction(x[:, :-1], x, flows_backward, deform, later=True)
    from_earlier = _align_one_direction(x[:, 1:], x, flows_forward, deform, later=False)
    return torch.cat([from_later, zero_frame], dim=1), torch.cat([zero_frame, from_earlier], dim=1)


def _align_one_direction(targets: torch.Tensor, x: torch.Tensor, flows: list[torch.Tensor],
                         deform: FlowGuidedDeformConv, later: bool) -> torch.Tensor:
    """All ``T - 1`` targets of one direction at once (frames folded into the batch).

    ``targets`` ``(B, T-1, C, H, W)``; returns ``(B, T-1, C, H, W)``.
    """
    batch, pairs = targets.shape[:2]
    neighbours, warped, used_flows = [], [], []
    for distance, flow in enumerate(flows, start=1):
        neighbour = _neighbour_sequence(x, distance, later).flatten(0, 1)
        flow = _neighbour_sequence_flow(flow, distance, later).flatten(0, 1)
        neighbours.append(neighbour)
        warped.append(flow_warp(neighbour, flow, mode="bilinear"))
        used_flows.append(flow)
    aligned = deform(torch.cat(neighbours, dim=1), warped, targets.flatten(0, 1), used_flows)
    return aligned.view(batch, pairs, *aligned.shape[1:])


def _neighbour_sequence_flow(flow: torch.Tensor, distance: int, later: bool) -> torch.Tensor:
    """Per target frame, the flow to its neighbour ``distance`` away; zeros where missing.

    ``flow``: ``(B, T - distance, 2, H, W)`` -> ``(B, T - 1, 2, H, W)``.
    """
    missing = flow.new_zeros(flow.shape[0], distance - 1, *flow.shape[2:])
    return torch.cat([flow, missing] if later else [missing, flow], dim=1)
