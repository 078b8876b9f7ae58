"""The trainer's failure families (all `spikeprep.errors.SpikeprepError`: the CLI prints them as
one line, without a traceback, and exits with ``exit_code``).

=====================  =========  ==============================================================
error                  exit code  when
=====================  =========  ==============================================================
`TrainingDiverged`     1          ``train.max_nonfinite_steps`` steps in a row had a non-finite
                                  loss or gradient, or the weights became non-finite
`OutputError`          1          out_dir or a file in it cannot be written (disk full,
                                  read-only file system, a file where a folder should be);
                                  spikeprep's own class, so one except clause catches both
`CheckpointError`      1          no readable checkpoint is left to resume from, or a
                                  checkpoint does not fit the model
`WorkerError`          1          a DataLoader worker failed (its traceback in ``detail``)
`Preempted`            128 + sig  SIGTERM (143), SIGINT (130) or SIGUSR1 (138) stopped the run
                                  after writing a checkpoint; ``--resume auto`` continues it
=====================  =========  ==============================================================
"""

from __future__ import annotations

import errno
import signal

from spikeprep import OutputError, SpikeprepError  # OutputError: files that cannot be written, both packages


class TrainingDiverged(SpikeprepError):
    """The loss, the gradients or the weights are no longer finite numbers."""


class CheckpointError(SpikeprepError):
    """No checkpoint can be read, or a checkpoint does not fit the model it is loaded into."""


class WorkerError(SpikeprepError):
    """A DataLoader worker raised; ``detail`` holds the worker's own traceback."""

    def __init__(self, what: str, *, detail: str = "", **kw):
        self.detail = detail
        super().__init__(what, **kw)


class Preempted(SpikeprepError):
    """A stop signal ended the run cleanly at an iteration boundary, after a checkpoint."""

    def __init__(self, signum: int, iteration: int, checkpoint):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at iteration {iteration}", path=checkpoint,
                         fix="checkpoint written; continue with --resume auto")


def os_error(exc: OSError, doing: str) -> OutputError:
    """A clear error for an OSError raised while ``doing`` (e.g. "writing a checkpoint")."""
    fixes = {errno.ENOSPC: "free space on that file system (or set out_dir elsewhere), then --resume auto",
             errno.EROFS: "the file system is read-only: set out_dir to a writable folder",
             errno.EACCES: "the folder is not writable for this user: set out_dir to a writable folder",
             errno.EDQUOT: "the disk quota is exhausted: free space, then --resume auto"}
    return OutputError(f"{doing} failed", path=exc.filename,
                           found=exc.strerror or str(exc) or type(exc).__name__,
                           fix=fixes.get(exc.errno, "check the path and the file system"))
