"""Deriving each RGB frame's spike window ``[begin, end)`` from one of four sources.

(a) fixed timing (`seqconfig.Timing`: spike rate, frame rate, exposure, offset);
(b) a timestamps file: one line per blur frame, ``START END`` or ``NAME START END``, in spike
    indices or seconds (``# unit: seconds`` header or ``--timestamp-unit``), end exclusive;
(c) one `.dat` per frame: the whole file, a centred window of ``window_spikes`` frames
    (``begin = L//2 - N//2``, the loaders' rule), or the file less ``margins`` at each end;
(d) the recipe's hand-written ``sync.json`` (``{"seq_name", "T", "frames": [{"rgb", ...}]}``).
All functions here are pure: they take parsed inputs and return window lists.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import SyncError, UsageError
from ..inputs.files import read_text_utf8
from ..inputs.sequence_config import Timing, first_sample_at_or_after

Window = tuple[int, int]


def timing_windows(n_frames: int, timing: Timing) -> list[Window]:
    """(a) Windows of frames ``0..n_frames-1`` under fixed timing (see `seqconfig` for the rule)."""
    return [timing.window(i) for i in range(n_frames)]


def read_timestamps(path: str | os.PathLike, unit: str | None, spike_rate: float | None,
                    stems: list[str]) -> list[Window]:
    """(b) Parse a timestamps file into windows, one per blur frame (``stems`` in frame order).

    ``unit`` is ``"spikes"`` or ``"seconds"``; None means: the file's ``# unit:`` header, else
    spikes. Seconds need ``spike_rate`` (Hz) and map time ``t`` to ``ceil(t * spike_rate)``.
    """
    path = Path(path)
    if not path.is_file():
        raise SyncError("timestamps file not found", path=path, found="no such file",
                        expected="one 'START END' line per blur frame")
    rows, header_unit = [], None
    for line_no, line in enumerate(read_text_utf8(path, SyncError).splitlines(), 1):
        text = line.strip()
        if text.startswith("#"):
            key, _, value = text.lstrip("#").partition(":")
            if key.strip().lower() == "unit":
                header_unit = value.strip().lower()
            continue
        if text:
            rows.append((line_no, text.replace(",", " ").split()))
    unit = (unit or header_unit or "spikes").lower()
    if unit not in ("spikes", "seconds"):
        raise SyncError("unknown timestamp unit", path=path, found=unit, expected="spikes or seconds")
    if unit == "seconds" and not spike_rate:
        raise SyncError("timestamps in seconds need the spike rate", path=path, found="no spike_rate",
                        expected="spike_rate in config.yaml or --spike-rate")
    if len(rows) != len(stems):
        raise SyncError("timestamps do not cover every blur frame", path=path,
                        found=f"{len(rows)} lines", expected=f"{len(stems)} (one per blur frame)")
    return [_parse_row(path, line_no, fields, stem, unit, spike_rate)
            for (line_no, fields), stem in zip(rows, stems)]


def _parse_row(path: Path, line_no: int, fields: list[str], stem: str, unit: str,
               spike_rate: float | None) -> Window:
    where = f"line {line_no}"
    if len(fields) == 3:
        name, fields = fields[0], fields[1:]
        if Path(name).stem != stem:
            raise SyncError(f"timestamps {where} names another frame", path=path, found=name,
                            expected=stem, fix="list frames in the blur folder's order")
    if len(fields) != 2:
        raise SyncError(f"timestamps {where} is malformed", path=path, found=" ".join(fields),
                        expected="START END or NAME START END")
    try:
        start, end = (float(v) for v in fields)
    except ValueError as exc:
        raise SyncError(f"timestamps {where} is not numeric", path=path, found=" ".join(fields),
                        expected="two numbers") from exc
    if not (math.isfinite(start) and math.isfinite(end)):
        raise SyncError(f"timestamps {where} is not finite", path=path, found=" ".join(fields),
                        expected="two finite numbers (no inf/nan)")
    if unit == "seconds":
        return first_sample_at_or_after(start * spike_rate), first_sample_at_or_after(end * spike_rate)
    if start != int(start) or end != int(end):
        raise SyncError(f"timestamps {where} has fractional spike indices", path=path,
                        found=" ".join(fields), expected="integers (or '# unit: seconds')")
    return int(start), int(end)


def centred_window(n_frames: int, window_spikes: int) -> Window:
    """``window_spikes`` frames centred in an ``n_frames`` file: ``begin = L//2 - N//2``.

    The rule SpkDeblurNet (``[L//2-28, L//2+28)``), S-SDM (``L//2 - 97//2``) and Spike-Zoo use;
    for odd N in an even-length file it starts one frame later than ``(L-N)//2``.
    """
    begin = n_frames // 2 - window_spikes // 2
    return begin, begin + window_spikes


def per_frame_windows(lengths: list[int], window_spikes: int | None, files: list[str],
                      margins: tuple[int, int] | None = None) -> list[Window]:
    """(c) One `.dat` per frame: the whole file, a `centred_window` of ``window_spikes`` frames,
    or ``[LO, L - HI)`` with ``margins = (LO, HI)``."""
    if window_spikes is not None and window_spikes <= 0:
        raise UsageError("--window-spikes must be positive", found=window_spikes, expected="> 0")
    windows = []
    for n, name in zip(lengths, files):
        if window_spikes is not None:
            if window_spikes > n:
                raise SyncError("per-frame spike file is shorter than --window-spikes", path=name,
                                found=f"{n} spike frames", expected=f">= {window_spikes}",
                                fix="lower --window-spikes (or window_spikes in config.yaml) or omit it "
                                    "to use whole files")
            windows.append(centred_window(n, window_spikes))
        elif margins is not None:
            if sum(margins) >= n:
                raise SyncError("per-frame spike file is not longer than its margins", path=name,
                                found=f"{n} spike frames, margins {list(margins)}",
                                expected=f"> {sum(margins)} frames", fix="lower the margins in config.yaml")
            windows.append((margins[0], n - margins[1]))
        else:
            windows.append((0, n))
    return windows


def read_recipe_sync(path: str | os.PathLike, sequence: str,
                     blur_names: list[str]) -> tuple[list[Window], int | None]:
    """(d) The recipe's ``{"seq_name", "T", "frames": [{"rgb", "spike_begin", "spike_end"}]}``.

    Every blur frame must appear exactly once; returns the windows in blur-folder order and
    the recipe's ``T`` (None when absent): the VRT clip length (frames per training sample,
    `recipe_clip_length`), not the number of frames.
    """
    path = Path(path)
    try:
        raw = json.loads(read_text_utf8(path, SyncError))
    except (OSError, json.JSONDecodeError) as exc:
        raise SyncError("cannot read the recipe's sync.json", path=path, found=str(exc),
                        expected="JSON with seq_name, T, frames") from exc
    frames = raw.get("frames") if isinstance(raw, dict) else None
    if not isinstance(frames, list):
        raise SyncError("recipe sync.json has no frame list", path=path, found=type(frames).__name__,
                        expected='"frames": [{"rgb", "spike_begin", "spike_end"}, ...]')
    if raw.get("seq_name") not in (None, sequence):
        raise SyncError("recipe sync.json names another sequence", path=path, found=raw.get("seq_name"),
                        expected=sequence)
    clip = recipe_clip_length(raw, len(frames), path)
    by_name = {}
    for i, entry in enumerate(frames):
        try:
            name, begin, end = Path(entry["rgb"]).name, entry["spike_begin"], entry["spike_end"]
        except (TypeError, KeyError) as exc:
            raise SyncError(f"recipe frames[{i}] is malformed", path=path, found=entry,
                            expected='{"rgb", "spike_begin", "spike_end"}') from exc
        if not (isinstance(begin, int) and isinstance(end, int)):
            raise SyncError(f"recipe frames[{i}] has non-integer spike indices", path=path,
                            found=f"{begin!r}, {end!r}", expected="integers")
        by_name[name] = (begin, end)
    missing = [n for n in blur_names if n not in by_name]
    if missing:
        raise SyncError("recipe sync.json has no window for some blur frames", path=path,
                        found=f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""),
                        expected=f"all {len(blur_names)} frames of the RGB folder")
    extra = sorted(set(by_name) - set(blur_names))
    if extra:
        raise SyncError("recipe sync.json lists frames that do not exist", path=path,
                        found=", ".join(extra[:5]), expected="only frames present in the RGB folder")
    return [by_name[n] for n in blur_names], clip


def recipe_clip_length(raw: dict, n_frames: int, path) -> int | None:
    """The recipe's ``T``: VRT's clip length, ``1 <= T <= n_frames`` (None when absent)."""
    clip = raw.get("T")
    if clip is None:
        return None
    if not isinstance(clip, int) or isinstance(clip, bool) or not 1 <= clip <= n_frames:
        raise SyncError("recipe sync.json T (VRT clip length, frames per training sample) is out of range",
                        path=path, found=f"T={clip!r} with {n_frames} frames",
                        expected=f"an integer with 1 <= T <= {n_frames}",
                        fix="set T to the clip length you train with (e.g. 6)")
    return clip
