"""Loss and image metrics (KAIR's definitions, in torch).

- `charbonnier`: KAIR ``CharbonnierLoss``: ``mean(sqrt((x - y)^2 + eps))`` (eps inside the root,
  not squared).
- `psnr`, `ssim`: KAIR ``utils_image.calculate_psnr`` / ``calculate_ssim`` on images in [0, 255]
  (float64): SSIM with an 11x11 Gaussian window (sigma 1.5), 'valid' filtering (KAIR filters with
  cv2 and crops 5 pixels per side, which is the same), C1 = (0.01*255)^2, C2 = (0.03*255)^2,
  averaged over the 3 channels. ``to_uint8`` quantises a [0, 1] output as KAIR's ``tensor2uint``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    if x.shape != y.shape:  # e.g. a 3-channel output against a grayscale (spike-only) target
        raise ValueError(f"output and target differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    diff = x - y
    return torch.mean(torch.sqrt(diff * diff + eps))


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> rounded [0, 255] float64 (KAIR ``tensor2uint`` without the dtype change)."""
    return (x.detach().double().clamp(0, 1) * 255.0).round()


def psnr(img1: torch.Tensor, img2: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 255] (any shape, compared whole); inf when identical."""
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {tuple(img1.shape)} vs {tuple(img2.shape)}")
    mse = torch.mean((img1.double() - img2.double()) ** 2).item()
    return float("inf") if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(img1: torch.Tensor, img2: torch.Tensor) -> float:
    """SSIM of two ``(C, H, W)`` images in [0, 255] (H, W >= 11), averaged over channels."""
    if img1.shape != img2.shape or img1.dim() != 3:
        raise ValueError(f"ssim needs two (C, H, W) images of one shape, got {tuple(img1.shape)}, {tuple(img2.shape)}")
    c = img1.shape[0]
    a = img1.double().unsqueeze(0)
    b = img2.double().unsqueeze(0)
    win = _gaussian_window().to(a.device).expand(c, 1, 11, 11)

    def filt(z):
        return F.conv2d(z, win, groups=c)
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(a), filt(b)
    s11 = filt(a * a) - mu1 ** 2
    s22 = filt(b * b) - mu2 ** 2
    s12 = filt(a * b) - mu1 * mu2
    smap = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s11 + s22 + C2))
    return smap.mean(dim=(0, 2, 3)).mean().item()


def video_metrics(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean per-frame PSNR and SSIM of ``(T, 3, H, W)`` videos in [0, 1] (quantised to uint8)."""
    out, gt = to_uint8(output), to_uint8(target)
    ps = [psnr(o, g) for o, g in zip(out, gt)]
    ss = [ssim(o, g) for o, g in zip(out, gt)]
    return sum(ps) / len(ps), sum(ss) / len(ss)
