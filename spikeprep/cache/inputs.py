"""Input checks of a cache build that warn rather than fail: converted RGB frames (see
`spikeprep.inputs.images`) and sequences whose spike windows hold no spike at all.

The warnings are printed by the CLI, returned in `BuildSummary.warnings` and recorded per sequence
in the manifest (``SequenceEntry.warnings``), where `spikeprep info` shows them again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..inputs.images import conversion_warnings, merge_conversions
from ..sync import SyncFile

#: Spike frames read at a time while looking for a spike (bounded memory for any window length).
_CHUNK_FRAMES = 1024

__all__ = ["windows_have_spikes", "zero_spike_warning", "sequence_warnings", "conversion_warnings",
           "merge_conversions"]


def windows_have_spikes(data_root: str | Path, sync: SyncFile) -> bool:
    """True when some spike frame inside the sequence's windows holds a spike.

    Reads ``(chunk, H*W/8)`` packed frames through a memory map and stops at the first non-zero
    byte, so a normal stream costs one chunk; an all-zero one is read once, in chunks.
    """
    root = Path(data_root)
    for rel in sync.spike_files:
        spans = [(f.spike_begin, f.spike_end) for f in sync.frames if f.spike_file == rel]
        with sync.open_stream(root, rel) as stream:
            for begin, end in spans:
                for start in range(begin, end, _CHUNK_FRAMES):
                    if np.any(stream.packed(start, min(end, start + _CHUNK_FRAMES))):
                        return True
    return False


def zero_spike_warning(sequence: str, sync: SyncFile) -> str:
    files = ", ".join(sync.spike_files)
    return (f"sequence {sequence}: no spike in any of its {len(sync.frames)} frames' windows "
            f"({files} is all zeros there), so its spike voxels are all zero; check the recording, "
            f"spike_h/spike_w and the windows in sync.json")


def sequence_warnings(sequence: str, sync: SyncFile, conversions: dict, has_spikes: bool) -> list[str]:
    """All warnings of one built sequence: conversions (kind -> (frames, first file)), then spikes."""
    out = conversion_warnings(sequence, conversions)
    if not has_spikes:
        out.append(zero_spike_warning(sequence, sync))
    return out
