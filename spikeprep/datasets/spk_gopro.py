"""`spk-gopro`: SpkDeblurNet's Spk-GoPro (hnmizuho/SpkDeblurNet, codes/dataset/gopro_sequence.py).

Layout::

    GOPRO_Large/{train,test}/SEQ/{blur,blur_gamma,sharp}/NNNNNN.png        720x1280
    GOPRO_Large_spike_seq/{train,test}/SEQ/spike/NNNNNN.dat               360x640, flipud

One ``.dat`` per blurry frame, 8 x (the second field of SEQ: 07 -> 56, 11 -> 88, 13 -> 104)
spike frames (gopro_sequence_process.py cuts them from a continuous stream). The loader reads
``blur_gamma`` and feeds the centre 56 frames, ``spike[L//2-28 : L//2+28]``.
"""

from __future__ import annotations

from pathlib import Path

from ..alignment.windows import centred_window
from ..errors import LayoutError, UsageError
from .base import FramePlan, ImportOptions, ImportPlan, SequencePlan, reject_options
from .scan import images, one_size, pick_spike_size, require_all, require_dir, stream_length, subdirs

NAME = "spk-gopro"
SPIKE_SIZE = (360, 640)
WINDOW = 56
BLUR_FOLDERS = {"gamma": "blur_gamma", "linear": "blur"}


def plan(source: Path, options: ImportOptions) -> ImportPlan:
    """Every SEQ of every split present: per-frame ``.dat`` files, centred 56-frame windows."""
    reject_options(NAME, options, {"blur"})
    blur_kind = options.blur or "gamma"
    if blur_kind not in BLUR_FOLDERS:
        raise UsageError("--blur must be gamma or linear", found=blur_kind, expected="gamma | linear")
    rgb_root = require_dir(source, "GOPRO_Large", "Spk-GoPro")
    spike_root = require_dir(source, "GOPRO_Large_spike_seq", "Spk-GoPro (its spike half)")
    sequences = []
    for split_dir in subdirs(rgb_root):
        for seq_dir in subdirs(split_dir):
            spike_dir = spike_root / split_dir.name / seq_dir.name / "spike"
            sequences.append(_sequence(seq_dir, seq_dir / BLUR_FOLDERS[blur_kind], spike_dir,
                                       split_dir.name, (SPIKE_SIZE, 2, options.spike_size)))
    return ImportPlan(NAME, source, tuple(sequences))


def per_frame_sequence(name: str, split: str, blurs: list[Path], sharp_dir: Path | None, spike_dir: Path,
                       size: tuple, window: int | None, rule: str) -> SequencePlan:
    """A sequence of one ``.dat`` per blurry frame (same stem), whole files or centred windows.

    ``size``: ``(the loader's spike (h, w), RGB/spike ratio, --spike-size or None)`` (see
    `pick_spike_size`). Every frame needs its ``.dat`` (and its sharp frame when ``sharp_dir``
    is given): the error names all that lack one.
    """
    require_all([b.stem + ".dat" for b in blurs if not (spike_dir / f"{b.stem}.dat").is_file()],
                len(blurs), spike_dir, ".dat spike file", "complete the download (the loader needs one per frame)")
    if sharp_dir is not None:
        require_all([b.name for b in blurs if not (sharp_dir / b.name).is_file()], len(blurs), sharp_dir,
                    "sharp frame", "complete the download")
    sizes = blurs + ([sharp_dir / b.name for b in blurs] if sharp_dir else [])
    rgb_size = one_size(sizes, blurs[0].parent)
    h, w = pick_spike_size(size[0], rgb_size, size[1], spike_dir / f"{blurs[0].stem}.dat", size[2])
    frames = []
    for blur in blurs:
        dat = spike_dir / f"{blur.stem}.dat"
        n = stream_length(dat, h, w)
        if window is not None and n < window:
            raise LayoutError(f"spike file is shorter than the {window}-frame window", path=dat,
                              found=f"{n} spike frames", expected=f">= {window}",
                              fix="check --spike-size or the download")
        begin, end = centred_window(n, window) if window is not None else (0, n)
        frames.append(FramePlan(blur.stem, blur, sharp_dir / blur.name if sharp_dir else None, dat, begin, end))
    extra = {"window_spikes": window} if window is not None else {}
    return SequencePlan(name, split, h, w, tuple(frames), rgb_size, rule, extra)


def _sequence(seq_dir: Path, blur_dir: Path, spike_dir: Path, split: str, size: tuple) -> SequencePlan:
    blurs = images(blur_dir) if blur_dir.is_dir() else []
    if not blurs:
        raise LayoutError("sequence has no blurry frames", found=f"no .png in {blur_dir}",
                         expected="NNNNNN.png frames", fix="check the download (or --blur)")
    return per_frame_sequence(seq_dir.name, split, blurs, seq_dir / "sharp", spike_dir, size, WINDOW,
                              f"centre {WINDOW}: [L//2-{WINDOW // 2}, L//2+{WINDOW // 2})")
