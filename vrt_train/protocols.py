"""Evaluation protocols of ``vrt-train --test``: which metric, on what, averaged how.

``kair`` and ``matlab-gopro`` score uint8 RGB frames (the output quantised as KAIR's
``tensor2uint``) against the cache's sharp frames and report RGB figures (``psnr``, ``ssim``)
and, as separate keys, Y-channel figures (``psnr_y``, ``ssim_y``) that are never mixed into the
RGB ones (a grayscale frame, spike-only, is its own Y). ``spikezoo``: Spike-Zoo's figures
(`vrt_train.protocol_spikezoo`).

``kair``
    KAIR ``main_test_vrt.py`` (``utils/utils_image.py``): ``calculate_psnr`` /
    ``calculate_ssim`` per frame on uint8 RGB (SSIM: 11x11 Gaussian, sigma 1.5, 'valid' window,
    per channel then averaged; `vrt_train.metrics`), averaged per sequence, the overall figure
    the mean OVER SEQUENCES (KAIR's ``test_results['psnr']`` averaged over folders). This is the
    trainer's validation definition. Y: KAIR's ``bgr2ycbcr(img / 255., only_y=True) * 255``, i.e.
    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` unrounded (KAIR computes it in float32,
    we in float64: differences below 1e-4 dB), then the same PSNR/SSIM on that one channel.

``matlab-gopro``
    VRT's final-evaluation script ``scripts/matlab_scripts/evaluate_video_deblurring.m``
    (JingyunLiang/VRT, based on MPRNet's ``evaluate_GOPRO_HIDE.m``): it lists the output and
    ground-truth pngs of all sequences (``dir(.../*/*.png)``), pairs them in sorted order, calls
    MATLAB's ``psnr(input, gt)`` and ``ssim(input, gt)`` per pair and divides the sums by the
    number of images: the overall figure is the mean OVER ALL FRAMES (longer sequences weigh
    more). Per-sequence rows are the means over each sequence's frames.

    MATLAB ``psnr`` on uint8: ``10 log10(255^2 / mse)`` over the whole H x W x 3 array (equal to
    KAIR's PSNR). MATLAB ``ssim`` (Image Processing Toolbox, R2020a as the script names; our
    reading of its documented algorithm): inputs converted to double, dynamic range L = 255 for
    uint8, C1 = (0.01 L)^2, C2 = (0.03 L)^2, Gaussian weights of sigma ``Radius`` = 1.5 on a
    ``2 * ceil(3 * 1.5) + 1 = 11`` support, local statistics by ``imfilter(..., 'conv',
    'replicate')`` (same-size output, border pixels replicated), SSIM map averaged over ALL its
    entries. An H x W x 3 RGB array has ``ndims == 3``, so MATLAB treats it as ONE VOLUME: the
    Gaussian is 3-D (11 x 11 x 11, separable, the channel axis padded by replication too), not a
    per-channel 2-D SSIM. Y: MATLAB ``rgb2ycbcr`` on uint8 (the same Y formula, rounded to
    uint8), then the 2-D ``ssim`` (11 x 11 Gaussian, replicate padding) and ``psnr`` on it.
    Checked against GNU Octave 7.3 (image 2.14: ``imfilter``, ``fspecial``, ``psnr``,
    ``rgb2ycbcr``; Octave has no ``ssim``) in tests/test_vrt_test.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from spikeprep import ConfigError

from .metrics import psnr, ssim
from .protocol_spikezoo import spikezoo_frame

Y_WEIGHTS = (65.481, 128.553, 24.966)  # ITU-R BT.601 on [0, 255] RGB, as KAIR and MATLAB
KEYS = ("psnr", "ssim", "psnr_y", "ssim_y")


def y_channel(img: torch.Tensor, rounded: bool) -> torch.Tensor:
    """``(3, H, W)`` RGB in [0, 255] -> ``(1, H, W)`` Y in [16, 235] float64 (rounded: MATLAB uint8);
    a one-channel (grayscale, spike-only) image is its own Y, unchanged."""
    if img.shape[0] == 1:
        return img.double()
    w = torch.tensor(Y_WEIGHTS, dtype=torch.float64).view(3, 1, 1)
    y = (img.double() * w).sum(0, keepdim=True) / 255.0 + 16.0
    return y.round() if rounded else y


def _gauss1d(sigma: float = 1.5) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_replicate(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Same-size Gaussian filter of ``x`` ((D, H, W) for dims 3, (H, W) for dims 2) with
    replicated borders: MATLAB ``imfilter(x, gauss, 'conv', 'replicate')`` (kernel separable)."""
    g = _gauss1d()
    r = (g.numel() - 1) // 2
    v = x.double()[None, None] if dims == 3 else x.double()[None, None, None]
    v = F.pad(v, (r, r, r, r, r if dims == 3 else 0, r if dims == 3 else 0), mode="replicate")
    v = F.conv3d(v, g.view(1, 1, 1, 1, -1))
    v = F.conv3d(v, g.view(1, 1, 1, -1, 1))
    if dims == 3:
        v = F.conv3d(v, g.view(1, 1, -1, 1, 1))
    return v[0, 0] if dims == 3 else v[0, 0, 0]


def matlab_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """MATLAB ``ssim(A, ref)`` of two uint8-valued arrays: ``(H, W)`` 2-D, or ``(3, H, W)``
    (our channels-first RGB, i.e. MATLAB's H x W x 3) as one volume (see the module docstring)."""
    if a.shape != b.shape or a.dim() not in (2, 3):
        raise ValueError("ssim needs two (H, W) or (C, H, W) arrays of one shape, "
                         f"got {tuple(a.shape)}, {tuple(b.shape)}")
    dims = a.dim()
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.double(), b.double()
    mux, muy = _filter_replicate(a, dims), _filter_replicate(b, dims)
    sxx = _filter_replicate(a * a, dims) - mux * mux
    syy = _filter_replicate(b * b, dims) - muy * muy
    sxy = _filter_replicate(a * b, dims) - mux * muy
    num = (2 * mux * muy + C1) * (2 * sxy + C2)
    den = (mux * mux + muy * muy + C1) * (sxx + syy + C2)
    return (num / den).mean().item()


def kair_frame(out: torch.Tensor, gt: torch.Tensor) -> dict:
    """KAIR's figures of one ``(3, H, W)`` frame pair in [0, 255] (uint8 values)."""
    oy, gy = y_channel(out, rounded=False), y_channel(gt, rounded=False)
    return {"psnr": psnr(out, gt), "ssim": ssim(out, gt), "psnr_y": psnr(oy, gy), "ssim_y": ssim(oy, gy)}


def matlab_frame(out: torch.Tensor, gt: torch.Tensor) -> dict:
    """MATLAB's ``psnr``/``ssim`` (evaluate_video_deblurring.m) of one ``(3, H, W)`` frame pair."""
    oy, gy = y_channel(out, rounded=True)[0], y_channel(gt, rounded=True)[0]
    return {"psnr": psnr(out, gt), "ssim": matlab_ssim(out, gt), "psnr_y": psnr(oy, gy),
            "ssim_y": matlab_ssim(oy, gy)}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@dataclass(frozen=True)
class Protocol:
    """``frame(out, gt) -> {psnr, ssim, psnr_y, ssim_y}``; ``over`` "sequences" or "frames"."""

    name: str
    frame: Callable[[torch.Tensor, torch.Tensor], dict]
    over: str
    source: str

    def sequence(self, rows: list[dict]) -> dict:
        """One sequence's figures: the mean of its frames' (plus ``frames``: their number)."""
        return {**{k: _mean(r[k] for r in rows) for k in KEYS}, "frames": len(rows)}

    def overall(self, per_frame: dict[str, list[dict]]) -> dict:
        """The headline figures: mean over sequences (kair) or over all frames (matlab-gopro)."""
        if self.over == "frames":
            rows = [r for seq_rows in per_frame.values() for r in seq_rows]
            return {k: _mean(r[k] for r in rows) for k in KEYS}
        seqs = [self.sequence(rows) for rows in per_frame.values()]
        return {k: _mean(s[k] for s in seqs) for k in KEYS}


PROTOCOLS = {
    "kair": Protocol("kair", kair_frame, "sequences",
                     "KAIR main_test_vrt.py: utils_image.calculate_psnr/calculate_ssim on uint8 RGB, "
                     "per sequence, averaged over sequences"),
    "matlab-gopro": Protocol("matlab-gopro", matlab_frame, "frames",
                             "VRT scripts/matlab_scripts/evaluate_video_deblurring.m: MATLAB psnr/ssim on "
                             "uint8 RGB (ssim over the H x W x 3 volume), averaged over all frames"),
    "spikezoo": Protocol("spikezoo", spikezoo_frame, "frames",
                         "Spike-Zoo spikezoo/metrics cal_metric_pair: scikit-image PSNR/SSIM on [-1, 1] "
                         "images (7x7 uniform SSIM), grayscale GT, averaged over all frames"),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError("unknown evaluation protocol", found=repr(name), expected=" | ".join(PROTOCOLS))
    return PROTOCOLS[name]
