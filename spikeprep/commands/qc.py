"""``spikeprep qc``: check raw captures before trusting them."""

from __future__ import annotations

import json
import sys

import click

from ..report import tables
from .common import console, print_warnings, reports_errors, stdout_console


@click.command("qc")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print {\"files\": {PATH: {...}}} on stdout.")
@click.option("--preview", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Write each file's firing-rate map (hot/dead pixels circled) and a TFP image into DIR.")
@click.option("--write-config", is_flag=True,
              help="Write the inferred spike_h/spike_w/flipud into each sequence folder without a config.yaml.")
@reports_errors
def qc_command(paths, as_json, preview, write_config):
    """Check raw captures (.dat files, sequence folders or a DATA_ROOT) before trusting them.

    \b
    Per .dat file:
      geometry      spike_h x spike_w from config.yaml, else inferred from the bits (a headerless
                    file fits many sizes: candidates are ranked, known sensors first in ties)
      pixels        hot (far above their 5x5 neighbourhood, or firing every frame) and dead
                    (never firing where their neighbours do), as [row, col] in image orientation
      frames        empty and saturated frames, firing-rate jumps that suggest dropped data
      brightness    mean firing rate / mean luma of the sequence's blur frames, with RGB present
    Exit codes: 0 clean, 3 problems found, 1 a file could not be read, 2 usage errors.
    \b
    Example:
      spikeprep qc recordings/ --preview qc/ --write-config
    """
    from ..qc import qc_paths

    result = qc_paths(paths, write_config=write_config)
    if preview:
        from ..report.qc_previews import write_qc_previews
        write_qc_previews(result.reports, preview)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
    else:
        stdout_console().print(tables.qc_table(result))
        for r in result.reports:
            for problem in r.problems:
                console.print(f"{r.path}: {problem}", soft_wrap=True, markup=False, highlight=False)
    for r in result.reports:
        if r.error:
            click.echo(f"error: {r.error}", err=True)
    print_warnings([f"wrote {path} (inferred geometry)" for path in result.configs_written])
    sys.exit(result.exit_code)
