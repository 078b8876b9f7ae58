"""`spikeprep simulate OUT --from-frames SRC`: high-frame-rate video frames -> the input layout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from ..errors import LayoutError
from ..inputs.images import image_size, list_images
from .output import prepare, refuse_overlap
from .scenes import FrameSequenceScene
from .spikes import (
    DEFAULT_THRESHOLD,
    ProgressCallback,
    SimulationSummary,
    SpikeParams,
    progress_counter,
    require,
    write_sequence,
)
from .synthetic import sequence_rng


def find_source_sequences(src: Path) -> list[tuple[str, list[Path]]]:
    """``[(name, sorted image paths)]``: ``src`` itself if it holds images, else each subfolder."""
    if not src.is_dir():
        raise LayoutError("source folder not found", path=src, found="no such folder",
                          expected="a folder of .png/.jpg frames (or of such folders)")
    own = list_images(src)
    if own:
        return [(src.resolve().name, own)]
    found = [(sub.name, list_images(sub)) for sub in sorted(src.iterdir()) if sub.is_dir()]
    found = [(name, images) for name, images in found if images]
    if not found:
        raise LayoutError("no source images", path=src, found="no .png/.jpg files in it or its subfolders",
                          expected="sorted high-frame-rate frames, e.g. 000000.png, 000001.png, ...",
                          fix="Point --from-frames at a folder of frames or a folder of such folders")
    return found


def _check_sizes(paths: Sequence[Path]) -> tuple[int, int]:
    """The common ``(height, width)`` of ``paths``; names the first image that differs."""
    first = image_size(paths[0])
    for path in paths[1:]:
        size = image_size(path)
        if size != first:
            raise LayoutError("source images differ in size", path=path,
                              found=f"{size[0]}x{size[1]} (HxW)",
                              expected=f"{first[0]}x{first[1]} like {paths[0].name}",
                              fix="Resize or crop all frames of a sequence to one size")
    return first


def simulate_from_frames(src: str | Path, out: str | Path, *, images_per_frame: int = 8,
                         spikes_per_frame: int = 40, exposure: float = 0.5, seed: int = 0,
                         threshold: float = DEFAULT_THRESHOLD, spike_rate: float = 20000.0,
                         spike_downsample: int = 1, force: bool = False,
                         on_progress: ProgressCallback | None = None, part=None) -> SimulationSummary:
    """Turn high-frame-rate frames (``src`` or each of its subfolders) into the input layout.

    Every ``images_per_frame`` source images make one RGB frame interval of ``spikes_per_frame``
    spike samples; the scene between source images is their linear interpolation. A sequence of
    ``n`` images gives ``(n - 1) // images_per_frame`` frames. ``part`` ``"I/N"``: only part I's
    share of the sequences (see `prepare_part_output`)."""
    started = time.perf_counter()
    params = SpikeParams(spikes_per_frame, exposure, threshold, spike_rate, spike_downsample, seed)
    require(images_per_frame >= 1, "--images-per-frame", images_per_frame, "an integer >= 1")
    src, out = Path(src), Path(out)
    plan = []
    for name, paths in find_source_sequences(src):
        height, width = _check_sizes(paths)
        params.spike_geometry(height, width, f"source frames in {paths[0].parent}:")
        n_frames = (len(paths) - 1) // images_per_frame
        if n_frames < 1:
            raise LayoutError("too few source images for one frame", path=paths[0].parent,
                              found=f"{len(paths)} images",
                              expected=f"at least --images-per-frame + 1 = {images_per_frame + 1}",
                              fix="Lower --images-per-frame or add frames")
        plan.append((name, paths, n_frames, height, width))
    refuse_overlap(src, out)
    indices = prepare(out, force, part, [item[0] for item in plan],
                       [item[2] * item[3] * item[4] for item in plan])
    height, width = plan[0][3], plan[0][4]
    plan = [(index, *plan[index]) for index in indices]
    advance = progress_counter(sum(item[3] for item in plan) * spikes_per_frame, on_progress)
    spike_frames = []
    for index, name, paths, n_frames, h, w in plan:
        scene = FrameSequenceScene(paths, images_per_frame, params.frame_rate_hz)
        spike_frames.append(write_sequence(scene, out, name, n_frames, h, w, params,
                                           sequence_rng(seed, index), advance))
    spike_h, spike_w = params.spike_geometry(height, width, "source frames")
    return SimulationSummary(out, tuple(item[1] for item in plan), tuple(item[3] for item in plan),
                             tuple(spike_frames), height, width, spike_h, spike_w,
                             time.perf_counter() - started)
