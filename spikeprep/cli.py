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
