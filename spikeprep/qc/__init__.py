"""QC: check a raw capture before trusting it (``spikeprep qc``).

* `geometry`: a headerless ``.dat`` file's sensor size, inferred from its bits and ranked
* `pixels`: hot and dead pixels against their neighbourhood
* `frames`: empty and saturated frames, firing-rate jumps
* `capture`: one file's whole check (`check_capture`)

`qc_paths` is the library call behind the command: files, sequence folders or a DATA_ROOT in,
one `CaptureReport` per ``.dat`` out, and with ``write_config`` the inferred geometry written
into each sequence folder that has no ``config.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LayoutError
from ..inputs.files import write_text_atomic
from .capture import CaptureReport, check_capture, config_paths


@dataclass
class QcResult:
    """Reports by file (in the order found), and the config.yaml files written."""

    reports: list[CaptureReport]
    configs_written: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when a file could not be checked, 3 when problems were found, else 0."""
        if any(r.error for r in self.reports):
            return 1
        return 3 if any(r.problems for r in self.reports) else 0

    def to_dict(self) -> dict:
        return {"files": {r.path: r.to_dict() for r in self.reports},
                "configs_written": self.configs_written}


def find_captures(path: str | os.PathLike) -> list[Path]:
    """The ``.dat`` files a PATH names: the file itself, a folder's own ``.dat`` files, or those
    one level down (a ``spike/`` folder), or a DATA_ROOT's ``spike/SEQ/*.dat``."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise LayoutError("capture not found", path=path, found="no such file or folder",
                          expected="a .dat file, a sequence folder or a DATA_ROOT")
    for folder in (path, path / "spike"):
        own = sorted(p for p in folder.glob("*.dat") if p.is_file()) if folder.is_dir() else []
        if own:
            return own
        nested = sorted(p for p in folder.glob("*/*.dat") if p.is_file()) if folder.is_dir() else []
        if nested:
            return nested
    raise LayoutError("no .dat files found", path=path, found="no *.dat in it, its subfolders or spike/SEQ/",
                      expected="a .dat file, a sequence folder or a DATA_ROOT")


def qc_paths(paths, *, write_config: bool = False, on_file=None) -> QcResult:
    """Check every capture under ``paths``; ``on_file(report)`` after each one."""
    files = [dat for path in paths for dat in find_captures(path)]
    reports = []
    for dat in dict.fromkeys(files):
        report = check_capture(dat)
        reports.append(report)
        if on_file is not None:
            on_file(report)
    result = QcResult(reports)
    if write_config:
        result.configs_written = write_inferred_configs(reports)
    return result


def write_inferred_configs(reports: list[CaptureReport]) -> list[str]:
    """Write ``spike_h``, ``spike_w``, ``flipud`` into each sequence folder with no config.yaml,
    when every capture in it was read with one inferred geometry (never over an existing file,
    never into a folder that is a link). Returns the files written."""
    by_folder: dict[Path, set] = {}
    for report in reports:
        if report.error is None and report.geometry.source == "inferred":
            g = report.geometry
            by_folder.setdefault(Path(report.path).parent, set()).add((g.height, g.width))
    written = []
    for folder, sizes in by_folder.items():
        target, _ = config_paths(folder / "x.dat")
        if len(sizes) != 1 or target.exists() or folder.is_symlink():
            continue
        (height, width), = sizes
        write_text_atomic(target, f"spike_h: {height}\nspike_w: {width}\nflipud: true\n")
        written.append(str(target))
    return written
