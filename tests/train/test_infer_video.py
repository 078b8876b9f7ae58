"""`vrt-train --infer CACHE OUT --video [--side-by-side]`: one mp4 per sequence (issue 21).

Self-contained: a tiny real cache (simulate -> build-sync -> voxelize, sequences of 3 and 5
frames) and a 1-iteration checkpoint of configs/demo_tiny_cpu.yaml trained here.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")


import spikeprep
from tests.support.paths import CONFIGS
from vrt_train.cli import main
from vrt_train.outputs import OutputOptions, SequenceSink

CONFIG = CONFIGS / "demo_tiny_cpu.yaml"
SIZE = 48


def cli(args) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


def decoded(path: Path) -> tuple[int, tuple]:
    """(frames, (height, width)) cv2.VideoCapture reads from ``path``."""
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape[:2]
    cap.release()
    return n, shape


def test_sink_writes_pngs_and_a_decodable_mp4(tmp_path):
    frames = [np.full((32, 40, 3), 40 * k, np.uint8) for k in range(4)]
    with SequenceSink(tmp_path, "a", OutputOptions(video=True, fps=10, side_by_side=True)) as sink:
        for k, f in enumerate(frames):
            sink.write(f"{k:06d}", f, f[:16, :20])  # a smaller input is resized to the output's size
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{k:06d}.png" for k in range(4)]
    assert decoded(tmp_path / "a.mp4") == (4, (32, 80))
    assert np.array_equal(cv2.imread(str(tmp_path / "a" / "000002.png"))[:, :, ::-1], frames[2])


@pytest.mark.slow  # builds a cache and trains one CPU VRT iteration (~60 s on 2 busy cores)
def test_infer_video_one_mp4_per_sequence(tmp_path):
    spikeprep.simulate_dataset(tmp_path / "data", sequences=2, frames=3, height=SIZE, width=SIZE, exposure=1.0)
    spikeprep.simulate_dataset(tmp_path / "more", sequences=1, frames=5, height=SIZE, width=SIZE, exposure=1.0, seed=3)
    for kind in ("blur", "sharp", "spike"):
        shutil.move(tmp_path / "more" / kind / "seq000", tmp_path / "data" / kind / "seqlong")
    spikeprep.build_sync(tmp_path / "data")
    cache = tmp_path / "cache"
    spikeprep.voxelize_dataset(tmp_path / "data", cache, S=4, val=("seq001",), progress=False)
    base = ["--opt", str(CONFIG), "--set", f"data.cache={cache}", "--set", f"out_dir={tmp_path / 'run'}",
            "--set", f"data.gt_size={SIZE}", "--set", "train.total_iter=1", "--set", "train.val_every=1",
            "--set", "train.checkpoint_every=1", "--set", "data.num_frames_val=2", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli(base) == 0
        assert cli(base + ["--infer", str(cache), str(tmp_path / "v"), "--video", "--fps", "10"]) == 0
        assert cli(base + ["--infer", str(cache), str(tmp_path / "sbs"), "--video", "--side-by-side"]) == 0
    c = spikeprep.open_cache(str(cache))
    for seq in c.sequences:
        n = c.num_frames(seq)
        assert decoded(tmp_path / "v" / f"{seq}.mp4") == (n, (SIZE, SIZE))
        assert decoded(tmp_path / "sbs" / f"{seq}.mp4") == (n, (SIZE, 2 * SIZE))
        assert len(list((tmp_path / "v" / seq).glob("*.png"))) == n
    assert sorted(p.name for p in (tmp_path / "v").glob("*.mp4")) == ["seq000.mp4", "seq001.mp4", "seqlong.mp4"]
