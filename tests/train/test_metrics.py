"""vrt_train.metrics and the chunked/tiled inference of vrt_train.validate."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch
from torch import nn

from vrt_train.metrics import charbonnier, psnr, ssim, to_uint8, video_metrics
from vrt_train.validate import infer_video


def test_charbonnier_by_hand():
    x = torch.tensor([0.0, 1.0, 3.0])
    y = torch.tensor([0.0, 0.0, -1.0])
    eps = 1e-2
    expect = (math.sqrt(0 + eps) + math.sqrt(1 + eps) + math.sqrt(16 + eps)) / 3
    assert charbonnier(x, y, eps).item() == pytest.approx(expect, rel=1e-6)


def test_psnr_by_hand():
    a = torch.zeros(3, 4, 4, dtype=torch.float64)
    b = a.clone()
    b[0, 0, 0] = 10  # mse = 100 / 48
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / math.sqrt(100 / 48)))
    assert psnr(a, a) == float("inf")


def _ssim_reference(img1, img2):
    """KAIR utils_image.ssim restated with cv2 (filter2D, crop 5 per side), averaged over channels."""
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.transpose())
    out = []
    for c in range(img1.shape[2]):
        a, b = img1[..., c].astype(np.float64), img2[..., c].astype(np.float64)
        f = lambda z: cv2.filter2D(z, -1, win)[5:-5, 5:-5]  # noqa: E731
        mu1, mu2 = f(a), f(b)
        s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
        m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s1 + s2 + C2))
        out.append(m.mean())
    return float(np.mean(out))


def test_ssim_matches_kair_reference():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 33, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    ours = ssim(torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1))
    assert ours == pytest.approx(_ssim_reference(a, b), abs=1e-10)
    same = torch.from_numpy(a).permute(2, 0, 1)
    assert ssim(same, same) == pytest.approx(1.0)


def test_video_metrics_quantise_like_kair():
    x = torch.rand(2, 3, 16, 16)
    y = (x + 0.001).clamp(0, 1)
    p, s = video_metrics(x, y)
    assert p == pytest.approx(np.mean([psnr(to_uint8(a), to_uint8(b)) for a, b in zip(x, y)]))


class PixelNet(nn.Module):
    """Per-pixel (position-independent) model: output at a pixel depends only on that pixel."""

    def __init__(self, chans=5):
        super().__init__()
        torch.manual_seed(0)
        self.mix = nn.Conv2d(chans, 3, 1)
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        b, t, c, h, w = x.shape
        return torch.tanh(self.mix(x.reshape(b * t, c, h, w))).reshape(b, t, 3, h, w) + x[:, :, :3]


@pytest.mark.parametrize("n_test,n_over,patch,overlap", [(0, 0, 0, 0), (4, 2, 16, 4), (5, 1, 24, 8), (3, 2, 40, 10)])
def test_chunked_tiled_inference_equals_full(n_test, n_over, patch, overlap):
    model = PixelNet()
    lq = torch.rand(1, 11, 5, 37, 45)
    full = model(lq)
    cfg = SimpleNamespace(num_frame_testing=n_test, num_frame_overlapping=n_over,
                          size_patch_testing=patch, tile_overlap=overlap)
    model.calls.clear()
    out = infer_video(model, lq, cfg, "cpu")
    torch.testing.assert_close(out, full.detach(), rtol=1e-5, atol=1e-5)
    if patch:
        assert all(c[-2] <= patch and c[-1] <= patch for c in model.calls)
        assert len(model.calls) > 1
