"""The documentation keeps up with the code: every `spikeprep` command is documented in docs/, has
help text, and the README stays a short front page whose Quick start is exactly two commands.

Torch-free: `spikeprep.cli` imports no torch.
"""

from __future__ import annotations

import re

import click
import pytest

from spikeprep.cli import main as spikeprep_cli
from tests.support.paths import REPO

ROOT = REPO
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200
QUICK_START_COMMANDS = [
    'python3 -m pip install -e ".[train,dev]" && spikeprep demo',
    'python3 -m pip install -e ".[train,dev]" && python3 -m pytest',
]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every subcommand of ``group``, recursively: ``(("build-sync",), cmd)``, ``(("grp", "sub"), cmd)``."""
    found = []
    ctx = click.Context(group, info_name="spikeprep")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


COMMANDS = _commands(spikeprep_cli)


def _docs_text() -> str:
    """All hand-written docs pages (the generated CLI reference does not count)."""
    pages = [p for p in sorted(DOCS.rglob("*.md")) if p.relative_to(DOCS).parts[0] != "reference"]
    assert pages, f"no docs pages under {DOCS}"
    return "\n".join(p.read_text(encoding="utf-8") for p in pages)


def test_commands_found():
    names = {path[0] for path, _ in COMMANDS}
    assert {"build-sync", "check-sync", "import", "simulate", "voxelize", "verify", "info", "demo"} <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=" ".join)
def test_command_documented(path):
    """Each command appears as the literal text `spikeprep NAME` (`spikeprep GROUP NAME`) in docs/."""
    text = "spikeprep " + " ".join(path)
    assert re.search(re.escape(text) + r"(?![\w-])", _docs_text()), f"'{text}' is in no docs/*.md page"


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_help(path, command):
    assert (command.help or command.short_help or "").strip(), f"spikeprep {' '.join(path)} has no help text"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")  # what `wc -l` counts
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def _section(markdown: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_readme_quick_start_is_exactly_two_commands():
    section = _section(README.read_text(encoding="utf-8"), "Quick start")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", section, re.M | re.S)
    assert [b.strip("\n") for b in blocks] == QUICK_START_COMMANDS


def test_docs_links_resolve():
    """Relative links between docs pages (and from the README into docs/) point at files that exist."""
    sources = [README, *sorted(DOCS.rglob("*.md"))]
    broken = []
    for page in sources:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # external, or an anchor on the same page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_cli_reference_points_at_the_click_group():
    """docs/reference/cli.md's mkdocs-click directive names the group `spikeprep` runs."""
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    module = re.search(r"^\s*:module: (\S+)", page, re.M)
    command = re.search(r"^\s*:command: (\S+)", page, re.M)
    assert module and command, "docs/reference/cli.md has no mkdocs-click directive"
    import importlib
    assert importlib.import_module(module[1]).__dict__.get(command[1]) is spikeprep_cli
