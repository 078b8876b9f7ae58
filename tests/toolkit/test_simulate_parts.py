"""simulate --part I/N: parts write their own sequences into one OUT at the same time, and the
union equals the unpartitioned run byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from spikeprep.errors import UsageError
from spikeprep.simulate import simulate_dataset, simulate_from_frames
from tests.support.paths import REPO

ROOT = REPO
OPTS = dict(images_per_frame=4, spikes_per_frame=8)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(1)
    for name, count in (("a", 9), ("b", 17), ("c", 13)):
        (src / name).mkdir()
        base = (rng.random((16, 24, 3)) * 255).astype(np.uint8)
        for i in range(count):
            cv2.imwrite(str(src / name / f"{i:05d}.png"), np.roll(base, i, axis=1))
    whole = tmp_path_factory.mktemp("whole")
    simulate_from_frames(src, whole, **OPTS)
    return src, whole


def test_two_parts_at_once_equal_the_whole_run_byte_for_byte(sources, tmp_path):
    src, whole = sources
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "spikeprep", "simulate", str(out), "--from-frames", str(src),
                               "--images-per-frame", "4", "--spikes-per-frame", "8", "--part", f"{i}/2"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # b (4 frames) alone in part 0; a (2) and c (3) in part 1
    assert "(b)" in outs[0][0] and "(a, c)" in outs[1][0]
    assert tree(out) == tree(whole)


def test_synthetic_parts_equal_the_whole_run(tmp_path):
    opts = dict(sequences=3, frames=2, height=16, width=16, spikes_per_frame=8)
    simulate_dataset(tmp_path / "whole", **opts)
    names = [simulate_dataset(tmp_path / "parts", part=f"{i}/3", **opts).sequences for i in range(3)]
    assert names == [("seq000",), ("seq001",), ("seq002",)]
    assert simulate_dataset(tmp_path / "parts4", part="3/4", **opts).sequences == ()  # nothing to do
    assert tree(tmp_path / "parts") == tree(tmp_path / "whole")


def test_a_part_refuses_its_own_existing_sequences_and_force_replaces_only_them(sources, tmp_path):
    src, whole = sources
    out = tmp_path / "out"
    for i in range(2):
        simulate_from_frames(src, out, part=f"{i}/2", **OPTS)
    with pytest.raises(UsageError, match=r"this part's sequences already exist.*blur/a") as err:
        simulate_from_frames(src, out, part="1/2", **OPTS)
    assert "--force" in str(err.value)
    (out / "spike" / "b" / "spikes.dat").write_bytes(b"other part's work")
    (out / "blur" / "c" / "000000.png").write_bytes(b"damaged")
    simulate_from_frames(src, out, part="1/2", force=True, **OPTS)
    after = tree(out)
    assert after.pop("spike/b/spikes.dat") == b"other part's work"  # part 0's file untouched
    expected = tree(whole)
    expected.pop("spike/b/spikes.dat")
    assert after == expected
