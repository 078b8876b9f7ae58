"""`spikeprep qc`: geometry inferred from the bits, planted hot and dead pixels found, frame
checks, config checks, and every promised error. Captures are made here from a smooth moving
scene with Bernoulli spikes (independent of the code under test); files of one byte size and
different geometry are the hard case: their size fits all of them."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep.cli import main
from spikeprep.inputs.dat import SpikeStream, write_dat
from spikeprep.qc import qc_paths
from spikeprep.qc.frames import frame_counts
from spikeprep.qc.geometry import rank_geometries
from spikeprep.qc.pixels import neighbourhood

FILE_BYTES = 1_440_000  # 250x400 x 115.2 (no), 240x320 x 150, 200x300 x 192, 180x320 x 200, 360x640 x 50


def scene_rates(height: int, width: int, frames: int, seed: int) -> np.ndarray:
    """``(frames, H, W)`` firing probabilities in [0.03, 0.6]: a multi-scale random texture (no
    period, like a natural scene) drifting slowly."""
    import cv2

    rng = np.random.default_rng(seed)
    pad = 16
    texture = sum(cv2.GaussianBlur(rng.standard_normal((height + 2 * pad, width + 2 * pad)).astype(np.float32),
                                   (0, 0), sigma) * sigma for sigma in (2, 6, 18))
    texture = 0.03 + 0.57 * (texture - texture.min()) / np.ptp(texture)
    out = np.empty((frames, height, width), np.float32)
    for t in range(frames):
        shift = np.float32([[1, 0, -pad + 0.04 * t], [0, 1, -pad + 0.025 * t]])
        out[t] = cv2.warpAffine(texture, shift, (width, height), flags=cv2.INTER_LINEAR)
    return out


def capture(path, height, width, frames, seed=0, hot=(), dead=(), hot_rate=1.0):
    """Write a capture; plant ``hot`` pixels (firing with ``hot_rate``) and ``dead`` ones."""
    rng = np.random.default_rng(seed + 1)
    spikes = rng.random((frames, height, width)) < scene_rates(height, width, frames, seed)
    for r, c in hot:
        spikes[:, r, c] = rng.random(frames) < hot_rate
    for r, c in dead:
        spikes[:, r, c] = False
    write_dat(path, spikes)  # image orientation in, stored bottom-up (flipud) as SpikeCV does
    return path


SIZES = [(240, 320), (200, 300), (180, 320), (360, 640)]


@pytest.mark.parametrize("height,width", SIZES)
def test_geometry_of_files_of_one_size(tmp_path, height, width):
    frames = FILE_BYTES * 8 // (height * width)
    assert frames * height * width == FILE_BYTES * 8  # the same size fits every one of them
    path = capture(tmp_path / "x.dat", height, width, frames, seed=height)
    best = rank_geometries(path)[0]
    assert (best.height, best.width, best.frames, best.leftover_bytes) == (height, width, frames, 0)


def test_planted_hot_and_dead_pixels_are_named_and_little_else(tmp_path):
    hot = [(10, 20), (100, 333), (101, 333), (240, 5)]
    dead = [(50, 50), (120, 200), (200, 390), (30, 300)]
    path = capture(tmp_path / "x.dat", 250, 400, 200, seed=3, hot=hot, dead=dead)
    report = qc_paths([path]).reports[0]
    assert {tuple(p) for p in report.hot_pixels} >= set(hot)
    assert {tuple(p) for p in report.dead_pixels} >= set(dead)
    others = len(report.hot_pixels) + len(report.dead_pixels) - len(hot) - len(dead)
    assert others <= 5
    assert report.verdict == "problems" and report.problems == ["4 hot pixels", "4 dead pixels"]


def test_a_clean_capture_is_clean(tmp_path):
    path = capture(tmp_path / "x.dat", 200, 300, 120, seed=5)
    result = qc_paths([path])
    report = result.reports[0]
    assert (report.hot_pixels, report.dead_pixels, report.problems, result.exit_code) == ([], [], [], 0)
    assert report.geometry.source == "inferred" and report.geometry.flipud is True


def test_pixel_lists_are_in_image_orientation(tmp_path):
    """A hot pixel planted at image row 3 is reported at row 3 (the file stores it at row H-4)."""
    path = capture(tmp_path / "x.dat", 240, 320, 120, seed=7, hot=[(3, 7)])
    assert qc_paths([path]).reports[0].hot_pixels == [[3, 7]]


def test_empty_saturated_frames_and_rate_jumps(tmp_path):
    rng = np.random.default_rng(0)
    spikes = rng.random((120, 240, 320)) < scene_rates(240, 320, 120, 11)
    spikes[40] = False
    spikes[41] = True
    spikes[80:82] &= rng.random((2, 240, 320)) < 0.2  # a burst of lost spikes
    write_dat(tmp_path / "x.dat", spikes)
    report = qc_paths([tmp_path / "x.dat"]).reports[0]
    assert report.empty_frames == [40]
    assert report.saturated_frames == [41]
    assert report.rate_jumps == [40, 41, 80, 81]


def test_config_geometry_is_used_and_checked(tmp_path):
    seq = tmp_path / "data/spike/seq"
    seq.mkdir(parents=True)
    capture(seq / "spikes.dat", 250, 400, 96, seed=2)
    (seq / "config.yaml").write_text("spike_h: 250\nspike_w: 400\n")
    good = qc_paths([tmp_path / "data"]).reports[0]
    assert (good.geometry.source, good.geometry.height, good.problems) == ("config", 250, [])
    (seq / "config.yaml").write_text("spike_h: 400\nspike_w: 250\n")
    wrong = qc_paths([seq]).reports[0]
    assert wrong.problems == ["config.yaml says 400x250 but the data reads as 250x400 (rows correlate "
                              f"{wrong.geometry.candidates[0].row_score:.2f}); check spike_h/spike_w"]


def test_write_config_only_where_there_is_none(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "spike" / name).mkdir(parents=True)
        capture(tmp_path / "spike" / name / "spikes.dat", 240, 320, 125, seed=1)
    (tmp_path / "spike/b/config.yaml").write_text("spike_h: 240\nspike_w: 320\nflipud: true\n# mine\n")
    result = qc_paths([tmp_path], write_config=True)
    assert result.configs_written == [str(tmp_path / "spike/a/config.yaml")]
    assert (tmp_path / "spike/a/config.yaml").read_text() == "spike_h: 240\nspike_w: 320\nflipud: true\n"
    assert (tmp_path / "spike/b/config.yaml").read_text().endswith("# mine\n")  # untouched


def test_brightness_ratio_with_rgb(tmp_path):
    import cv2

    (tmp_path / "spike/seq").mkdir(parents=True)
    (tmp_path / "blur/seq").mkdir(parents=True)
    capture(tmp_path / "spike/seq/spikes.dat", 240, 320, 125, seed=4)
    cv2.imwrite(str(tmp_path / "blur/seq/000000.png"), np.full((240, 320, 3), 128, np.uint8))
    report = qc_paths([tmp_path]).reports[0]
    assert report.brightness_ratio == pytest.approx(report.firing_rate["mean"] / (128 / 255), abs=1e-3)


# -- errors ----------------------------------------------------------------------------------
def run(*args):
    result = CliRunner().invoke(main, ["qc", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.dat").write_bytes(b"")
    result = run(tmp_path / "x.dat")
    assert result.exit_code == 1
    assert f"error: spike file is empty ({tmp_path / 'x.dat'}): found 0 bytes" in result.output


def test_a_file_that_fits_no_geometry_is_a_clear_error(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, 1_200_000, dtype=np.uint8)
    (tmp_path / "x.dat").write_bytes(noise.tobytes())
    result = run(tmp_path / "x.dat")
    assert result.exit_code == 1
    assert "error: spike file fits no sensor geometry" in result.output


def test_truncated_last_frame_is_named(tmp_path):
    path = capture(tmp_path / "x.dat", 250, 400, 96, seed=6)
    with open(path, "ab") as handle:
        handle.write(b"\x00" * 5000)
    result = run(path)
    assert result.exit_code == 1
    assert ("error: spike file's last frame is truncated" in result.output
            and "96 frames of 250x400 + 5000 bytes" in result.output)


def test_truncated_file_with_a_config_is_a_clear_error(tmp_path):
    path = capture(tmp_path / "x.dat", 250, 400, 20, seed=6)
    with open(path, "ab") as handle:
        handle.write(b"\x00" * 7)
    (tmp_path / "config.yaml").write_text("spike_h: 250\nspike_w: 400\n")
    result = run(path)
    assert result.exit_code == 1 and "not a whole number of frames" in result.output


def test_missing_path_is_a_clear_error(tmp_path):
    result = run(tmp_path / "nothing")
    assert result.exit_code == 1 and "error: capture not found" in result.output


def test_json_exit_codes_and_previews(tmp_path):
    clean = capture(tmp_path / "clean.dat", 240, 320, 125, seed=8)
    hot = capture(tmp_path / "sub/hot.dat", 240, 320, 125, seed=8, hot=[(100, 100)])
    assert run(clean).exit_code == 0
    result = run(clean, hot, "--json", "--preview", tmp_path / "prev")
    assert result.exit_code == 3
    files = json.loads(result.stdout)["files"]
    assert list(files) == [str(clean), str(hot)]
    keys = {"spike_h", "spike_w", "frames", "geometry", "candidates", "hot_pixels", "dead_pixels", "verdict"}
    assert keys <= files[str(hot)].keys()
    assert files[str(hot)]["hot_pixels"] == [[100, 100]] and files[str(hot)]["verdict"] == "problems"
    names = sorted(p.name for p in (tmp_path / "prev").iterdir())
    assert names == sorted([f"{tmp_path.name}_clean_rate.png", f"{tmp_path.name}_clean_tfp.png",
                            "sub_hot_rate.png", "sub_hot_tfp.png"])


# -- kernels against plain numpy -------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.sampled_from([(8, 8), (16, 24), (5, 8)]), st.integers(0, 2**32 - 1))
def test_frame_counts_equal_unpacked_sums(frames, size, seed):
    rng = np.random.default_rng(seed)
    spikes = rng.random((frames, *size)) < rng.random()
    with tempfile.TemporaryDirectory() as tmp:
        write_dat(os.path.join(tmp, "x.dat"), spikes)
        with SpikeStream(filepath=os.path.join(tmp, "x.dat"), spike_h=size[0], spike_w=size[1],
                         print_dat_detail=False) as stream:
            assert frame_counts(stream, chunk_frames=7).tolist() == spikes.reshape(frames, -1).sum(1).tolist()


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 12), st.integers(3, 12), st.integers(0, 2**32 - 1))
def test_neighbourhood_median_and_quartile_equal_a_loop(height, width, seed):
    rate = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    median, quartile = neighbourhood(rate)
    padded = np.pad(rate, 2, mode="reflect")
    for r in range(height):
        for c in range(width):
            ring = np.delete(padded[r:r + 5, c:c + 5].ravel(), 12)
            assert median[r, c] == pytest.approx(np.median(ring))
            ordered = np.sort(ring)
            assert quartile[r, c] == pytest.approx((ordered[5] + ordered[6]) / 2)
