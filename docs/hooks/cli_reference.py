r"""mkdocs hook for the CLI reference (`reference/cli.md`), two jobs.

1. Click's ``\b`` blocks (text Click prints unwrapped: the pipeline overview, the lists of window
sources and presets) would reach the page from mkdocs-click as plain lines, which Markdown
rewraps into one paragraph (and ``<blur stem>`` would be taken for an HTML tag). The hook wraps
mkdocs-click's description step so each such block becomes a ``text`` code block, as ``--help``
shows it.

2. `vrt-train --help`, as the installed command prints it, goes into the same page.

`vrt-train` is a Click command, but it is built inside `vrt_train.cli.main` (after the check that
the ``train`` extra is installed), so mkdocs-click cannot reach it. This hook runs
``main(["--help"])`` with that check answered "nothing missing" (``--help`` imports no torch),
captures what Click prints, and replaces the ``<!-- vrt-train --help -->`` marker in
``reference/cli.md`` with it: the page cannot drift from ``--help``, and the docs build needs no
torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os

MARKER = "<!-- vrt-train --help -->"
log = logging.getLogger("mkdocs.hooks.cli_reference")


def fence_click_blocks(lines: list[str]) -> list[str]:
    r"""Each ``\b`` line and the lines after it up to the next blank one -> a fenced ``text`` block."""
    out, in_block = [], False
    for line in lines:
        if line.strip() == "\x08":  # "\b" in a docstring is a backspace
            if not in_block:
                out += ["", "```text"]
                in_block = True
            continue
        if in_block and not line.strip():
            out += ["```", ""]
            in_block = False
            continue
        out.append(line)
    if in_block:
        out += ["```", ""]
    return out


def on_config(config):
    # mkdocs-click writes a command's help text line by line and drops the \b markers; its
    # description step is wrapped here so the blocks they mark stay verbatim.
    try:
        from mkdocs_click import _docs
        original = _docs._make_description
    except (ImportError, AttributeError):  # another mkdocs-click: blocks get rewrapped, no more
        log.info("cli_reference: mkdocs-click internals changed; \\b blocks are not fenced")
        return config
    if not getattr(original, "fenced", False):
        def described(ctx, remove_ascii_art=False):
            return iter(fence_click_blocks(list(original(ctx, remove_ascii_art=remove_ascii_art))))
        described.fenced = True
        _docs._make_description = described
    return config


def vrt_train_help() -> str:
    """The text of ``vrt-train --help`` at 80 columns (a fixed width, whatever the terminal)."""
    import vrt_train.cli as cli

    out = io.StringIO()
    saved_check, saved_columns = cli.missing_train_packages, os.environ.get("COLUMNS")
    cli.missing_train_packages = lambda: []
    os.environ["COLUMNS"] = "80"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli.main(["--help"])
    finally:
        cli.missing_train_packages = saved_check
        if saved_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved_columns
    text = out.getvalue().strip()
    if not text.startswith("Usage: vrt-train"):
        raise RuntimeError(f"vrt-train --help printed something unexpected: {text[:200]!r}")
    return text


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, "```text\n" + vrt_train_help() + "\n```")
