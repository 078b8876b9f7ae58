"""The build journal ``CACHE/progress.jsonl``: a ``start`` line (the build's identity and shard
plan), then one line per finished sequence, each fsync'd. A build resumes from it, and the
manifest is assembled from it alone. A torn last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CacheError
from .records import JOURNAL_NAME


class Journal:
    """``CACHE/progress.jsonl``: a ``start`` line (params, plan), then one line per finished sequence."""

    def __init__(self, cache: Path) -> None:
        self.path = Path(cache) / JOURNAL_NAME

    def read(self, repair: bool = False) -> list[dict]:
        """Entries in order; a torn last line (crash mid-write) is ignored (cut off if ``repair``)."""
        if not self.path.is_file():
            return []
        entries, good = [], 0
        data = self.path.read_bytes()
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("torn line")
                entries.append(json.loads(line))
            except ValueError:
                break
            good += len(line)
        if repair and good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return entries

    def append(self, entry: dict) -> None:
        """Append one line and fsync it (the sequence counts as done only after this returns)."""
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def start(self, header: dict) -> None:
        """Begin a fresh journal (the caller has emptied the cache)."""
        if self.path.exists():
            raise CacheError("journal already exists", path=self.path, found="progress.jsonl",
                             expected="an empty cache directory", fix="pass --force to rebuild")
        self.append({"kind": "start", **header})
