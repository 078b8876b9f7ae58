"""The build journal ``CACHE/progress.jsonl``: a ``start`` line (the build's identity and shard
plan), then one line per finished sequence, each fsync'd (and an ``invalidate`` line before a
sequence whose sources changed is rebuilt). A build resumes from it, and the
manifest is assembled from it alone. A torn last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CacheError
from ..inputs.files import output_error
from .records import JOURNAL_NAME


class Journal:
    """``CACHE/progress.jsonl``: a ``start`` line (params, plan), then one line per finished sequence."""

    def __init__(self, cache: Path, name: str = JOURNAL_NAME) -> None:
        self.path = Path(cache) / name

    def header(self) -> dict:
        """The ``start`` line ({} when there is no journal yet); reads only that line."""
        if not self.path.is_file():
            return {}
        with open(self.path, "rb") as f:
            entry = self._entry(f.readline())
        return entry if entry is not None and entry.get("kind") == "start" else {}

    def read(self, repair: bool = False) -> list[dict]:
        """Entries in order; a torn last line (crash mid-write) is ignored (cut off if ``repair``)."""
        if not self.path.is_file():
            return []
        entries, good = [], 0
        data = self.path.read_bytes()
        for line in data.splitlines(keepends=True):
            entry = self._entry(line)
            if entry is None:
                break
            entries.append(entry)
            good += len(line)
        if repair and good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return entries

    def _entry(self, line: bytes) -> dict | None:
        """One line's entry; None for a torn or unparsable line (where reading stops)."""
        try:
            if not line.endswith(b"\n"):
                raise ValueError("torn line")
            entry = json.loads(line)
        except ValueError:
            return None
        if not isinstance(entry, dict):  # not our journal: never "repair" (truncate) it
            raise CacheError("progress.jsonl is not a spikeprep build journal", path=self.path,
                             found=f"a line that is not a JSON object: {line[:60]!r}",
                             expected="one JSON object per line, written by 'spikeprep voxelize'",
                             fix="choose another CACHE directory")
        return entry

    def append(self, entry: dict) -> None:
        """Append one line and fsync it (the sequence counts as done only after this returns)."""
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a torn line is cut off on resume (read(repair=True))
            raise output_error(exc, self.path) from exc

    def start(self, header: dict) -> None:
        """Begin a fresh journal (the caller has emptied the cache)."""
        if self.path.exists():
            raise CacheError("journal already exists", path=self.path, found="progress.jsonl",
                             expected="an empty cache directory", fix="pass --force to rebuild")
        self.append({"kind": "start", **header})


def done_sequences(entries: list[dict]) -> dict[str, dict]:
    """Finished sequences by name from journal entries: the last ``sequence`` line of each name
    counts, unless an ``invalidate`` line for that name follows it (a rebuild that has begun)."""
    done: dict[str, dict] = {}
    for entry in entries[1:]:
        if entry.get("kind") == "sequence":
            done[entry["name"]] = entry
        elif entry.get("kind") == "invalidate":
            done.pop(entry.get("name"), None)
    return done
