"""`spikeprep import PRESET SOURCE DATA_ROOT`: public RGB + spike datasets in one command.

Each preset module reads one dataset's download (read-only) into an `ImportPlan` with the
windows that dataset's own loader feeds its network; `write.apply` links SOURCE's files into
DATA_ROOT and writes each sequence's config.yaml and sync.json (split and frame names added).

| preset | module | loader the windows come from |
|---|---|---|
| spk-gopro | `spk_gopro` | SpkDeblurNet codes/dataset/gopro_sequence.py |
| s-vrt | `svrt` | S-VRT data/dataset_video_train_rgbspike.py |
| s-sdm | `ssdm` | S-SDM codes/dataset.py + train_deblur.py |
| x4k | `x4k` | SpkDeblurNet codes/dataset/x4k1000fps_sequence.py |
| rsb | `ssdm` | S-SDM codes/dataset.py (data_type='real') |
| spike-zoo | `spike_zoo` | Spike-Zoo spikezoo/datasets/reds_base_dataset.py (spike-only, GT) |
| spikecv | `spikecv` | SpikeCV's dataset layout (spike-only real recordings, no GT) |
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LayoutError, UsageError
from ..inputs.layout import check_name_length, check_sequence_name, suggested_name
from . import spike_zoo, spikecv, spk_gopro, ssdm, svrt, x4k
from .base import ImportOptions, ImportPlan, check_unique, select

PRESETS = {
    "spk-gopro": spk_gopro.plan,
    "s-vrt": svrt.plan,
    "s-sdm": ssdm.plan_ssdm,
    "x4k": x4k.plan,
    "rsb": ssdm.plan_rsb,
    "spike-zoo": spike_zoo.plan,
    "spikecv": spikecv.plan,
}


def plan_import(preset: str, source: str | os.PathLike, options: ImportOptions = ImportOptions()) -> ImportPlan:
    """Read SOURCE (never writing to it) and plan every selected sequence of ``preset``."""
    if preset not in PRESETS:
        raise UsageError("unknown dataset preset", found=repr(preset), expected="one of " + ", ".join(PRESETS))
    root = Path(source).absolute()
    if not root.is_dir():
        raise LayoutError("SOURCE not found", path=root, found="no such directory",
                          expected="the folder the dataset was downloaded/unpacked into")
    plan = PRESETS[preset](root, options)
    check_unique(list(plan.sequences), root)
    chosen = select(list(plan.sequences), options, root)
    for seq in chosen:
        check_name(seq)
    return ImportPlan(plan.preset, root, tuple(chosen), plan.notes)


def check_name(seq) -> None:
    """A sequence name DATA_ROOT can hold: no whitespace or control characters (meta_info.txt),
    short enough for a file name (checked before anything is written)."""
    first = seq.frames[0] if seq.frames else None
    where = (first.blur or first.sharp or first.spike).parent if first else None
    check_sequence_name(seq.name, where,
                        fix=f"rename the folder in (a copy of) SOURCE so that the name has none (e.g. "
                            f"{suggested_name(seq.name)!r}), "
                            "or leave the sequence out with --sequence/--split")
    check_name_length(seq.name, where, fix="nested source folders are joined with '_': shorten the folder "
                      "names in (a copy of) SOURCE, or leave the sequence out with --sequence/--split")


def import_dataset(preset: str, source: str | os.PathLike, data_root: str | os.PathLike,
                   options: ImportOptions = ImportOptions(), *, force: bool = False,
                   dry_run: bool = False) -> tuple[ImportPlan, dict[str, str]]:
    """Plan, then (unless ``dry_run``) write DATA_ROOT. Returns the plan and per-sequence status."""
    from .write import apply, check_roots

    check_roots(Path(source).absolute(), Path(data_root))
    plan = plan_import(preset, source, options)
    if dry_run:
        return plan, {s.name: "dry-run" for s in plan.sequences}
    return plan, apply(plan, data_root, force)


__all__ = ["PRESETS", "ImportOptions", "ImportPlan", "import_dataset", "plan_import"]
