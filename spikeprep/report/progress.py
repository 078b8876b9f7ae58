"""Progress bars the CLI draws from the library's progress callbacks (the library never draws)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..cache.sequences import BuildProgress, ProgressCallback


@contextmanager
def voxelize_bar(enabled: bool) -> Iterator[ProgressCallback | bool]:
    """A rich bar on stderr fed by `voxelize_dataset(progress=...)`: frames done of this run's
    total, frames/s and MB/s. Yields False (no progress) when not ``enabled``."""
    if not enabled:
        yield False
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=False)
    task = None

    def update(state: BuildProgress) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("voxelize", total=state.frames_total, rate="")
        seconds = max(state.seconds, 1e-9)
        bar.update(task, completed=state.frames_done, description=state.label,
                   rate=f"{state.frames_done / seconds:.1f} frames/s "
                        f"{state.bytes_written / 1e6 / seconds:.1f} MB/s")

    with bar:
        yield update
