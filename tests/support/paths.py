"""Where things are: the repository root (the folder holding pyproject.toml), the tests folder,
and the real spike data shared beside the checkout (``../shared/data`` from the root)."""

from __future__ import annotations

from pathlib import Path


def _repo_root() -> Path:
    here = Path(__file__).resolve().parent
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"no pyproject.toml above {here}")


REPO = _repo_root()
TESTS = REPO / "tests"
SUPPORT = TESTS / "support"
CONFIGS = REPO / "configs"
SHARED_DATA = REPO.parent / "shared" / "data"
# the real SpikeCV streams (and their ground-truth frames) under SHARED_DATA / "spike-reds"
REAL_STEMS = ("200_part1_key_id151", "200_part3_key_id151", "203_part1_key_id151")
