"""Caches of a registered rig: crop to the overlap, resample one camera onto the other's grid.

A registered sequence's sync.json carries the registration (matrix: spike px -> full-size RGB
px; overlap: the RGB box ``[x0, y0, x1, y1)`` the spike camera sees). A cache keeps one frame
size, so `plan_layout` takes the largest box of one size that fits inside every sequence's
overlap, centred in each (`centred_box`), and:

* ``--match rgb`` (the default for registered sequences): the RGB frames are cropped to the box
  (no resampling); each spike representation is warped onto the box's grid with the inverse map
  (``cv2.warpPerspective`` with ``WARP_INVERSE_MAP``, linear; the hot-pixel mask nearest) and
  stored as float32 (`RESAMPLED_DTYPE`). Bit-exact representations (``storage: bitpacked``) are
  never resampled: they are refused here.
* ``--match spike``: the box is cut from the spike frame instead (the spike pixels whose centres
  the RGB frame sees, `spike_overlap`): spikes are cropped, never resampled (bit-exact ones too),
  and the RGB frames are warped onto that grid (linear; nearest when a representation is bit-exact).

`Warp` is what one frame needs (in `FrameJob.warp`); `warp_of` derives it from the manifest's
`SequenceRegistration`, so a build and ``verify --data`` resample identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import CacheError, LayoutError, UsageError
from ..inputs.registration_block import Registration
from ..registration.geometry import overlap_box, translation
from .manifest import SequenceRegistration
from .manifest_params import CacheParams, RegistrationParams

#: the float dtype of every resampled representation of a cache
RESAMPLED_DTYPE = "float32"


@dataclass(frozen=True)
class Warp:
    """One registered sequence's crop and resampling in a cache (picklable, sent to workers).

    ``match``: rgb | spike; ``box``: ``(x0, y0, x1, y1)`` cut from the RGB frame (rgb) or the
    spike frame (spike), px, exclusive ends; ``to_source``: 3x3 map from a pixel of the box's grid
    (0-based) to the other camera's pixel; ``rgb_size``: the full RGB frame ``(H, W)``;
    ``nearest``: resample RGB with INTER_NEAREST (spike mode with a bit-exact representation)."""

    match: str
    box: tuple[int, int, int, int]
    to_source: tuple
    rgb_size: tuple[int, int]
    nearest: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the box: the stored frames' size."""
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0


def spike_overlap(reg: Registration) -> tuple[int, int, int, int] | None:
    """The largest spike-frame box ``(x0, y0, x1, y1)`` whose pixel centres map inside the RGB
    frame (where RGB can be sampled without extrapolation), or None."""
    return overlap_box(np.linalg.inv(reg.array), reg.rgb_size, reg.spike_size)


def centred_box(overlap: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The ``size`` (h, w) box centred in ``overlap`` (rounded towards its top left)."""
    x0, y0, x1, y1 = overlap
    h, w = size
    bx, by = x0 + (x1 - x0 - w) // 2, y0 + (y1 - y0 - h) // 2
    return bx, by, bx + w, by + h


@dataclass(frozen=True)
class RegisteredLayout:
    """The crop of a registered build: ``match``, the one ``crop`` size (h, w) and each
    sequence's `Registration` and box."""

    match: str
    crop: tuple[int, int]
    registrations: dict
    boxes: dict

    def shapes(self, channels: int) -> tuple[tuple, tuple]:
        """Stored ``(H, W, 3)`` RGB and ``(C, h, w)`` spike shapes."""
        h, w = self.crop
        return (h, w, 3), (channels, h, w)

    def spike_dtype(self, native: str) -> str:
        """float32 when spikes are resampled (``--match rgb``), else the representation's own."""
        return RESAMPLED_DTYPE if self.match == "rgb" else native

    def params(self, spike_dtype: str, bit_exact: bool) -> RegistrationParams:
        resample = "nearest" if self.match == "spike" and bit_exact else "linear"
        return RegistrationParams(crop=tuple(self.crop), resample=resample, dtype=spike_dtype)

    def entry(self, sequence: str) -> SequenceRegistration:
        reg = self.registrations[sequence]
        return SequenceRegistration(model=reg.model, matrix=reg.matrix, overlap=tuple(reg.overlap),
                                    crop_box=tuple(self.boxes[sequence]))


def bit_exact(params: CacheParams) -> bool:
    """Whether any representation is stored bit-exact (never resampled)."""
    return any(spec.storage == "bitpacked" for spec in params.representations())


def plan_layout(syncs, paths, match: str | None, rgb_size: tuple[int, int]):
    """``(match, RegisteredLayout or None)``: None and ``match`` (None: ``none``) when no sequence
    is registered; errors for a mix, ``--match none``, another RGB size or an empty overlap."""
    regs = [s.registration_record for s in syncs]
    if not any(regs):
        return match or "none", None
    if not all(regs):
        plain = [s.sequence for s, r in zip(syncs, regs) if r is None]
        raise CacheError("some sequences are registered and some are not", path=paths[regs.index(None)],
                         found=f"no registration in {', '.join(plain[:5])}",
                         expected="all sequences of one cache registered (sync.json 'registration') or none",
                         fix="run 'spikeprep register DATA_ROOT --fix' for the others (then build-sync "
                             "--force), or cache them separately (--sequence / another DATA_ROOT)")
    match = match or "rgb"
    if match == "none":
        raise UsageError("registered sequences need --match rgb or --match spike", found="--match none",
                         expected="rgb (crop RGB to the overlap, resample spikes; the default) | spike "
                                  "(crop spikes, resample RGB)")
    for s, reg, path in zip(syncs, regs, paths):
        if tuple(reg.rgb_size) != tuple(rgb_size):
            raise CacheError("the registration was measured on another RGB frame size", path=path,
                             found=f"rgb_size {reg.rgb_size[0]}x{reg.rgb_size[1]}",
                             expected=f"{rgb_size[0]}x{rgb_size[1]} (the frames' size)",
                             fix="re-run 'spikeprep register DATA_ROOT --fix', then build-sync --force")
    overlaps = [tuple(r.overlap) if match == "rgb" else spike_overlap(r) for r in regs]
    for s, box, path in zip(syncs, overlaps, paths):
        if box is None:
            raise CacheError("the registration leaves no overlap to crop", path=path, found=s.sequence,
                             expected="a spike view that meets the RGB frame",
                             fix="re-run 'spikeprep register DATA_ROOT'")
    crop = (min(b[3] - b[1] for b in overlaps), min(b[2] - b[0] for b in overlaps))
    return match, RegisteredLayout(match, crop, {s.sequence: r for s, r in zip(syncs, regs)},
                                   {s.sequence: centred_box(b, crop) for s, b in zip(syncs, overlaps)})


def check_storage(params: CacheParams) -> None:
    """UsageError for a bit-exact representation that ``--match rgb`` would resample."""
    if params.registration is not None and params.match == "rgb" and bit_exact(params):
        raise UsageError("a bit-exact representation (raw spike windows) is never resampled",
                         found="--match rgb with a registered rig",
                         expected="--match spike (the spikes are cropped, the RGB frames resampled nearest)",
                         fix="pass --match spike, or cache the raw windows separately")


def warp_of(entry: SequenceRegistration, params: CacheParams, rgb_size: tuple[int, int]) -> Warp:
    """The `Warp` of a sequence's manifest entry in a cache with ``params`` (``rgb_size``: the
    full RGB frame the registration was measured on)."""
    matrix = np.array(entry.matrix, np.float64)
    x0, y0 = entry.crop_box[:2]
    if params.match == "rgb":
        to_source = np.linalg.inv(matrix) @ translation(x0, y0)
    else:
        to_source = matrix @ translation(x0, y0)
    return Warp(params.match, tuple(entry.crop_box), tuple(map(tuple, to_source.tolist())),
                tuple(rgb_size), nearest=params.match == "spike" and bit_exact(params))


def _warp(image: np.ndarray, warp: Warp, interpolation: int) -> np.ndarray:
    h, w = warp.size
    return cv2.warpPerspective(image, np.array(warp.to_source, np.float64), (w, h),
                               flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def rgb_view(image: np.ndarray, warp: Warp, path: Path) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB frame as stored: cropped (rgb) or resampled (spike)."""
    if image.shape[:2] != tuple(warp.rgb_size):
        raise LayoutError("RGB frame size differs from the registration's", path=path,
                          found=f"{image.shape[0]}x{image.shape[1]}",
                          expected=f"{warp.rgb_size[0]}x{warp.rgb_size[1]} (rgb_size in sync.json)",
                          fix="re-run 'spikeprep register DATA_ROOT --fix', then build-sync --force")
    if warp.match == "rgb":
        x0, y0, x1, y1 = warp.box
        return np.ascontiguousarray(image[y0:y1, x0:x1])
    return _warp(image, warp, cv2.INTER_NEAREST if warp.nearest else cv2.INTER_LINEAR)


def spike_view(array: np.ndarray, warp: Warp, dtype, bitexact: bool = False) -> np.ndarray:
    """A ``(C, h, w)`` representation as stored: resampled onto the crop as ``dtype`` (rgb) or
    cropped, dtype kept (spike). ``bitexact`` arrays are never resampled."""
    if warp.match == "spike":
        x0, y0, x1, y1 = warp.box
        return np.ascontiguousarray(array[:, y0:y1, x0:x1])
    if bitexact:
        raise UsageError("a bit-exact representation is never resampled", found="--match rgb",
                         expected="--match spike")
    src = np.asarray(array, np.float32)
    return np.stack([_warp(channel, warp, cv2.INTER_LINEAR) for channel in src]).astype(dtype, copy=False)


def mask_view(mask: np.ndarray, warp: Warp) -> np.ndarray:
    """An ``(h, w)`` uint8 hot-pixel mask on the stored grid (nearest; cropped with ``spike``)."""
    if warp.match == "spike":
        x0, y0, x1, y1 = warp.box
        return np.ascontiguousarray(mask[y0:y1, x0:x1])
    return _warp(np.ascontiguousarray(mask, np.uint8), warp, cv2.INTER_NEAREST)


def job_warp(entry, params: CacheParams, sync) -> Warp | None:
    """The `Warp` ``verify --data`` recomputes a sequence's frames with (None: not registered);
    the RGB size is sync.json's (0 x 0 when it lost its registration: every frame then fails
    to recompute, naming the size)."""
    if entry.registration is None:
        return None
    reg = sync.registration_record
    return warp_of(entry.registration, params, reg.rgb_size if reg is not None else (0, 0))


def rederive(params: CacheParams, sequences: dict, syncs: dict, add=None) -> list[tuple[str | None, str]]:
    """``(sequence, what)`` for every way the cache's registration (params.registration, each
    sequence's matrix, overlap and crop box) differs from what the sync.json files give now;
    each also passed to ``add(sequence, None, None, what)`` when given (`VerifyReport.add`)."""
    out = _rederive(params, sequences, syncs)
    for seq, what in out if add is not None else ():
        add(seq, None, None, what)
    return out


def _rederive(params: CacheParams, sequences: dict, syncs: dict) -> list[tuple[str | None, str]]:
    out = []
    for seq, sync in sorted(syncs.items()):
        built, now = sequences[seq].registration, sync.registration_record
        if built is None and now is not None:
            out.append((seq, "sync.json now carries a registration; the cache was built without one"))
        elif built is not None and now is None:
            out.append((seq, "sync.json lost the registration the cache was built with"))
        elif built is not None and (built.model, tuple(built.matrix), tuple(built.overlap)) != (
                now.model, tuple(now.matrix), tuple(now.overlap)):
            out.append((seq, "sync.json's registration differs from the one the cache was built with"))
    if out or params.registration is None or set(syncs) != set(sequences):
        return out
    ordered = [syncs[s] for s in sorted(syncs)]
    try:
        _, layout = plan_layout(ordered, [None] * len(ordered), params.match,
                                ordered[0].registration_record.rgb_size)
    except (CacheError, UsageError) as err:
        return [(None, f"the registration cannot be planned again: {err}")]
    if tuple(layout.crop) != tuple(params.registration.crop):
        out.append((None, f"params.registration.crop {list(params.registration.crop)} differs from the "
                          f"{list(layout.crop)} the sync.json files give"))
    out += [(seq, f"crop_box {list(sequences[seq].registration.crop_box)} differs from the {list(box)} "
                  "the sync.json files give")
            for seq, box in sorted(layout.boxes.items()) if tuple(box) != tuple(sequences[seq].registration.crop_box)]
    return out
