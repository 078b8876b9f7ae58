"""One frame's records, computed from the sources: a pure function of the files it reads and the
`FrameConfig`, so workers, a resumed run and ``verify --data`` all produce the same bytes.

`compute_frame` reads the blur/sharp png (decoded to RGB, resized with ``--match spike``), voxelizes
the frame's spike window through a fresh memory map, repairs hot pixels, resizes with
``--match rgb``, and encodes the records; it also returns their checksums, the png
fingerprints and the channel histograms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatError, LayoutError, VoxelError
from ..inputs import fingerprint
from ..inputs.dat import SpikeStream
from ..inputs.images import read_image
from ..representations.context import StreamWindow
from ..representations.hot_pixels import detect_hot_pixels, firing_rate, repair_hot_pixels
from ..sync import SyncFile
from . import registered
from .hot_list import mask_of
from .manifest_params import CacheParams, ReprSpec
from .records import RECORD_CHECKSUM_ALGORITHM, checksum, encode_record, frame_key, hot_pixels_key, pack_bits
from .registered import Warp
from .stats import channel_histograms


@dataclass(frozen=True)
class FrameConfig:
    """Everything `compute_frame` needs besides the frame itself (picklable, sent to workers):
    the cache's params, the dataset root and the native spike frame size ``(spike_h, spike_w)``
    (image pixels: with ``with_head`` the files' rows hold 16 head columns more)."""

    data_root: str
    spike_h: int
    spike_w: int
    params: CacheParams
    #: record checksum algorithm (`spikeprep.inputs.fingerprint`); a resumed build keeps its journal's
    checksum_algorithm: str = RECORD_CHECKSUM_ALGORITHM
    with_head: bool = False

    def open_stream(self, spike_file: str) -> SpikeStream:
        """A stream of the dataset (DATA_ROOT-relative ``spike_file``) read as the sequences' sync.json says."""
        return SpikeStream(filepath=Path(self.data_root) / spike_file, spike_h=self.spike_h,
                           spike_w=self.spike_w + (16 if self.with_head else 0), strip_head=self.with_head,
                           print_dat_detail=False)

    @property
    def rgb_shape(self) -> tuple[int, int, int]:
        return self.params.rgb_shape

    @property
    def spike_shape(self) -> tuple[int, int, int]:
        return self.params.spike_shape

    @property
    def spike_dtype(self) -> np.dtype:
        return np.dtype(self.params.spike_dtype)


@dataclass(frozen=True)
class FrameJob:
    sequence: str
    index: int
    blur: str
    sharp: str | None
    spike_file: str
    spike_begin: int
    spike_end: int
    pad_before: int = 0
    pad_after: int = 0
    pad_value: int = 0
    #: a registered sequence's crop and resampling (`spikeprep.cache.registered.Warp`), or None
    warp: Warp | None = None

    @classmethod
    def of(cls, sequence: str, index: int, frame, warp: Warp | None = None) -> "FrameJob":
        """The job of a `spikeprep.sync.FrameWindow` (padding included)."""
        return cls(sequence, index, frame.blur, frame.sharp, frame.spike_file, frame.spike_begin,
                   frame.spike_end, frame.pad_before, frame.pad_after, frame.pad_value, warp)

    @property
    def window_len(self) -> int:
        """Spike frames voxelized, padding included."""
        return self.pad_before + self.spike_end - self.spike_begin + self.pad_after


def padded(packed: np.ndarray, job: FrameJob) -> np.ndarray:
    """``(L, H*W/8)`` packed window with the job's padding frames (all bits ``pad_value``) added
    before and after; the window itself when there is none."""
    if not (job.pad_before or job.pad_after):
        return packed
    fill = 0xFF if job.pad_value else 0x00
    pad = lambda n: np.full((n, packed.shape[1]), fill, np.uint8)  # noqa: E731
    return np.concatenate([pad(job.pad_before), packed, pad(job.pad_after)])


@dataclass
class FrameResult:
    index: int
    records: list[tuple[str, bytes]]
    checksums: dict[str, str]
    sources: dict[str, dict]
    hists: list
    window_len: int
    conversions: dict = field(default_factory=dict)  # kind -> DATA_ROOT-relative png (spikeprep.inputs.images)
    #: channel histograms of each further representation (name -> hists; several representations)
    more_hists: dict = field(default_factory=dict)


def match_rgb(image: np.ndarray, cfg: FrameConfig, path) -> np.ndarray:
    """Resize to the stored RGB shape (``--match spike``: INTER_AREA); check the shape."""
    h, w, c = cfg.rgb_shape
    if cfg.params.match == "spike" and image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, image.shape[2])
    if image.shape != tuple(cfg.rgb_shape):
        raise LayoutError("RGB frame size differs from the dataset's", path=path,
                          found=f"{image.shape}", expected=f"{tuple(cfg.rgb_shape)} (from the first frame)")
    return image


def match_spike(voxels: np.ndarray, cfg: FrameConfig) -> np.ndarray:
    """``--match rgb``: each channel resized to the RGB size with INTER_NEAREST (dtype kept)."""
    _, h, w = cfg.spike_shape
    if voxels.shape[1:] == (h, w):
        return voxels
    out = np.empty((voxels.shape[0], h, w), voxels.dtype)
    for c, channel in enumerate(voxels):
        out[c] = cv2.resize(channel, (w, h), interpolation=cv2.INTER_NEAREST)
    return out


def window_of(stream: SpikeStream, job: FrameJob, rep):
    """What the representation ``rep`` computes from: ``(L, h*w/8)`` packed spike frames, the
    job's window with its padding frames (a view of the open ``stream`` where there is no
    padding); for a representation with ``context`` (tfi), a `StreamWindow`: the stream frames
    ``[lo, hi)`` it asks for and where the window lies (padded windows refused)."""
    if not hasattr(rep, "context"):
        return padded(stream.packed(job.spike_begin, job.spike_end), job)
    where = f"{job.spike_file}, frame {job.index} of {job.sequence}"
    if job.pad_before or job.pad_after:
        raise VoxelError(f"--repr {rep.name} reads the stream around each window, but this window is padded "
                         "past the stream's ends", path=where,
                         found=f"pad_before={job.pad_before}, pad_after={job.pad_after}",
                         expected="windows inside the stream", fix="use a representation without context "
                         "(bins, tfp, raw, ...) for padded datasets")
    try:
        lo, hi = rep.context(job.spike_begin, job.spike_end, len(stream))
    except VoxelError as err:
        raise VoxelError(err.what, path=where, found=err.found, expected=err.expected, fix=err.fix) from None
    return StreamWindow(stream.packed(lo, hi), lo, job.spike_begin, job.spike_end, len(stream))


def compute_voxels(job: FrameJob, cfg: FrameConfig, mask: np.ndarray | None,
                   spec: ReprSpec | None = None) -> np.ndarray:
    """The stored ``(C, h, w)`` array of one frame for representation ``spec`` (None: the cache's
    first): compute, repair hot pixels, match size."""
    spec = spec or cfg.params.representations()[0]
    rep = spec.representation()
    resampled = job.warp is not None and job.warp.match == "rgb"  # computed natively, then warped
    out = None if resampled else np.empty((spec.channels, cfg.spike_h, cfg.spike_w), spec.dtype)
    # a fresh memory map per frame: unmapped right after, so pages of earlier windows never
    # accumulate in this process's RSS however long the stream is
    with cfg.open_stream(job.spike_file) as stream:
        voxels = rep.compute(window_of(stream, job, rep), cfg.spike_h, cfg.spike_w, flipud=cfg.params.flipud,
                             out=out)
    if mask is not None:
        voxels = repair_hot_pixels(voxels, mask)
    if job.warp is not None:  # a registered rig: onto the crop's grid
        return registered.spike_view(voxels, job.warp, spec.dtype, spec.storage == "bitpacked")
    return match_spike(np.asarray(voxels, spec.dtype), cfg)


def rgb_records(job: FrameJob, cfg: FrameConfig) -> tuple[list, dict, dict]:
    """``(records, png fingerprints, conversions)`` of the frame's blur and sharp images (none for
    a missing one: spike-only data has no blur, real recordings no sharp either; its grayscale
    ground truth stays one channel)."""
    root = Path(cfg.data_root)
    records, sources, conversions = [], {}, {}
    for kind, rel in (("blur", job.blur), ("sharp", job.sharp)):
        if rel is None:
            continue
        image, fingerprint, conversion = read_image(root / rel, keep_gray=not cfg.params.has_blur)
        sources[rel] = fingerprint
        if conversion is not None:
            conversions.setdefault(conversion, rel)
        stored = (match_rgb(image, cfg, root / rel) if job.warp is None
                  else registered.rgb_view(image, job.warp, root / rel))
        records.append((frame_key(job.sequence, job.index, kind), encode_record(stored)))
    return records, sources, conversions


def spike_record(job: FrameJob, spec: ReprSpec, array: np.ndarray) -> tuple[str, bytes]:
    """``(key, value)`` of one representation's record (bit-packed when its storage says so)."""
    stored = pack_bits(array) if spec.storage == "bitpacked" else array
    return frame_key(job.sequence, job.index, spec.kind), encode_record(stored, job.spike_begin, job.spike_end)


def compute_frame(job: FrameJob, cfg: FrameConfig, mask: np.ndarray | None = None,
                  with_stats: bool = True) -> FrameResult:
    """Encode one frame's records (blur, sharp, one per representation: ``spike``, then
    ``spike.NAME`` for each further one), their checksums, png fingerprints, stats (channel
    histograms of each representation's logical array, before any bit-packing)."""
    records, sources, conversions = rgb_records(job, cfg)
    hists, more = [], {}
    for spec in cfg.params.representations():
        voxels = compute_voxels(job, cfg, mask, spec)
        records.append(spike_record(job, spec, voxels))
        if with_stats and spec.first:
            hists = channel_histograms(voxels)
        elif with_stats:
            more[spec.name] = channel_histograms(voxels)
    return FrameResult(job.index, records, {k: checksum(v, cfg.checksum_algorithm) for k, v in records},
                       sources, hists, job.window_len, conversions, more)


# -- per sequence ---------------------------------------------------------------------------

def sequence_hot_pixels(data_root: Path, sync: SyncFile) -> np.ndarray:
    """``(h, w)`` bool hot-pixel mask of a sequence: firing rate over all of its streams."""
    total, frames = None, 0
    for rel in sync.spike_files:
        with sync.open_stream(data_root, rel) as stream:
            rate = np.asarray(firing_rate(stream), np.float64) * len(stream)
            total = rate if total is None else total + rate
            frames += len(stream)
    mask = np.asarray(detect_hot_pixels(total / max(frames, 1)), bool)
    return mask if sync.flipud else np.ascontiguousarray(mask[::-1])  # firing_rate is flipud=True


def sequence_mask(data_root: Path, sync: SyncFile, params: CacheParams) -> np.ndarray | None:
    """A sequence's ``(h, w)`` repair mask: detected (``detect``), from qc's list (``list``), or
    None (``off``)."""
    if params.hot_pixels == "detect":
        return sequence_hot_pixels(data_root, sync)
    if params.hot_pixels == "list":
        return mask_of(params.hot_pixel_list.get(sync.sequence, []), (sync.height, sync.width))
    return None


def hot_pixel_record(sequence: str, mask: np.ndarray, cfg: FrameConfig,
                     warp: Warp | None = None) -> tuple[str, bytes]:
    """``SEQ/hot_pixels``: the ``(h, w)`` uint8 mask at the stored spike size (INTER_NEAREST
    upsampled with ``--match rgb``; a registered sequence's ``warp``: cropped or resampled
    nearest), aligned with the stored voxels."""
    if warp is not None:
        return hot_pixels_key(sequence), encode_record(registered.mask_view(mask.astype(np.uint8), warp))
    mask = match_spike(mask.astype(np.uint8)[None], cfg)[0]
    return hot_pixels_key(sequence), encode_record(mask)


def dat_sources(root: Path, sync_path: str, sync: SyncFile, sync_fingerprint: dict | None = None) -> dict[str, dict]:
    """Fingerprints of a sequence's sync.json (``sync_path``, relative to ``root``) and spike files.
    ``sync_fingerprint``: that of the sync.json bytes ``sync`` was parsed from (taken as is: the
    file on disk may have been rewritten since)."""
    out = {} if sync_fingerprint is None else {sync_path: dict(sync_fingerprint)}
    for rel in (*([] if sync_fingerprint is not None else [sync_path]), *sync.spike_files):
        try:
            out[rel] = fingerprint.hash_file(root / rel)
        except OSError as exc:
            raise DatError("source file cannot be read", path=root / rel,
                           found=exc.strerror or str(exc), expected="a readable file",
                           fix="check the path in sync.json and the file's permissions") from None
    return out
