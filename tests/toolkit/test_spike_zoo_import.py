"""`spikeprep import spike-zoo`: Spike-Zoo's REDS_BASE layout as spike-only data (no blur).

The window rule, written plainly (spikezoo/datasets/base_dataset.py, REDS_BASEConfig): the
centred N spike frames of an L-frame stream, N = 41 for train and 301 for test,
``[L//2 - N//2, L//2 - N//2 + N)``. Checked on fake trees (hypothesis over L) and end to end on
the real spike-reds streams: cached bits equal the stream's frames in image orientation, the
sharp record equals the GT png's pixels, SOURCE is unchanged and ``verify --data`` passes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep import open_cache
from spikeprep.cli import main
from spikeprep.datasets import ImportOptions, plan_import
from spikeprep.errors import LayoutError, UsageError
from spikeprep.inputs.dat import SpikeStream
from tests.support.paths import REAL_STEMS, SHARED_DATA
from tests.support.replicas import tree_hash

REAL = SHARED_DATA / "spike-reds"
H, W = 8, 16


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def window(L: int, N: int) -> tuple[int, int]:
    """The rule as the issue states it."""
    return L // 2 - N // 2, L // 2 - N // 2 + N


def write_dat(path: Path, frames: np.ndarray) -> None:
    """``(L, h, w)`` bool frames in image orientation -> a SpikeCV .dat (rows bottom-up, LSB first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.packbits(frames[:, ::-1].reshape(len(frames), -1), axis=1, bitorder="little").tofile(path)


def decode_dat(path: Path, h: int, w: int) -> np.ndarray:
    """The inverse of `write_dat`, in plain numpy: ``(L, h, w)`` uint8 in image orientation."""
    raw = np.fromfile(path, np.uint8).reshape(-1, h * w // 8)
    return np.unpackbits(raw, axis=1, bitorder="little").reshape(-1, h, w)[:, ::-1]


def fake_zoo(root: Path, split: str, lengths: dict[str, int], seed: int = 0, gt_size=(H, W)) -> Path:
    rng = np.random.default_rng(seed)
    for name, L in lengths.items():
        write_dat(root / split / "spike" / f"{name}.dat", rng.random((L, H, W)) < 0.3)
        gt = root / split / "gt" / f"{name}.png"
        gt.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gt), rng.integers(0, 256, gt_size, dtype=np.uint8))
    return root


@settings(max_examples=25, deadline=None)
@given(L=st.integers(301, 700), split=st.sampled_from(["train", "test"]))
def test_window_rule_for_any_stream_length(L, split):
    with tempfile.TemporaryDirectory() as tmp:
        src = fake_zoo(Path(tmp), split, {"a": L})
        plan = plan_import("spike-zoo", src, ImportOptions(splits=(split,), spike_size=(H, W)))
    (seq,) = plan.sequences
    (frame,) = seq.frames
    assert (frame.begin, frame.end) == window(L, {"train": 41, "test": 301}[split])
    assert (seq.name, frame.name, seq.T, frame.blur, seq.split) == ("a", "a", 1, None, split)


def test_fake_tree_end_to_end_and_corrupted_gt_is_detected(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"x": 60, "y": 75})
    before = tree_hash(src)
    data, cache = tmp_path / "data", tmp_path / "cache"
    assert run("import", "spike-zoo", src, data, "--split", "train", "--spike-size", f"{H}x{W}").exit_code == 0
    assert not (data / "blur").exists()
    sync = json.loads((data / "spike/x/sync.json").read_text())
    assert sync["frames"][0]["blur"] is None and sync["frames"][0]["sharp"] == "sharp/x/x.png"
    assert run("build-sync", data).exit_code == 0
    result = run("voxelize", data, cache, "--repr", "bins", "--S", "41")
    assert result.exit_code == 0, result.output
    assert run("verify", cache, "--data", data).exit_code == 0
    assert tree_hash(src) == before
    c = open_cache(cache)
    assert c.params.has_blur is False and tuple(c.params.rgb_shape) == (H, W, 1)
    assert (cache / "meta_info.txt").read_text().splitlines() == [f"x 1 ({H},{W},1) 0", f"y 1 ({H},{W},1) 0"]
    for name, L in (("x", 60), ("y", 75)):
        s = c.read(name, 0)
        b, e = window(L, 41)
        np.testing.assert_array_equal(s.spike, decode_dat(src / f"train/spike/{name}.dat", H, W)[b:e])
        assert s.blur is None and (s.spike_begin, s.spike_end) == (b, e)
        np.testing.assert_array_equal(s.sharp[:, :, 0], cv2.imread(str(src / f"train/gt/{name}.png"), 0))
    info = run("info", cache, "--preview", tmp_path / "previews")
    assert info.exit_code == 0 and "spike-only" in info.output
    assert (tmp_path / "previews/x_sheet.png").is_file()
    gt = src / "train/gt/x.png"
    cv2.imwrite(str(gt), 255 - cv2.imread(str(gt), 0))
    result = run("verify", cache, "--data", data)
    assert result.exit_code == 1 and "x" in result.output


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/spike-reds")
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_spike_reds_streams(tmp_path, split):
    src = tmp_path / "zoo"
    for kind, suffix in (("spike", "dat"), ("gt", "png")):
        (src / split / kind).mkdir(parents=True)
        for stem in REAL_STEMS:
            (src / split / kind / f"{stem}.{suffix}").symlink_to(REAL / kind / f"{stem}.{suffix}")
    before = tree_hash(src)
    data, cache = tmp_path / "data", tmp_path / "cache"
    assert run("import", "spike-zoo", src, data, "--split", split).exit_code == 0
    S = 41 if split == "train" else 1
    args = ("--repr", "bins", "--S", "41") if split == "train" else ("--repr", "count")
    assert run("voxelize", data, cache, *args).exit_code == 0
    assert run("verify", cache, "--data", data).exit_code == 0
    assert tree_hash(src) == before
    c = open_cache(cache)
    for stem in REAL_STEMS:
        bits = decode_dat(REAL / "spike" / f"{stem}.dat", 250, 400)
        L = len(bits)
        b, e = window(L, 41 if split == "train" else 301)
        s = c.read(stem, 0)
        assert (s.spike_begin, s.spike_end) == (b, e) and s.blur is None
        if S == 41:
            np.testing.assert_array_equal(s.spike, bits[b:e])
            with SpikeStream(filepath=REAL / "spike" / f"{stem}.dat", spike_h=250, spike_w=400,
                             print_dat_detail=False) as stream:
                np.testing.assert_array_equal(s.spike, stream.get_block_spikes(L // 2 - 20, 41))
        else:
            np.testing.assert_array_equal(s.spike[0], bits[b:e].sum(axis=0))
        png = cv2.imread(str(REAL / "gt" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(s.sharp, png[:, :, None])
        if split == "train":  # orientation: the 41-frame count around the GT's instant looks like it
            count = np.asarray(s.spike, np.float64).sum(axis=0)
            assert np.corrcoef(count.ravel(), png.ravel())[0, 1] > 0.9


# -- errors -----------------------------------------------------------------------------------

def test_missing_gt_is_named(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 50, "b": 50})
    (src / "train/gt/b.png").unlink()
    with pytest.raises(LayoutError, match="no ground truth") as err:
        plan_import("spike-zoo", src, ImportOptions(splits=("train",), spike_size=(H, W)))
    assert "b.png" in err.value.found


def test_gt_of_another_size_is_refused(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 50}, gt_size=(H, W + 8))
    with pytest.raises(LayoutError, match="differ in size"):
        plan_import("spike-zoo", src, ImportOptions(splits=("train",), spike_size=(H, W)))


def test_stream_of_another_size_is_refused(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 50})
    with open(src / "train/spike/a.dat", "ab") as f:
        f.write(b"\0" * 3)
    with pytest.raises(Exception, match="whole number|frames"):
        plan_import("spike-zoo", src, ImportOptions(splits=("train",), spike_size=(H, W)))


def test_short_stream_is_refused(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 40})
    with pytest.raises(LayoutError, match="shorter"):
        plan_import("spike-zoo", src, ImportOptions(splits=("train",), spike_size=(H, W)))


def test_empty_source_and_split_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="REDS_BASE"):
        plan_import("spike-zoo", tmp_path / "empty", ImportOptions(splits=("train",)))
    (tmp_path / "nodat/train/spike").mkdir(parents=True)
    with pytest.raises(LayoutError, match="no spike streams"):
        plan_import("spike-zoo", tmp_path / "nodat", ImportOptions(splits=("train",)))
    src = fake_zoo(tmp_path / "src", "train", {"a": 50})
    with pytest.raises(UsageError, match="exactly one --split"):
        plan_import("spike-zoo", src, ImportOptions(spike_size=(H, W)))
    with pytest.raises(UsageError, match="split SOURCE does not have"):
        plan_import("spike-zoo", src, ImportOptions(splits=("test",), spike_size=(H, W)))
    result = run("import", "spike-zoo", src, tmp_path / "data")
    assert result.exit_code == 2 and "--split" in result.output
    assert not (tmp_path / "data" / "spike").exists()


def test_check_sync_refuses_spike_only_data(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 50})
    data = tmp_path / "data"
    assert run("import", "spike-zoo", src, data, "--split", "train", "--spike-size", f"{H}x{W}").exit_code == 0
    result = run("check-sync", data)
    assert result.exit_code == 2 and "spike-only" in result.output


def test_build_sync_keeps_and_shifts_spike_only_windows(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 60, "b": 60})
    data = tmp_path / "data"
    assert run("import", "spike-zoo", src, data, "--split", "train", "--spike-size", f"{H}x{W}").exit_code == 0
    config = data / "spike/a/config.yaml"
    config.write_text(config.read_text() + "window_shift: 3\n")
    result = run("build-sync", data, "--force")
    assert result.exit_code == 0, result.output
    frame = json.loads((data / "spike/a/sync.json").read_text())["frames"][0]
    assert (frame["spike_begin"], frame["spike_end"], frame["blur"]) == (13, 54, None)
    config.write_text(config.read_text().replace("window_shift: 3", "window_shift: 30"))
    result = run("build-sync", data, "--force")
    assert result.exit_code == 1 and "outside its spike stream" in result.output
    result = run("build-sync", data, "--window-spikes", "5", "--sequence", "b")
    assert result.exit_code == 2 and "keep the windows" in result.output


def test_voxelize_names_a_spike_only_sequence_without_sync_json(tmp_path):
    src = fake_zoo(tmp_path / "src", "train", {"a": 60, "b": 60})
    data = tmp_path / "data"
    assert run("import", "spike-zoo", src, data, "--split", "train", "--spike-size", f"{H}x{W}").exit_code == 0
    (data / "spike/b/sync.json").unlink()
    result = run("voxelize", data, tmp_path / "cache", "--repr", "count")
    assert result.exit_code == 1 and "have no sync.json" in result.output and "b" in result.output


def test_spike_only_and_rgb_sequences_in_one_data_root_are_refused(tmp_path):
    import shutil

    from tests.support.cache_datasets import make_dataset
    src, data = fake_zoo(tmp_path / "src", "train", {"x": 60}), tmp_path / "data"
    assert run("import", "spike-zoo", src, data, "--split", "train", "--spike-size", f"{H}x{W}").exit_code == 0
    rgb = make_dataset(tmp_path / "rgb", sequences=("r",), frames=2, rgb_hw=(H, W), spike_hw=(H, W), window=8)
    for kind in ("blur", "sharp", "spike"):
        shutil.copytree(rgb / kind / "r", data / kind / "r")
    result = run("voxelize", data, tmp_path / "cache", "--repr", "bins", "--S", "4")
    assert result.exit_code == 1 and "spike-only sequences (no blur frames) and sequences with blur" in result.output
    assert "cache them separately" in result.output and not (tmp_path / "cache" / "manifest.json").exists()
