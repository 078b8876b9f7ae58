"""What the trainer needs beyond the torch-free data toolkit, checked without importing it.

`pip install spikeprep` installs the data toolkit only; torch and torchvision come with the
``train`` extra. `vrt-train` and `spikeprep demo` ask `missing_train_packages` before they
import anything torch-using, so a base install gets install advice instead of a traceback.
"""

from __future__ import annotations

from importlib.util import find_spec

#: Top-level modules of the ``train`` extra (pyproject.toml, [project.optional-dependencies]).
TRAIN_MODULES = ("torch", "torchvision")
#: The one command that adds them.
INSTALL_TRAIN = 'pip install "spikeprep[train]"'


def missing_train_packages() -> list[str]:
    """The `TRAIN_MODULES` that cannot be imported here (empty when the trainer can run)."""
    return [name for name in TRAIN_MODULES if find_spec(name) is None]


def missing_train_message(who: str, missing: list[str]) -> str:
    """One line: ``who`` needs the ``missing`` modules, and the command that installs them."""
    verb = "is" if len(missing) == 1 else "are"
    return (f"{who} needs {' and '.join(missing)}, which {verb} not installed (the base install "
            f"is the torch-free data toolkit); install the trainer with: {INSTALL_TRAIN}")
