"""Where a training step's time and memory go, reported every ``print_every`` iterations.

The training loop marks three points per iteration, all host-side and free (no device sync):

    tele.begin()                 # before asking the loader for a batch
    batch = next(batches)
    tele.data_ready()            # the batch is here: the wait in between is data time
    ... assemble, forward, backward, optimizer step ...
    stats = tele.end(loss, report=done % print_every == 0)

The loss is summed on the device (``loss.detach()``), so no step waits for the GPU. Only a
reporting iteration synchronises the device (once) and reads the sum back. Between reports
the host runs ahead of the GPU by at most the queue depth, so the sum of per-iteration host
times over an interval equals the device time up to that (one sync closes it). Time spent
outside ``begin``..``end`` (validation, checkpoints) is not counted.

A report (`StepStats`) holds, over the interval: mean loss, data wait and step time in ms per
iteration, the data share of the step, samples/s (global: per-rank batch x world size) and the
peak memory (CUDA ``max_memory_allocated`` since training started; on CPU the growth of the
resident set since training started).
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .memory import PeakMeter, synchronize

CSV_NAME = "train.csv"


@dataclass(frozen=True)
class StepStats:
    """One print interval: ``steps`` iterations ending at iteration ``iter``."""

    iter: int
    steps: int
    loss: float             # mean training loss over the interval
    data_ms: float          # mean wait for the loader per iteration (ms)
    step_ms: float          # mean wall time per iteration, data wait included (ms)
    data_share: float       # data_ms / step_ms
    samples_per_s: float    # global samples per second
    peak_mem_mb: float      # peak memory in MiB (see the module docstring)

    def line(self) -> str:
        """The part of the train.log line after ``iter N: loss ... lr ...``."""
        return (f"data {self.data_ms:.1f} ms / step {self.step_ms:.1f} ms ({100 * self.data_share:.1f}% data), "
                f"{self.samples_per_s:.2f} samples/s, peak mem {self.peak_mem_mb:.0f} MiB")


class StepTelemetry:
    """Accumulates per-iteration timing and the loss on the device; see the module docstring."""

    def __init__(self, device, samples_per_step: int):
        self.device = torch.device(device)
        self.samples_per_step = samples_per_step
        self.meter = PeakMeter(self.device)
        self._clear()
        self._t_begin = self._t_data = None

    def _clear(self) -> None:
        self.steps, self.data_s, self.step_s = 0, 0.0, 0.0
        self.loss_sum, self.losses = None, 0

    def begin(self) -> None:
        self._t_begin = time.perf_counter()

    def data_ready(self) -> None:
        self._t_data = time.perf_counter()

    def end(self, loss: torch.Tensor | None, done: int, report: bool) -> StepStats | None:
        """Close iteration ``done`` (1-based); a `StepStats` when ``report``, else None.
        ``loss`` None: a skipped (non-finite) step, timed but left out of the mean loss."""
        if loss is not None:
            detached = loss.detach().float()
            self.loss_sum = detached if self.loss_sum is None else self.loss_sum + detached
            self.losses += 1
        self.steps += 1
        if report:
            synchronize(self.device)
        now = time.perf_counter()
        if self._t_begin is not None:
            self.step_s += now - self._t_begin
            self.data_s += (self._t_data or self._t_begin) - self._t_begin
        self._t_begin = self._t_data = None
        if not report:
            return None
        n = self.steps
        mean_loss = float(self.loss_sum) / self.losses if self.losses else float("nan")
        stats = StepStats(iter=done, steps=n, loss=mean_loss,
                          data_ms=1000 * self.data_s / n, step_ms=1000 * self.step_s / n,
                          data_share=self.data_s / self.step_s if self.step_s else 0.0,
                          samples_per_s=n * self.samples_per_step / self.step_s if self.step_s else 0.0,
                          peak_mem_mb=self.meter.peak() / 2**20)
        self._clear()
        return stats


def append_csv(out_dir, stats: StepStats, lr: float) -> None:
    """One row per report in ``out_dir/train.csv`` (read back by `vrt_train.curves`)."""
    path = Path(out_dir) / CSV_NAME
    row = {**asdict(stats), "lr": lr}
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def add_scalars(tb, stats: StepStats, lr: float) -> None:
    """The report into TensorBoard (``train/*`` scalars at ``stats.iter``)."""
    for key in ("loss", "data_ms", "step_ms", "data_share", "samples_per_s", "peak_mem_mb"):
        tb.add_scalar(f"train/{key}", getattr(stats, key), stats.iter)
    tb.add_scalar("train/lr", lr, stats.iter)
