"""`spikeprep.cache.registered`: the crop and the resampling against plain numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep.cache.manifest import SequenceRegistration
from spikeprep.cache.registered import Warp, centred_box, mask_view, rgb_view, spike_view
from spikeprep.errors import LayoutError, UsageError
from spikeprep.registration.geometry import similarity, translation


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Plain numpy bilinear sampling at (x, y) inside the image."""
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, image.shape[1] - 1), np.minimum(y0 + 1, image.shape[0] - 1)
    fx, fy = x - x0, y - y0
    return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x1]
            + (1 - fx) * fy * image[y1, x0] + fx * fy * image[y1, x1])


def rgb_warp(matrix, box) -> Warp:
    to_source = np.linalg.inv(matrix) @ translation(box[0], box[1])
    return Warp("rgb", box, tuple(map(tuple, to_source.tolist())), (60, 80))


@settings(max_examples=25, deadline=None)
@given(st.floats(1.0, 2.0), st.floats(-5, 5), st.integers(0, 10), st.integers(0, 10), st.integers(0, 2 ** 31))
def test_spikes_are_warped_onto_the_crop_like_numpy_bilinear(scale, degrees, tx, ty, seed):
    matrix = similarity(scale, degrees, 8.0 + tx, 6.0 + ty)
    spikes = np.random.default_rng(seed).integers(0, 20, (2, 30, 40)).astype(np.uint8)
    box = (12 + tx, 10 + ty, 12 + tx + 20, 10 + ty + 16)  # well inside the spike view
    out = spike_view(spikes, rgb_warp(matrix, box), np.float32)
    assert out.shape == (2, 16, 20) and out.dtype == np.float32
    ys, xs = np.mgrid[box[1]:box[3], box[0]:box[2]]
    pts = np.linalg.inv(matrix) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = pts[0] / pts[2], pts[1] / pts[2]
    for c in range(2):
        want = bilinear(spikes[c].astype(np.float64), sx, sy).reshape(16, 20)
        assert np.abs(out[c] - want).max() <= 20 / 32 + 1e-3  # cv2 quantises positions to 1/32 px


def test_rgb_is_cropped_not_resampled_and_the_mask_nearest():
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3)).astype(np.uint8)
    warp = rgb_warp(similarity(2.0, 0.0, 4.0, 2.0), (10, 8, 50, 40))
    assert np.array_equal(rgb_view(image, warp, "x.png"), image[8:40, 10:50])
    mask = np.zeros((30, 40), np.uint8)
    mask[5, 7] = 1  # spike px (7, 5) -> RGB (18, 12): crop px (8, 4), 2x2 RGB px around it
    out = mask_view(mask, warp)
    assert set(np.unique(out)) == {0, 1} and out[4, 8] == 1 and out.sum() <= 4
    with pytest.raises(LayoutError):
        rgb_view(image[:50], warp, "x.png")
    with pytest.raises(UsageError):
        spike_view(np.zeros((1, 30, 40), np.uint8), warp, np.float32, bitexact=True)


def test_match_spike_crops_the_spikes_bit_exact():
    spikes = np.random.default_rng(1).integers(0, 2, (3, 30, 40)).astype(np.uint8)
    warp = Warp("spike", (5, 4, 25, 20), tuple(map(tuple, np.eye(3).tolist())), (60, 80), nearest=True)
    out = spike_view(spikes, warp, np.uint8, bitexact=True)
    assert out.dtype == np.uint8 and np.array_equal(out, spikes[:, 4:20, 5:25])


@given(st.integers(0, 50), st.integers(0, 50), st.integers(1, 60), st.integers(1, 60), st.integers(0, 60),
       st.integers(0, 60))
def test_centred_box(x0, y0, w, h, dw, dh):
    overlap = (x0, y0, x0 + w + dw, y0 + h + dh)
    bx0, by0, bx1, by1 = centred_box(overlap, (h, w))
    assert (by1 - by0, bx1 - bx0) == (h, w)
    assert overlap[0] <= bx0 and bx1 <= overlap[2] and overlap[1] <= by0 and by1 <= overlap[3]
    assert 0 <= (overlap[2] - bx1) - (bx0 - overlap[0]) <= 1


def test_manifest_entry_round_trips():
    entry = SequenceRegistration(model="affine", matrix=((1.5, 0.0, 3.0), (0.0, 1.5, 2.0), (0.0, 0.0, 1.0)),
                                 overlap=(3, 2, 90, 60), crop_box=(4, 2, 88, 60))
    assert SequenceRegistration.from_dict(entry.to_dict(), "x") == entry


def test_bit_exact_representations_are_never_resampled():
    from spikeprep.cache.manifest_params import CacheParams, RegistrationParams
    from spikeprep.cache.registered import check_storage

    def params(match, storage):
        return CacheParams(S=8, channels=8, repr="bins", repr_params={}, flipud=True, match=match, hot_pixels="off",
                           spike_dtype="uint8", rgb_shape=(16, 20, 3), spike_shape=(8, 16, 20), storage=storage,
                           registration=RegistrationParams(crop=(16, 20), resample="linear", dtype="uint8"))

    with pytest.raises(UsageError, match="bit-exact"):
        check_storage(params("rgb", "bitpacked"))
    check_storage(params("spike", "bitpacked"))
    check_storage(params("rgb", "array"))
