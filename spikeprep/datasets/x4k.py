"""`x4k`: SpkDeblurNet's Spk-X4K1000FPS (hnmizuho/SpkDeblurNet, codes/dataset/x4k1000fps_sequence.py).

Layout (N = 65, or 33 for the short-window variant; split = train or val)::

    {split}_blurry_N/NNN/clip/AAAA[_BBB].png       blurry frames (train 768x768, val 512x512)
    {split}_fullRGB/NNN/clip/AAAA[_BBB].png         every 1000 fps frame; sharp = the same name
    {split}_spike_2xds/NNN/clip/spike.dat           one continuous stream (384x384 / 256x256), flipud
    {split}_spike_2xds_N/NNN/clip/AAAA[_BBB].dat    or: the loader's pre-cut N-frame files

Frame ``AAAA`` is original index ``4*AAAA``, ``AAAA_BBB`` is ``4*AAAA + BBB + 1`` (the
position in the sorted fullRGB folder); its window is ``[c - N//2, c + N//2]`` inclusive. Past
either end of the stream the loader pads with frames of ones (``--pad ones|zeros|skip``).
The pre-cut files are exactly those windows, so they are used whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import LayoutError, UsageError
from .base import (
    PAD_VALUES,
    FramePlan,
    ImportOptions,
    ImportPlan,
    SequencePlan,
    join_name,
    padded_window,
    reject_options,
)
from .scan import images, leaf_sequences, one_size, pick_spike_size, require_all, stream_length, subdirs

NAME = "x4k"
SPIKE_SIZE = {"train": (384, 384), "val": (256, 256)}
_BLURRY = re.compile(r"^(?P<split>.+)_blurry_(?P<n>\d+)$")
_FRAME = re.compile(r"^(?P<a>\d+)(?:_(?P<b>\d+))?$")


def centre_index(stem: str, path: Path | None = None) -> int:
    """Original 1000 fps index of a frame name: ``AAAA`` -> 4*AAAA, ``AAAA_BBB`` -> 4*AAAA + BBB + 1."""
    match = _FRAME.match(stem)
    if match is None:
        raise LayoutError("X4K frame name is not AAAA or AAAA_BBB", path=path, found=stem,
                          expected="e.g. 0001 or 0001_002", fix="remove the stray file from the blurry folder")
    a, b = int(match["a"]), match["b"]
    return 4 * a + (int(b) + 1 if b is not None else 0)


def window(stem: str, n_window: int, length: int, path: Path | None = None) -> tuple[int, int, int, int]:
    """``(begin, end, pad_before, pad_after)`` of frame ``stem`` in a ``length``-frame stream."""
    c = centre_index(stem, path)
    return padded_window(c - n_window // 2, c + n_window // 2 + 1, length)


def plan(source: Path, options: ImportOptions) -> ImportPlan:
    """Every NNN/clip of every ``{split}_blurry_N`` present (or of ``--split``)."""
    reject_options(NAME, options, {"pad"})
    pad = options.pad or "ones"
    if pad not in (*PAD_VALUES, "skip"):
        raise UsageError("--pad must be ones, zeros or skip", found=pad, expected="ones | zeros | skip")
    blurry = [(m["split"], int(m["n"]), d) for d in subdirs(source) if (m := _BLURRY.match(d.name))]
    if not blurry:
        raise LayoutError("SOURCE does not look like Spk-X4K1000FPS", path=source, found="no {split}_blurry_N/",
                          expected="train_blurry_65/ and/or val_blurry_65/", fix="check the path or the preset")
    unknown = sorted(set(options.splits) - {b[0] for b in blurry})
    if unknown:
        raise UsageError("--split names a split SOURCE does not have", found=", ".join(unknown),
                         expected="one of " + ", ".join(sorted({b[0] for b in blurry})))
    if options.splits:
        blurry = [b for b in blurry if b[0] in options.splits]
    sequences = []
    for split, n_window, blurry_dir in blurry:
        size = (SPIKE_SIZE.get(split, SPIKE_SIZE["train"]), 2, options.spike_size)
        for parts, clip_dir in leaf_sequences(blurry_dir):
            sequences.append(_sequence(source, split, n_window, parts, images(clip_dir), size, pad))
    notes = _check_split_sizes(sequences)
    return ImportPlan(NAME, source, tuple(sequences), notes)


def _check_split_sizes(sequences: list[SequencePlan]) -> tuple[str, ...]:
    sizes = {}
    for seq in sequences:
        sizes.setdefault(seq.split, set()).add((seq.rgb_size, (seq.spike_h, seq.spike_w)))
    if len({size for s in sizes.values() for size in s}) > 1:
        found = "; ".join(f"{split}: RGB {r[0]}x{r[1]}, spikes {s[0]}x{s[1]}"
                          for split, group in sorted(sizes.items()) for r, s in sorted(group))
        raise UsageError("X4K's splits differ in size and one cache holds one size", found=found,
                         expected="one split per DATA_ROOT",
                         fix="import each with --split train / --split val into its own DATA_ROOT")
    return ()


def _sequence(source: Path, split: str, n_window: int, parts: tuple[str, ...], blurs: list[Path],
              size: tuple, pad: str) -> SequencePlan:
    rel = Path(*parts)
    sharp_dir = source / f"{split}_fullRGB" / rel
    require_all([b.name for b in blurs if not (sharp_dir / b.name).is_file()], len(blurs), sharp_dir,
                "sharp frame (same name in the fullRGB folder)", "complete the download")
    stream = source / f"{split}_spike_2xds" / rel / "spike.dat"
    cut_dir = source / f"{split}_spike_2xds_{n_window}" / rel
    name = join_name(parts)
    rgb_size = one_size(blurs + [sharp_dir / b.name for b in blurs], blurs[0].parent)
    probe = stream if stream.is_file() else cut_dir / f"{blurs[0].stem}.dat"
    h, w = pick_spike_size(size[0], rgb_size, size[1], probe, size[2])
    frames, skipped = [], []
    if stream.is_file():
        length = stream_length(stream, h, w)
        for blur in blurs:
            begin, end, before, after = window(blur.stem, n_window, length, blur)
            if (before or after) and pad == "skip" or end <= begin:
                skipped.append((blur.stem, f"window past the stream's {'start' if before else 'end'}"))
                continue
            frames.append(FramePlan(blur.stem, blur, sharp_dir / blur.name, stream, begin, end, before, after))
        rule = f"[c-{n_window // 2}, c+{n_window // 2}], c = 4*AAAA (+ BBB + 1)"
    elif cut_dir.is_dir():
        require_all([b.stem + ".dat" for b in blurs if not (cut_dir / f"{b.stem}.dat").is_file()], len(blurs),
                    cut_dir, ".dat spike file", "complete the download")
        for blur in blurs:
            dat = cut_dir / f"{blur.stem}.dat"
            frames.append(FramePlan(blur.stem, blur, sharp_dir / blur.name, dat, 0, stream_length(dat, h, w)))
        rule = f"whole pre-cut file ({n_window} frames centred on c)"
    else:
        raise LayoutError("clip has no spike stream", path=stream, found="missing",
                          expected=f"{split}_spike_2xds/{rel}/spike.dat or {split}_spike_2xds_{n_window}/{rel}/*.dat")
    if not frames:
        raise LayoutError("every frame of the clip was skipped", path=stream, found=f"{len(skipped)} skipped",
                          expected="at least one window inside the stream", fix="use --pad ones or zeros")
    return SequencePlan(name, split, h, w, tuple(frames), rgb_size, rule, {},
                        tuple(skipped), pad_value=PAD_VALUES.get(pad, 1))
