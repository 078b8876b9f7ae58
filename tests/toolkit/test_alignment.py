"""Alignment scoring: kernel-based window scores equal plain numpy; the verdict statistics; the
orientation of the three real streams."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep import SpikeStream
from spikeprep.alignment.scores import (
    ORIENTATIONS,
    best_orientation,
    correlation,
    orientation_targets,
    oriented,
    reference_scores,
    score_orientations,
    score_window_orientations,
    score_windows,
)
from spikeprep.alignment.verdict import MIN_GAIN, compare, judge
from spikeprep.errors import UsageError, WindowError
from spikeprep.inputs.dat import pack_frames
from tests.support.paths import REAL_STEMS

SETTINGS = settings(max_examples=30, deadline=None)


@SETTINGS
@given(n=st.integers(2, 50), seed=st.integers(0, 2**16), const=st.booleans())
def test_correlation_equals_numpy_corrcoef(n, seed, const):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.integers(0, 5, n).astype(float)
    if const:
        b[:] = 3.0  # numpy says nan; we say 0 (no information)
        assert correlation(a, b) == 0.0
    elif b.std() > 0:
        assert correlation(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)


@SETTINGS
@given(geom=st.sampled_from([(8, 8), (4, 6), (5, 16), (12, 20), (3, 40)]), length=st.integers(1, 40),
       data=st.data(), flipud=st.booleans())
def test_score_windows_equals_the_numpy_reference(geom, length, data, flipud):
    h, w = geom
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    packed = pack_frames(rng.random((length, h, w)) < rng.uniform(0.05, 0.9), flipud=True)
    n = data.draw(st.integers(1, 6))
    begins = rng.integers(0, length, n)
    ends = np.minimum(length, begins + rng.integers(0, length + 1, n))
    windows = np.stack([begins, ends], axis=1)
    image = rng.random((h, w))
    targets = np.concatenate([orientation_targets(image), [np.full((h, w), 0.5)]])
    ours = score_windows(packed, h, w, windows, targets, flipud)
    assert ours.shape == (n, 5)
    reference = reference_scores(packed, h, w, windows, targets, flipud)
    np.testing.assert_allclose(ours, reference, atol=1e-5)  # float32
    second = rng.random((h, w))  # every orientation of two images at once (the driver's path)
    both = score_window_orientations(packed, h, w, windows, np.stack([image, second]), flipud)
    assert both.shape == (n, 2, 4)
    np.testing.assert_allclose(both[:, 0], reference[:, :4], atol=1e-5)
    np.testing.assert_allclose(both[:, 1], reference_scores(packed, h, w, windows, orientation_targets(second),
                                                            flipud), atol=1e-5)


def test_orientations_by_hand():
    image = np.arange(6).reshape(2, 3)
    assert oriented(image, "flipud").tolist() == [[3, 4, 5], [0, 1, 2]]
    assert oriented(image, "fliplr").tolist() == [[2, 1, 0], [5, 4, 3]]
    assert oriented(image, "rot180").tolist() == [[5, 4, 3], [2, 1, 0]]
    with pytest.raises(UsageError, match="unknown orientation"):
        oriented(image, "rot90")


def test_flipped_spikes_are_found_by_the_flipped_target():
    rng = np.random.default_rng(1)
    scene = rng.random((16, 24))
    spikes = rng.random((60, 16, 24)) < scene * 0.8
    for orientation in ORIENTATIONS:
        packed = pack_frames(np.stack([oriented(f, orientation) for f in spikes]))
        scores = dict(zip(ORIENTATIONS, score_windows(packed, 16, 24, np.array([[0, 60]]),
                                                      orientation_targets(scene))[0]))
        assert best_orientation(scores) == orientation


def test_score_windows_rejects_bad_windows_and_targets():
    packed = pack_frames(np.zeros((4, 8, 8), bool))
    with pytest.raises(WindowError, match="do not fit"):
        score_windows(packed, 8, 8, np.array([[0, 5]]), np.zeros((1, 8, 8)))
    with pytest.raises(UsageError, match="spike frame size"):
        score_windows(packed, 8, 8, np.array([[0, 4]]), np.zeros((1, 4, 8)))


@pytest.mark.parametrize("stem", REAL_STEMS)
def test_real_streams_score_as_is_around_the_ground_truth_frame(shared_data, stem):
    path = shared_data / "spike-reds" / "spike" / f"{stem}.dat"
    stream = SpikeStream(filepath=str(path), spike_h=250, spike_w=400, print_dat_detail=False)
    gt = cv2.imread(str(shared_data / "spike-reds" / "gt" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    scores = score_orientations(stream, 131, 171, gt)
    assert best_orientation(scores) == "as-is"
    assert scores["as-is"] > 0.9 and max(scores[o] for o in ORIENTATIONS[1:]) < scores["as-is"] - 0.5
    reference = reference_scores(stream.packed(131, 171), 250, 400, np.array([[0, 40]]), orientation_targets(gt))
    np.testing.assert_allclose(list(scores.values()), reference[0], atol=1e-5)


def test_compare_by_hand_and_noise_alone_is_not_clear():
    steady = compare(np.full(10, 0.9), np.full(10, 0.8))
    assert steady.gain == pytest.approx(0.1) and steady.threshold == MIN_GAIN and steady.clear
    assert not compare(np.full(10, 0.802), np.full(10, 0.8)).clear  # below MIN_GAIN
    rng = np.random.default_rng(0)
    cleared = sum(compare(rng.normal(0.9, 0.05, 30), rng.normal(0.9, 0.05, 30)).clear for _ in range(200))
    assert cleared == 0
    noisy = compare(np.array([0.9, 0.1, 0.95, 0.05, 0.9]), np.full(5, 0.5))
    assert noisy.gain == pytest.approx(0.4) and not noisy.clear  # gain within the frame-to-frame spread
    assert not compare(np.array([np.nan]), np.array([0.1])).clear


def _scores(curve, n=8, noise=0.002, seed=0):
    """(n, 4, K) scores: as-is follows ``curve``, other orientations score 0.1 lower."""
    rng = np.random.default_rng(seed)
    base = np.asarray(curve)[None, None, :] + rng.normal(0, noise, (n, 4, len(curve)))
    base[:, 1:] -= 0.1
    return base


def test_judge_verdicts_on_constructed_scores():
    offsets = np.array([-4, -2, 0, 2, 4])
    assert judge(offsets, _scores([0.80, 0.85, 0.90, 0.85, 0.80])).verdict == "ok"
    shifted = judge(offsets, _scores([0.80, 0.85, 0.88, 0.95, 0.85]))
    assert (shifted.verdict, shifted.best_offset) == ("offset", 2)
    assert judge(offsets, _scores([0.9] * 5)).verdict == "weak"  # flat: no motion
    assert judge(offsets, _scores([0.1, 0.12, 0.15, 0.12, 0.1])).verdict == "weak"  # no texture
    flipped = _scores([0.80, 0.85, 0.90, 0.85, 0.80])[:, [1, 0, 2, 3]]
    j = judge(offsets, flipped)
    assert (j.verdict, j.orientation) == ("orientation", "flipud")
    few = _scores([0.80, 0.85, 0.90, 0.85, 0.80])
    few[:, :, 0] = np.nan  # the moved window leaves the stream for every frame
    assert "keep every moved window" in judge(offsets, few).reason


@pytest.mark.parametrize("geom", [(40, 120), (5, 16), (250, 400)])
def test_prefix_counts_match_numpy_over_blocks_and_long_pieces(geom):
    from spikeprep.alignment.scores import window_count_images
    from spikeprep.inputs.dat import unpack_frames
    h, w = geom
    rng = np.random.default_rng(7)
    packed = pack_frames(rng.random((300, h, w)) < 0.9)  # > 255 frames per piece: lanes must drain
    windows = np.array([[0, 300], [7, 290], [290, 300], [5, 5]])
    stored = unpack_frames(packed, h, w, flipud=False).reshape(300, -1).astype(np.int64)
    expected = np.stack([stored[b:e].sum(axis=0) for b, e in windows])
    assert np.array_equal(window_count_images(packed, h, w, windows), expected)


def test_kernels_py_func_matches_jit():
    from spikeprep.alignment.scores import prefix_counts_kernel, row_moments_kernel
    rng = np.random.default_rng(3)
    packed = pack_frames(rng.random((9, 4, 10)) < 0.5)  # 5 bytes per frame: a partial tail word
    bounds = np.array([0, 2, 7, 9])
    jit = prefix_counts_kernel(packed.reshape(-1), 5, bounds, np.empty((4, 40), np.int32))
    py = prefix_counts_kernel.py_func(packed.reshape(-1), 5, bounds, np.empty((4, 40), np.int32))
    np.testing.assert_array_equal(jit, py)
    rows = rng.integers(0, 300, (3, 17)).astype(np.float32)
    expected = np.stack([rows.sum(axis=1), (rows.astype(np.int64) ** 2).sum(axis=1)], axis=1)
    np.testing.assert_array_equal(row_moments_kernel.py_func(rows, np.empty((3, 2), np.int64)), expected)
    np.testing.assert_array_equal(row_moments_kernel(rows, np.empty((3, 2), np.int64)), expected)
