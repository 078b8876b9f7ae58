"""Fixtures shared by the test modules (helpers they import live in plain modules beside this one:
cache_datasets, datasets, fakes, reference, tiny_vrt, fault_injection)."""

from __future__ import annotations

import pytest


@pytest.fixture
def single_thread():
    """These tensors are tiny: one thread is as fast, and immune to a busy shared CPU
    (OpenMP threads spin when oversubscribed). Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


