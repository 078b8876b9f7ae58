"""Per-iteration guards: skip non-finite steps, stop on scheduler signals, never save garbage.

`StepGuard.check` is the trainer's one host sync per step: it reads back the loss, whether the
loss and every gradient are finite, and (under DDP, all-reduced with MAX so every rank takes
the same decision at the same iteration) whether a stop signal arrived. A non-finite step is
skipped (no optimizer/EMA update: the weights stay finite, so no later forward sees NaN);
``train.max_nonfinite_steps`` skips in a row raise `TrainingDiverged`.

Why before the step: torchvision's ``deform_conv2d`` segfaults on NaN offsets, so NaN weights
must never reach a forward pass. Under fp16 AMP the gradients are the GradScaler's business
(it skips overflowing steps and lowers its scale, as designed); only the loss is checked.

`stop_on_signals` (used by the CLI) turns SIGTERM, SIGINT and SIGUSR1 into a stop request that
the trainer honours at the next iteration boundary: checkpoint, then `Preempted` (exit
128 + signal number). A second SIGINT stops at once (KeyboardInterrupt, no checkpoint); one
more while the process shuts down ends it at once (`exit_at_once_on_sigint`).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from contextlib import contextmanager

import torch
import torch.distributed as dist

from .errors import TrainingDiverged

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_request: dict = {"signum": None}


def requested_signal() -> int | None:
    """The first stop signal received inside `stop_on_signals`, or None."""
    return _request["signum"]


def _handle(signum, frame) -> None:
    if _request["signum"] is not None and signum == signal.SIGINT:
        raise KeyboardInterrupt  # a second Ctrl-C: stop now
    if _request["signum"] is None:
        _request["signum"] = signum


@contextmanager
def stop_on_signals():
    """Within the block, STOP_SIGNALS only record a stop request (main thread only; the
    previous handlers and a clean request are restored on exit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    _request["signum"] = None
    for s in STOP_SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _request["signum"] = None


def exit_at_once_on_sigint(code: int) -> None:
    """After a stop (checkpoint written, or a second Ctrl-C): a further SIGINT while the process
    shuts down (DataLoader workers, torch's atexit hooks, a slow process-group teardown) ends it
    at once with ``code``, instead of a KeyboardInterrupt traceback out of an atexit hook."""
    if threading.current_thread() is not threading.main_thread():
        return

    def leave(signum, frame) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    signal.signal(signal.SIGINT, leave)


def _grad_norm_sum(params) -> torch.Tensor | None:
    """Sum of per-tensor gradient norms (a 0-d tensor, non-finite iff some gradient element is
    non-finite or absurdly large), without a host sync; None when no parameter has a gradient."""
    groups: dict = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad.detach())
    sums = [torch.stack(torch._foreach_norm(grads)).float().sum() for grads in groups.values()]
    if not sums:
        return None
    return torch.stack([s.to(sums[0].device) for s in sums]).sum()


def finite_tensors(tensors) -> bool:
    """Whether every floating-point tensor in ``tensors`` holds only finite numbers (syncs)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors if torch.is_tensor(t) and t.is_floating_point())


class StepGuard:
    """Decides, once per step, whether to apply it and whether to stop (see the module doc)."""

    def __init__(self, max_nonfinite_steps: int, world: int, check_grads: bool = True):
        self.max_in_row, self.world, self.check_grads = max_nonfinite_steps, world, check_grads
        self.in_row = 0      # consecutive skipped steps
        self.skipped = 0     # skipped steps in this process's run

    def check(self, loss: torch.Tensor, params) -> tuple[bool, float, int]:
        """``(finite, loss value, stop signal or 0)`` after backward, before the optimizer step:
        one host sync (plus one small all-reduce under DDP, so all ranks agree on both)."""
        value = loss.detach().float().reshape(())
        probe = value
        if self.check_grads:
            norms = _grad_norm_sum(params)
            if norms is not None:
                probe = value + norms.to(value.device)
        bad = (~torch.isfinite(probe)).float()
        stop_here = requested_signal() or 0
        if self.world > 1:
            flags = torch.stack([bad, torch.full((), float(stop_here), device=bad.device)])
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            is_bad, stop, loss_value = torch.cat([flags, value.reshape(1)]).tolist()
        else:
            is_bad, loss_value = torch.stack([bad, value]).tolist()
            stop = stop_here
        return not is_bad, loss_value, int(stop)

    def passed(self) -> None:
        self.in_row = 0

    def skip(self, done: int, loss_value: float, lr: float, log) -> None:
        """Count a skipped step (logged); raise `TrainingDiverged` after too many in a row."""
        self.in_row += 1
        self.skipped += 1
        what = "loss" if not math.isfinite(loss_value) else "gradient"
        log.print(f"iter {done}: non-finite {what} (loss {loss_value}, lr {lr:.3e}): step skipped "
                  f"({self.in_row} in a row, {self.skipped} in this run, limit {self.max_in_row})")
        if self.in_row >= self.max_in_row:
            raise TrainingDiverged(
                f"training diverged: {self.in_row} steps in a row had a non-finite loss or gradient",
                found=f"iteration {done}, loss {loss_value}, lr {lr:.3e}",
                expected="finite numbers",
                fix="lower train.lr or set train.clip_grad (and check the cache with spikeprep verify); "
                    "the checkpoints hold only finite weights: --resume auto restarts from the last one")

    def stop_after(self, stop: int, resync: bool) -> int:
        """The stop signal (0: none) at an iteration boundary: ``stop`` as agreed in `check`,
        or (after a validation, when a signal may have arrived meanwhile) agreed again now."""
        if self.world == 1:
            return requested_signal() or 0
        if not resync:
            return stop
        flag = torch.tensor([float(requested_signal() or 0)])
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


def assert_finite_weights(done: int, **modules) -> None:
    """Raise `TrainingDiverged` (nothing is saved) if any named module has non-finite weights."""
    for name, module in modules.items():
        if module is not None and not finite_tensors(module.state_dict().values()):
            raise TrainingDiverged("the weights are no longer finite numbers: checkpoint not written",
                                   found=f"non-finite {name} weights at iteration {done}",
                                   expected="finite weights",
                                   fix="lower train.lr or set train.clip_grad, then --resume auto from "
                                       "the last checkpoint")
