"""Fixtures of the input-side fault matrix (tests/faults/inputs/): a built cache (``built``, one
per module) and a fresh copy of it and its data root per test (``copy``)."""

from __future__ import annotations

import pytest

import spikeprep
from tests.support import cache_datasets
from tests.support.cache_datasets import copy_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults-verify")
    data = cache_datasets.make_dataset(root / "data", sequences=("a", "b", "c"), frames=3,
                                       rgb_hw=(16, 24), spike_hw=(16, 24), window=8)
    spikeprep.voxelize_dataset(data, root / "cache", S=4, val=["c"], progress=False)
    return data, root / "cache"


@pytest.fixture
def copy(built, tmp_path):
    return copy_dataset(built, tmp_path)
