"""What `spikeprep verify` found: a `Problem` per fault (sequence, frame, key, what is wrong) and the
`VerifyReport` that collects them with its notes (``.ok``, ``.problems``, the exit code)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (sequence, frame, record key or file) and what."""

    sequence: str | None
    frame: int | None
    key: str | None
    what: str


@dataclass
class VerifyReport:
    cache: str
    problems: list[Problem] = field(default_factory=list)
    records_checked: int = 0
    sources_checked: int = 0
    frames_recomputed: int = 0
    #: lines for the reader that are not problems (a voxelize run writing CACHE right now)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, sequence, frame, key, what) -> None:
        self.problems.append(Problem(sequence, frame, key, what))

    def to_dict(self) -> dict:
        return {"cache": self.cache, "ok": self.ok, "records_checked": self.records_checked,
                "sources_checked": self.sources_checked, "frames_recomputed": self.frames_recomputed,
                "problems": [asdict(p) for p in self.problems], "notes": list(self.notes)}
