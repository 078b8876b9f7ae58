"""Fixtures of the cache fault matrix (tests/faults/cache/): a simulated data root and its cache
(``dataset``, one per module) and a fresh copy of both per test (``copy``)."""

from __future__ import annotations

import pytest

from tests.support.cache_datasets import copy_dataset
from tests.support.cache_faults import invoke, voxelize_args


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A simulated DATA_ROOT (2 sequences x 3 frames, 32x32, config.yaml + sync.json) and its cache."""
    root = tmp_path_factory.mktemp("faults")
    data = root / "data"
    assert invoke("simulate", data, "--sequences", 2, "--frames", 3, "--height", 32, "--width", 32,
                  "--spikes-per-frame", 20)[0] == 0
    assert invoke("build-sync", data)[0] == 0
    assert invoke(*voxelize_args(data, root / "cache"))[0] == 0
    return data, root / "cache"


@pytest.fixture
def copy(dataset, tmp_path):
    return copy_dataset(dataset, tmp_path)
