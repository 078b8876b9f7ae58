"""`spikeprep build-sync`: derive, validate and write every sequence's `sync.json`.

A rebuild keeps what it does not recompute from the sync.json it replaces (`spikeprep.alignment.carry`): the split,
T, the frames' source names and the import's identity (``source.import``). A sequence that
``spikeprep import`` wrote (``source.mode == "import"``) keeps the import's windows, moved by
config.yaml's ``window_shift`` (padding kept where the preset pads), unless a flag gives another
window source (timing, timestamps, ``--window-spikes``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ConfigError, SyncError, UsageError, WindowError
from ..inputs import layout
from ..inputs.dat import count_frames
from ..inputs.files import ensure_real_dir, remove_stale_partial
from ..inputs.images import check_image_sizes
from ..inputs.sequence_config import SequenceConfig, Timing, load_config
from ..sync import FrameWindow, SyncFile, check_order, dump_sync, save_sync, sync_path
from . import windows
from .carry import carry_over, previous_sync
from .spike_only import spike_only_names, spike_only_windows

TIMESTAMPS_NAME = "timestamps.txt"


@dataclass(frozen=True)
class SyncOptions:
    """How to align frames and spikes; None fields fall back to each sequence's config.yaml."""

    spike_rate: float | None = None
    frame_rate: float | None = None
    exposure: float | None = None
    offset: float | None = None
    timestamps: str | None = None
    timestamp_unit: str | None = None
    window_spikes: int | None = None

    def __post_init__(self) -> None:
        check_sync_options(self)

    @property
    def window_source(self) -> bool:
        """Whether a flag gives the windows (timing, timestamps, a per-frame window length)."""
        return any(getattr(self, k) is not None for k in
                   ("spike_rate", "frame_rate", "exposure", "offset", "timestamps", "window_spikes"))


def check_sync_options(options: SyncOptions) -> None:
    """UsageError for a build-sync flag that is not a finite number in range (inf/nan included)."""
    ranges = {"spike_rate": "a finite number > 0 (Hz)", "frame_rate": "a finite number > 0 (Hz)",
              "exposure": "a finite number in (0, 1]", "offset": "a finite number of seconds"}
    for name, expected in ranges.items():
        value = getattr(options, name)
        if value is None:
            continue
        ok = math.isfinite(value) and (name == "offset" or value > 0) and (name != "exposure" or value <= 1)
        if not ok:
            raise UsageError(f"--{name.replace('_', '-')} is out of range", found=value, expected=expected)
    if options.window_spikes is not None and options.window_spikes <= 0:
        raise UsageError("--window-spikes must be positive", found=options.window_spikes, expected="> 0")


@dataclass(frozen=True)
class SequenceReport:
    """What build-sync found for one sequence; ``status`` is written/unchanged/kept/dry-run."""

    sync: SyncFile
    mode: str
    stream_lengths: dict[str, int]
    status: str = "dry-run"

    @property
    def lengths(self) -> list[int]:
        return [f.length for f in self.sync.frames]

    def gaps_and_overlaps(self) -> tuple[int, int]:
        """Consecutive windows of one stream with spike frames between them / shared between them."""
        gaps = overlaps = 0
        for prev, cur in zip(self.sync.frames, self.sync.frames[1:]):
            if prev.spike_file == cur.spike_file:
                gaps += cur.spike_begin > prev.spike_end
                overlaps += cur.spike_begin < prev.spike_end
        return gaps, overlaps

    def coverage(self) -> float:
        """Fraction of all spike frames that lie in at least one window."""
        covered = 0
        for name in self.stream_lengths:
            spans = sorted((f.spike_begin, f.spike_end) for f in self.sync.frames if f.spike_file == name)
            reach = 0
            for begin, end in spans:
                covered += max(0, end - max(begin, reach))
                reach = max(reach, end)
        total = sum(self.stream_lengths.values())
        return covered / total if total else 0.0


def _merged_timing(config: SequenceConfig, options: SyncOptions) -> Timing | None:
    flags = {k: getattr(options, k) for k in ("spike_rate", "frame_rate", "exposure", "offset")
             if getattr(options, k) is not None}
    if config.timing is not None:
        return replace(config.timing, **flags)
    if {"spike_rate", "frame_rate"} <= flags.keys():
        return Timing(**flags)
    return None


def _choose_mode(root: Path, source: layout.SequenceSource, options: SyncOptions) -> str:
    spike_dir = root / source.spike_dir
    explicit = options.timestamps or options.spike_rate or options.frame_rate
    if source.recipe and (spike_dir / "sync.json").is_file() and not explicit:
        return "recipe"
    has_stream = any((spike_dir / name).is_file() for name in layout.STREAM_NAMES)
    if not has_stream:
        missing = [s for s in source.stems if not (spike_dir / f"{s}.dat").is_file()]
        if not missing:
            return "per-frame"
        if len(missing) < len(source.stems):
            shown = ", ".join(f"{s}.dat" for s in missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise SyncError(f"{len(missing)} of {len(source.stems)} frames have no per-frame .dat",
                            path=spike_dir, found=f"missing {shown}",
                            expected="one .dat per blur frame, named like it (or one continuous spikes.dat)",
                            fix="add the missing files, or remove those frames from the blur folder")
    if options.timestamps or (spike_dir / TIMESTAMPS_NAME).is_file():
        return "timestamps"
    return "timing"


def config_paths(data_root: str | os.PathLike, source: layout.SequenceSource) -> tuple[Path, Path]:
    """A sequence's ``config.yaml`` and the dataset-level default beside its folder."""
    spike_dir = Path(data_root) / source.spike_dir
    return spike_dir / "config.yaml", Path(data_root) / Path(source.spike_dir).parts[0] / "config.yaml"


def check_names(data_root: str | os.PathLike, sources: list[layout.SequenceSource]) -> None:
    """Sequence names must fit a meta_info.txt line (no whitespace or control characters) and,
    with our suffixes, a file name."""
    for source in sources:
        name, where = layout.suggested_name(source.name), Path(data_root) / Path(source.blur[0]).parent
        layout.check_sequence_name(
            source.name, where,
            fix=f"rename the sequence's folders (blur/, sharp/, spike/) to e.g. {name!r}, then run build-sync again")
        layout.check_name_length(source.name, where, fix="rename the sequence's folders (blur/, sharp/, "
                                 "spike/) to a shorter name, then run build-sync again")


def check_configs(data_root: str | os.PathLike, sources: list[layout.SequenceSource]) -> None:
    """Every sequence needs a config.yaml (its own or the dataset-level one): name all that lack it."""
    lacking = [s for s in sources if not any(p.is_file() for p in config_paths(data_root, s))]
    if lacking:
        shown = ", ".join(s.name for s in lacking[:10]) + (" ..." if len(lacking) > 10 else "")
        raise ConfigError(f"spike config not found for {len(lacking)} of {len(sources)} sequences",
                          path=Path(data_root) / Path(lacking[0].spike_dir).parts[0],
                          found=f"none for {shown}",
                          expected="spike/SEQ/config.yaml per sequence, or one spike/config.yaml for all",
                          fix="add spike/config.yaml with spike_h, spike_w (and flipud) for the whole dataset")


def derive_sequence(data_root: str | os.PathLike, source: layout.SequenceSource,
                    options: SyncOptions = SyncOptions()) -> SequenceReport:
    """Compute and fully validate one sequence's windows (reads headers and sizes, no pixels)."""
    root = Path(data_root)
    spike_dir = root / source.spike_dir
    config = load_config(*config_paths(root, source))
    rgb_size = check_image_sizes(root, list(source.blur) + list(source.sharp or ()))
    _check_registration_size(config, rgb_size, spike_dir / "config.yaml")
    previous = previous_sync(root, source)
    if previous is not None and previous.source.get("mode") == "import" and not options.window_source:
        return _imported_sequence(root, source, config, previous)
    mode = _choose_mode(root, source, options)
    stream = f"{source.spike_dir}/{layout.stream_name(spike_dir)}"
    if mode == "per-frame":
        files = [f"{source.spike_dir}/{stem}.dat" for stem in source.stems]
    else:
        files = [stream] * len(source.blur)
        if not (root / stream).is_file():
            raise SyncError("sequence has no spike stream", path=root / stream, found="missing",
                            expected=f"{' or '.join(layout.STREAM_NAMES)}, or one .dat per blur frame "
                                     "named like it")
    lengths = {name: count_frames(root / name, config.spike_h, config.spike_w) for name in dict.fromkeys(files)}
    if mode == "recipe":  # the recipe's own windows, and its clip length T
        found, clip = windows.read_recipe_sync(spike_dir / "sync.json", source.name,
                                               [Path(p).name for p in source.blur])
    else:
        found, clip = _windows(root, source, mode, config, options, files, lengths), None
    spans = [(begin + config.window_shift, end + config.window_shift)  # after any window source
             for begin, end in found]
    frames = tuple(
        FrameWindow(blur, source.sharp[i] if source.sharp else None, name, begin, end)
        for i, (blur, name, (begin, end)) in enumerate(zip(source.blur, files, spans)))
    _check_windows(frames, lengths, spike_dir)
    source_info = {"mode": mode}
    timing = _merged_timing(config, options)
    if mode == "timing" and timing is not None:
        source_info.update(spike_rate=timing.spike_rate, frame_rate=timing.frame_rate,
                           exposure=timing.exposure, offset=timing.offset)
    if config.window_shift:
        source_info["window_shift"] = config.window_shift
    sync = SyncFile(source.name, config.spike_h, config.image_width, config.flipud, frames, source_info, T=clip,
                    with_head=config.with_head, registration=config.registration)
    return SequenceReport(carry_over(sync, previous), mode, lengths)


def _check_registration_size(config: SequenceConfig, rgb_size, path: Path) -> None:
    """ConfigError when config.yaml's registration was measured on other RGB frames."""
    reg = config.registration
    if reg is not None and rgb_size is not None and tuple(reg["rgb_size"]) != tuple(rgb_size):
        raise ConfigError("registration: rgb_size differs from the sequence's RGB frames", path=path,
                          found=f"{reg['rgb_size'][0]}x{reg['rgb_size'][1]}",
                          expected=f"{rgb_size[0]}x{rgb_size[1]} (the frames' height x width)",
                          fix="re-run 'spikeprep register DATA_ROOT --fix' on these frames")


def _imported_sequence(root: Path, source: layout.SequenceSource, config: SequenceConfig,
                       previous: SyncFile) -> SequenceReport:
    """An imported sequence without a window flag: the import's windows (its preset's rule, as
    written in sync.json) moved by config.yaml's ``window_shift``; split, names, T and padding kept.
    A padded sequence (X4K's) stays padded where a moved window leaves the stream."""
    spike_dir = root / source.spike_dir
    by_blur = {f.blur: f for f in previous.frames}
    if sorted(by_blur) != sorted(source.blur):
        gone = sorted(set(by_blur) - set(source.blur))
        new = sorted(set(source.blur) - set(by_blur))
        raise SyncError("the frames of an imported sequence no longer match the sync.json import wrote",
                        path=spike_dir / "sync.json",
                        found="; ".join(part for part in (
                            gone and f"gone: {', '.join(Path(p).name for p in gone[:5])}",
                            new and f"new: {', '.join(Path(p).name for p in new[:5])}") if part),
                        expected="the blur frames the import linked",
                        fix="re-import the sequence with 'spikeprep import ... --force', or give another "
                            "window source (--timestamps, --spike-rate/--frame-rate, --window-spikes)")
    lengths = {name: count_frames(root / name, config.spike_h, config.spike_w) for name in previous.spike_files}
    old_shift = int(previous.source.get("window_shift") or 0)
    move = config.window_shift - old_shift
    padded = [f for f in previous.frames if f.pad_before or f.pad_after]
    frames = []
    for blur in source.blur:
        f = by_blur[blur]
        begin, end = f.spike_begin - f.pad_before + move, f.spike_end + f.pad_after + move
        if padded:  # the import pads past the stream's ends: so does the moved window
            n = lengths[f.spike_file]
            core_begin, core_end, before, after = max(begin, 0), min(end, n), max(0, -begin), max(0, end - n)
            if core_begin >= core_end:
                raise WindowError(f"frame {Path(blur).name} would lie wholly outside its spike stream",
                                  path=f.spike_file, found=f"[{begin}, {end})",
                                  expected=f"overlapping [0, {lengths[f.spike_file]})",
                                  fix="check window_shift in config.yaml")
            value = padded[0].pad_value if (before or after) else 0
            frames.append(replace(f, spike_begin=core_begin, spike_end=core_end, pad_before=before,
                                  pad_after=after, pad_value=value))
        else:
            frames.append(replace(f, spike_begin=begin, spike_end=end))
    frames = tuple(frames)
    _check_windows(frames, lengths, spike_dir)
    info = {k: v for k, v in previous.source.items() if k != "window_shift"}
    if config.window_shift:
        info["window_shift"] = config.window_shift
    sync = replace(previous, height=config.spike_h, width=config.image_width, flipud=config.flipud,
                   frames=frames, source=info, with_head=config.with_head, registration=config.registration)
    return SequenceReport(sync, "import", lengths)


def _windows(root: Path, source, mode: str, config: SequenceConfig, options: SyncOptions,
             files: list[str], lengths: dict[str, int]) -> list[tuple[int, int]]:
    spike_dir = root / source.spike_dir
    if mode == "per-frame":
        if options.window_spikes is not None:  # the flag overrides config.yaml's window rule
            return windows.per_frame_windows([lengths[f] for f in files], options.window_spikes, files)
        return windows.per_frame_windows([lengths[f] for f in files], config.window_spikes, files,
                                         config.margins)
    timing = _merged_timing(config, options)
    if mode == "timestamps":
        path = Path(options.timestamps) if options.timestamps else spike_dir / TIMESTAMPS_NAME
        if not path.is_absolute() and not path.is_file():
            path = spike_dir / path
        rate = options.spike_rate or (timing.spike_rate if timing else None)
        return windows.read_timestamps(path, options.timestamp_unit, rate, source.stems)
    if timing is None:
        raise SyncError("no way to align frames and spikes", path=spike_dir / "config.yaml",
                        found="no timing, no timestamps.txt, no per-frame .dat files",
                        expected="spike_rate + frame_rate (config.yaml or flags), a timestamps file, "
                                 "or one .dat per frame",
                        fix="add timing to config.yaml or pass --spike-rate/--frame-rate")
    return windows.timing_windows(len(source.blur), timing)


def _label(frame: FrameWindow) -> str:
    """A frame in messages: its blur file's name (spike-only data: its source name)."""
    return Path(frame.blur).name if frame.blur else frame.source_name


def _check_windows(frames: tuple[FrameWindow, ...], lengths: dict[str, int], spike_dir: Path) -> None:
    for i, frame in enumerate(frames):
        n = lengths[frame.spike_file]
        if frame.spike_begin < 0 or frame.spike_end > n:
            raise WindowError(f"frame {i} ({_label(frame)}) has a window outside its spike stream",
                              path=frame.spike_file, found=f"[{frame.spike_begin}, {frame.spike_end})",
                              expected=f"inside [0, {n}) (the stream's length)",
                              fix="check the timing/offset, window_shift or the timestamps; "
                                  "the stream may be truncated")
        if frame.length <= 0:
            raise WindowError(f"frame {i} ({_label(frame)}) has an empty spike window",
                              path=frame.spike_file, found=f"[{frame.spike_begin}, {frame.spike_end})",
                              expected="spike_end > spike_begin", fix="check the exposure and timestamps")
    check_order(frames, spike_dir / "sync.json")


def build_sync(data_root: str | os.PathLike, options: SyncOptions = SyncOptions(), *,
               sequences: tuple[str, ...] = (), force: bool = False, dry_run: bool = False
               ) -> list[SequenceReport]:
    """Validate every sequence and write ``DATA_ROOT/spike/SEQ/sync.json``.

    Idempotent: an identical file is left alone ("unchanged"); a different existing one is kept
    ("kept") unless ``force``. With ``dry_run`` nothing is written. Every sequence is validated
    before anything is written, so a bad sequence leaves all files untouched.
    """
    only = [n for n in spike_only_names(data_root) if not sequences or n in sequences]
    rest = tuple(s for s in sequences if s not in only)
    root = Path(data_root)
    has_rgb = (root / "blur").is_dir() or layout.is_recipe_layout(root)
    sources = layout.discover(data_root, rest) if rest or not (sequences or (only and not has_rgb)) else []
    check_names(data_root, sources)
    check_configs(data_root, sources)
    reports = [derive_sequence(data_root, s, options) for s in sources]
    reports += [_spike_only_sequence(root, name, options) for name in only]
    reports.sort(key=lambda r: r.sync.sequence)
    if dry_run:
        return reports
    return [_write(data_root, r, force) for r in reports]


def _spike_only_sequence(root: Path, name: str, options: SyncOptions) -> SequenceReport:
    """A spike-only sequence (sync.json ``"blur": null``): its import's windows, validated."""
    sync, lengths = spike_only_windows(root, name, options)
    _check_windows(sync.frames, lengths, root / "spike" / name)
    return SequenceReport(sync, "import", lengths)


def _write(data_root, report: SequenceReport, force: bool) -> SequenceReport:
    # sync.json belongs to DATA_ROOT: a linked sequence folder becomes a real folder of links
    # first, so nothing is ever written through a link into the download it points to.
    ensure_real_dir(data_root, Path("spike") / report.sync.sequence)
    path = sync_path(data_root, report.sync.sequence)
    remove_stale_partial(path)  # left by a build-sync that was killed mid-write
    if path.is_file():
        if path.read_bytes() == dump_sync(report.sync).encode("utf-8"):
            return replace(report, status="unchanged")
        if not force:
            return replace(report, status="kept")
    save_sync(path, report.sync)
    return replace(report, status="written")
