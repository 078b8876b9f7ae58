"""The `spikeprep` command line: a thin layer that parses, calls the library, and reports.

Every command is a Click wrapper over an importable function; failures of the
`spikeprep.errors.SpikeprepError` family print ``error: ...`` without a traceback
(``--verbose`` shows it) and exit with the error's code (1, or 2 for usage errors).
"""

from __future__ import annotations

import functools
import sys
import traceback

import click
from rich.console import Console

from .errors import SpikeprepError

console = Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    """Console for results on stdout; wide enough for tables when piped (rich assumes 80)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def reports_errors(command):
    """Turn `SpikeprepError`s raised by a command into ``error: ...`` and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SpikeprepError as err:
            if click.get_current_context().find_root().params.get("verbose"):
                traceback.print_exc()
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="spikeprep")
def main(verbose: bool) -> None:
    """Turn spike-camera recordings (SpikeCV .dat) plus RGB video into training caches for VRT.

    \b
    Pipeline:
      spikeprep simulate OUT            make a synthetic dataset (or convert high-fps frames)
      spikeprep build-sync DATA_ROOT    write spike/SEQ/sync.json: spike window per RGB frame
      spikeprep voxelize DATA_ROOT CACHE --S 8
                                        spike windows -> S voxel channels, LMDB shards
      spikeprep verify CACHE            prove the cache is complete and correct
    """


@main.command("build-sync")
@click.argument("data_root", type=click.Path(file_okay=False, path_type=str))
@click.option("--sequence", "sequences", multiple=True, metavar="SEQ", help="Only this sequence (repeatable).")
@click.option("--spike-rate", type=float, help="Spike frames per second (Hz); overrides config.yaml.")
@click.option("--frame-rate", type=float, help="RGB frames per second (Hz); overrides config.yaml.")
@click.option("--exposure", type=float, help="Exposure as a fraction of the frame interval, (0, 1].")
@click.option("--offset", type=float, help="Seconds from spike frame 0 to frame 0's exposure start.")
@click.option("--timestamps", metavar="FILE",
              help="Timestamps file (absolute, or a name inside spike/SEQ/); default spike/SEQ/timestamps.txt if present.")
@click.option("--timestamp-unit", type=click.Choice(["spikes", "seconds"]),
              help="Unit of the timestamps (default: the file's '# unit:' line, else spikes).")
@click.option("--window-spikes", type=int, metavar="N",
              help="Per-frame .dat files: use a centred window of N spike frames instead of the whole file.")
@click.option("--dry-run", is_flag=True, help="Validate and print the table; write nothing.")
@click.option("--force", is_flag=True, help="Replace an existing sync.json that differs.")
@reports_errors
def build_sync_command(data_root, sequences, spike_rate, frame_rate, exposure, offset, timestamps,
                       timestamp_unit, window_spikes, dry_run, force):
    """Write DATA_ROOT/spike/SEQ/sync.json: the spike window of every RGB frame.

    \b
    Windows come from, per sequence, the first that applies:
      recipe layout    gopro_rgb/SEQ + spike_raw/SEQ/sync.json (the recipe's form) is converted
      per-frame .dat   spike/SEQ/<blur stem>.dat for every frame (whole file or --window-spikes N)
      timestamps       spike/SEQ/timestamps.txt or --timestamps: 'START END' per blur frame
      fixed timing     spike_rate, frame_rate, exposure, offset (config.yaml or the flags)
    Timing rule: frame i is exposed during [t0, t1), t0 = offset + i/frame_rate,
    t1 = t0 + exposure/frame_rate; spike frame k (at k/spike_rate) belongs to it iff
    t0 <= k/spike_rate < t1.

    Everything is validated first (windows inside their stream, non-empty and ordered, a
    window for every blur frame, sharp frames matching blur frames, one image size); on any
    error nothing is written. Re-running is idempotent; a different existing sync.json is
    kept unless --force.

    \b
    Example:
      spikeprep build-sync data/ --dry-run
      spikeprep build-sync data/ --spike-rate 20000 --frame-rate 500 --exposure 0.5
    """
    from .syncbuild import SyncOptions, build_sync

    options = SyncOptions(spike_rate, frame_rate, exposure, offset, timestamps, timestamp_unit, window_spikes)
    reports = build_sync(data_root, options, sequences=tuple(sequences), force=force, dry_run=dry_run)
    _print_sync_table(reports, dry_run)
    kept = [r.sync.sequence for r in reports if r.status == "kept"]
    if kept:
        console.print(f"[yellow]warning:[/] kept existing sync.json that differs for {', '.join(kept)}; "
                      "pass --force to replace it")


def _print_sync_table(reports, dry_run: bool) -> None:
    from rich.table import Table

    table = Table(title="build-sync (dry run: nothing written)" if dry_run else "build-sync")
    for column in ("sequence", "mode", "frames", "spikes/window", "gaps", "overlaps", "coverage", "status"):
        table.add_column(column, justify="left" if column in ("sequence", "mode", "status") else "right",
                         no_wrap=True)
    for r in reports:
        lengths = r.lengths
        gaps, overlaps = r.gaps_and_overlaps()
        table.add_row(r.sync.sequence, r.mode, str(len(lengths)),
                      f"{min(lengths)}-{max(lengths)}" if min(lengths) != max(lengths) else str(lengths[0]),
                      str(gaps), str(overlaps), f"{r.coverage():.0%}", r.status)
    stdout_console().print(table)
