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
                  help="restore every sequence of a cache, or of a DATA_ROOT with sync.json (voxelized like "
                       "the training cache), into OUT/SEQ/000000.png instead of training")
    @click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="checkpoint for --infer/--test: ours (iter_*.pt, best.pt) or KAIR's .pth (--test); "
                       "default: latest in out_dir")
    @click.option("--video", is_flag=True, help="--infer/--test --save-images: also write OUT/SEQ.mp4 per sequence")
    @click.option("--side-by-side", is_flag=True, help="--video: the blurred input left of the output")
    @click.option("--fps", default=25.0, show_default=True, type=float, help="--video: frames per second")
    @click.option("--test", "test", is_flag=True,
                  help="evaluate the checkpoint on whole sequences (KAIR main_test_vrt chunks/tiles from val:) "
                       "and write a result card OUT/result.json + result.md")
    @click.option("--protocol", default="kair", show_default=True,
                  type=click.Choice(["kair", "matlab-gopro", "spikezoo"]),
                  help="--test metrics: KAIR's per-sequence mean, VRT's MATLAB script (mean over all frames), "
                       "or Spike-Zoo's (scikit-image on [-1, 1], grayscale GT)")
    @click.option("--split", default=None, help="--test: val (default; the dataset's test half) | test | train | all")
    @click.option("--save-images", default=None, type=click.Path(file_okay=False),
                  help="--test: write the restored frames to DIR/SEQ/<frame name>.png")
    @click.option("--out", default=None, type=click.Path(file_okay=False),
                  help="--test: folder for result.json/result.md "
                       "(default OUT_DIR/test/<checkpoint>_<protocol>_<split>)")
    @click.option("--check-card", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="--test: recompute this result.json (same checkpoint, cache, protocol, split); exit 3 "
                       "when a figure differs by more than 1e-6")
    @click.option("--dry-run", is_flag=True,
                  help="one training step and one validation chunk at the config's sizes: parameters, peak "
                       "memory, step time, time to total_iter, settings that fit; writes nothing")
    @click.option("--quiet", is_flag=True, help="no progress bar or log lines on the terminal")
    @click.option("--verbose", is_flag=True, help="on an error, also print its traceback (and a DataLoader worker's)")
    def cli(opt, overrides, resume, init_from, infer, checkpoint, video, side_by_side, fps, test, protocol,
            split, save_images, out, check_card, dry_run, quiet, verbose):
        """Train VRT on RGB + spike voxels from a spikeprep LMDB cache (KAIR 006 recipe).

        Exit codes: 0 done, 1 error (one line; --verbose adds the traceback), 2 usage, 3 --check-card
        found a difference, 128 +
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
            from .outputs import OutputOptions
            options = OutputOptions(video=video, fps=fps, side_by_side=side_by_side)
            if test:
                sys.exit(_test(cfg, checkpoint, protocol, split, save_images, out, check_card, options, quiet))
            if infer:
                from .infer import infer as run_infer
                run_infer(cfg, infer[0], infer[1], checkpoint, progress=not quiet, options=options)
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


def _test(cfg, checkpoint, protocol, split, save_images, out, check_card, options, quiet) -> int:
    """``--test``: print the figures (and write the card); with ``--check-card`` 3 on a difference."""
    from pathlib import Path

    from .evaluate import check_card as recheck
    from .evaluate import run_test
    if check_card:
        diffs = recheck(check_card, progress=not quiet)
        for line in diffs:
            print(f"differs: {line}", file=sys.stderr)
        print(f"{check_card}: {'DIFFERS in ' + str(len(diffs)) + ' key(s)' if diffs else 'reproduced'}")
        return 3 if diffs else 0
    if out is None:
        name = Path(checkpoint).stem if checkpoint else "latest"
        out = Path(cfg.out_dir) / "test" / f"{name}_{protocol}_{split or 'val'}"
    card = run_test(cfg, checkpoint, protocol, split, out=out, save_images=save_images, options=options,
                    progress=not quiet)
    if card["selected_on_test_split"]:
        print("warning: best.pt was selected on the test split (selected_on_test_split: true)", file=sys.stderr)
    print(f"{card['protocol']}: PSNR {card['psnr']:.4f} dB, SSIM {card['ssim']:.4f} (Y: {card['psnr_y']:.4f} dB, "
          f"{card['ssim_y']:.4f}) over {len(card['sequences'])} sequences, {card['frames']} frames; card in {out}")
    return 0

