"""build-sync: windows agree with hand-computed timing; every promised error is clear."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from spikeprep import SyncOptions, build_sync, load_sync, write_dat
from spikeprep.cli import main
from spikeprep.inputs.sequence_config import Timing
from tests.support.data_roots import make_dataset, make_recipe, write_png


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def windows_of(root, seq="seqA"):
    return [(f.spike_begin, f.spike_end) for f in load_sync(root / "spike" / seq / "sync.json").frames]


def test_timing_windows_by_hand():
    # 40 spike frames per RGB frame, half exposure: [40i, 40i + 20)
    t = Timing(spike_rate=20000, frame_rate=500, exposure=0.5)
    assert [t.window(i) for i in range(3)] == [(0, 20), (40, 60), (80, 100)]
    # offset of 1 ms = 20 spike frames
    assert Timing(20000, 500, 0.5, offset=0.001).window(2) == (100, 120)
    # 7 spike frames per frame, exposure 3.5 frames long: samples at 0,1,2,3 are inside [0, 3.5)
    assert [Timing(7000, 1000, 0.5).window(i) for i in range(2)] == [(0, 4), (7, 11)]
    # a sample exactly at the exposure end is excluded
    assert Timing(100, 10, 1.0).window(1) == (10, 20)


def test_writes_the_core_schema(tmp_path):
    make_dataset(tmp_path, frames=3, spikes_per_frame=10, exposure=0.5)
    result = run("build-sync", tmp_path)
    assert result.exit_code == 0, result.output
    raw = json.loads((tmp_path / "spike/seqA/sync.json").read_text())
    assert raw["format"] == "spikeprep.sync" and raw["version"] == 1 and raw["sequence"] == "seqA"
    assert raw["spike"] == {"height": 16, "width": 24, "flipud": True}
    assert raw["frames"][1] == {"blur": "blur/seqA/000001.png", "sharp": "sharp/seqA/000001.png",
                                "spike_file": "spike/seqA/spikes.dat", "spike_begin": 10, "spike_end": 15}
    assert [(f["spike_begin"], f["spike_end"]) for f in raw["frames"]] == [(0, 5), (10, 15), (20, 25)]


def test_flags_override_config_timing(tmp_path):
    make_dataset(tmp_path, frames=3, spikes_per_frame=10, exposure=0.5, extra_spikes=5)
    build_sync(tmp_path, SyncOptions(exposure=1.0, offset=0.002))  # 1000 Hz: 2 ms = 2 spike frames
    assert windows_of(tmp_path) == [(2, 12), (12, 22), (22, 32)]


def test_window_past_the_end_is_an_error_naming_request_and_length(tmp_path):
    make_dataset(tmp_path, frames=3, spikes_per_frame=10, exposure=1.0)
    result = run("build-sync", tmp_path, "--offset", "0.005")
    assert result.exit_code == 1
    assert result.output.startswith("error: frame 2 (000002.png) has a window outside its spike stream")
    assert "[25, 35)" in result.output and "[0, 30)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "spike/seqA/sync.json").exists()


def test_truncated_stream_is_reported(tmp_path):
    make_dataset(tmp_path, frames=2)
    dat = tmp_path / "spike/seqA/spikes.dat"
    dat.write_bytes(dat.read_bytes()[:-5])
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "not a whole number of frames" in result.output
    assert "leftover bytes" in result.output and "Traceback" not in result.output


def test_missing_sharp_frame(tmp_path):
    make_dataset(tmp_path, frames=3)
    (tmp_path / "sharp/seqA/000001.png").unlink()
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1
    assert "sharp frames do not match blur frames" in result.output and "000001" in result.output


def test_images_of_different_sizes(tmp_path):
    make_dataset(tmp_path, frames=3)
    write_png(tmp_path / "blur/seqA/000002.png", np.zeros((8, 8, 3), np.uint8))
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "images differ in size" in result.output and "8x8" in result.output


def test_missing_config_and_missing_timing(tmp_path):
    make_dataset(tmp_path, timing=False)
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "no way to align" in result.output
    (tmp_path / "spike/seqA/config.yaml").unlink()
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "spike config not found" in result.output


def test_missing_data_root_and_bad_option(tmp_path):
    assert run("build-sync", tmp_path / "nothing").exit_code == 1
    result = run("build-sync", tmp_path, "--timestamp-unit", "hours")
    assert result.exit_code == 2


def test_idempotent_keep_and_force(tmp_path):
    make_dataset(tmp_path, frames=3)
    assert run("build-sync", tmp_path).exit_code == 0
    path = tmp_path / "spike/seqA/sync.json"
    first = path.read_text()
    result = run("build-sync", tmp_path)
    assert "unchanged" in result.output and path.read_text() == first
    result = run("build-sync", tmp_path, "--exposure", "1.0")
    assert result.exit_code == 0 and "kept" in result.output and path.read_text() == first
    result = run("build-sync", tmp_path, "--exposure", "1.0", "--force")
    assert "written" in result.output and windows_of(tmp_path)[0] == (0, 10)


def test_dry_run_writes_nothing_and_reports(tmp_path):
    make_dataset(tmp_path, frames=4, spikes_per_frame=10, exposure=0.5)
    result = run("build-sync", tmp_path, "--dry-run")
    assert result.exit_code == 0
    assert not (tmp_path / "spike/seqA/sync.json").exists()
    row = next(line for line in result.output.splitlines() if "seqA" in line)
    # 4 frames of 5 spikes, 3 gaps, no overlap, 20 of 40 spike frames covered
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == ["seqA", "timing", "4", "5", "3", "0", "50%", "dry-run"]


def test_timestamps_in_spikes_and_seconds(tmp_path):
    make_dataset(tmp_path, frames=3, spikes_per_frame=10)
    ts = tmp_path / "spike/seqA/timestamps.txt"
    ts.write_text("# exposure per frame\n0 7\n000001.png 9 17\n20 30\n")
    build_sync(tmp_path)
    assert windows_of(tmp_path) == [(0, 7), (9, 17), (20, 30)]
    ts.write_text("# unit: seconds\n0.0 0.007\n0.0091 0.017\n0.02 0.03\n")  # 1000 Hz
    build_sync(tmp_path, force=True)
    assert windows_of(tmp_path) == [(0, 7), (10, 17), (20, 30)]


@pytest.mark.parametrize("content,message", [
    ("0 7\n9 17\n", "do not cover every blur frame"),
    ("0 7\n000005.png 9 17\n20 30\n", "names another frame"),
    ("0 7\n9 x\n20 30\n", "not numeric"),
    ("0 7\n9 9\n20 30\n", "empty spike window"),
    ("9 17\n0 7\n20 30\n", "out of order"),
])
def test_timestamp_errors(tmp_path, content, message):
    make_dataset(tmp_path, frames=3, spikes_per_frame=10)
    (tmp_path / "spike/seqA/timestamps.txt").write_text(content)
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and message in result.output, result.output


def test_per_frame_dat_files(tmp_path):
    make_dataset(tmp_path, frames=3)
    (tmp_path / "spike/seqA/spikes.dat").unlink()
    for i, n in enumerate((10, 11, 12)):
        write_dat(tmp_path / f"spike/seqA/{i:06d}.dat", np.zeros((n, 16, 24), bool))
    build_sync(tmp_path)
    sync = load_sync(tmp_path / "spike/seqA/sync.json")
    assert [(f.spike_file, f.spike_begin, f.spike_end) for f in sync.frames] == [
        ("spike/seqA/000000.dat", 0, 10), ("spike/seqA/000001.dat", 0, 11), ("spike/seqA/000002.dat", 0, 12)]
    build_sync(tmp_path, SyncOptions(window_spikes=4), force=True)
    assert windows_of(tmp_path) == [(3, 7), (3, 7), (4, 8)]
    result = run("build-sync", tmp_path, "--window-spikes", "11", "--force")
    assert result.exit_code == 1 and "shorter than --window-spikes" in result.output


def test_recipe_layout_is_converted(tmp_path):
    make_recipe(tmp_path)
    original = (tmp_path / "spike_raw/seqA/sync.json").read_text()
    result = run("build-sync", tmp_path)
    assert result.exit_code == 0, result.output
    sync = load_sync(tmp_path / "spike/seqA/sync.json")
    assert [(f.blur, f.sharp, f.spike_file, f.spike_begin, f.spike_end) for f in sync.frames][0] == (
        "gopro_rgb/seqA/000000.png", None, "spike_raw/seqA/spikes.dat", 1, 9)
    assert windows_of(tmp_path) == [(1, 9), (11, 19), (21, 29)]
    assert sync.T == 2
    assert (tmp_path / "spike_raw/seqA/sync.json").read_text() == original


def test_recipe_sync_json_with_a_utf8_bom_is_read_once_with_its_clip_length(tmp_path):
    """The recipe's sync.json is read once (windows and T together): one with a BOM (as Windows
    editors save it) used to pass the window read and crash the second, plain one."""
    make_recipe(tmp_path)
    path = tmp_path / "spike_raw/seqA/sync.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run("build-sync", tmp_path)
    assert result.exit_code == 0, result.output
    assert load_sync(tmp_path / "spike/seqA/sync.json").T == 2
    assert windows_of(tmp_path) == [(1, 9), (11, 19), (21, 29)]


@pytest.mark.parametrize("T", [0, 4, "6", True])
def test_recipe_clip_length_out_of_range(tmp_path, T):
    make_recipe(tmp_path, frames=3, T=T)
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "T (VRT clip length" in result.output and "1 <= T <= 3" in result.output


def test_recipe_missing_frame_is_an_error(tmp_path):
    make_recipe(tmp_path)
    path = tmp_path / "spike_raw/seqA/sync.json"
    recipe = json.loads(path.read_text())
    recipe["frames"].pop(1)
    recipe["T"] = 2
    path.write_text(json.dumps(recipe))
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "no window for some blur frames" in result.output
    assert "000001.png" in result.output


def test_bad_config_values(tmp_path):
    make_dataset(tmp_path)
    cfg = tmp_path / "spike/seqA/config.yaml"
    raw = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**raw, "exposure": 1.5}))
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "exposure" in result.output and "0 < exposure <= 1" in result.output
    cfg.write_text(yaml.safe_dump({**raw, "spike_w": "wide"}))
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "spike_w" in result.output


def test_geometry_mismatch_between_config_and_stream(tmp_path):
    make_dataset(tmp_path, height=16, width=24)
    cfg = tmp_path / "spike/seqA/config.yaml"
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "spike_w": 25}))
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "wrong H/W" in result.output


def test_verbose_shows_traceback(tmp_path):
    result = run("--verbose", "build-sync", tmp_path / "missing")
    assert result.exit_code == 1 and "error: DATA_ROOT not found" in result.output


# -- general capabilities (issue 12): jpg, spike.dat, dataset-level config, window rules --------

def per_frame(root: Path, lengths=(10, 11, 12)) -> Path:
    make_dataset(root, frames=len(lengths))
    (root / "spike/seqA/spikes.dat").unlink()
    for i, n in enumerate(lengths):
        write_dat(root / f"spike/seqA/{i:06d}.dat", np.zeros((n, 16, 24), bool))
    return root


def test_config_window_spikes_margins_and_the_flag_override(tmp_path):
    per_frame(tmp_path, (10, 11, 12))
    cfg = tmp_path / "spike/seqA/config.yaml"
    base = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**base, "window_spikes": 5}))
    build_sync(tmp_path)
    # begin = L//2 - N//2: 10 -> 3, 11 -> 3, 12 -> 4 (today's (L-N)//2 gives 2, 3, 3 for odd N)
    assert windows_of(tmp_path) == [(3, 8), (3, 8), (4, 9)]
    build_sync(tmp_path, SyncOptions(window_spikes=4), force=True)
    assert windows_of(tmp_path) == [(3, 7), (3, 7), (4, 8)]
    cfg.write_text(yaml.safe_dump({**base, "margins": [2, 3]}))
    build_sync(tmp_path, force=True)
    assert windows_of(tmp_path) == [(2, 7), (2, 8), (2, 9)]
    cfg.write_text(yaml.safe_dump({**base, "margins": [5, 5]}))
    assert "not longer than its margins" in run("build-sync", tmp_path, "--force").output
    cfg.write_text(yaml.safe_dump({**base, "margins": [5, 5], "window_spikes": 4}))
    assert "both window_spikes and margins" in run("build-sync", tmp_path, "--force").output
    for bad in ({"margins": [1]}, {"margins": [-1, 2]}, {"window_spikes": 0}):
        cfg.write_text(yaml.safe_dump({**base, **bad}))
        result = run("build-sync", tmp_path, "--force")
        assert result.exit_code == 1 and ("margins must be" in result.output or "window_spikes must" in result.output)


def test_dataset_level_config_and_missing_configs_named(tmp_path):
    make_dataset(tmp_path, sequences=("seqA", "seqB", "seqC"), frames=2)
    (tmp_path / "spike/seqA/config.yaml").rename(tmp_path / "spike/config.yaml")
    (tmp_path / "spike/seqB/config.yaml").unlink()
    assert run("build-sync", tmp_path).exit_code == 0  # A and B take the dataset-level file
    (tmp_path / "spike/seqC/config.yaml").write_text("spike_h: 16\nspike_w: 24\nflipud: false\n")
    build_sync(tmp_path, force=True)
    flips = {s: load_sync(tmp_path / f"spike/{s}/sync.json").flipud for s in ("seqA", "seqB", "seqC")}
    assert flips == {"seqA": True, "seqB": True, "seqC": False}  # seqC's own key wins, timing from the default
    (tmp_path / "spike/config.yaml").unlink()
    result = run("build-sync", tmp_path, "--force")
    assert result.exit_code == 1 and "spike config not found for 2 of 3 sequences" in result.output
    assert "seqA, seqB" in result.output


def test_jpg_inputs_and_spike_dat_stream(tmp_path):
    make_dataset(tmp_path, frames=3, sharp=False)
    for png in sorted((tmp_path / "blur/seqA").glob("*.png")):
        image = cv2.imread(str(png))
        assert cv2.imwrite(str(png.with_suffix(".jpg")), image)
        png.unlink()
    (tmp_path / "spike/seqA/spikes.dat").rename(tmp_path / "spike/seqA/spike.dat")
    result = run("build-sync", tmp_path)
    assert result.exit_code == 0, result.output
    sync = load_sync(tmp_path / "spike/seqA/sync.json")
    assert [f.blur for f in sync.frames][0] == "blur/seqA/000000.jpg"
    assert {f.spike_file for f in sync.frames} == {"spike/seqA/spike.dat"}


def test_some_frames_without_dat_are_named(tmp_path):
    per_frame(tmp_path, (10, 11, 12))
    (tmp_path / "spike/seqA/000001.dat").unlink()
    result = run("build-sync", tmp_path)
    assert result.exit_code == 1 and "1 of 3 frames have no per-frame .dat" in result.output
    assert "000001.dat" in result.output


def test_nested_sequence_folders_and_sharp_subset(tmp_path):
    make_dataset(tmp_path / "flat", sequences=("clip",), frames=3)
    for kind in ("blur", "sharp", "spike"):
        (tmp_path / "data" / kind / "002").mkdir(parents=True)
        shutil.move(tmp_path / "flat" / kind / "clip", tmp_path / "data" / kind / "002" / "occ008.320")
    extra = tmp_path / "data/sharp/002/occ008.320/000017.png"  # a larger sharp folder (X4K's fullRGB)
    write_png(extra, np.zeros((16, 24, 3), np.uint8))
    result = run("build-sync", tmp_path / "data")
    assert result.exit_code == 0, result.output
    sync = load_sync(tmp_path / "data/spike/002_occ008.320/sync.json")
    assert sync.sequence == "002_occ008.320" and len(sync.frames) == 3
    assert sync.frames[2].sharp == "sharp/002/occ008.320/000002.png"
    assert {f.spike_file for f in sync.frames} == {"spike/002/occ008.320/spikes.dat"}
    (tmp_path / "data/sharp/002/occ008.320/000001.png").unlink()
    result = run("build-sync", tmp_path / "data", "--force")
    assert result.exit_code == 1 and "missing sharp for 000001" in result.output
