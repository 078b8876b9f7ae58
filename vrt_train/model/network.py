"""VRT (Liang et al., "VRT: A Video Restoration Transformer") for RGB + spike-voxel input.

With ``spike_chans=0`` this is KAIR's ``models/network_vrt.py`` VRT: same parameters
(state dict keys and shapes) and the same outputs. With ``spike_chans=S`` each input
frame has ``3 + S`` channels, RGB first: optical flow is estimated from the RGB
channels only, all ``3 + S`` channels are warped and fed to the first convolution, and
the global residual adds back the RGB input only.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputShapeError
from .flow import SPYNET_SIZE_MULTIPLE, SpyNet, chain_neighbour_flows, flow_warp_four_neighbours
from .layers import ToChannelsFirst, ToChannelsLast, along_channels
from .stages import RTMSA, Stage, Upsample

RGB_CHANNELS = 3
#: Resolution change and scale (relative to the input) of stages 1-7: a U-shape.
STAGE_RESHAPES = ("none", "down", "down", "down", "up", "up", "up")
STAGE_SCALES = (1, 2, 4, 8, 4, 2, 1)
NUM_STAGES = len(STAGE_SCALES)
DOWNSCALE = max(STAGE_SCALES)
#: Conv_first sees each frame, its later neighbour warped with 4 integer corners, and its
#: earlier neighbour likewise: 1 + 2 * 4 channel blocks of (3 + S) channels each.
INPUT_BLOCKS_WITH_WARPING = 1 + 2 * 4
UPSAMPLE_FEATURES = 64


class VRT(nn.Module):
    """Video Restoration Transformer taking ``(B, T, 3 + spike_chans, H, W)`` input.

    Keyword arguments are KAIR's ``netG`` options with KAIR's defaults, except that
    ``spike_chans`` replaces ``in_chans``. ``net_type`` and ``init_type`` are accepted
    and ignored so that a KAIR ``netG`` dict can be passed whole.

    Args:
        upscale: output scale; 1 for deblurring/denoising, a power of 2 or 3 for super-resolution.
        spike_chans: spike voxel channels S after the 3 RGB channels of each frame.
        out_chans: output channels (3; for frame interpolation, ``pa_frames=0``, 3 per output frame).
        img_size: training clip size (T, H, W); only used by frame interpolation (T).
        window_size: attention window (wd, wh, ww).
        depths, embed_dims, num_heads: per layer: 7 stages, then the reconstruction blocks.
        indep_reconsts: reconstruction blocks whose windows span a single frame.
        mul_attn_ratio: share of each stage's blocks that use mutual attention.
        mlp_ratio, qkv_bias, qk_scale, drop_path_rate, norm_layer: transformer options.
        spynet_path: local SpyNet weights file, or None for random SpyNet weights (warns).
        pa_frames: neighbours per frame in parallel warping (2, 4 or 6; 0 = frame interpolation).
        deformable_groups: offset groups of the deformable alignment.
        recal_all_flows: accepted for compatibility; unused (as in KAIR).
        nonblind_denoising: the input carries one more channel, a noise level map, last.
        use_checkpoint_attn, use_checkpoint_ffn: gradient checkpointing of the blocks.
        no_checkpoint_attn_blocks, no_checkpoint_ffn_blocks: layer indices exempt from it.
    """

    def __init__(self, upscale: int = 4, spike_chans: int = 0, out_chans: int = 3,
                 img_size: Sequence[int] = (6, 64, 64), window_size: Sequence[int] = (6, 8, 8),
                 depths: Sequence[int] = (8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4),
                 indep_reconsts: Sequence[int] = (11, 12),
                 embed_dims: Sequence[int] = (120, 120, 120, 120, 120, 120, 120, 180, 180, 180, 180, 180, 180),
                 num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6),
                 mul_attn_ratio: float = 0.75, mlp_ratio: float = 2.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_path_rate: float = 0.2,
                 norm_layer: type[nn.Module] = nn.LayerNorm,
                 spynet_path: str | os.PathLike | None = None, pa_frames: int = 2,
                 deformable_groups: int = 16, recal_all_flows: bool = False,
                 nonblind_denoising: bool = False, use_checkpoint_attn: bool = False,
                 use_checkpoint_ffn: bool = False, no_checkpoint_attn_blocks: Sequence[int] = (),
                 no_checkpoint_ffn_blocks: Sequence[int] = (), *, in_chans: int | None = None,
                 net_type: str | None = None, init_type: str | None = None) -> None:
        super().__init__()
        if in_chans is not None:
            raise TypeError(f"VRT takes spike_chans, not in_chans (got in_chans={in_chans}): the input "
                            f"always has 3 RGB channels followed by spike_chans spike channels, so pass "
                            f"spike_chans={in_chans - RGB_CHANNELS} for in_chans={in_chans}, or drop the key "
                            "for a plain RGB model")
        _check_config(spike_chans, out_chans, window_size, depths, embed_dims, num_heads, pa_frames,
                      deformable_groups)
        self.upscale = upscale
        self.spike_chans = spike_chans
        self.frame_chans = RGB_CHANNELS + spike_chans
        self.out_chans = out_chans
        self.img_size = tuple(img_size)
        self.window_size = tuple(window_size)
        self.pa_frames = pa_frames
        self.recal_all_flows = recal_all_flows
        self.nonblind_denoising = nonblind_denoising and bool(pa_frames)

        self.conv_first = nn.Conv3d(self._conv_first_in_chans(), embed_dims[0], kernel_size=(1, 3, 3),
                                    padding=(0, 1, 1))
        if pa_frames:
            self.spynet = SpyNet(spynet_path, return_levels=(2, 3, 4, 5))
        self._build_body(window_size, depths, indep_reconsts, embed_dims, num_heads, mul_attn_ratio,
                         mlp_ratio, qkv_bias, qk_scale, drop_path_rate, norm_layer, pa_frames,
                         deformable_groups, use_checkpoint_attn, use_checkpoint_ffn,
                         set(no_checkpoint_attn_blocks), set(no_checkpoint_ffn_blocks))
        self.norm = norm_layer(embed_dims[-1])
        self.conv_after_body = nn.Linear(embed_dims[-1], embed_dims[0])
        self._build_reconstruction(embed_dims[0])

    def _conv_first_in_chans(self) -> int:
        if not self.pa_frames:
            return self.frame_chans
        return self.frame_chans * INPUT_BLOCKS_WITH_WARPING + int(self.nonblind_denoising)

    def _build_body(self, window_size, depths, indep_reconsts, embed_dims, num_heads, mul_attn_ratio,
                    mlp_ratio, qkv_bias, qk_scale, drop_path_rate, norm_layer, pa_frames,
                    deformable_groups, use_checkpoint_attn, use_checkpoint_ffn,
                    no_checkpoint_attn, no_checkpoint_ffn) -> None:
        """Stages 1-7 and the reconstruction blocks ("stage 8")."""
        # Stochastic depth grows linearly over all blocks of the network.
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths) + 1)]

        def block_options(i: int) -> dict:
            return dict(num_heads=num_heads[i], mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                        drop_path=rates[starts[i]:starts[i + 1]], norm_layer=norm_layer,
                        use_checkpoint_attn=use_checkpoint_attn and i not in no_checkpoint_attn,
                        use_checkpoint_ffn=use_checkpoint_ffn and i not in no_checkpoint_ffn)

        for i in range(NUM_STAGES):
            setattr(self, f"stage{i + 1}", Stage(
                in_dim=embed_dims[i - 1], dim=embed_dims[i], depth=depths[i], window_size=window_size,
                mul_attn_ratio=mul_attn_ratio, pa_frames=pa_frames, deformable_groups=deformable_groups,
                reshape=STAGE_RESHAPES[i], max_residue_magnitude=10 / STAGE_SCALES[i], **block_options(i)))

        dim_in, dim_out = embed_dims[NUM_STAGES - 1], embed_dims[NUM_STAGES]
        self.stage8 = nn.ModuleList([nn.Sequential(ToChannelsLast(), nn.LayerNorm(dim_in),
                                                   nn.Linear(dim_in, dim_out), ToChannelsFirst())])
        for i in range(NUM_STAGES, len(depths)):
            frame_window = (1, window_size[1], window_size[2]) if i in indep_reconsts else tuple(window_size)
            self.stage8.append(RTMSA(dim=embed_dims[i], depth=depths[i], window_size=frame_window,
                                     **block_options(i)))

    def _build_reconstruction(self, dim: int) -> None:
        if not self.pa_frames:
            self.linear_fuse = nn.Conv2d(dim * self.img_size[0], UPSAMPLE_FEATURES, kernel_size=1, stride=1)
            self.conv_last = nn.Conv2d(UPSAMPLE_FEATURES, self.out_chans, kernel_size=7, stride=1, padding=0)
        elif self.upscale == 1:
            self.conv_last = nn.Conv3d(dim, self.out_chans, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        else:
            self.conv_before_upsample = nn.Sequential(
                nn.Conv3d(dim, UPSAMPLE_FEATURES, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
                nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(self.upscale, UPSAMPLE_FEATURES)
            self.conv_last = nn.Conv3d(UPSAMPLE_FEATURES, self.out_chans, kernel_size=(1, 3, 3), padding=(0, 1, 1))

    # ------------------------------------------------------------------ input checks

    @property
    def in_chans(self) -> int:
        """Channels per input frame: RGB, spikes and (non-blind denoising) the noise map."""
        return self.frame_chans + int(self.nonblind_denoising)

    def check_input_shape(self, shape: Sequence[int]) -> None:
        """Raise :class:`InputShapeError` if the network cannot process an input of ``shape``."""
        expected = f"(B, T, {self.in_chans}, H, W)"
        if len(shape) != 5:
            raise InputShapeError(f"VRT input has shape {tuple(shape)}; expected 5 dimensions {expected}. "
                                  "Add the batch axis with x.unsqueeze(0) for a single clip.")
        _, frames, channels, height, width = shape
        if channels != self.in_chans:
            raise InputShapeError(
                f"VRT input has {channels} channels per frame (shape {tuple(shape)}); expected {expected}: "
                f"3 RGB + {self.spike_chans} spike"
                + (" + 1 noise-level" if self.nonblind_denoising else "")
                + " channels. Build the model with the matching spike_chans.")
        self._check_frames(frames, shape)
        self._check_spatial(height, width, shape)

    def minimum_size(self) -> tuple[int, int]:
        """Smallest input (H, W) the network runs on (any multiple of 8 from there on works)."""
        min_height, min_width = DOWNSCALE * self.window_size[1], DOWNSCALE * self.window_size[2]
        if self.pa_frames:
            # SpyNet resizes to the next multiple of 32 and needs >= 2 pixels at its
            # coarsest level (1/32), i.e. a side > 32.
            spynet_min = (SPYNET_SIZE_MULTIPLE // DOWNSCALE + 1) * DOWNSCALE
            min_height, min_width = max(min_height, spynet_min), max(min_width, spynet_min)
        return min_height, min_width

    def _check_spatial(self, height: int, width: int, shape: Sequence[int]) -> None:
        min_height, min_width = self.minimum_size()
        if height % DOWNSCALE or width % DOWNSCALE or height < min_height or width < min_width:
            raise InputShapeError(
                f"VRT input has H x W = {height} x {width} (shape {tuple(shape)}); H and W must be multiples "
                f"of {DOWNSCALE} (three 2x downsamplings) and at least {min_height} x {min_width} "
                f"(mutual attention needs the full {self.window_size[1]} x {self.window_size[2]} window at 1/"
                f"{DOWNSCALE} scale" + ("; SpyNet needs sides > 32" if self.pa_frames else "")
                + "). Pad the frames (e.g. reflect) and crop the output.")

    def _check_frames(self, frames: int, shape: Sequence[int]) -> None:
        # Mutual attention pairs frames, and flows to the k-th neighbour need k + 1 frames.
        min_frames = max(2, self.pa_frames // 2 + 1)
        if frames < min_frames:
            raise InputShapeError(f"VRT input has T = {frames} frames (shape {tuple(shape)}); at least "
                                  f"{min_frames} are needed (mutual attention pairs frames"
                                  + (f", and pa_frames={self.pa_frames} aligns {self.pa_frames // 2} "
                                     "neighbours on each side" if self.pa_frames else "")
                                  + "). Feed longer clips.")
        if not self.pa_frames and frames != self.img_size[0]:
            raise InputShapeError(f"VRT input has T = {frames} frames (shape {tuple(shape)}); frame "
                                  f"interpolation (pa_frames=0) needs exactly img_size[0] = "
                                  f"{self.img_size[0]} frames. Split the video into clips of that length.")

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a clip.

        Args:
            x: ``(B, T, 3 + S [+ 1 noise map], H, W)``, RGB in [0, 1] first.

        Returns:
            ``(B, T, 3, H * upscale, W * upscale)``; for frame interpolation
            ``(B, out_chans // 3, 3, H, W)``.
        """
        self.check_input_shape(x.shape)
        if not self.pa_frames:
            return self._forward_interpolation(x)
        frames, noise_map = x[:, :, :self.frame_chans], x[:, :, self.frame_chans:]
        rgb = frames[:, :, :RGB_CHANNELS]
        flows_backward, flows_forward = self.compute_flows(rgb)
        from_later, from_earlier = warp_input_frames(frames, flows_backward[0][0], flows_forward[0][0])
        stacked = torch.cat([frames, from_later, from_earlier] + ([noise_map] if self.nonblind_denoising else []),
                            dim=2)

        features = self.conv_first(stacked.transpose(1, 2))
        features = features + along_channels(self.conv_after_body,
                                             self.forward_features(features, flows_backward, flows_forward))
        if self.upscale == 1:
            return self.conv_last(features).transpose(1, 2) + rgb
        upsampled = self.conv_last(self.upsample(self.conv_before_upsample(features))).transpose(1, 2)
        return upsampled + F.interpolate(rgb, size=upsampled.shape[2:], mode="trilinear", align_corners=False)

    def _forward_interpolation(self, x: torch.Tensor) -> torch.Tensor:
        """``pa_frames=0``: all T frames -> ``out_chans // 3`` frames, ``(B, out_chans // 3, 3, H, W)``."""
        mean = x.mean(dim=(1, 3, 4), keepdim=True)
        features = self.conv_first((x - mean).transpose(1, 2))
        features = features + along_channels(self.conv_after_body, self.forward_features(features, [], []))
        all_frames = torch.cat(torch.unbind(features, dim=2), dim=1)
        fused = F.leaky_relu(self.linear_fuse(all_frames), 0.2)
        out = self.conv_last(F.pad(fused, (3, 3, 3, 3), mode="reflect"))
        return torch.stack(torch.split(out, RGB_CHANNELS, dim=1), dim=1) + mean[:, :, :RGB_CHANNELS]

    def compute_flows(self, rgb: torch.Tensor) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """Flows between each frame and its neighbours up to ``pa_frames // 2`` frames away.

        Args:
            rgb: ``(B, T, 3, H, W)``.

        Returns:
            ``(backward, forward)``, each indexed ``[k - 1][s]`` for neighbour distance k and
            scale ``2**s`` (s = 0..3): ``(B, T - k, 2, H / 2**s, W / 2**s)``. Backward entry
            ``t`` brings frame ``t + k`` onto frame ``t``; forward entry ``t`` brings frame
            ``t`` onto frame ``t + k``.
        """
        batch, frames, channels, height, width = rgb.shape
        earlier = rgb[:, :-1].reshape(-1, channels, height, width)
        later = rgb[:, 1:].reshape(-1, channels, height, width)

        def per_scale(flows: list[torch.Tensor]) -> list[torch.Tensor]:
            return [flow.view(batch, frames - 1, 2, height // 2 ** s, width // 2 ** s)
                    for s, flow in enumerate(flows)]

        backward = [per_scale(self.spynet(earlier, later))]
        forward = [per_scale(self.spynet(later, earlier))]
        for _ in range(1, self.pa_frames // 2):
            backward.append([chain_neighbour_flows(adj, far, backward=True)
                             for adj, far in zip(backward[0], backward[-1])])
            forward.append([chain_neighbour_flows(adj, far, backward=False)
                            for adj, far in zip(forward[0], forward[-1])])
        return backward, forward

    def forward_features(self, x: torch.Tensor, flows_backward: list[list[torch.Tensor]],
                         flows_forward: list[list[torch.Tensor]]) -> torch.Tensor:
        """The U-shaped stages with skip connections and the reconstruction blocks.

        ``x``: ``(B, C0, T, H, W)`` -> ``(B, C_last, T, H, W)`` (normalised).
        """
        def flows_at(scale_index: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            return ([per_distance[scale_index] for per_distance in flows_backward],
                    [per_distance[scale_index] for per_distance in flows_forward])

        bottleneck = STAGE_SCALES.index(DOWNSCALE)
        encoder_outputs: dict[int, torch.Tensor] = {}
        for i, scale in enumerate(STAGE_SCALES):
            x = getattr(self, f"stage{i + 1}")(x, *flows_at(scale.bit_length() - 1))
            if i < bottleneck:
                encoder_outputs[scale] = x
            elif i > bottleneck:
                # U-Net skip: a decoder stage's output plus the encoder output at its scale.
                x = x + encoder_outputs[scale]
        for layer in self.stage8:
            x = layer(x)
        return along_channels(self.norm, x)


def warp_input_frames(frames: torch.Tensor, flow_backward: torch.Tensor,
                      flow_forward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp each frame's next and previous frame onto it, all channels, with 4 integer corners.

    Args:
        frames: ``(B, T, C, H, W)``.
        flow_backward, flow_forward: adjacent-frame flows at full resolution, ``(B, T - 1, 2, H, W)``.

    Returns:
        ``(from_later, from_earlier)``, each ``(B, T, 4C, H, W)``; zeros for the last
        (first) frame, which has no later (earlier) neighbour.
    """
    batch, frames_count, channels, height, width = frames.shape
    zero = frames.new_zeros(batch, 1, 4 * channels, height, width)
    from_later = flow_warp_four_neighbours(frames[:, 1:].flatten(0, 1), flow_backward.flatten(0, 1))
    from_earlier = flow_warp_four_neighbours(frames[:, :-1].flatten(0, 1), flow_forward.flatten(0, 1))
    shape = (batch, frames_count - 1, 4 * channels, height, width)
    return torch.cat([from_later.view(shape), zero], dim=1), torch.cat([zero, from_earlier.view(shape)], dim=1)


def _check_config(spike_chans: int, out_chans: int, window_size: Sequence[int], depths: Sequence[int],
                  embed_dims: Sequence[int], num_heads: Sequence[int], pa_frames: int,
                  deformable_groups: int) -> None:
    """Reject settings the architecture cannot be built or run with, with a readable message."""
    if not isinstance(spike_chans, int) or spike_chans < 0:
        raise ValueError(f"spike_chans must be a non-negative int, got {spike_chans!r}")
    if pa_frames not in (0, 2, 4, 6):
        raise ValueError(f"pa_frames must be 0, 2, 4 or 6, got {pa_frames}")
    if pa_frames and out_chans != RGB_CHANNELS:
        raise ValueError(f"out_chans must be 3 (RGB, residual to the RGB input), got {out_chans}")
    if not pa_frames and out_chans % RGB_CHANNELS:
        raise ValueError(f"frame interpolation needs out_chans a multiple of 3, got {out_chans}")
    if len(window_size) != 3:
        raise ValueError(f"window_size must be (wd, wh, ww), got {window_size}")
    if not len(depths) == len(embed_dims) == len(num_heads) or len(depths) < NUM_STAGES + 1:
        raise ValueError(f"depths, embed_dims and num_heads need one entry per layer ({NUM_STAGES} stages "
                         f"+ at least one reconstruction layer); got lengths {len(depths)}, "
                         f"{len(embed_dims)}, {len(num_heads)}")
    for i, (dim, heads) in enumerate(zip(embed_dims, num_heads)):
        if dim % heads:
            raise ValueError(f"embed_dims[{i}] = {dim} is not divisible by num_heads[{i}] = {heads}")
    for i, dim in enumerate(embed_dims[:NUM_STAGES]):
        # Sine encoding of mutual attention: (sin, cos) pairs for rows and columns.
        if dim % 4:
            raise ValueError(f"embed_dims[{i}] = {dim} must be a multiple of 4 (stages 1-7)")
        if pa_frames and dim % deformable_groups:
            raise ValueError(f"embed_dims[{i}] = {dim} must be a multiple of deformable_groups = {deformable_groups}")
        if pa_frames and dim % (pa_frames // 2):
            # The deformable conv treats the pa_frames/2 stacked neighbours as weight groups.
            raise ValueError(f"embed_dims[{i}] = {dim} must be a multiple of pa_frames / 2 = {pa_frames // 2}")
