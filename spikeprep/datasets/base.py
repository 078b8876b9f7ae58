"""What an import is: frozen plans of sequences and frames, and the pure rules every preset shares.

A preset reads SOURCE (listings, file sizes, image headers; never pixels, never writes) and
returns an `ImportPlan`; `spikeprep.datasets.write` turns a plan into DATA_ROOT. Everything
here is pure: windows, padding, names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LayoutError, UsageError

PAD_VALUES = {"ones": 1, "zeros": 0}


@dataclass(frozen=True)
class ImportOptions:
    """Preset options (None/empty: the preset's default). Sizes are ``(height, width)`` pixels."""

    sequences: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    blur: str | None = None                 # spk-gopro: "gamma" (blur_gamma, the loader's) | "linear"
    pad: str | None = None                  # x4k: "ones" (the loader's) | "zeros" | "skip"
    spike_full: bool = False                # s-sdm: the 720x1280 spike_full/ variant
    margins: tuple[int, int] | None = None  # rsb: [LO, L-HI) instead of the loader's centred 97
    spike_size: tuple[int, int] | None = None
    window: int | None = None               # spikecv: spike frames per frame (non-overlapping windows)


@dataclass(frozen=True)
class FramePlan:
    """One blurry frame: its source files (absolute) and its spike window in ``spike``.

    ``blur`` is None for spike-only datasets (the frame is a spike window; ``sharp`` its ground
    truth, or None for real recordings without one).

    ``[begin, end)`` lies inside the stream; ``pad_before``/``pad_after`` spike frames of the
    sequence's ``pad_value`` extend it past the stream's ends (X4K's loader pads with ones).
    """

    name: str
    blur: Path | None
    sharp: Path | None
    spike: Path
    begin: int
    end: int
    pad_before: int = 0
    pad_after: int = 0

    @property
    def length(self) -> int:
        """Spike frames the representation sees, padding included."""
        return self.pad_before + self.end - self.begin + self.pad_after


@dataclass(frozen=True)
class SequencePlan:
    """One sequence as it will appear in DATA_ROOT (``name`` never contains ``/``)."""

    name: str
    split: str
    spike_h: int
    spike_w: int
    frames: tuple[FramePlan, ...]
    rgb_size: tuple[int, int]
    rule: str                                   # the window rule, in words, for the table
    config_extra: dict = field(default_factory=dict)  # window_spikes / margins for config.yaml
    skipped: tuple[tuple[str, str], ...] = ()   # (frame name, why)
    flipud: bool = True
    pad_value: int = 1
    warnings: tuple[str, ...] = ()
    T: int | None = None                        # VRT clip length the dataset's trainer uses


@dataclass(frozen=True)
class ImportPlan:
    """Every sequence an import writes, plus notes for the user."""

    preset: str
    source: Path
    sequences: tuple[SequencePlan, ...]
    notes: tuple[str, ...] = ()


# -- pure rules ---------------------------------------------------------------------------------

def join_name(parts: tuple[str, ...] | list[str]) -> str:
    """A sequence name from nested source folders: ``("002", "occ008.320_f2881")`` ->
    ``"002_occ008.320_f2881"``."""
    return "_".join(parts)


def check_unique(sequences: list[SequencePlan], source: Path) -> None:
    """Two source folders must not map to one sequence name (after joining with ``_``)."""
    seen: dict[str, str] = {}
    for seq in sequences:
        if seq.name in seen:
            raise LayoutError("two source folders give the same sequence name", path=source,
                              found=f"{seq.name!r} from {seen[seq.name]} and {seq.split}",
                              expected="unique names (nested folders are joined with '_')",
                              fix="import the clashing parts into separate DATA_ROOTs with --split/--sequence")
        seen[seq.name] = seq.split


def padded_window(begin: int, end: int, length: int) -> tuple[int, int, int, int]:
    """Clip ``[begin, end)`` to ``[0, length)``: ``(begin, end, pad_before, pad_after)``.

    The core window is what lies inside the stream; the pads count the frames outside it.
    """
    pad_before, pad_after = max(0, -begin), max(0, end - length)
    return max(begin, 0), min(end, length), pad_before, pad_after


def select(sequences: list[SequencePlan], options: ImportOptions, source: Path) -> list[SequencePlan]:
    """Keep the sequences ``--sequence``/``--split`` ask for; unknown names are errors."""
    chosen = sequences
    if options.splits:
        known = sorted({s.split for s in sequences})
        unknown = sorted(set(options.splits) - set(known))
        if unknown:
            raise UsageError("--split names a split SOURCE does not have", found=", ".join(unknown),
                             expected="one of " + (", ".join(known) or "(none)"))
        chosen = [s for s in chosen if s.split in options.splits]
    if options.sequences:
        names = [s.name for s in chosen]
        unknown = sorted(set(options.sequences) - set(names))
        if unknown:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise UsageError("--sequence names a sequence SOURCE does not have", found=", ".join(unknown),
                             expected=f"one of {shown or '(none)'}")
        chosen = [s for s in chosen if s.name in options.sequences]
    if not chosen:
        raise LayoutError("no sequences to import", path=source, found="none",
                          expected="at least one sequence folder")
    return chosen


def reject_options(preset: str, options: ImportOptions, allowed: set[str]) -> None:
    """Options that do not apply to ``preset`` are usage errors, not silently ignored."""
    given = {"blur": options.blur is not None, "pad": options.pad is not None,
             "spike_full": options.spike_full, "margins": options.margins is not None,
             "window": options.window is not None}
    wrong = sorted(k for k, v in given.items() if v and k not in allowed)
    if wrong:
        raise UsageError(f"option does not apply to preset {preset}",
                         found=", ".join("--" + w.replace("_", "-") for w in wrong),
                         expected=", ".join("--" + a.replace("_", "-") for a in sorted(allowed)) or "none")
