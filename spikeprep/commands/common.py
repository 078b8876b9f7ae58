"""What every `spikeprep` command shares: the consoles, ``error: ...`` reporting, warnings."""

from __future__ import annotations

import functools
import sys
import traceback

import click
from rich.console import Console

from ..errors import SpikeprepError

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
            _exit_with(err)
        except OSError as exc:  # a write the library did not wrap: disk full, read-only, no permission
            from ..inputs.files import is_write_failure, output_error

            if not is_write_failure(exc):
                raise
            _exit_with(output_error(exc, exc.filename))

    return wrapper


def print_warnings(warnings) -> None:
    """Warnings for the user on stderr, one ``warning: ...`` line each (their text escaped, so
    brackets in a name are never read as rich markup)."""
    from rich.markup import escape

    for text in warnings:
        console.print("[yellow]warning:[/]", escape(text), soft_wrap=True)


def _exit_with(err: SpikeprepError) -> None:
    if click.get_current_context().find_root().params.get("verbose"):
        traceback.print_exc()
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)
