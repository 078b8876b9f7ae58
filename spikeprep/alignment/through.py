"""check-sync through a rig's registration: the RGB luma as the spike camera sees it.

A registered sequence's spike camera sees a shifted, turned or scaled part of the RGB view, so
check-sync cannot compare the spike counts with the RGB frame resized. Its scores stay on the
spike grid (the fast count kernels): the blurry (and sharp) frame's luma is warped through the
registration onto it (``cv2.warpPerspective`` with ``WARP_INVERSE_MAP``: spike pixel ``x`` takes
the luma at RGB ``matrix @ x``, linear, after a Gaussian of ``0.4 * scale`` px against aliasing
where RGB is finer). Spike pixels the RGB frame does not see get the mean of those it does, so
they add nothing to the correlation's cross term.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ..errors import LayoutError
from ..inputs.images import imread
from ..inputs.registration_block import Registration


def registered_luma(path: str | os.PathLike, reg: Registration) -> np.ndarray:
    """``(h, w)`` float32 luma (0-255) of an RGB frame on the spike grid of ``reg``."""
    image = imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise LayoutError("cannot read image", path=path, found="missing or not an image",
                          expected="a readable .png", fix="re-run build-sync after fixing the frames")
    if image.shape != tuple(reg.rgb_size):
        raise LayoutError("RGB frame size differs from the registration's", path=path,
                          found=f"{image.shape[0]}x{image.shape[1]}",
                          expected=f"{reg.rgb_size[0]}x{reg.rgb_size[1]} (rgb_size in sync.json)",
                          fix="re-run 'spikeprep register DATA_ROOT --fix', then build-sync --force")
    luma = image.astype(np.float32)
    scale = math.sqrt(abs(float(np.linalg.det(reg.array[:2, :2]))))
    if scale > 1.25:
        luma = cv2.GaussianBlur(luma, (0, 0), 0.4 * scale)
    h, w = reg.spike_size
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = cv2.warpPerspective(luma, reg.array, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    seen = cv2.warpPerspective(np.ones_like(luma), reg.array, (w, h), flags=flags,
                               borderMode=cv2.BORDER_CONSTANT) > 0.999
    if seen.any():
        out[~seen] = out[seen].mean()
    return out
