"""Splitting work into parts for independent processes (``--part I/N``): which items part I owns.

Used by ``voxelize --part`` (sequences of a cache build) and ``simulate --part`` (sequences of a
dataset). The split is a pure function of the items' sizes and N, so every process computes the
same one without talking to the others, on any machine.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass

from .errors import UsageError

_PART_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Part:
    """Part ``index`` (from 0) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise UsageError("--part I/N needs 0 <= I < N", found=f"{self.index}/{self.count}",
                             expected="e.g. 0/4, 1/4, 2/4, 3/4 (I counts from 0)")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def as_tuple(self) -> tuple[int, int]:
        return (self.index, self.count)


def parse_part(text) -> Part:
    """``"1/4"`` (or a `Part`, or an ``(I, N)`` pair) -> ``Part(1, 4)``; UsageError otherwise."""
    if isinstance(text, Part):
        return text
    if isinstance(text, (tuple, list)) and len(text) == 2:
        return Part(int(text[0]), int(text[1]))
    match = _PART_RE.fullmatch(str(text))
    if not match:
        raise UsageError("cannot read --part", found=text, expected="I/N, e.g. 0/4 (I from 0, N parts)")
    return Part(int(match.group(1)), int(match.group(2)))


def balanced_partition(sizes: list[int], count: int) -> list[int]:
    """The part of each item: longest first, each to the least loaded part (lowest index on ties).

    Deterministic; when there are at least ``count`` items every part gets one, and the largest
    part exceeds the ideal ``sum / count`` by at most one item's size (LPT scheduling).
    """
    heap = [(0, p) for p in range(count)]  # (load, part): already a heap; O(N + items log N)
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        load, part = heapq.heappop(heap)
        owner[i] = part
        heapq.heappush(heap, (load + sizes[i], part))
    return owner


def items_of(part: Part, sizes: list[int]) -> list[int]:
    """Indices (ascending) of the items part ``part`` owns."""
    return [i for i, p in enumerate(balanced_partition(sizes, part.count)) if p == part.index]
