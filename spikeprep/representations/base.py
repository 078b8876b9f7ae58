"""What every representation class shares (`spikeprep.representations.catalog` lists them):
`Named`, the manifest record of its parameters, and `OneChannelPerBin`, ``channels = S`` with at
least one frame per channel."""

from __future__ import annotations

import dataclasses
from typing import ClassVar


class Named:
    """``to_dict()``: ``{"repr": name, **fields}``, the record the manifest stores (`params_of`
    drops ``repr`` and ``S`` again)."""

    name: ClassVar[str]

    def to_dict(self) -> dict:
        return {"repr": self.name, **dataclasses.asdict(self)}


class OneChannelPerBin(Named):
    """Representations with one channel per bin and at least one frame per bin (``S`` of each)."""

    S: int

    @property
    def channels(self) -> int:
        return self.S

    @property
    def min_frames(self) -> int:
        return self.S
