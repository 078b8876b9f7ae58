"""`s-vrt`: S-VRT's GoPro RGB + spike data (S-VRT/S-VRT, data/dataset_video_train_rgbspike.py).

Layout (KAIR's GoPro-as-video folders, made by scripts/data_preparation/prepare_gopro_spike_dataset.py
from GOPRO_Large's linear ``blur`` and ``sharp``)::

    {train,test}_GT/SEQ/NNNNNN.png              sharp, 720x1280
    {train,test}_GT_blurred/SEQ/NNNNNN.png      blurry inputs
    GOPRO_Large_spike_seq/{train,test}/SEQ/spike/NNNNNN.dat
    GOPRO_Large_spike_seq/config.yaml           spike_h, spike_w (360x640) for every sequence

The loader voxelizes the whole ``.dat`` of each frame with TFP (``--repr svrt-tfp``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import LayoutError
from ..inputs.sequence_config import parse_config, read_raw
from .base import ImportOptions, ImportPlan, reject_options
from .scan import find_dir, images, require_dir, subdirs
from .spk_gopro import per_frame_sequence

NAME = "s-vrt"
DEFAULT_SPIKE_SIZE = (360, 640)  # S-VRT's DEFAULT_SPIKE_CONFIG and the dataset's spike_h/spike_w defaults
CLIP_FRAMES = 6                  # "num_frame": 6 in options/006_train_vrt_videodeblurring_gopro_rgbspike.json


def plan(source: Path, options: ImportOptions) -> ImportPlan:
    """Every SEQ of ``{split}_GT_blurred`` for each split present; whole-file windows."""
    reject_options(NAME, options, set())
    spike_root = require_dir(source, "GOPRO_Large_spike_seq", "S-VRT's GoPro + spike data")
    size, flipud = _spike_geometry(spike_root, options)
    sequences = []
    for split_dir in subdirs(spike_root):
        lq = find_dir(source, f"{split_dir.name}_GT_blurred")
        gt = find_dir(source, f"{split_dir.name}_GT")
        if lq is None:
            raise LayoutError("no blurry frames for a spike split", path=source,
                              found=f"no {split_dir.name}_GT_blurred/",
                              expected=f"{split_dir.name}_GT_blurred/SEQ/*.png beside {split_dir.name}_GT/",
                              fix="run S-VRT's prepare_gopro_spike_dataset.py first, or remove the split")
        for seq_dir in subdirs(lq):
            blurs = images(seq_dir)
            if not blurs:
                raise LayoutError("sequence has no blurry frames", path=seq_dir, found="no .png files",
                                  expected="NNNNNN.png frames")
            sequences.append(per_frame_sequence(
                seq_dir.name, split_dir.name, blurs, gt / seq_dir.name if gt else None,
                split_dir / seq_dir.name / "spike", size, None, "whole file"))
    sequences = [replace(s, flipud=flipud, T=CLIP_FRAMES) for s in sequences]
    return ImportPlan(NAME, source, tuple(sequences),
                      ("S-VRT feeds TFP of the whole file: voxelize with --repr svrt-tfp --S 4",))


def _spike_geometry(spike_root: Path, options: ImportOptions) -> tuple[tuple, bool]:
    """``((h, w) or the default, RGB/spike ratio, given size), flipud)``: the spike root's config.yaml
    (--spike-size wins over it), else S-VRT's default 360x640 (or RGB / 2, see `pick_spike_size`)."""
    path = spike_root / "config.yaml"
    if path.is_file():
        config = parse_config(read_raw(path), path)
        given = options.spike_size or (config.spike_h, config.spike_w)
        return (given, 2, given), config.flipud
    return (DEFAULT_SPIKE_SIZE, 2, options.spike_size), True
