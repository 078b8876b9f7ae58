"""`spikeprep register` on synthetic rigs with a KNOWN spike -> RGB matrix: accuracy of every
model, the overlap box, verdicts and exit codes of the fault paths, previews, and the
validation of the `Registration` record the later ``--fix`` will write."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import spikeprep
from spikeprep.cli import main
from spikeprep.errors import ConfigError
from spikeprep.registration import RegisterOptions, Registration, register
from spikeprep.registration.geometry import apply, centre_corners, overlap_box, resize_matrix, similarity
from spikeprep.registration.rig import Rig, write_rig

SPIKE = (128, 200)
RGB = (240, 320)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def perspective_rig() -> np.ndarray:
    """Scale 1.26, 3 degrees, shift (30, 30) px, a little perspective."""
    m = similarity(1.26, 3.0, 30.0, 30.0)
    m[2, :2] = (2e-5, -1.5e-5)
    return m


def make(root: Path, matrix, flipud: bool = True, **rig) -> Path:
    write_rig(root, "seq", Rig(tuple(map(tuple, matrix)), rgb_size=RGB, spike_size=SPIKE, **rig))
    if not flipud:  # the config says rows are stored top-down: every spike image reads upside down
        config = root / "spike" / "seq" / "config.yaml"
        config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "flipud": False}))
    spikeprep.build_sync(root)
    return root


@pytest.fixture(scope="module")
def rigs(tmp_path_factory):
    """Rigs made on first use (each test pays only for the ones it needs)."""
    made: dict[str, Path] = {}
    recipes = {
        "homography": dict(matrix=perspective_rig()),
        "similarity": dict(matrix=similarity(1.6, -4.0, -20.0, 12.0), seed=1),
        "larger": dict(matrix=similarity(2.2, -4.0, -60.0, -50.0), seed=5),  # spike view beyond the RGB frame
        "partial": dict(matrix=similarity(1.3, 2.0, 180.0, 120.0), seed=6),  # half of it outside
        "flat": dict(matrix=perspective_rig(), texture="flat"),
        "outside": dict(matrix=similarity(1.26, 3.0, 420.0, 300.0), seed=2),
        "mirrored": dict(matrix=perspective_rig(), mirror=True, seed=3),
        "upside-down": dict(matrix=perspective_rig(), flipud=False, seed=4),
    }

    def get(name: str) -> Path:
        if name not in made:
            made[name] = make(tmp_path_factory.mktemp(name) / "data", **recipes[name])
        return made[name]

    get.matrix = lambda name: recipes[name]["matrix"]
    return get


def corner_errors(found, truth) -> np.ndarray:
    """Distance (RGB px) between where two matrices put the spike frame's corner pixels."""
    corners = centre_corners(SPIKE)
    return np.linalg.norm(apply(np.array(found), corners) - apply(truth, corners), axis=1)


def tree(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def test_homography_found_within_a_pixel(rigs, tmp_path):
    root = rigs("homography")
    result = run("register", root, "--json", "--frames", 8, "--preview", tmp_path / "previews")
    assert result.exit_code == 0, result.output
    seq = json.loads(result.stdout)["sequences"]["seq"]
    assert set(seq) == {"model", "matrix", "rms_px", "ncc_before", "ncc_after", "overlap", "frames_used",
                        "verdict", "reason"}
    assert seq["verdict"] == "ok" and seq["model"] == "homography" and seq["frames_used"] >= 6
    assert seq["matrix"][2][2] == 1.0
    assert corner_errors(seq["matrix"], rigs.matrix("homography")).max() < 1.0
    assert seq["ncc_after"] > 0.8 > seq["ncc_before"] and seq["rms_px"] < 1.0
    (tmp_path / "previews" / "seq_register.png").stat()


def test_overlap_box_is_inside_the_true_quad(rigs):
    root = rigs("homography")
    (result,) = register(root, options=RegisterOptions(frames=8))
    x0, y0, x1, y1 = result.estimate.overlap
    assert 0 <= x0 < x1 <= RGB[1] and 0 <= y0 < y1 <= RGB[0]
    assert (x1 - x0) * (y1 - y0) > 0.5 * 1.26 ** 2 * SPIKE[0] * SPIKE[1]  # most of the view
    box = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], float)
    spike = apply(np.linalg.inv(rigs.matrix("homography")), box)
    assert (spike >= -0.5).all() and (spike[:, 0] <= SPIKE[1] - 0.5).all() and (spike[:, 1] <= SPIKE[0] - 0.5).all()
    assert result.registration.overlap == (x0, y0, x1, y1)


@pytest.mark.parametrize("model", ["similarity", "affine"])
def test_similarity_and_affine_models(rigs, model):
    (result,) = register(rigs("similarity"), options=RegisterOptions(model=model, frames=8))
    e = result.estimate
    assert e.verdict == "ok", e.reason
    m = e.matrix
    assert list(m[2]) == [0.0, 0.0, 1.0]
    if model == "similarity":
        assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])
    assert corner_errors(m, rigs.matrix("similarity")).max() < 1.0
    assert math.degrees(math.atan2(m[1, 0], m[0, 0])) == pytest.approx(-4.0, abs=0.2)


@pytest.mark.parametrize("name", ["larger", "partial"])
def test_views_larger_than_or_partly_outside_the_rgb_frame(rigs, name):
    """Accuracy where it counts: at the corners of the overlap box (the spike frame's own
    corners lie outside the RGB frame here)."""
    (result,) = register(rigs(name), options=RegisterOptions(model="similarity", frames=6))
    e = result.estimate
    assert e.verdict == "ok", e.reason
    x0, y0, x1, y1 = e.overlap
    assert (x1 - x0) * (y1 - y0) > 0.1 * RGB[0] * RGB[1]
    box = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], float)
    spike = apply(np.linalg.inv(rigs.matrix(name)), box)
    assert np.linalg.norm(apply(e.matrix, spike) - box, axis=1).max() < 1.0


def test_textureless_scene_is_not_ok_and_writes_nothing(rigs):
    root = rigs("flat")
    before = tree(root)
    result = run("register", root, "--json")
    assert result.exit_code == 3, result.output
    seq = json.loads(result.stdout)["sequences"]["seq"]
    assert seq["verdict"] in ("weak", "failed") and "texture" in seq["reason"]
    assert seq["matrix"] is None
    assert tree(root) == before


def test_spike_view_outside_the_rgb_view_fails(rigs):
    result = run("register", rigs("outside"), "--json")
    assert result.exit_code == 3, result.output
    seq = json.loads(result.stdout)["sequences"]["seq"]
    assert seq["verdict"] == "failed" and "no match" in seq["reason"], seq
    table = run("register", rigs("outside"))  # the plain table says so too
    assert table.exit_code == 3 and "failed" in table.stdout


def test_mirrored_spike_image_fails_with_the_reason(rigs):
    result = run("register", rigs("mirrored"), "--json")
    assert result.exit_code == 3, result.output
    seq = json.loads(result.stdout)["sequences"]["seq"]
    assert seq["verdict"] == "failed" and "mirrored left-right" in seq["reason"]


def test_wrong_flipud_is_named(rigs):
    seq = json.loads(run("register", rigs("upside-down"), "--json").stdout)["sequences"]["seq"]
    assert seq["verdict"] == "failed" and "flipud in config.yaml is likely wrong" in seq["reason"]


def test_missing_sync_json_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    write_rig(root, "seq", Rig(tuple(map(tuple, perspective_rig())), frames=2))
    result = run("register", root)
    assert result.exit_code == 1
    assert "error: sync.json not found" in result.output and "build-sync" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--frames", "1"], ["--model", "projective"]])
def test_usage_errors_exit_2(tmp_path, args):
    assert run("register", tmp_path, *args).exit_code == 2


def test_overlap_box_of_a_plain_resize():
    """Spike frame stretched 2x onto the RGB frame: the outermost RGB pixels' centres fall
    half a spike pixel outside the spike pixel centres, so the box leaves them out."""
    assert overlap_box(resize_matrix((10, 20), (20, 40)), (10, 20), (20, 40)) == (1, 1, 39, 19)
    assert overlap_box(similarity(1.0, 0.0, 500.0, 0.0), (10, 20), (20, 40)) is None


# -- the Registration record ------------------------------------------------------------------

GOOD = {"model": "homography", "matrix": [[1.26, -0.07, 30.0], [0.07, 1.26, 30.0], [2e-5, -1e-5, 1.0]],
        "overlap": [30, 43, 272, 191], "spike_size": [128, 200], "rgb_size": [240, 320]}


def test_registration_round_trips():
    record = Registration.from_dict(GOOD, sensor_size=(128, 200))
    assert Registration.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.array.shape == (3, 3) and record.matrix[2][2] == 1.0
    scaled = Registration.from_dict({**GOOD, "matrix": [[2 * v for v in row] for row in GOOD["matrix"]]})
    assert np.allclose(scaled.matrix, record.matrix)  # normalised to matrix[2][2] == 1


@pytest.mark.parametrize("change, words", [
    ({"matrix": [[1, 0, 0], [0, 1, 0]]}, "not 3x3"),
    ({"matrix": [[1, 0, 0], [0, 1, 0], [0, 0, float("nan")]]}, "not finite"),
    ({"matrix": [[1, 0, 0], [0, 1, "x"], [0, 0, 1]]}, "not a number"),
    ({"matrix": [[-1.2, 0, 300], [0, 1.2, 0], [0, 0, 1]]}, "mirrors"),
    ({"matrix": [[1, 1, 0], [1, 1, 0], [0, 0, 1]]}, "singular"),
    ({"model": "affine"}, "perspective terms"),
    ({"model": "projective"}, "unknown model"),
    ({"overlap": [100, 43, 100, 191]}, "overlap is empty"),
    ({"overlap": [30, 43, 400, 191]}, "outside the RGB frame"),
    ({"spike_size": [128]}, "spike_size must be"),
    ({"rgb_size": [240, 0]}, "rgb_size must be"),
])
def test_registration_refuses(change, words):
    with pytest.raises(ConfigError, match=words) as info:
        Registration.from_dict({**GOOD, **change}, path="spike/seq/config.yaml")
    assert info.value.path == "spike/seq/config.yaml" and info.value.fix


def test_registration_spike_size_must_be_the_sensor_size():
    with pytest.raises(ConfigError, match="differs from the sequence's sensor size"):
        Registration.from_dict(GOOD, sensor_size=(250, 400))
    with pytest.raises(ConfigError, match="keys missing"):
        Registration.from_dict({"model": "homography"})
