"""`spike-zoo`: Spike-Zoo's REDS_BASE spike-to-image data (chenkang455/Spike-Zoo,
spikezoo/datasets/base_dataset.py and reds_base_dataset.py).

Layout (one sample per ``.dat``, 250x400 spike frames, no RGB input)::

    {train,test}/spike/NAME.dat     one spike stream (SpikeCV layout, flipud)
    {train,test}/gt/NAME.png        its sharp ground truth (grayscale), paired by file name

The loader cuts the centred ``N`` spike frames of each stream, ``N = 41`` for train and 301 for
test: ``spike[L//2 - N//2 : L//2 - N//2 + N]`` (odd and even ``N`` alike), and asserts ``L >= N``.

Each ``.dat`` becomes one sequence of one frame (sequence and frame named after the file's
stem, T = 1): ``spike/NAME/NAME.dat`` and ``sharp/NAME/NAME.png``, no ``blur/``.
"""

from __future__ import annotations

from pathlib import Path

from ..alignment.windows import centred_window
from ..errors import LayoutError, UsageError
from .base import FramePlan, ImportOptions, ImportPlan, SequencePlan, join_name, reject_options
from .scan import stream_length, subdirs

NAME = "spike-zoo"
SPLITS = ("train", "test")
#: REDS_BASEConfig: spike_length_train / spike_length_test
WINDOW = {"train": 41, "test": 301}
SPIKE_SIZE = (250, 400)


def plan(source: Path, options: ImportOptions) -> ImportPlan:
    """Every ``SPLIT/spike/**/*.dat`` of the one ``--split`` (required: train and test share names)."""
    reject_options(NAME, options, set())
    present = [d.name for d in subdirs(source) if d.name in SPLITS and (d / "spike").is_dir()]
    if not present:
        raise LayoutError("SOURCE does not look like Spike-Zoo's REDS_BASE", path=source,
                          found="no train/spike/ or test/spike/",
                          expected="{train,test}/spike/NAME.dat and {train,test}/gt/NAME.png",
                          fix="pass the reds_base folder (the one holding train/ and test/)")
    if len(options.splits) != 1:
        raise UsageError("spike-zoo needs exactly one --split (train and test use other windows and "
                         "share stream names)", found=", ".join(options.splits) or "no --split",
                         expected="--split " + " or --split ".join(present),
                         fix="import each split into its own DATA_ROOT")
    split = options.splits[0]
    if split not in present:
        raise UsageError("--split names a split SOURCE does not have", found=split,
                         expected="one of " + ", ".join(present))
    spike_dir, gt_dir = source / split / "spike", source / split / "gt"
    dats = sorted(spike_dir.rglob("*.dat"))
    if not dats:
        raise LayoutError("split has no spike streams", path=spike_dir, found="no .dat files",
                          expected="NAME.dat files", fix="complete the download")
    missing = [d.stem for d in dats if not (gt_dir / f"{d.stem}.png").is_file()]
    if missing:
        more = f" ... ({len(missing)} in all)" if len(missing) > 8 else ""
        shown = ", ".join(f"{m}.png" for m in missing[:8]) + more
        raise LayoutError(f"{len(missing)} of {len(dats)} spike streams have no ground truth", path=gt_dir,
                          found=f"missing {shown}", expected="gt/NAME.png for every spike/NAME.dat",
                          fix="complete the download (the loader pairs them by file name)")
    size = options.spike_size or SPIKE_SIZE
    sequences = [_sequence(dat, gt_dir / f"{dat.stem}.png", spike_dir, split, size) for dat in dats]
    return ImportPlan(NAME, source, tuple(sequences),
                      (f"spike-only data: no blur frames; the GT png is the sharp record, kept grayscale "
                       f"(one sequence of one frame per .dat, the centred {WINDOW[split]} spike frames)",))


def _sequence(dat: Path, gt: Path, spike_dir: Path, split: str, size: tuple[int, int]) -> SequencePlan:
    from ..inputs.images import image_size

    h, w = size
    gt_size = image_size(gt)
    if gt_size != (h, w):
        raise LayoutError("ground truth and spike frames differ in size", path=gt,
                          found=f"{gt_size[0]}x{gt_size[1]} (HxW)", expected=f"{h}x{w}, the spike frame size",
                          fix="use the dataset's own gt pngs (or --spike-size HxW if its spikes differ)")
    n = WINDOW[split]
    length = stream_length(dat, h, w)
    if length < n:
        raise LayoutError("spike stream is shorter than the loader's window", path=dat,
                          found=f"{length} frames", expected=f">= {n} frames (the {split} window)",
                          fix="complete the download, or import it with the other --split")
    begin, end = centred_window(length, n)  # [L//2 - N//2, L//2 - N//2 + N)
    name = join_name(dat.relative_to(spike_dir).with_suffix("").parts)
    frame = FramePlan(dat.stem, None, gt, dat, begin, end)
    rule = f"centre {n}: [L//2-{n // 2}, L//2+{n - n // 2})"
    return SequencePlan(name, split, h, w, (frame,), gt_size, rule, {"window_spikes": n}, T=1)
