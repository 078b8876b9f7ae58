"""build-sync for spike-only sequences: those whose sync.json has ``"blur": null`` frames (written
by ``spikeprep import spike-zoo`` or ``spikecv``). There are no blur frames to derive windows for,
so the import's windows are kept, moved by config.yaml's ``window_shift``, and re-validated
against the spike streams (split, names, T kept)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..errors import SyncError, UsageError
from ..inputs.dat import count_frames
from ..inputs.sequence_config import load_config
from ..sync import SyncFile, find_sync_files, load_sync


def spike_only_names(data_root: str | os.PathLike) -> list[str]:
    """Folders of ``DATA_ROOT/spike`` whose sync.json is spike-only (an unreadable one is not)."""
    names = []
    for path in find_sync_files(data_root):
        try:
            if load_sync(path).spike_only:
                names.append(path.parent.name)
        except SyncError:
            continue
    return names


def refuse_spike_only(data_root: str | os.PathLike, sequences: tuple[str, ...], command: str) -> None:
    """UsageError when ``command`` (which compares spikes with RGB frames) is asked for spike-only
    sequences: named in ``sequences``, or all DATA_ROOT holds (no ``blur/``)."""
    only = spike_only_names(data_root)
    named = [n for n in sequences if n in only]
    root = Path(data_root)
    if named or (only and not sequences and not (root / "blur").is_dir() and not (root / "gopro_rgb").is_dir()):
        shown = ", ".join((named or only)[:5]) + (" ..." if len(named or only) > 5 else "")
        raise UsageError(f"{command} compares spike windows with RGB frames, and spike-only sequences have none",
                         found=f"spike-only (sync.json \"blur\": null): {shown}",
                         expected="sequences with blur frames",
                         fix="leave them out (their windows are the import's, from the dataset's own "
                             "loader); 'spikeprep verify CACHE --data DATA_ROOT' checks their cache")


def spike_only_windows(data_root: str | os.PathLike, name: str, options) -> tuple[SyncFile, dict[str, int]]:
    """A spike-only sequence's sync and its streams' lengths: the import's windows moved by the
    change of config.yaml's ``window_shift`` (the caller validates them against the lengths)."""
    root = Path(data_root)
    spike_dir = root / "spike" / name
    if options.window_source:
        raise UsageError("spike-only sequences keep the windows their import wrote", found=name,
                         expected="no --spike-rate/--frame-rate/--exposure/--offset/--timestamps/--window-spikes",
                         fix="re-import with other options (spikecv: --window N), or leave them out "
                             "with --sequence")
    previous = load_sync(spike_dir / "sync.json")
    config = load_config(spike_dir / "config.yaml", root / "spike" / "config.yaml")
    lengths = {rel: count_frames(root / rel, config.spike_h, config.spike_w) for rel in previous.spike_files}
    move = config.window_shift - int(previous.source.get("window_shift") or 0)
    frames = tuple(replace(f, spike_begin=f.spike_begin + move, spike_end=f.spike_end + move)
                   for f in previous.frames)
    info = {k: v for k, v in previous.source.items() if k != "window_shift"}
    if config.window_shift:
        info["window_shift"] = config.window_shift
    sync = replace(previous, height=config.spike_h, width=config.image_width, flipud=config.flipud,
                   frames=frames, source=info, with_head=config.with_head)
    return sync, lengths
