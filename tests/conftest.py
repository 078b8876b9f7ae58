"""Fixtures for the whole suite. Helpers the tests import live in tests/support/ (a package:
``from tests.support import reference``); fixtures of one folder live in that folder's conftest.py
(tests/train/, tests/faults/*/)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.support.paths import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data():
    """The real spike data shared beside the checkout (``../shared/data`` from the repository root,
    the folder holding pyproject.toml). Missing: the test skips, except under CI (``CI=true``),
    where a missing data folder is a failure, not a silent skip."""
    if not SHARED_DATA.is_dir():
        why = f"real spike data not found at {SHARED_DATA} (../shared/data from the repository root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI=true requires it", pytrace=False)
        pytest.skip(why)
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.requires_torch``: skip (reported, with the reason) where the train extra
    (torch and torchvision) is not installed. Modules that need torch to import skip themselves
    with ``pytest.importorskip("torch")``."""
    missing = [name for name in ("torch", "torchvision") if importlib.util.find_spec(name) is None]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"needs {' and '.join(missing)} (pip install \"spikeprep[train]\")")
    for item in items:
        if item.get_closest_marker("requires_torch"):
            item.add_marker(skip)
