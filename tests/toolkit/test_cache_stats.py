"""Streaming spike statistics: merged value histograms give numpy's mean/std/quantile."""

from __future__ import annotations

import numpy as np
import pytest

from spikeprep.cache import stats


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32])
def test_integer_stats_are_exact(dtype):
    rng = np.random.default_rng(1)
    lo = -5 if np.dtype(dtype).kind == "i" else 0
    chunks = [rng.integers(lo, 300 if dtype != np.uint8 else 200, (3, 7, 9)).astype(dtype) for _ in range(5)]
    hists = None
    for chunk in chunks:  # merged frame by frame, as the builder does
        hists = stats.merge(hists, stats.from_json(stats.to_json(stats.channel_histograms(chunk))))
    result = stats.finalize(hists, float_dtype=False)
    values = np.concatenate([c.reshape(3, -1) for c in chunks], axis=1).astype(np.float64)
    np.testing.assert_allclose(result.mean, values.mean(1), rtol=1e-12)
    np.testing.assert_allclose(result.std, values.std(1), rtol=1e-12)
    np.testing.assert_allclose(result.q995, np.quantile(values, 0.995, axis=1), rtol=1e-12)


def test_float_stats_are_float16_exact():
    rng = np.random.default_rng(2)
    chunks = [rng.normal(2.0, 1.0, (2, 10, 10)).astype(np.float32) for _ in range(3)]
    hists = None
    for chunk in chunks:
        hists = stats.merge(hists, stats.channel_histograms(chunk))
    result = stats.finalize(hists, float_dtype=True)
    rounded = np.concatenate([c.reshape(2, -1) for c in chunks], axis=1).astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(result.q995, np.quantile(rounded, 0.995, axis=1), rtol=1e-12)
    np.testing.assert_allclose(result.mean, rounded.mean(1), rtol=1e-9)


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.995, 1.0])
def test_quantile_matches_numpy(q):
    values = np.array([0.0, 1.0, 3.0, 7.0])
    counts = np.array([5, 1, 3, 2])
    np.testing.assert_allclose(stats.quantile_from_histogram(values, counts, q),
                               np.quantile(np.repeat(values, counts), q), rtol=1e-15)
