"""The declared dependency floors, read from pyproject.toml: the one source CI installs from.

    python3 .ci/floors.py constraints   # name==floor per line, every direct dependency, extras included
    python3 .ci/floors.py extras        # the extras' names, comma-separated: train,dask,dev

Every requirement must be ``name[extras]>=version`` (one floor, nothing else), so a dependency
cannot be added without a floor that CI then installs exactly; anything else exits 1.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FLOOR = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9_,.-]+\])?>=(?P<version>[0-9][A-Za-z0-9.]*)")


def requirements(project: dict) -> list[str]:
    """Every direct requirement string: the base dependencies, then each extra's."""
    extras = project.get("optional-dependencies", {})
    return list(project["dependencies"]) + [req for reqs in extras.values() for req in reqs]


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
    if mode == "constraints":
        print("\n".join(f"{name}=={version}" for name, version in floors(requirements(project)).items()))
    elif mode == "extras":
        floors(requirements(project))  # validate even when only the names are asked for
        print(",".join(project.get("optional-dependencies", {})))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} constraints|extras")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
