"""A rig's registration used everywhere: ``register --fix`` writes it into config.yaml (comments
kept, nothing through a link, nothing on a fault), build-sync carries it into sync.json,
voxelize crops and resamples to the overlap, verify re-derives it, check-sync scores through it,
and a changed registration makes the cache's records stale."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import spikeprep
from spikeprep.cli import main
from spikeprep.inputs.yaml_edit import set_keys
from spikeprep.registration import Registration
from spikeprep.registration.geometry import apply, centre_corners, overlap_box, similarity
from spikeprep.registration.rig import Rig, write_rig

SMALL_RGB, SMALL_SPIKE = (120, 160), (64, 100)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def perspective() -> np.ndarray:
    m = similarity(1.26, 3.0, 30.0, 30.0)
    m[2, :2] = (2e-5, -1.5e-5)
    return m


def small_matrix() -> np.ndarray:
    return similarity(1.25, 2.0, 15.0, 20.0)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64) - a.mean(), b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def truth(matrix, spike=SMALL_SPIKE, rgb=SMALL_RGB) -> Registration:
    m = np.asarray(matrix, float) / matrix[2][2]
    return Registration("homography", tuple(map(tuple, m.tolist())), overlap_box(m, spike, rgb), spike, rgb)


def put_registration(root: Path, seq: str, reg: Registration | dict) -> Path:
    """Write a registration block into spike/SEQ/config.yaml by hand (the editor keeps the rest)."""
    path = root / "spike" / seq / "config.yaml"
    block = reg.to_dict() if isinstance(reg, Registration) else reg
    path.write_text(set_keys(path.read_text(), {"registration": block}))
    return path


def small_rig(root: Path, seq: str = "seq", matrix=None, registered=True, **rig) -> Path:
    matrix = small_matrix() if matrix is None else matrix
    write_rig(root, seq, Rig(tuple(map(tuple, matrix)), rgb_size=SMALL_RGB, spike_size=SMALL_SPIKE, frames=4, **rig))
    if registered:
        put_registration(root, seq, truth(matrix))
    spikeprep.build_sync(root, sequences=(seq,), force=True)
    return root


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


# -- the judged end-to-end path ----------------------------------------------------------------

def test_register_fix_build_sync_voxelize_end_to_end(tmp_path):
    """After build-sync, ``register --json`` exits 0 with the matrix within 1 RGB px at the spike
    image's corners; after ``register --fix``, ``build-sync --force`` and ``voxelize --S 4``,
    every cached frame's voxel sum correlates with its blurred luminance at NCC >= 0.9."""
    root, cache = tmp_path / "data", tmp_path / "cache"
    matrix = perspective()
    write_rig(root, "seq", Rig(tuple(map(tuple, matrix))))
    assert run("build-sync", root).exit_code == 0
    result = run("register", root, "--json")
    assert result.exit_code == 0, result.output
    found = np.array(json.loads(result.stdout)["sequences"]["seq"]["matrix"])
    corners = centre_corners((128, 200))
    assert np.linalg.norm(apply(found, corners) - apply(matrix, corners), axis=1).max() < 1.0
    fixed = run("register", root, "--fix")
    assert fixed.exit_code == 0 and "seq: fixed: registration" in fixed.output, fixed.output
    assert run("build-sync", root, "--force").exit_code == 0
    built = run("voxelize", root, cache, "--S", 4)
    assert built.exit_code == 0, built.output
    c = spikeprep.open_cache(cache)
    params, entry = c.manifest.params, c.manifest.sequences["seq"]
    assert params.match == "rgb" and params.spike_dtype == "float32" and params.registration.dtype == "float32"
    x0, y0, x1, y1 = entry.registration.crop_box
    assert tuple(params.registration.crop) == (y1 - y0, x1 - x0) == tuple(params.rgb_shape[:2])
    for i in range(entry.num_frames):
        s = c.read("seq", i)
        assert s.spike.shape == (4, y1 - y0, x1 - x0) and s.spike.dtype == np.float32
        assert ncc(s.spike.sum(axis=0), luminance(s.blur)) >= 0.9
    assert run("verify", cache, "--data", root).exit_code == 0
    check = run("check-sync", root, "--json")
    assert json.loads(check.stdout)["sequences"]["seq"]["score"] > 0.8  # through the registration


# -- register --fix: what it writes, and when it writes nothing ---------------------------------

def test_fix_keeps_comments_and_other_keys_and_rebuilds_sync(tmp_path):
    root = small_rig(tmp_path / "data", registered=False)
    config = root / "spike" / "seq" / "config.yaml"
    text = "# the rig of lab 3\n" + config.read_text().replace("flipud: true", "flipud: true  # bottom-up") \
        + "labeled_data_type: [4]   # SpikeCV's own key\n"
    config.write_text(text)
    result = run("register", root, "--fix", "--frames", 4)
    assert result.exit_code == 0, result.output
    edited = config.read_text()
    assert edited.startswith(text)  # every line before kept byte for byte; the block appended
    block = spikeprep.load_sync(root / "spike/seq/sync.json").registration
    assert block is not None and block["spike_size"] == list(SMALL_SPIKE) and block["rgb_size"] == list(SMALL_RGB)
    corners = centre_corners(SMALL_SPIKE)
    assert np.linalg.norm(apply(np.array(block["matrix"]), corners) - apply(small_matrix(), corners), axis=1).max() < 1
    again = run("register", root, "--fix", "--frames", 4)  # the block is replaced, not repeated
    assert again.exit_code == 0 and config.read_text().count("registration:") == 1
    assert config.read_text().startswith(text)


@pytest.mark.parametrize("name, rig, words", [
    ("no texture", dict(texture="flat"), "texture"),
    ("no overlap", dict(matrix=similarity(1.25, 2.0, 420.0, 300.0)), "verdict"),
    ("mirrored", dict(mirror=True), "mirror"),
])
def test_fault_paths_write_nothing(tmp_path, name, rig, words):
    root = small_rig(tmp_path / "data", registered=False, **rig)
    before = snapshot(root)
    result = run("register", root, "--fix", "--frames", 4)
    assert result.exit_code == 3, result.output
    assert "seq: not fixed: verdict" in result.output
    assert words in result.output.lower()
    assert snapshot(root) == before


def test_registration_for_another_sensor_size_is_refused(tmp_path):
    root = small_rig(tmp_path / "data", registered=False)
    before = snapshot(root)
    block = {**truth(small_matrix()).to_dict(), "spike_size": [64, 99]}
    config = root / "spike" / "seq" / "config.yaml"
    config.write_text(set_keys(config.read_text(), {"registration": block}))
    result = run("build-sync", root, "--force")
    assert result.exit_code == 1 and "spike_size differs from the sequence's sensor size" in result.output
    assert (root / "spike/seq/sync.json").read_bytes() == before[root / "spike/seq/sync.json"]
    sync = root / "spike" / "seq" / "sync.json"  # a sync.json edited by hand: voxelize refuses it
    raw = json.loads(sync.read_text())
    sync.write_text(json.dumps({**raw, "registration": block}))
    result = run("voxelize", root, tmp_path / "cache", "--S", 2)
    assert result.exit_code == 1 and "sensor size" in result.output
    assert not (tmp_path / "cache" / "manifest.json").exists()


def test_fix_never_writes_through_a_link(tmp_path):
    root = small_rig(tmp_path / "data", registered=False)
    config = root / "spike" / "seq" / "config.yaml"
    download = tmp_path / "download.yaml"
    shutil.move(config, download)
    os.symlink(download, config)
    before = download.read_bytes()
    result = run("register", root, "--fix", "--frames", 4)
    assert result.exit_code == 3 and "link" in result.output
    assert download.read_bytes() == before


def test_a_fixed_rig_writes_the_dataset_level_config(tmp_path):
    root = tmp_path / "data"
    for seq, seed in (("a", 0), ("b", 1)):
        small_rig(root, seq, registered=False, seed=seed)
    shared = root / "spike" / "config.yaml"
    shared.write_text("# one rig for every sequence\n" + (root / "spike/a/config.yaml").read_text())
    for seq in ("a", "b"):
        (root / "spike" / seq / "config.yaml").unlink()
    result = run("register", root, "--fix", "--frames", 4)
    assert result.exit_code == 0, result.output
    assert shared.read_text().startswith("# one rig for every sequence\n") and "registration:" in shared.read_text()
    regs = [spikeprep.load_sync(root / f"spike/{s}/sync.json").registration for s in ("a", "b")]
    assert regs[0] == regs[1] is not None
    own = put_registration_file(root, "b", truth(similarity(1.25, 2.0, 16.0, 20.0)))  # a sequence's own file wins
    spikeprep.build_sync(root, sequences=("b",), force=True)
    assert spikeprep.load_sync(root / "spike/b/sync.json").registration["matrix"][0][2] == 16.0
    assert own.is_file()


def put_registration_file(root: Path, seq: str, reg: Registration) -> Path:
    path = root / "spike" / seq / "config.yaml"
    path.write_text("# this sequence's own\n" + set_keys("", {"registration": reg.to_dict()}))
    return path


# -- voxelize, verify, staleness -----------------------------------------------------------------

def test_crop_is_one_size_centred_in_every_overlap(tmp_path):
    root = tmp_path / "data"
    small_rig(root, "a")
    small_rig(root, "b", matrix=similarity(1.1, -1.0, 10.0, 12.0), seed=2)
    result = run("voxelize", root, tmp_path / "cache", "--S", 2, "--hot-pixels", "detect")
    assert result.exit_code == 0, result.output
    m = spikeprep.open_cache(tmp_path / "cache").manifest
    h, w = m.params.registration.crop
    for seq in ("a", "b"):
        reg = m.sequences[seq].registration
        ox0, oy0, ox1, oy1 = reg.overlap
        x0, y0, x1, y1 = reg.crop_box
        assert (y1 - y0, x1 - x0) == (h, w)
        assert ox0 <= x0 and x1 <= ox1 and oy0 <= y0 and y1 <= oy1
        assert abs((x0 - ox0) - (ox1 - x1)) <= 1 and abs((y0 - oy0) - (oy1 - y1)) <= 1
    assert min(r.registration.overlap[3] - r.registration.overlap[1] for r in m.sequences.values()) == h
    assert min(r.registration.overlap[2] - r.registration.overlap[0] for r in m.sequences.values()) == w
    assert spikeprep.open_cache(tmp_path / "cache").read("a", 0).blur.shape == (h, w, 3)
    assert run("verify", tmp_path / "cache", "--data", root).exit_code == 0
    info = run("info", tmp_path / "cache")
    assert "registered rig" in info.output and "crop" in info.output


def test_match_spike_crops_the_spikes_and_resamples_rgb(tmp_path):
    root = small_rig(tmp_path / "data")
    result = run("voxelize", root, tmp_path / "cache", "--S", 2, "--match", "spike")
    assert result.exit_code == 0, result.output
    c = spikeprep.open_cache(tmp_path / "cache")
    p, reg = c.manifest.params, c.manifest.sequences["seq"].registration
    x0, y0, x1, y1 = reg.crop_box  # spike px
    assert 0 <= x0 < x1 <= SMALL_SPIKE[1] and 0 <= y0 < y1 <= SMALL_SPIKE[0]
    assert p.spike_dtype == "uint8" and tuple(p.rgb_shape) == (y1 - y0, x1 - x0, 3)
    s = c.read("seq", 0)
    sync = spikeprep.load_sync(root / "spike/seq/sync.json")
    f = sync.frames[0]
    with sync.open_stream(root, f.spike_file) as stream:  # the spikes, not resampled: a crop of the counts
        counts = stream.read(f.spike_begin, f.spike_end, flipud=sync.flipud).sum(axis=0)
    assert np.array_equal(s.spike.sum(axis=0), counts[y0:y1, x0:x1])
    assert ncc(s.spike.sum(axis=0), luminance(s.blur)) > 0.7  # native spike noise, no smoothing
    assert run("verify", tmp_path / "cache", "--data", root).exit_code == 0


def test_sequences_all_registered_or_none(tmp_path):
    root = tmp_path / "data"
    small_rig(root, "a")
    small_rig(root, "b", registered=False, seed=1)
    result = run("voxelize", root, tmp_path / "cache", "--S", 2)
    assert result.exit_code == 1 and "some sequences are registered and some are not" in result.output
    assert "b" in result.output


def test_match_none_is_refused_for_a_registered_rig(tmp_path):
    root = small_rig(tmp_path / "data")
    result = run("voxelize", root, tmp_path / "cache", "--S", 2, "--match", "none")
    assert result.exit_code == 2 and "--match rgb or --match spike" in result.output


def test_a_changed_registration_makes_the_records_stale(tmp_path):
    root, cache = small_rig(tmp_path / "data"), tmp_path / "cache"
    assert run("voxelize", root, cache, "--S", 2).exit_code == 0
    with spikeprep.open_cache(cache) as c:
        old = c.read("seq", 0).blur.copy()
        old_box = c.manifest.sequences["seq"].registration.crop_box
    moved = similarity(1.25, 2.0, 17.0, 20.0)  # the rig was re-measured: 2 px further right
    put_registration(root, "seq", truth(moved))
    assert run("build-sync", root, "--force").exit_code == 0
    verify = run("verify", cache, "--data", root)
    assert verify.exit_code != 0 and "registration" in verify.output
    again = run("voxelize", root, cache, "--S", 2)
    assert again.exit_code == 0, again.output
    assert "0 already done, 1 rebuilt (sources changed)" in " ".join(again.output.split())
    with spikeprep.open_cache(cache) as c:
        assert c.manifest.sequences["seq"].registration.matrix[0][2] == 17.0
        assert c.manifest.sequences["seq"].registration.crop_box[0] == 2 + old_box[0]
        assert not np.array_equal(c.read("seq", 0).blur, old)  # cut 2 px further right
    assert run("verify", cache, "--data", root).exit_code == 0


def test_check_sync_scores_through_the_registration(tmp_path):
    root = small_rig(tmp_path / "data")
    registered = json.loads(run("check-sync", root, "--json").stdout)["sequences"]["seq"]["score"]
    sync = root / "spike" / "seq" / "sync.json"
    raw = json.loads(sync.read_text())
    raw.pop("registration")
    sync.write_text(json.dumps(raw))
    plain = json.loads(run("check-sync", root, "--json").stdout)["sequences"]["seq"]["score"]
    assert registered > 0.7 > plain + 0.3


def test_registration_for_other_rgb_frames_is_refused_by_build_sync(tmp_path):
    root = small_rig(tmp_path / "data", registered=False)
    before = (root / "spike/seq/sync.json").read_bytes()
    reg = truth(small_matrix())
    put_registration(root, "seq", {**reg.to_dict(), "rgb_size": [240, 320]})
    result = run("build-sync", root, "--force")
    assert result.exit_code == 1 and "rgb_size differs from the sequence's RGB frames" in result.output
    assert (root / "spike/seq/sync.json").read_bytes() == before
