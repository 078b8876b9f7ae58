"""`sync.json`: which spike frames belong to each RGB frame. This module owns the format.

Core schema (fixed; tools outside this repo read it, so fields are only ever added)::

    {"format": "spikeprep.sync", "version": 1, "sequence": "SEQ",
     "spike": {"height": H, "width": W, "flipud": true},
     "frames": [{"blur": "blur/SEQ/000000.png", "sharp": "sharp/SEQ/000000.png" | null,
                 "spike_file": "spike/SEQ/spikes.dat", "spike_begin": 120, "spike_end": 520}, ...]}

Paths are relative to DATA_ROOT, ``spike_end`` is exclusive, frames are in order. Extra
top-level fields (``source``: how the windows were derived) are written alongside.

Added fields (written only when they carry information, so older files stay valid):

- top level ``split`` (the dataset's own split of the sequence, e.g. ``"train"``/``"test"``,
  written by ``spikeprep import``) and ``T`` (VRT clip length from the recipe's sync form);
- ``spike.with_head`` (true for SpikeCV's sps10 layout: ``spike.width`` is then the file's row
  width, 416, and columns 400..415 are the camera's head, not image: readers drop them, so the
  image is ``width - 16`` wide; `SyncFile.width` is that image width);
- per frame ``blur: null`` (spike-only data, no RGB input: every frame of the sequence then has
  none; ``sharp`` is the ground truth, or null too for real recordings without one);
- per frame ``name`` (the frame's name in the source dataset, e.g. ``"000047"``) and the
  padding ``pad_before``/``pad_after`` (spike frames of ``pad_value``, 0 or 1, that the
  window has before/after the core ``[spike_begin, spike_end)``, which always lies inside the
  stream, so a tool that ignores padding still reads valid indices);
- top level ``registration`` (a registered rig: the spike camera sees a shifted, turned or
  scaled part of the RGB view): ``{"model", "matrix", "overlap", "spike_size", "rgb_size"}``,
  the ``registration:`` block of config.yaml as build-sync read it
  (`spikeprep.inputs.registration_block`); ``spike_size`` equals ``[height, width]`` (image
  width). Fingerprinting sync.json therefore covers the registration.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, SyncError
from .inputs.dat import HEAD_COLUMNS, SpikeStream
from .inputs.files import read_text_utf8, write_text_atomic
from .inputs.registration_block import Registration

FORMAT = "spikeprep.sync"
VERSION = 1
SYNC_NAME = "sync.json"


@dataclass(frozen=True)
class FrameWindow:
    """One RGB frame and its spike window ``[spike_begin, spike_end)`` in ``spike_file``.

    ``blur`` is None for spike-only data (a frame that is a spike window, with a GT image as
    ``sharp`` or with neither; sync.json then says ``"blur": null``)."""

    blur: str | None
    sharp: str | None
    spike_file: str
    spike_begin: int
    spike_end: int
    name: str | None = None
    pad_before: int = 0
    pad_after: int = 0
    pad_value: int = 0

    @property
    def length(self) -> int:
        """Spike frames in the window, padding included (what the representation sees)."""
        return self.pad_before + self.spike_end - self.spike_begin + self.pad_after

    @property
    def source_name(self) -> str:
        """The frame's name in the source dataset: ``name``, else the blur file's stem (spike-only:
        the sharp file's, else the spike file's)."""
        if self.name is not None:
            return self.name
        return Path(self.blur or self.sharp or self.spike_file).stem

    def to_dict(self) -> dict:
        out = {"blur": self.blur, "sharp": self.sharp, "spike_file": self.spike_file,
               "spike_begin": self.spike_begin, "spike_end": self.spike_end}
        if self.name is not None:
            out["name"] = self.name
        if self.pad_before or self.pad_after:
            out.update(pad_before=self.pad_before, pad_after=self.pad_after, pad_value=self.pad_value)
        return out


@dataclass(frozen=True)
class SyncFile:
    """A parsed `sync.json`: spike geometry plus one `FrameWindow` per RGB frame, in order.

    ``width`` is the image width the spike frames have once read (`open_stream`); with
    ``with_head`` the file's rows are ``width + 16`` wide (`file_width`)."""

    sequence: str
    height: int
    width: int
    flipud: bool
    frames: tuple[FrameWindow, ...]
    source: dict = field(default_factory=dict)
    split: str | None = None
    T: int | None = None
    with_head: bool = False
    #: a registered rig's registration (`Registration.to_dict` form, validated), or None
    registration: dict | None = None

    @property
    def file_width(self) -> int:
        """Pixels per stored row: the image width, plus the 16 head columns with ``with_head``."""
        return self.width + len(HEAD_COLUMNS) if self.with_head else self.width

    def open_stream(self, data_root: str | os.PathLike, spike_file: str, **options) -> SpikeStream:
        """The `SpikeStream` of ``spike_file`` (DATA_ROOT-relative) with this file's geometry:
        frames ``height x width`` (head columns stripped with ``with_head``)."""
        return SpikeStream(filepath=Path(data_root) / spike_file, spike_h=self.height,
                           spike_w=self.file_width, strip_head=self.with_head,
                           **{"print_dat_detail": False, **options})

    def to_dict(self) -> dict:
        spike = {"height": self.height, "width": self.file_width, "flipud": self.flipud}
        if self.with_head:
            spike["with_head"] = True
        out = {
            "format": FORMAT,
            "version": VERSION,
            "sequence": self.sequence,
            "spike": spike,
            "frames": [f.to_dict() for f in self.frames],
            "source": self.source,
        }
        if self.split is not None:
            out["split"] = self.split
        if self.T is not None:
            out["T"] = self.T
        if self.registration is not None:
            out["registration"] = self.registration
        return out

    @property
    def spike_only(self) -> bool:
        """True for spike-only data: no frame has a blur (RGB input) image."""
        return all(f.blur is None for f in self.frames)

    @property
    def registration_record(self) -> Registration | None:
        """``registration`` as a `Registration` (None: not a registered rig)."""
        return None if self.registration is None else Registration.from_dict(self.registration)

    @property
    def spike_files(self) -> list[str]:
        """Distinct spike files, in order of first use."""
        return list(dict.fromkeys(f.spike_file for f in self.frames))


def sync_path(data_root: str | os.PathLike, sequence: str) -> Path:
    """Where a sequence's sync.json lives: ``DATA_ROOT/spike/SEQ/sync.json``."""
    return Path(data_root) / "spike" / sequence / SYNC_NAME


def find_sync_files(data_root: str | os.PathLike) -> list[Path]:
    """All ``DATA_ROOT/spike/*/sync.json``, sorted by sequence name."""
    return sorted((Path(data_root) / "spike").glob(f"*/{SYNC_NAME}"))


def _require(cond: bool, what: str, path, found, expected) -> None:
    if not cond:
        raise SyncError(what, path=path, found=found, expected=expected,
                        fix="re-create it with 'spikeprep build-sync DATA_ROOT --force'")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_frame(raw, index: int, path) -> FrameWindow:
    where = f"frames[{index}]"
    _require(isinstance(raw, dict), f"{where} is not an object", path, type(raw).__name__, "an object")
    _require(isinstance(raw.get("spike_file"), str), f"{where}.spike_file is missing or not a string", path,
             raw.get("spike_file"), "a path relative to DATA_ROOT")
    _require("blur" in raw and (raw["blur"] is None or isinstance(raw["blur"], str)),
             f"{where}.blur is missing or not a string", path, raw.get("blur"),
             "a path relative to DATA_ROOT (null: spike-only data)")
    sharp = raw.get("sharp")
    _require(sharp is None or isinstance(sharp, str), f"{where}.sharp must be a path or null", path,
             sharp, "a string or null")
    begin, end = raw.get("spike_begin"), raw.get("spike_end")
    _require(_is_int(begin) and _is_int(end), f"{where} spike_begin/spike_end must be integers", path,
             f"{begin!r}, {end!r}", "integer spike indices")
    _require(0 <= begin < end, f"{where} has an empty or negative spike window", path,
             f"[{begin}, {end})", "0 <= spike_begin < spike_end")
    name = raw.get("name")
    _require(name is None or (isinstance(name, str) and name and "/" not in name),
             f"{where}.name must be a file name without '/'", path, name, "e.g. \"000047\"")
    pads = [raw.get(k, 0) for k in ("pad_before", "pad_after")]
    _require(all(_is_int(p) and p >= 0 for p in pads), f"{where} pad_before/pad_after must be "
             "non-negative integers", path, pads, "spike frames of padding, >= 0")
    value = raw.get("pad_value", 0)
    _require(value in (0, 1) and not isinstance(value, bool), f"{where}.pad_value must be 0 or 1", path,
             value, "0 (frames of zeros) or 1 (frames of ones)")
    return FrameWindow(raw["blur"], sharp, raw["spike_file"], begin, end, name, pads[0], pads[1], value)


def parse_sync(raw: object, path: str | os.PathLike | None = None) -> SyncFile:
    """Validate a loaded sync.json object (schema, types, windows non-empty and ordered)."""
    _require(isinstance(raw, dict), "sync.json must be a JSON object", path, type(raw).__name__, "an object")
    _require(raw.get("format") == FORMAT, "not a spikeprep sync file", path, raw.get("format"), FORMAT)
    _require(raw.get("version") == VERSION, "unsupported sync.json version", path, raw.get("version"), VERSION)
    _require(isinstance(raw.get("sequence"), str), "sync.json has no sequence name", path,
             raw.get("sequence"), "a string")
    spike = raw.get("spike")
    _require(isinstance(spike, dict) and _is_int(spike.get("height")) and _is_int(spike.get("width"))
             and isinstance(spike.get("flipud"), bool), "sync.json 'spike' block is malformed", path,
             spike, '{"height": int, "width": int, "flipud": bool}')
    frames_raw = raw.get("frames")
    _require(isinstance(frames_raw, list) and frames_raw, "sync.json has no frames", path,
             frames_raw if not isinstance(frames_raw, list) else "[]", "a non-empty list")
    frames = tuple(_parse_frame(f, i, path) for i, f in enumerate(frames_raw))
    check_order(frames, path)
    blurs = [f.blur is None for f in frames]
    _require(all(blurs) or not any(blurs), "some frames have a blur image and some do not", path,
             f"{sum(blurs)} of {len(frames)} with \"blur\": null", "all (spike-only data) or none")
    split, clip = raw.get("split"), raw.get("T")
    _require(split is None or (isinstance(split, str) and split), "sync.json 'split' must be a name", path,
             split, 'e.g. "train" or "test"')
    _require(clip is None or (_is_int(clip) and 1 <= clip <= len(frames)), "sync.json 'T' (VRT clip "
             "length) is out of range", path, clip, f"an integer in [1, {len(frames)}] (the frame count)")
    with_head = spike.get("with_head", False)
    _require(isinstance(with_head, bool) and (not with_head or spike["width"] >= 416),
             "sync.json 'spike.with_head' must be a boolean, with rows of at least 416 pixels", path,
             spike, '{"height": int, "width": 416, "flipud": bool, "with_head": true}')
    width = spike["width"] - len(HEAD_COLUMNS) if with_head else spike["width"]
    registration = raw.get("registration")
    if registration is not None:
        try:
            registration = Registration.from_dict(registration, path, (spike["height"], width)).to_dict()
        except ConfigError as err:
            raise SyncError(f"sync.json {err.what}", path=path, found=err.found, expected=err.expected,
                            fix="re-run 'spikeprep register DATA_ROOT --fix' (or fix config.yaml's "
                                "registration block), then 'spikeprep build-sync DATA_ROOT --force'") from None
    return SyncFile(raw["sequence"], spike["height"], width, spike["flipud"], frames,
                    raw.get("source") or {}, split, clip, with_head, registration)


def check_order(frames: tuple[FrameWindow, ...] | list[FrameWindow], path=None) -> None:
    """Windows in the same spike file must start in frame order."""
    last: dict[str, tuple[int, int]] = {}
    for i, frame in enumerate(frames):
        previous = last.get(frame.spike_file)
        if previous is not None and frame.spike_begin < previous[1]:
            raise SyncError("spike windows are out of order", path=path,
                            found=f"frame {i} starts at {frame.spike_begin}, before frame {previous[0]}'s "
                                  f"start {previous[1]}",
                            expected="spike_begin non-decreasing in frame order",
                            fix="sort the frames or fix the timestamps")
        last[frame.spike_file] = (i, frame.spike_begin)


def load_sync(path: str | os.PathLike) -> SyncFile:
    """Read and validate a sync.json file."""
    path = Path(path)
    if not path.is_file():
        raise SyncError("sync.json not found", path=path, found="no such file", expected="a sync.json",
                        fix="run 'spikeprep build-sync DATA_ROOT' first")
    try:
        raw = json.loads(read_text_utf8(path, SyncError))
    except json.JSONDecodeError as exc:
        raise SyncError("sync.json is not valid JSON", path=path, found=str(exc), expected="JSON") from exc
    return parse_sync(raw, path)


def dump_sync(sync: SyncFile) -> str:
    """The exact text written for a SyncFile (used to compare with an existing file)."""
    return json.dumps(sync.to_dict(), indent=1) + "\n"


def save_sync(path: str | os.PathLike, sync: SyncFile) -> None:
    """Write sync.json atomically (temp file + rename)."""
    write_text_atomic(path, dump_sync(sync))
