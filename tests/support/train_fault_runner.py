"""`vrt-train` in a subprocess for the fault matrix (tests/faults/train/): the real CLI
and training loop, with the fake cache (tests/support/fakes.py) and the tiny net
(tests/support/tiny_train.py), so that real signals can be sent to it.

Usage: ``python tests/support/train_fault_runner.py VRT-TRAIN-ARGS...``. Environment:

* ``FAULT_PROGRESS``: a folder; every training forward writes ``<pid>.iter`` there (the number of
  training forwards so far in this process), so a test can wait for "mid-run" before signalling,
  and ``<pid>.workers`` (the trainer's child pids) once the loader runs.
* ``FAULT_SLEEP``: seconds each training forward sleeps (default 0.02).
* ``FAULT_VAL_SLEEP``: seconds each validation forward sleeps; ``<pid>.val`` marks the first.
* ``FAULT_BIG``: extra parameters (floats) in the net, to make checkpoints large.
* ``FAULT_FAIL_FRAME``: the cache raises ValueError when this frame index is read.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: this checkout's code

import vrt_train.data as data  # noqa: E402
import vrt_train.train as train_mod  # noqa: E402
from tests.support.fakes import FakeCache  # noqa: E402
from tests.support.tiny_train import TinyNet  # noqa: E402


class FailingCache(FakeCache):
    def read(self, seq, i):
        if i == int(os.environ["FAULT_FAIL_FRAME"]):
            raise ValueError(f"frame {i} of {seq} is unreadable (injected)")
        return super().read(seq, i)


class ProbedNet(TinyNet):
    """TinyNet that reports progress and can be slowed down or made large."""

    def __init__(self, spike_chans):
        super().__init__(spike_chans)
        big = int(os.environ.get("FAULT_BIG", "0"))
        self.big = torch.nn.Parameter(torch.zeros(big)) if big else None
        self.calls = 0

    def forward(self, x):
        folder = os.environ.get("FAULT_PROGRESS")
        if self.training:
            self.calls += 1
            time.sleep(float(os.environ.get("FAULT_SLEEP", "0.02")))
            if folder:
                _write(Path(folder, f"{os.getpid()}.iter"), str(self.calls))
                children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
                _write(Path(folder, f"{os.getpid()}.workers"), " ".join(children))
        else:
            if folder and not Path(folder, f"{os.getpid()}.val").exists():
                _write(Path(folder, f"{os.getpid()}.val"), str(self.calls))
            time.sleep(float(os.environ.get("FAULT_VAL_SLEEP", "0")))
        out = super().forward(x)
        return out + self.big.sum() * 0 if self.big is not None else out


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".w")
    tmp.write_text(text)
    os.replace(tmp, path)


def fake_cache(c):
    if not isinstance(c, (str, os.PathLike)):
        return c
    cls = FailingCache if os.environ.get("FAULT_FAIL_FRAME") else FakeCache
    return cls(n_seq=4, splits=("train", "train", "val", "val"), S=int(os.environ.get("FAULT_S", "4")))


if __name__ == "__main__":
    data.open_any = fake_cache
    train_mod.build_model = lambda cfg, spike_chans: ProbedNet(spike_chans)
    from vrt_train.cli import main
    main(sys.argv[1:])
