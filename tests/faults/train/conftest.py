"""Fixtures of the trainer's fault matrix (tests/faults/train/): in-process CLI runs over the fake
cache and TinyNet (``fake``), one torch thread per module (``one_thread``, autouse). The test
modules here skip without torch (``pytest.importorskip``); torch is imported only when a fixture
runs, so this file loads without it."""

from __future__ import annotations

import pytest


@pytest.fixture
def fake(monkeypatch):
    """In-process CLI runs over the fake cache and TinyNet (``fake(S=6)`` switches the cache)."""
    import vrt_train.data as data
    import vrt_train.train as train_mod
    from tests.support.tiny_train import TinyNet
    from tests.support.train_faults import fake_cache

    def use(S=4, net=TinyNet):
        monkeypatch.setattr(data, "open_any", fake_cache(S))
        monkeypatch.setattr(train_mod, "build_model", lambda cfg, chans: net(chans))
    use()
    return use


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs on a shared 2-core machine: one thread avoids oversubscription stalls."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
