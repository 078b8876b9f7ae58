"""`--protocol spikezoo`: Spike-Zoo's PSNR/SSIM (scikit-image on [-1, 1] images) against plain
numpy written here, hand-computed cases, and grayscale frames in the kair/matlab protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vrt_train.protocol_spikezoo import spikezoo_psnr, spikezoo_ssim  # noqa: E402
from vrt_train.protocols import get_protocol  # noqa: E402


def numpy_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's structural_similarity defaults (7x7 uniform, sample covariance, crop 3),
    data_range 2, on (H, W) arrays in [-1, 1], written from its documented algorithm."""
    from numpy.lib.stride_tricks import sliding_window_view as windows
    wa, wb = windows(a, (7, 7)), windows(b, (7, 7))
    ux, uy = wa.mean(axis=(-1, -2)), wb.mean(axis=(-1, -2))
    vx = wa.var(axis=(-1, -2), ddof=1)
    vy = wb.var(axis=(-1, -2), ddof=1)
    vxy = ((wa - ux[..., None, None]) * (wb - uy[..., None, None])).sum(axis=(-1, -2)) / 48
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def images(seed, shape=(1, 20, 23)):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, shape)
    out = np.clip(gt + rng.normal(0, 20, shape), 0, 255).round()
    return torch.from_numpy(out).double(), torch.from_numpy(gt).double()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_numpy_reference(seed):
    out, gt = images(seed, (3, 20, 23))
    ref = np.mean([numpy_ssim(o / 255 * 2 - 1, g / 255 * 2 - 1) for o, g in zip(out.numpy(), gt.numpy())])
    assert spikezoo_ssim(out, gt) == pytest.approx(ref, abs=1e-12)
    # not shift-invariant: the same formula on [0, 1] images gives another figure
    assert abs(ref - np.mean([numpy_ssim(o / 255, g / 255) for o, g in zip(out.numpy(), gt.numpy())])) > 1e-4


def test_psnr_hand_computed_and_the_data_range_rule():
    white, black = torch.full((1, 8, 8), 255.0), torch.zeros(1, 8, 8)
    # output all >= 0.5 in [0, 1]: scikit-image takes data_range 1 ([0, 1] float images)
    assert spikezoo_psnr(white, black) == pytest.approx(10 * math.log10(1 / 4))
    # output with a value below 0.5: data_range 2 = the standard PSNR on [0, 1]
    assert spikezoo_psnr(black, white) == pytest.approx(10 * math.log10(4 / 4))
    out, gt = images(5)
    mse01 = float(((out - gt) / 255).pow(2).mean())
    assert spikezoo_psnr(out, gt) == pytest.approx(10 * math.log10(1 / mse01))
    assert spikezoo_psnr(gt, gt) == float("inf")


def test_protocol_on_gray_and_rgb_frames():
    proto = get_protocol("spikezoo")
    out, gt = images(7)
    row = proto.frame(out, gt)
    assert row["psnr"] == row["psnr_y"] and row["ssim"] == row["ssim_y"]
    assert proto.over == "frames"
    rgb = proto.frame(out.repeat(3, 1, 1), gt.repeat(3, 1, 1))
    assert rgb["psnr"] == pytest.approx(row["psnr"]) and rgb["ssim_y"] == pytest.approx(row["ssim"], abs=1e-9)
    for name in ("kair", "matlab-gopro"):  # grayscale frames: their own Y
        r = get_protocol(name).frame(out, gt)
        assert r["psnr"] == r["psnr_y"] and r["ssim"] == pytest.approx(r["ssim_y"])


def test_ssim_shape_errors():
    with pytest.raises(ValueError, match="sides >= 7"):
        spikezoo_ssim(torch.zeros(1, 5, 5), torch.zeros(1, 5, 5))
    with pytest.raises(ValueError):
        spikezoo_ssim(torch.zeros(1, 9, 9), torch.zeros(1, 9, 8))
