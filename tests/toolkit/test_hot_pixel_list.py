"""`voxelize --hot-pixel-list QC.json`: the hot pixels `spikeprep qc` found are the repair mask
(issue 21: voxelize takes qc's list through the existing hot-pixel repair)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import spikeprep
from spikeprep.cli import main

HOT = [(5, 7), (20, 30)]


@pytest.fixture
def data_root(tmp_path):
    """Two simulated sequences with planted stuck pixels (firing every frame)."""
    from spikeprep.inputs.dat import SpikeStream, write_dat

    root = tmp_path / "data"
    spikeprep.simulate_dataset(root, sequences=2, frames=3, height=48, width=64, spikes_per_frame=40)
    for seq in ("seq000", "seq001"):
        path = root / "spike" / seq / "spikes.dat"
        with SpikeStream(filepath=path, spike_h=48, spike_w=64, print_dat_detail=False) as stream:
            spikes = stream.read(0, len(stream))
        for r, c in HOT:
            spikes[:, r, c] = True
        write_dat(path, spikes)
    spikeprep.build_sync(root)
    return root


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_qc_list_repairs_what_qc_found(data_root, tmp_path):
    report = run("qc", data_root, "--json")
    assert report.exit_code == 3
    qc = json.loads(report.stdout)
    for entry in qc["files"].values():
        assert entry["hot_pixels"] == [list(p) for p in HOT]
    (tmp_path / "qc.json").write_text(report.stdout)
    built = run("voxelize", data_root, tmp_path / "cache", "--S", 2, "--hot-pixel-list", tmp_path / "qc.json")
    assert built.exit_code == 0, built.output
    cache = spikeprep.open_cache(tmp_path / "cache")
    assert cache.params.hot_pixels == "list"
    assert cache.params.hot_pixel_list == {"seq000": [list(p) for p in HOT], "seq001": [list(p) for p in HOT]}
    mask = cache.hot_pixels("seq000")
    assert sorted(map(tuple, np.argwhere(mask).tolist())) == HOT
    plain = tmp_path / "plain"
    spikeprep.voxelize_dataset(data_root, plain, S=2, progress=False)
    repaired = np.asarray(cache.read("seq000", 1).spike)
    raw = np.asarray(spikeprep.open_cache(plain).read("seq000", 1).spike)
    for r, c in HOT:  # a stuck pixel counts every frame of its bin; repaired it is its neighbours' median
        assert (raw[:, r, c] > repaired[:, r, c]).all()
    assert run("verify", tmp_path / "cache", "--data", data_root).exit_code == 0


def test_a_list_that_misses_a_sequence_is_an_error(data_root, tmp_path):
    qc = json.loads(run("qc", data_root / "spike" / "seq000", "--json").stdout)
    (tmp_path / "qc.json").write_text(json.dumps(qc))
    result = run("voxelize", data_root, tmp_path / "cache", "--hot-pixel-list", tmp_path / "qc.json")
    assert result.exit_code == 1
    assert "hot-pixel list does not cover every spike file" in result.output and "seq001" in result.output
    assert not (tmp_path / "cache").exists()


def test_a_list_for_another_sensor_is_an_error(data_root, tmp_path):
    files = {f"x/spike/{s}/spikes.dat": {"hot_pixels": [[100, 5]]} for s in ("seq000", "seq001")}
    (tmp_path / "qc.json").write_text(json.dumps({"files": files}))
    result = run("voxelize", data_root, tmp_path / "cache", "--hot-pixel-list", tmp_path / "qc.json")
    assert result.exit_code == 1 and "outside the spike frame" in result.output


def test_a_malformed_list_is_an_error(data_root, tmp_path):
    (tmp_path / "qc.json").write_text('{"files": {"a.dat": {"hot_pixels": [[1]]}}}')
    result = run("voxelize", data_root, tmp_path / "cache", "--hot-pixel-list", tmp_path / "qc.json")
    assert result.exit_code == 1 and "hot-pixel list entry is malformed" in result.output
    result = run("voxelize", data_root, tmp_path / "cache", "--hot-pixel-list", tmp_path / "none.json")
    assert result.exit_code != 0 and "Traceback" not in result.output
