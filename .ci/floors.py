"""The declared dependency floors, read from pyproject.toml: the one source CI installs from.

    python3 .ci/floors.py constraints   # name==floor per line, every runtime dependency, extras included
    python3 .ci/floors.py extras        # the runtime extras' names, comma-separated: train,dask,dev

Every requirement must be ``name[extras]>=version`` (one floor, nothing else), so a dependency
cannot be added without a floor that CI then installs exactly; anything else exits 1.

The extras in `NOT_FLOORS` (``docs``: mkdocs and its plugins; ``lint``: the linter) are left out
of both modes: they are tooling for building the documentation and checking the source, not
something spikeprep runs with, so their bounds are not runtime floors and the Python 3.10 floor
environment does not install them (their pins would also constrain shared dependencies such as
click for no runtime reason). Their requirements must read ``name>=version`` or, to pin a tool
whose newer releases change its verdict (ruff), ``name==version``: both modes validate every extra.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
#: Extras that are tooling, not runtime: validated, but not part of the floor environment.
NOT_FLOORS = ("docs", "lint")
FLOOR = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9_,.-]+\])?>=(?P<version>[0-9][A-Za-z0-9.]*)")


def floor_extras(project: dict) -> list[str]:
    """The extras the floor environment installs: every extra except `NOT_FLOORS`."""
    return [name for name in project.get("optional-dependencies", {}) if name not in NOT_FLOORS]


def requirements(project: dict, extras: list[str] | None = None) -> list[str]:
    """Direct requirement strings: the base dependencies, then each of ``extras``' (default: all)."""
    declared = project.get("optional-dependencies", {})
    names = list(declared) if extras is None else extras
    return list(project["dependencies"]) + [req for name in names for req in declared[name]]


def floors(reqs: list[str]) -> dict[str, str]:
    """``{name: floor}``; raises SystemExit naming each requirement that is not one ``>=`` floor."""
    found, bad = {}, []
    for req in reqs:
        match = FLOOR.fullmatch(req.replace(" ", ""))
        if match is None:
            bad.append(req)
        else:
            found[match["name"].lower()] = match["version"]
    if bad:
        raise SystemExit(f"{PYPROJECT}: {bad} must each read name>=floor (the version CI tests)")
    return found


def main(mode: str) -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    floors(requirements(project, floor_extras(project)))  # validate every runtime requirement
    tooling = [r for name in NOT_FLOORS for r in project.get("optional-dependencies", {}).get(name, [])]
    floors([r.replace("==", ">=", 1) for r in tooling])  # tooling: a floor or an exact pin
    if mode == "constraints":
        runtime = floors(requirements(project, floor_extras(project)))
        print("\n".join(f"{name}=={version}" for name, version in runtime.items()))
    elif mode == "extras":
        print(",".join(floor_extras(project)))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} constraints|extras")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
