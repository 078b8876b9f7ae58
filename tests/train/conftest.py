"""Fixtures of the trainer tests (tests/train/, which skip without torch)."""

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
