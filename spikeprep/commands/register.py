"""``spikeprep register``: where the spike camera's view lies in the RGB frame, from the data."""

from __future__ import annotations

import json
import sys

import click

from .common import reports_errors, stdout_console


@click.command("register")
@click.argument("data_root", type=click.Path(path_type=str))
@click.option("--sequence", "sequences", multiple=True, metavar="SEQ", help="Register only SEQ (repeatable).")
@click.option("--model", type=click.Choice(["similarity", "affine", "homography"]), default="homography",
              show_default=True, help="Map from spike px to RGB px.")
@click.option("--frames", type=int, default=12, show_default=True, metavar="K",
              help="Use K evenly spaced frames per sequence.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"sequences\": {SEQ: {...}}} on stdout.")
@click.option("--preview", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Write an overlay sheet per sequence into DIR (edges over spike counts, before and after).")
@click.option("--fix", is_flag=True,
              help="Write each ok registration into config.yaml (comments kept) and rebuild sync.json.")
@reports_errors
def register_command(data_root, sequences, model, frames, as_json, preview, fix):
    """Measure, per sequence, the 3x3 matrix mapping spike pixels (x, y, 1) to RGB pixels, from
    the spike count of each frame's exposure window (sync.json) against the frame's luma.

    \b
    Run after build-sync, for a rig whose spike camera sees a shifted, turned or scaled part
    of the RGB view. Searches scale 0.5-4, any shift, rotation up to +-10 degrees, then
    refines (ECC) with the model's motion. Nothing is written (except --preview sheets), unless
    --fix: then each ok sequence's registration goes into its config.yaml (spike/SEQ/, or
    spike/config.yaml for a fixed rig) and its sync.json is rebuilt; voxelize then crops and
    resamples to the overlap.
    Verdicts: ok, weak (too little texture, frames disagree), failed (no match, no overlap,
    mirrored or flipped view, degenerate matrix).
    Exit codes: 0 all ok, 3 some weak or failed (with --fix: some not written), 1 errors,
    2 usage errors.
    \b
    Example:
      spikeprep register data/ --preview previews/
      spikeprep register data/ --fix
    """
    from ..registration import RegisterOptions, register
    from ..registration.sequence import exit_code

    results = register(data_root, tuple(sequences), RegisterOptions(model, frames))
    if preview:
        from ..report.register_previews import write_register_previews
        write_register_previews(data_root, results, preview)
    if as_json:
        click.echo(json.dumps({"sequences": {r.sequence: r.to_dict() for r in results}}, indent=1))
    else:
        from ..report.register_table import reason_lines, register_table
        out = stdout_console()
        out.print(register_table(results))
        for line in reason_lines(results):
            out.print(line, soft_wrap=True, markup=False, highlight=False)
    fixes = []
    if fix:
        from ..registration.fix import apply_registrations
        fixes = apply_registrations(data_root, results)
        from ..report.tables import fix_lines
        for line in fix_lines(fixes):
            click.echo(f"--fix {line}", err=as_json)
    sys.exit(_exit(results, fixes) if fix else exit_code(results))


def _exit(results, fixes) -> int:
    from ..alignment.fix import fixes_exit_code
    return fixes_exit_code(fixes)
