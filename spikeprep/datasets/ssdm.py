"""`s-sdm` and `rsb`: S-SDM's Spike-GOPRO and real RSB captures (chenkang455/S-SDM, codes/dataset.py).

Spike-GOPRO (scripts/GOPRO_dataset.md, scripts/spike_simulate.py)::

    GOPRO/{train,test}/blur_data/SEQ/NNNNNN.png     720x1280
    GOPRO/{train,test}/sharp_data/SEQ/NNNNNN.png
    GOPRO/{train,test}/spike_data/SEQ/NNNNNN.dat    180x320 (spike_full/: 720x1280), flipud

Each ``.dat`` holds 20 + 97 + 20 spike frames; the simulator writes none for a sequence's
first blurry frame (and none for the last when the 20 extra frames would run past the end):
the loader lists ``spike_data/*/*`` so those frames are never seen, and we skip them too.
train_deblur.py's exposure window is ``cal_tfp(spike, L//2, 97)``: ``[L//2-48, L//2+49)``,
``[20, 117)`` for 137-frame files: ``window_spikes: 97`` with our centring rule.

RSB (``data_type='real'``): ``spike_data/SEQ/NAME.dat`` (250x400) and
``blur_data/SEQ/NAME.jpg`` (1000x1600), no ground truth.
"""

from __future__ import annotations

from pathlib import Path

from ..alignment.windows import centred_window
from ..errors import LayoutError
from .base import FramePlan, ImportOptions, ImportPlan, SequencePlan, join_name, reject_options
from .scan import images, leaf_sequences, one_size, pick_spike_size, require_all, stream_length, subdirs

WINDOW = 97          # train_deblur.py: cal_tfp(spike, len//2, 97)
DESIGN_LENGTH = 137  # spike_simulate.py: 20 + 97 + 20
GOPRO_SPIKE = {"spike_data": (180, 320), "spike_full": (720, 1280)}
RSB_SPIKE = (250, 400)


def plan_ssdm(source: Path, options: ImportOptions) -> ImportPlan:
    """Every SEQ of ``{train,test}/blur_data``; frames without a ``.dat`` are skipped."""
    reject_options("s-sdm", options, {"spike_full"})
    root = _root(source, lambda p: any((d / "blur_data").is_dir() for d in subdirs(p)),
                 "S-SDM's Spike-GOPRO ({train,test}/blur_data/)")
    spike_folder = "spike_full" if options.spike_full else "spike_data"
    size = (GOPRO_SPIKE[spike_folder], 1 if options.spike_full else 4, options.spike_size)
    sequences = []
    for split_dir in subdirs(root):
        if not (split_dir / "blur_data").is_dir():
            continue
        for parts, blur_dir in leaf_sequences(split_dir / "blur_data"):
            rel = Path(*parts)
            sequences.append(_sequence(join_name(parts), split_dir.name, images(blur_dir),
                                       split_dir / "sharp_data" / rel, split_dir / spike_folder / rel, size, None))
    return ImportPlan("s-sdm", source, tuple(sequences))


def plan_rsb(source: Path, options: ImportOptions) -> ImportPlan:
    """Every SEQ of ``spike_data``: the loader's centred 97 frames (``--margins`` overrides)."""
    reject_options("rsb", options, {"margins"})
    root = _root(source, lambda p: (p / "spike_data").is_dir() and (p / "blur_data").is_dir(),
                 "the RSB real captures (spike_data/ and blur_data/)")
    size = (RSB_SPIKE, 4, options.spike_size)
    sequences = []
    for parts, _ in leaf_sequences(root / "blur_data"):
        rel = Path(*parts)
        sequences.append(_sequence(join_name(parts), "test", images(root / "blur_data" / rel), None,
                                   root / "spike_data" / rel, size, options.margins))
    return ImportPlan("rsb", source, tuple(sequences),
                      ("RSB has no ground truth: the cache is for inference (vrt-train --infer)",))


def _root(source: Path, looks_right, what: str) -> Path:
    for candidate in [source, *subdirs(source)]:
        if looks_right(candidate):
            return candidate
    raise LayoutError(f"SOURCE does not look like {what}", path=source, found="no such folders",
                      expected=what + " at SOURCE or one level below", fix="check the path or the preset")


def _window(n: int, margins: tuple[int, int] | None, dat: Path) -> tuple[int, int, str | None]:
    """S-SDM's window of an ``n``-frame file, and a warning when the file is not the 137 frames
    the rule was made for."""
    if margins is not None:
        if sum(margins) >= n:
            raise LayoutError("spike file is not longer than --margins", path=dat,
                              found=f"{n} frames, margins {list(margins)}", expected=f"> {sum(margins)} frames")
        return margins[0], n - margins[1], None
    if n < WINDOW:
        return 0, n, f"{dat.name}: {n} frames < {WINDOW}: whole file used"
    begin, end = centred_window(n, WINDOW)
    note = None if n == DESIGN_LENGTH else (f"{dat.name}: {n} frames, not {DESIGN_LENGTH}: the loader's centred "
                                             f"{WINDOW} used, [{begin}, {end}); --margins LO HI to override")
    return begin, end, note


def _sequence(name: str, split: str, blurs: list[Path], sharp_dir: Path | None, spike_dir: Path,
              size: tuple, margins: tuple[int, int] | None) -> SequencePlan:
    dats = {p.stem: p for p in spike_dir.glob("*.dat")} if spike_dir.is_dir() else {}
    orphans = sorted(set(dats) - {b.stem for b in blurs})
    if orphans:
        raise LayoutError(f"{len(orphans)} spike files have no blurry frame", path=spike_dir,
                          found=", ".join(f"{o}.dat" for o in orphans[:8]),
                          expected="blur_data/SEQ/NAME.png|jpg for every spike_data/SEQ/NAME.dat",
                          fix="complete the download (the loader reads one blurry frame per .dat)")
    kept = [b for b in blurs if b.stem in dats]
    if not kept:
        raise LayoutError("sequence has no spike files", path=spike_dir, found="no .dat named like a blurry frame",
                          expected="spike_data/SEQ/NAME.dat")
    skipped = tuple((b.stem, "no .dat (the simulator makes none for it)") for b in blurs if b.stem not in dats)
    if sharp_dir is not None:
        require_all([b.name for b in kept if not (sharp_dir / b.name).is_file()], len(kept), sharp_dir,
                    "sharp frame", "complete the download")
    sizes = kept + ([sharp_dir / b.name for b in kept] if sharp_dir else [])
    rgb_size = one_size(sizes, kept[0].parent)
    h, w = pick_spike_size(size[0], rgb_size, size[1], dats[kept[0].stem], size[2])
    frames, warnings = [], []
    for blur in kept:
        n = stream_length(dats[blur.stem], h, w)
        begin, end, note = _window(n, margins, dats[blur.stem])
        warnings += [note] if note else []
        frames.append(FramePlan(blur.stem, blur, sharp_dir / blur.name if sharp_dir else None,
                                dats[blur.stem], begin, end))
    extra = {"margins": list(margins)} if margins is not None else {"window_spikes": WINDOW}
    rule = (f"[{margins[0]}, L-{margins[1]})" if margins is not None
            else f"centre {WINDOW}: [L//2-{WINDOW // 2}, L//2+{WINDOW - WINDOW // 2}) = [20, 117) at L=137")
    return SequencePlan(name, split, h, w, tuple(frames), rgb_size, rule, extra,
                        skipped, warnings=tuple(warnings))
