"""`spikeprep simulate`: layout, determinism, integrate-and-fire, blur/sharp, --from-frames, CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from spikeprep import SpikeStream, simulate_dataset
from spikeprep.cli import main
from spikeprep.errors import LayoutError, UsageError
from spikeprep.inputs.sequence_config import Timing, load_config
from spikeprep.simulate import simulate_from_frames, synthetic_scene
from spikeprep.simulate.scenes import luma

FRAMES, SPF = 6, 40


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _stream(out: Path, seq: str = "seq000") -> SpikeStream:
    config = load_config(out / "spike" / seq / "config.yaml")
    return SpikeStream(filepath=out / "spike" / seq / "spikes.dat", spike_h=config.spike_h,
                       spike_w=config.spike_w, print_dat_detail=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "data"
    simulate_dataset(out, sequences=2, frames=FRAMES, height=64, width=48, spikes_per_frame=SPF, seed=3)
    return out


def test_layout_is_complete(dataset):
    for seq in ("seq000", "seq001"):
        for part in ("blur", "sharp"):
            pngs = sorted((dataset / part / seq).glob("*.png"))
            assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(FRAMES)]
            assert _read_rgb(pngs[0]).shape == (64, 48, 3)
        config = load_config(dataset / "spike" / seq / "config.yaml")
        assert (config.spike_h, config.spike_w, config.flipud) == (64, 48, True)
        assert config.timing == Timing(20000.0, 500.0, 0.5, 0.0)
        assert len(_stream(dataset, seq)) == FRAMES * SPF
        assert not list((dataset / "spike" / seq).glob("*.partial"))


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    simulate_dataset(again, sequences=2, frames=FRAMES, height=64, width=48, spikes_per_frame=SPF, seed=3)
    simulate_dataset(other, sequences=2, frames=FRAMES, height=64, width=48, spikes_per_frame=SPF, seed=4)
    assert _files(again) == _files(dataset)
    reference, changed = _files(dataset), _files(other)
    assert reference.keys() == changed.keys()
    differing = [name for name in reference if reference[name] != changed[name]]
    assert all(name in differing for name in reference if name.endswith((".png", ".dat")))


def test_sequences_differ(dataset):
    assert (dataset / "spike/seq000/spikes.dat").read_bytes() != (dataset / "spike/seq001/spikes.dat").read_bytes()


def _luma_sum(scene, n_samples: int, spike_rate_hz: float = 20000.0) -> np.ndarray:
    total = np.zeros((scene.height, scene.width), np.float64)
    for sample in range(n_samples):
        total += scene.render_luma(sample / spike_rate_hz)
    return total


def test_firing_rate_follows_luma(dataset):
    """Integrate-and-fire with subtraction: count = floor((start + sum(luma)) / threshold)."""
    scene, _ = synthetic_scene(3, 0, 64, 48, 500.0)
    expected = _luma_sum(scene, FRAMES * SPF) / 2.0
    counts = _stream(dataset).read(0, FRAMES * SPF).sum(axis=0)
    assert np.all(np.abs(counts - expected) <= 1.0 + 1e-3)
    assert counts.mean() == pytest.approx(expected.mean(), rel=0.02)


def test_render_luma_is_luma_of_render():
    scene, _ = synthetic_scene(1, 0, 64, 48, 500.0)
    for time_s in (0.0, 0.00123, 0.0117):
        assert np.abs(scene.render_luma(time_s) - luma(scene.render(time_s))).max() < 1e-5


def test_blur_is_mean_over_window_and_sharp_is_mid_exposure(dataset):
    scene, _ = synthetic_scene(3, 0, 64, 48, 500.0)
    timing = Timing(20000.0, 500.0, 0.5)
    for frame in (0, FRAMES - 1):
        begin, end = timing.window(frame)
        assert (begin, end) == (frame * SPF, frame * SPF + SPF // 2)
        mean = np.mean([scene.render(k / 20000.0) for k in range(begin, end)], axis=0)
        blur = _read_rgb(dataset / "blur/seq000" / f"{frame:06d}.png").astype(np.float64)
        assert np.abs(blur - mean * 255).max() <= 0.51 + 1e-3
        sharp = _read_rgb(dataset / "sharp/seq000" / f"{frame:06d}.png").astype(np.float64)
        mid_s = (frame + 0.25) / 500.0
        assert np.abs(sharp - scene.render(mid_s) * 255).max() <= 0.51
        assert np.abs(blur - sharp).max() > 5  # objects move a few pixels per frame


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def test_spike_counts_match_sharp_orientation(dataset):
    """End to end through the .dat bytes: counts over frame i's window look like sharp frame i."""
    timing = Timing(20000.0, 500.0, 0.5)
    stream = _stream(dataset)
    for frame in range(FRAMES):
        counts = stream.read(*timing.window(frame)).sum(axis=0)
        gray = luma(_read_rgb(dataset / "sharp/seq000" / f"{frame:06d}.png").astype(np.float32) / 255)
        upright, flipped = _correlation(counts, gray), _correlation(counts, gray[::-1])
        assert upright > 0.6 and upright > flipped + 0.3


def test_spikes_do_not_depend_on_exposure(dataset, tmp_path):
    simulate_dataset(tmp_path / "x", sequences=1, frames=FRAMES, height=64, width=48, spikes_per_frame=SPF,
                     seed=3, exposure=0.9)
    assert (tmp_path / "x/spike/seq000/spikes.dat").read_bytes() == (dataset / "spike/seq000/spikes.dat").read_bytes()


def test_spike_downsample_halves_the_stream(tmp_path):
    summary = simulate_dataset(tmp_path / "d", sequences=1, frames=2, height=64, width=96, spike_downsample=2)
    assert (summary.spike_h, summary.spike_w) == (32, 48)
    config = load_config(tmp_path / "d/spike/seq000/config.yaml")
    assert (config.spike_h, config.spike_w) == (32, 48)
    assert len(_stream(tmp_path / "d")) == 2 * 40
    assert _read_rgb(tmp_path / "d/blur/seq000/000000.png").shape == (64, 96, 3)


@pytest.mark.parametrize("kwargs", [dict(frames=0), dict(sequences=0), dict(height=8), dict(exposure=0.0),
                                    dict(exposure=1.5), dict(threshold=0), dict(spike_rate=-1),
                                    dict(spikes_per_frame=0), dict(spike_downsample=0), dict(seed=-1),
                                    dict(height=20, width=20, spike_downsample=2)])
def test_bad_parameters_are_usage_errors(tmp_path, kwargs):
    with pytest.raises(UsageError):
        simulate_dataset(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "o"
    simulate_dataset(out, sequences=2, frames=2)
    with pytest.raises(UsageError, match="not empty"):
        simulate_dataset(out, sequences=1, frames=2)
    (out / "notes.txt").write_text("keep me")
    simulate_dataset(out, sequences=1, frames=3, force=True)
    assert not (out / "blur/seq001").exists() and (out / "notes.txt").exists()
    assert len(list((out / "blur/seq000").glob("*.png"))) == 3


def _write_frames(folder: Path, count: int, height: int = 32, width: int = 40) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    base = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    for index in range(count):
        cv2.imwrite(str(folder / f"{index:05d}.png"), np.roll(base, index, axis=1))


def test_from_frames_single_folder(tmp_path):
    _write_frames(tmp_path / "clip", 17)
    summary = simulate_from_frames(tmp_path / "clip", tmp_path / "out", images_per_frame=8)
    assert summary.sequences == ("clip",) and summary.frames == (2,) and summary.spike_frames == (80,)
    assert len(_stream(tmp_path / "out", "clip")) == 80
    # exposure 0.5 over 8 images: mid-exposure is exactly source image 8 i + 2
    source = _read_rgb(tmp_path / "clip/00010.png")
    assert np.abs(_read_rgb(tmp_path / "out/sharp/clip/000001.png").astype(int) - source).max() <= 1
    assert len(list((tmp_path / "out/blur/clip").glob("*.png"))) == 2


def test_from_frames_subfolders_and_downsample(tmp_path):
    _write_frames(tmp_path / "src/a", 9)
    _write_frames(tmp_path / "src/b", 18)
    summary = simulate_from_frames(tmp_path / "src", tmp_path / "out", images_per_frame=4, spikes_per_frame=8,
                                   spike_downsample=2)
    assert summary.sequences == ("a", "b") and summary.frames == (2, 4)
    assert (summary.spike_h, summary.spike_w) == (16, 20) and len(_stream(tmp_path / "out", "b")) == 32


def test_from_frames_errors(tmp_path):
    with pytest.raises(LayoutError, match="not found"):
        simulate_from_frames(tmp_path / "missing", tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no source images"):
        simulate_from_frames(tmp_path / "empty", tmp_path / "o2")
    _write_frames(tmp_path / "mixed", 10)
    cv2.imwrite(str(tmp_path / "mixed/00004.png"), np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(LayoutError, match="differ in size") as err:
        simulate_from_frames(tmp_path / "mixed", tmp_path / "o3")
    assert "00004.png" in str(err.value)
    _write_frames(tmp_path / "short", 8)
    with pytest.raises(LayoutError, match="too few"):
        simulate_from_frames(tmp_path / "short", tmp_path / "o4", images_per_frame=8)
    _write_frames(tmp_path / "odd", 9, height=5, width=5)
    with pytest.raises(UsageError, match="multiple of 8"):
        simulate_from_frames(tmp_path / "odd", tmp_path / "o5")
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4", "o5"))


def test_cli_simulate(tmp_path):
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "c"), "--sequences", "1", "--frames", "3"])
    assert result.exit_code == 0, result.output
    assert "1 sequence (seq000): 3 frames, 120 spike frames" in result.output
    assert len(_stream(tmp_path / "c")) == 120


def test_cli_help_teaches():
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0 and "Timing rule" in result.output and "--from-frames" in result.output


@pytest.mark.parametrize("args, code", [(["--exposure", "2"], 2), (["--height", "20", "--width", "20",
                                                                      "--spike-downsample", "2"], 2),
                                        (["--frames", "3", "--from-frames", "x"], 2)])
def test_cli_bad_options(tmp_path, args, code):
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "c"), *args])
    assert result.exit_code == code
    assert "error:" in result.output and "Traceback" not in result.output


def test_cli_existing_output_without_force(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["simulate", str(tmp_path / "c"), "--frames", "2"]).exit_code == 0
    result = runner.invoke(main, ["simulate", str(tmp_path / "c"), "--frames", "2"])
    assert result.exit_code == 2 and "--force" in result.output
    assert runner.invoke(main, ["simulate", str(tmp_path / "c"), "--frames", "2", "--force"]).exit_code == 0


def test_cli_from_frames(tmp_path):
    _write_frames(tmp_path / "clip", 9)
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "o"), "--from-frames", str(tmp_path / "clip")])
    assert result.exit_code == 0, result.output
    assert "(clip): 1 frames, 40 spike frames" in result.output
