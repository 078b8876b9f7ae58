"""One exception hierarchy for every user-facing failure.

Each error knows what went wrong, which file, what was found, what was expected and how to
fix it; ``str(err)`` renders ``<what> (<file>): found <x>, expected <y>. <how to fix>`` and
the CLI prints it as ``error: ...`` without a traceback, exiting with ``err.exit_code``.
"""

from __future__ import annotations

import os


class SpikeprepError(Exception):
    """Base class: a failure the user can understand and fix."""

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        path: str | os.PathLike | None = None,
        found: object = None,
        expected: object = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.path = None if path is None else os.fspath(path)
        self.found = found
        self.expected = expected
        self.fix = fix
        super().__init__(self._render())

    def __reduce__(self):
        # keep the fields across processes (worker pools): the default would rebuild the error
        # from its rendered text alone, losing path/found/expected/fix
        return (_rebuild, (type(self), self.what, self.path, self.found, self.expected, self.fix))

    def _render(self) -> str:
        text = self.what
        if self.path is not None:
            text += f" ({self.path})"
        details = []
        if self.found is not None:
            details.append(f"found {self.found}")
        if self.expected is not None:
            details.append(f"expected {self.expected}")
        if details:
            text += ": " + ", ".join(details)
        text += "."
        if self.fix:
            text += " " + self.fix.rstrip(".") + "."
        return text


def _rebuild(cls, what, path, found, expected, fix):
    return cls(what, path=path, found=found, expected=expected, fix=fix)


class UsageError(SpikeprepError):
    """The command line or a call's arguments are wrong (exit code 2)."""

    exit_code = 2


class DatError(SpikeprepError):
    """A `.dat` spike file is missing, truncated, or does not match its stated geometry."""


class WindowError(SpikeprepError):
    """A requested spike window lies (partly) outside its stream, or is empty/too short."""


class ConfigError(SpikeprepError):
    """A configuration file (config.yaml, a trainer YAML) is missing, malformed or invalid."""


class LayoutError(SpikeprepError):
    """A dataset folder does not follow the documented input layout (missing or mismatched frames)."""


class SyncError(SpikeprepError):
    """A sync.json or timestamps file is malformed or its windows are inconsistent."""


class VoxelError(SpikeprepError):
    """Voxelization was asked for something impossible (e.g. fewer spike frames than bins)."""


class CacheError(SpikeprepError):
    """A voxel cache is missing, corrupt, incomplete, or built with other parameters."""


class DependencyError(SpikeprepError):
    """A feature needs an optional extra that is not installed (e.g. torch: spikeprep[train])."""


class LockError(CacheError):
    """Another process holds a cache's write lock (or left one that cannot be checked)."""


class BuildInterrupted(CacheError):
    """A signal (SIGTERM, SIGINT, SIGHUP) stopped a cache build; exit code ``128 + signal``."""

    def __init__(self, what: str, *, exit_code: int = 1, **details) -> None:
        self.exit_code = exit_code
        super().__init__(what, **details)


class OutputError(SpikeprepError):
    """An output file cannot be written: read-only filesystem, no permission, disk or quota full.
    Nothing half-written is left behind; the run can be repeated once the cause is fixed."""
