"""`vrt-train`: the thin CLI over `vrt_train.train.train` and `vrt_train.infer.infer`.

Nothing here imports torch at module level: `main` first checks that the ``train`` extra is
installed and otherwise prints how to install it and exits 1.
"""

from __future__ import annotations

import os
import sys
import traceback

from spikeprep import SpikeprepError

from .config import load_config
from .requirements import missing_train_message, missing_train_packages


def main(argv=None) -> None:
    missing = missing_train_packages()
    if missing:  # before click parses anything: even --help needs the trainer installed
        print(f"error: {missing_train_message('vrt-train', missing)}", file=sys.stderr)
        sys.exit(1)
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--opt", "opt", required=True, type=click.Path(dir_okay=False),
                  help="trainer YAML (configs/*.yaml)")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="dotted override, value parsed as YAML (repeatable): --set train.total_iter=200")
    @click.option("--resume", default=None, help='checkpoint path, or "auto" (latest in out_dir)')
    @click.option("--init-from", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="KAIR/official RGB checkpoint to start from (spike input weights zero)")
    @click.option("--infer", nargs=2, default=None, metavar="CACHE_OR_DATA OUT",
                  help="restore every sequence of a cache, or of a DATA_ROOT with sync.json (voxelized like the training cache), into OUT/SEQ/000000.png instead of training")
    @click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="checkpoint for --infer (default: latest in out_dir)")
    @click.option("--dry-run", is_flag=True,
                  help="one training step and one validation chunk at the config's sizes: parameters, peak "
                       "memory, step time, time to total_iter, settings that fit; writes nothing")
    @click.option("--quiet", is_flag=True, help="no progress bar or log lines on the terminal")
    @click.option("--verbose", is_flag=True, help="on an error, also print its traceback (and a DataLoader worker's)")
    def cli(opt, overrides, resume, init_from, infer, checkpoint, dry_run, quiet, verbose):
        """Train VRT on RGB + spike voxels from a spikeprep LMDB cache (KAIR 006 recipe).

        Exit codes: 0 done, 1 error (one line; --verbose adds the traceback), 2 usage, 128 +
        signal (143 SIGTERM, 130 SIGINT, 138 SIGUSR1): stopped after writing a checkpoint,
        continue with --resume auto."""
        from .errors import Preempted, os_error
        from .guard import exit_at_once_on_sigint, stop_on_signals
        from .workers import as_worker_error
        try:
            cfg = load_config(opt, overrides)
            if dry_run:
                from .dryrun import dry_run as run_dry
                report = run_dry(cfg, emit=click.echo)
                sys.exit(0 if report.fits else 1)
            if infer:
                from .infer import infer as run_infer
                run_infer(cfg, infer[0], infer[1], checkpoint, progress=not quiet)
                return
            from .train import train
            with stop_on_signals():
                summary = train(cfg, resume=resume, init_from=init_from, progress=not quiet)
            if int(os.environ.get("RANK", "0")) == 0 and not quiet:
                print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in summary.items()))
        except KeyboardInterrupt:  # a second Ctrl-C while stopping
            exit_at_once_on_sigint(130)
            click.echo("interrupted: stopped at once, without a checkpoint for this iteration", err=True)
            sys.exit(130)
        except (SpikeprepError, OSError, RuntimeError) as exc:
            err = exc if isinstance(exc, SpikeprepError) else as_worker_error(exc)
            if err is None and isinstance(exc, OSError):
                err = os_error(exc, "a file operation")
            if err is None:
                raise
            if verbose:
                traceback.print_exc()
                if getattr(err, "detail", ""):
                    click.echo(f"DataLoader worker: {err.detail}", err=True)
            if not isinstance(err, Preempted):
                click.echo(f"error: {err}", err=True)
            else:
                exit_at_once_on_sigint(err.exit_code)  # the checkpoint is written: shutting down
                if int(os.environ.get("RANK", "0")) == 0:
                    click.echo(str(err), err=True)
            sys.exit(err.exit_code)

    cli.main(args=argv, prog_name="vrt-train")

