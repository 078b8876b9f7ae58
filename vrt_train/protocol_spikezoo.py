"""The ``spikezoo`` evaluation protocol: PSNR/SSIM as Spike-Zoo reports them.

Spike-Zoo (github chenkang455/Spike-Zoo, ``spikezoo/metrics/__init__.py``, ``cal_metric_pair``,
called as ``cal_metric_pair(recon_img, img, name)``) maps both images from [0, 1] to [-1, 1]
(``x * 2 - 1``, clamped) and calls scikit-image:

- ``peak_signal_noise_ratio(recon, gt)`` with no ``data_range``: scikit-image then takes the
  float dtype's range from the FIRST argument (the reconstruction): ``data_range = 2`` when it
  has a negative value, ``1`` when all its values are >= 0 (i.e. every reconstructed pixel
  >= 0.5 in [0, 1]). PSNR = ``10 log10(data_range^2 / mse)``, mse over all pixels in [-1, 1].
- ``structural_similarity(recon, gt, channel_axis=-1, data_range=2)``: scikit-image defaults,
  i.e. a 7 x 7 uniform window, sample covariances (``N / (N - 1)``, N = 49), ``C1 = (0.01 * 2)^2``,
  ``C2 = (0.03 * 2)^2``, the SSIM map cropped by 3 pixels on each side ('valid' windows) and
  averaged, per channel, then over channels. SSIM is not shift-invariant: computed on [-1, 1]
  it differs from the same formula on [0, 1].

Here the reconstruction is the output quantised to uint8 (as saved) divided by 255; Spike-Zoo
scores its float output (differences of the order of the quantisation, ~0.01 dB). A grayscale
target is scored on its one channel; ``psnr_y`` / ``ssim_y`` are the same figures on the BT.601
Y channel (equal to ``psnr`` / ``ssim`` for one channel). The overall figure is the mean over
all frames (Spike-Zoo averages over its test images; a single-sample cache has one per sequence).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WINDOW = 7
K1, K2, RANGE = 0.01, 0.03, 2.0


def _signed(img: torch.Tensor) -> torch.Tensor:
    """[0, 255] uint8 values -> [-1, 1] float64, as ``(x / 255) * 2 - 1`` clamped."""
    return (img.double() / 255.0 * 2.0 - 1.0).clamp(-1.0, 1.0)


def spikezoo_psnr(out: torch.Tensor, gt: torch.Tensor) -> float:
    """Spike-Zoo's PSNR of ``(C, H, W)`` [0, 255] images (data range from ``out``: see module)."""
    a, b = _signed(out), _signed(gt)
    data_range = 1.0 if a.min().item() >= 0 else 2.0
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def spikezoo_ssim(out: torch.Tensor, gt: torch.Tensor) -> float:
    """Spike-Zoo's SSIM (scikit-image defaults on [-1, 1], data_range 2) of ``(C, H, W)`` images."""
    if out.shape != gt.shape or out.dim() != 3 or min(out.shape[1:]) < WINDOW:
        raise ValueError(f"ssim needs two (C, H, W) images of one shape, sides >= {WINDOW}; "
                         f"got {tuple(out.shape)}, {tuple(gt.shape)}")
    a, b = _signed(out)[:, None], _signed(gt)[:, None]  # (C, 1, H, W)
    box = torch.full((1, 1, WINDOW, WINDOW), 1.0 / WINDOW ** 2, dtype=torch.float64)

    def mean(x):
        return F.conv2d(x, box)  # 'valid': scikit-image's crop of (WINDOW - 1) // 2 per side

    n = WINDOW ** 2
    cov = n / (n - 1)
    ux, uy = mean(a), mean(b)
    vx, vy = cov * (mean(a * a) - ux * ux), cov * (mean(b * b) - uy * uy)
    vxy = cov * (mean(a * b) - ux * uy)
    c1, c2 = (K1 * RANGE) ** 2, (K2 * RANGE) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return smap.mean(dim=(1, 2, 3)).mean().item()


def _luma(img: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` -> ``(1, H, W)`` BT.601 luma in [0, 255] (the ``y_channel`` weights over
    their sum 219, i.e. Y without the [16, 235] offset and scale); one channel unchanged."""
    if img.shape[0] == 1:
        return img.double()
    w = torch.tensor((65.481, 128.553, 24.966), dtype=torch.float64).view(3, 1, 1)
    return (img.double() * w).sum(0, keepdim=True) / 219.0


def spikezoo_frame(out: torch.Tensor, gt: torch.Tensor) -> dict:
    """The protocol's figures of one ``(C, H, W)`` frame pair in [0, 255] (C = 1 or 3)."""
    oy, gy = _luma(out), _luma(gt)
    return {"psnr": spikezoo_psnr(out, gt), "ssim": spikezoo_ssim(out, gt),
            "psnr_y": spikezoo_psnr(oy, gy), "ssim_y": spikezoo_ssim(oy, gy)}
