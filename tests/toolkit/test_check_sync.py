"""`spikeprep check-sync` end to end on simulated data with strong motion: verdicts, exit codes,
--json, --fix (window_shift, flipud), previews, every input mode and every error path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import spikeprep
from spikeprep.cli import main
from spikeprep.errors import ConfigError
from spikeprep.inputs.dat import SpikeStream, write_dat
from spikeprep.inputs.sequence_config import load_config
from spikeprep.sync import load_sync

SPF, EXPOSED = 80, 40  # spike frames per RGB frame, and per exposure window (exposure 0.5)
SPIKE_RATE = 20000.0


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim") / "data"
    spikeprep.simulate_dataset(root, sequences=1, frames=12, height=32, width=48, spikes_per_frame=SPF,
                               motion=3.0, threshold=1.0, seed=3)
    return root


@pytest.fixture
def data(simulated, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(simulated, root)
    return root


def set_config(root: Path, **changes) -> Path:
    path = root / "spike" / "seq000" / "config.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw))
    return path


def check(root: Path, *flags):
    result = run("check-sync", root, "--json", *flags)
    return result, (json.loads(result.stdout)["sequences"] if result.stdout.startswith("{") else None)


def test_correct_timing_is_ok(data):
    spikeprep.build_sync(data)
    result, report = check(data)
    assert result.exit_code == 0, result.output
    seq = report["seq000"]
    assert {"score", "best_offset", "best_score", "orientation", "verdict"} <= seq.keys()
    assert seq["verdict"] == "ok" and seq["orientation"] == "as-is"
    assert abs(seq["best_offset"]) <= 3 and seq["score"] > 0.9
    assert seq["score_sharp"] is not None and seq["search"] == EXPOSED // 2
    assert seq["exposure"]["best_scale"] == 1.0


def test_known_offset_is_found_back(data):
    set_config(data, window_shift=16)  # windows 16 spike frames late
    spikeprep.build_sync(data)
    result, report = check(data)
    assert result.exit_code == 3, result.output
    seq = report["seq000"]
    assert seq["verdict"] == "offset" and abs(seq["best_offset"] + 16) <= 2
    assert seq["best_offset_s"] == pytest.approx(seq["best_offset"] / SPIKE_RATE)
    assert seq["best_score"] > seq["score"] + seq["threshold"]


def test_offset_in_config_timing_is_found_back(data):
    set_config(data, offset=12 / SPIKE_RATE)  # timing offset of 12 spike frames
    spikeprep.build_sync(data)
    result, report = check(data)
    assert result.exit_code == 3 and abs(report["seq000"]["best_offset"] + 12) <= 2


def test_wrong_flipud_names_the_orientation(data):
    set_config(data, flipud=False)
    spikeprep.build_sync(data)
    result = run("check-sync", data)
    assert result.exit_code == 3
    assert "orientation" in result.output and "flipud" in result.output
    assert check(data)[1]["seq000"]["orientation"] == "flipud"


def test_fix_then_check_again(data):
    config = set_config(data, window_shift=16, flipud=False, labeled_data_type=[4])
    spikeprep.build_sync(data)
    first = run("check-sync", data, "--fix")  # the orientation is fixed first
    assert first.exit_code == 0, first.output
    assert load_config(config).flipud is True
    second = run("check-sync", data, "--fix", "--json")
    assert second.exit_code == 0 and json.loads(second.stdout)["sequences"]["seq000"]["verdict"] == "offset"
    assert abs(load_config(config).window_shift) <= 2
    assert yaml.safe_load(config.read_text())["labeled_data_type"] == [4]  # other keys kept
    assert load_sync(data / "spike/seq000/sync.json").source.get("window_shift", 0) == load_config(config).window_shift
    result, report = check(data)
    assert result.exit_code == 0 and report["seq000"]["verdict"] == "ok"


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_fix_refuses_to_write_through_a_symlinked_config(data, tmp_path, linked):
    config = set_config(data, window_shift=16)
    if linked == "file":
        source = tmp_path / "download" / "config.yaml"
        source.parent.mkdir()
        shutil.move(config, source)
        config.symlink_to(source)
    else:  # the whole spike folder links into a download
        shutil.move(config.parent, tmp_path / "download")
        config.parent.symlink_to(tmp_path / "download", target_is_directory=True)
        source = tmp_path / "download" / "config.yaml"
    spikeprep.build_sync(data)
    before = source.read_text()
    result = run("check-sync", data, "--fix")
    assert result.exit_code == 3
    assert "link" in result.output and source.read_text() == before


def test_fix_that_would_not_build_puts_the_config_back(data):
    for part in ("blur", "sharp"):  # frames 1..11; their windows 16 spike frames early
        (data / part / "seq000" / "000000.png").unlink()
    lines = [f"{i * SPF - 16} {i * SPF - 16 + EXPOSED}" for i in range(1, 12)]
    (data / "spike" / "seq000" / "timestamps.txt").write_text("\n".join(lines) + "\n")
    path = data / "spike" / "seq000" / "spikes.dat"
    frames = SpikeStream(filepath=str(path), spike_h=32, spike_w=48, print_dat_detail=False).read(0, 11 * SPF + 30)
    write_dat(path, frames)  # the last frame's true window [880, 920) is cut short
    spikeprep.build_sync(data)
    config = data / "spike" / "seq000" / "config.yaml"
    before = config.read_text()
    result = run("check-sync", data, "--fix")
    assert result.exit_code == 3
    assert "would not build" in result.output and "outside its spike stream" in result.output
    assert config.read_text() == before


def mirror_stream(root: Path, flip) -> None:
    path = root / "spike" / "seq000" / "spikes.dat"
    stream = SpikeStream(filepath=str(path), spike_h=32, spike_w=48, print_dat_detail=False)
    frames = stream.read(0, len(stream))
    stream.close()
    write_dat(path, flip(frames))


def test_fliplr_is_reported_with_advice_not_fixed(data):
    mirror_stream(data, lambda f: f[:, :, ::-1])
    spikeprep.build_sync(data)
    config = data / "spike" / "seq000" / "config.yaml"
    before = config.read_text()
    result = run("check-sync", data, "--fix")
    assert result.exit_code == 3 and "fliplr" in result.output and "mirror" in result.output
    assert config.read_text() == before


def write_static(root: Path, texture: bool, frames: int = 8) -> Path:
    """A still scene: every window sees the same image (no motion), spikes ~ Bernoulli(luma/2)."""
    rng = np.random.default_rng(0)
    h, w = 32, 48
    luma = cv2.GaussianBlur(rng.random((h, w)), (0, 0), 2) if texture else np.full((h, w), 0.5)
    luma = (luma - luma.min()) / max(np.ptp(luma), 1e-9) if texture else luma
    rgb = np.repeat((luma * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    for i in range(frames):
        (root / "blur" / "still").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "blur" / "still" / f"{i:06d}.png"), rgb)
    write_dat(root / "spike" / "still" / "spikes.dat", rng.random((frames * SPF, h, w)) < luma / 2)
    (root / "spike" / "still" / "config.yaml").write_text(yaml.safe_dump(
        {"spike_h": h, "spike_w": w, "flipud": True, "spike_rate": SPIKE_RATE,
         "frame_rate": SPIKE_RATE / SPF, "exposure": 0.5}))
    spikeprep.build_sync(root)
    return root


@pytest.mark.parametrize("texture,why", [(True, "motion"), (False, "texture")])
def test_static_or_textureless_scene_is_weak(tmp_path, texture, why):
    root = write_static(tmp_path / "still", texture)
    result, report = check(root)
    assert result.exit_code == 0, result.output
    assert report["still"]["verdict"] == "weak" and why in report["still"]["reason"]


def test_without_sharp_frames(data):
    shutil.rmtree(data / "sharp")
    spikeprep.build_sync(data)
    result, report = check(data)
    assert result.exit_code == 0 and report["seq000"]["verdict"] == "ok"
    assert report["seq000"]["score_sharp"] is None


def test_timestamps_mode(data):
    lines = [f"{i * SPF + 16} {i * SPF + 16 + EXPOSED}" for i in range(12)]  # 16 frames late
    (data / "spike" / "seq000" / "timestamps.txt").write_text("\n".join(lines) + "\n")
    spikeprep.build_sync(data)
    assert load_sync(data / "spike/seq000/sync.json").source["mode"] == "timestamps"
    result, report = check(data)
    assert result.exit_code == 3 and abs(report["seq000"]["best_offset"] + 16) <= 2
    assert run("check-sync", data, "--fix").exit_code == 0  # window_shift works on timestamps too
    assert check(data)[0].exit_code == 0


def split_per_frame(root: Path) -> None:
    path = root / "spike" / "seq000" / "spikes.dat"
    frames = SpikeStream(filepath=str(path), spike_h=32, spike_w=48, print_dat_detail=False).read(0, 12 * SPF)
    for i in range(12):
        write_dat(path.with_name(f"{i:06d}.dat"), frames[i * SPF:(i + 1) * SPF])
    path.unlink()


def test_per_frame_files(data):
    split_per_frame(data)
    assert run("build-sync", data, "--window-spikes", EXPOSED).exit_code == 0
    result, report = check(data)  # centred windows [20, 60): the exposure was [0, 40)
    assert result.exit_code == 3 and report["seq000"]["best_offset"] <= -18
    assert run("build-sync", data, "--force").exit_code == 0  # whole files: no room to move
    result, report = check(data)
    assert report["seq000"]["verdict"] == "weak" and "inside the stream" in report["seq000"]["reason"]


def test_frames_samples_and_table(data):
    spikeprep.build_sync(data)
    result, report = check(data, "--frames", 6, "--search", 12, "--sequence", "seq000")
    assert list(report) == ["seq000"]
    assert report["seq000"]["frames"] == 6 and max(report["seq000"]["offsets"]) == 12
    table = run("check-sync", data)
    assert table.exit_code == 0 and "seq000" in table.output and "ok" in table.output


def test_previews(data, tmp_path):
    spikeprep.build_sync(data)
    out = tmp_path / "previews"
    result = run("check-sync", data, "--preview", out)
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(out / "seq000_sheet.png"))
    plot = cv2.imread(str(out / "seq000_offsets.png"))
    assert sheet is not None and plot is not None
    assert sheet.shape[1] > sheet.shape[0] > 200  # 4 rows x 7 panels (blur, sharp, count, 4 voxels)
    left, right = sheet[:, : sheet.shape[1] // 7], sheet[:, -sheet.shape[1] // 7:]
    colour = np.abs(left.astype(int) - left[:, :, ::-1]).mean()  # the blurry frame is in colour
    grey = np.abs(right.astype(int) - right[:, :, ::-1]).mean()  # the voxels are grey
    assert colour > 3 * grey + 1
    from spikeprep.alignment.check import check_sequence
    from spikeprep.report.previews import check_rows
    rows = check_rows(data, check_sequence(data, "seq000"))
    assert len(rows) == 4 and not np.array_equal(rows[0].count, rows[1].count)
    assert rows[0].voxels.shape == (4, 32, 48) and rows[0].voxels.sum() == rows[0].count.sum()


def test_error_paths(data, tmp_path):
    result = run("check-sync", data)  # no sync.json yet
    assert result.exit_code == 1 and "sync.json not found" in result.output and "build-sync" in result.output
    spikeprep.build_sync(data)
    for args, message in ((("--search", 0), "--search"), (("--frames", 1), "--frames")):
        result = run("check-sync", data, *args)
        assert result.exit_code == 2 and message in result.output
    assert run("check-sync", data, "--search", "x").exit_code == 2
    assert run("check-sync", tmp_path / "nowhere").exit_code == 1
    result = run("check-sync", data, "--sequence", "nope")
    assert result.exit_code == 1 and "unknown sequence" in result.output
    (data / "blur" / "seq000" / "000003.png").write_bytes(b"not a png")
    result = run("check-sync", data)
    assert result.exit_code == 1 and "cannot read image" in result.output


def test_window_shift_in_config(data):
    set_config(data, window_shift=5)
    spikeprep.build_sync(data)
    frames = load_sync(data / "spike/seq000/sync.json").frames
    assert [(f.spike_begin, f.spike_end) for f in frames[:2]] == [(5, 45), (85, 125)]
    set_config(data, window_shift=2.5)
    with pytest.raises(ConfigError, match="window_shift"):
        spikeprep.build_sync(data, force=True)
    set_config(data, window_shift=-1)
    result = run("build-sync", data, "--force")
    assert result.exit_code == 1 and "window_shift" in result.output


@pytest.mark.parametrize("repr_", ["bins", "temporal4"])
def test_info_preview_draws_the_sheets_from_a_cache(data, tmp_path, repr_):
    spikeprep.build_sync(data)
    cache = tmp_path / "cache"
    assert run("voxelize", data, cache, "--repr", repr_, "--S", 4).exit_code == 0
    result = run("info", cache, "--preview", tmp_path / "sheets")
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(tmp_path / "sheets" / "seq000_sheet.png"))
    assert sheet is not None and sheet.shape[1] > sheet.shape[0] > 200
    from spikeprep.cache.reader import open_cache
    from spikeprep.report.previews import cache_rows
    with open_cache(cache) as opened:
        rows = cache_rows(opened, "seq000")
        first = opened.read("seq000", 0)
        expected = first.spike[3] if repr_ == "temporal4" else first.spike.sum(axis=0)
        assert np.array_equal(rows[0].count, expected)
        assert float(rows[0].label.rsplit("r=", 1)[1]) > 0.8  # the stored voxels match the blur


def test_spike_image_by_hand():
    from spikeprep.report.previews import spike_image
    voxels = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    assert np.array_equal(spike_image(voxels, "bins")[0], voxels.sum(axis=0))
    assert np.array_equal(spike_image(voxels, "temporal4")[0], voxels[3])
    assert np.array_equal(spike_image(voxels, "ema")[0], voxels[-1])
    assert spike_image(voxels, "tfp")[1] == "TFP sum"


def test_a_wrong_exposure_shows(data):
    frame_rate = SPIKE_RATE / SPF
    set_config(data, exposure=0.25, offset=0.125 / frame_rate)  # half the true window, same centre
    spikeprep.build_sync(data)
    exposure = check(data)[1]["seq000"]["exposure"]
    assert exposure["best_scale"] == 2.0 and exposure["clear"]
    assert "x2?" in run("check-sync", data).output


def test_recipe_layout_is_checked_but_its_files_are_never_edited(data):
    shutil.rmtree(data / "sharp")
    (data / "gopro_rgb").mkdir()
    shutil.move(data / "blur" / "seq000", data / "gopro_rgb" / "seq000")
    shutil.move(data / "spike", data / "spike_raw")
    (data / "blur").rmdir()
    recipe = {"seq_name": "seq000", "T": 12, "frames": [  # windows 16 spike frames late
        {"rgb": f"{i:06d}.png", "spike_begin": i * SPF + 16, "spike_end": i * SPF + 16 + EXPOSED} for i in range(12)]}
    (data / "spike_raw" / "seq000" / "sync.json").write_text(json.dumps(recipe))
    assert run("build-sync", data).exit_code == 0
    before = {p: p.read_bytes() for p in (data / "spike_raw" / "seq000").iterdir()}
    result, report = check(data)
    assert result.exit_code == 3 and abs(report["seq000"]["best_offset"] + 16) <= 2
    fixed = run("check-sync", data, "--fix")
    assert fixed.exit_code == 3 and "recipe" in fixed.output
    assert {p: p.read_bytes() for p in (data / "spike_raw" / "seq000").iterdir()} == before
