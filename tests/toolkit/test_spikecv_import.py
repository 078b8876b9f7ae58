"""`spikeprep import spikecv`: SpikeCV real recordings (config.yaml + SCENE.dat, no RGB, no GT)
become spike-only sequences of non-overlapping, centred windows; the cache holds spike records
only (has_blur false, has_sharp false, rgb_shape the spike frame's (h, w, 1)). Also: sync.json's
``"blur": null`` frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from spikeprep import open_cache
from spikeprep.cli import main
from spikeprep.datasets import ImportOptions, plan_import
from spikeprep.datasets.spikecv import windows
from spikeprep.errors import ConfigError, LayoutError, SyncError, UsageError
from spikeprep.sync import parse_sync
from tests.support.replicas import tree_hash
from tests.toolkit.test_spike_zoo_import import decode_dat, write_dat

H, W = 8, 16
CONFIG = f"filename: rec\nspike_h: {H}\nspike_w: {W}\nis_labeled: false\n"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def fake_dataset(root, lengths: dict[str, int], config=CONFIG):
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    if config is not None:
        (root / "config.yaml").write_text(config)
    for rel, L in lengths.items():
        write_dat(root / rel, rng.random((L, H, W)) < 0.2)
    return root


def test_windows_by_hand():
    assert windows(100, 41) == [(9, 50), (50, 91)]
    assert windows(41, 41) == [(0, 41)]
    assert windows(40, 41) == []
    assert windows(10, 3) == [(0, 3), (3, 6), (6, 9)]


def test_fake_scene_end_to_end(tmp_path):
    src = fake_dataset(tmp_path / "recVidarReal2019", {"classA/car.dat": 100, "ball.dat": 45})
    before = tree_hash(src)
    data, cache = tmp_path / "data", tmp_path / "cache"
    result = run("import", "spikecv", src, data)
    assert result.exit_code == 0, result.output
    sync = json.loads((data / "spike/classA_car/sync.json").read_text())
    assert [(f["name"], f["spike_begin"], f["spike_end"], f["blur"], f["sharp"]) for f in sync["frames"]] == \
        [("000029", 9, 50, None, None), ("000070", 50, 91, None, None)]
    assert run("build-sync", data).exit_code == 0
    result = run("voxelize", data, cache, "--repr", "count")
    assert result.exit_code == 0, result.output
    assert run("verify", cache, "--data", data).exit_code == 0
    assert tree_hash(src) == before
    c = open_cache(cache)
    assert c.params.has_blur is False and tuple(c.params.rgb_shape) == (H, W, 1)
    assert not any(e.has_sharp for e in c.manifest.sequences.values())
    assert c.frame_name("classA_car", 1) == "000070"
    bits = decode_dat(src / "classA/car.dat", H, W)
    for i, (b, e) in enumerate([(9, 50), (50, 91)]):
        s = c.read("classA_car", i)
        assert s.blur is None and s.sharp is None
        np.testing.assert_array_equal(s.spike[0], bits[b:e].sum(axis=0))
    assert c.num_frames("ball") == 1 and c.read("ball", 0).spike_begin == 2
    assert (cache / "meta_info.txt").read_text().splitlines()[0] == f"ball 1 ({H},{W},1) 0"
    result = run("info", cache, "--preview", tmp_path / "previews")
    assert result.exit_code == 0 and "spike-only" in result.output, result.output
    assert (tmp_path / "previews/classA_car_sheet.png").is_file()


def test_window_flag_and_errors(tmp_path):
    src = fake_dataset(tmp_path / "ds", {"a.dat": 30})
    plan = plan_import("spikecv", src, ImportOptions(window=10))
    assert [(f.begin, f.end, f.name) for f in plan.sequences[0].frames] == [(0, 10, "000005"), (10, 20, "000015"),
                                                                           (20, 30, "000025")]
    with pytest.raises(LayoutError, match="shorter than one window"):
        plan_import("spikecv", src, ImportOptions())
    with pytest.raises(UsageError, match="positive"):
        plan_import("spikecv", src, ImportOptions(window=0))
    with pytest.raises(UsageError, match="does not apply"):
        plan_import("spike-zoo", src, ImportOptions(window=5, splits=("train",)))
    nocfg = fake_dataset(tmp_path / "nocfg", {"a.dat": 30}, config=None)
    with pytest.raises(LayoutError, match="SpikeCV dataset"):
        plan_import("spikecv", nocfg, ImportOptions())
    assert plan_import("spikecv", nocfg, ImportOptions(spike_size=(H, W), window=30)).sequences[0].name == "a"
    badcfg = fake_dataset(tmp_path / "badcfg", {"a.dat": 30}, config="spike_h: 8\n")
    with pytest.raises(ConfigError, match="no spike size"):
        plan_import("spikecv", badcfg, ImportOptions())
    (tmp_path / "nodat").mkdir()
    (tmp_path / "nodat/config.yaml").write_text("spike_h: 8\nspike_w: 16\n")
    with pytest.raises(LayoutError, match="no recordings"):
        plan_import("spikecv", tmp_path / "nodat", ImportOptions())


def _sync(frames):
    return {"format": "spikeprep.sync", "version": 1, "sequence": "s",
            "spike": {"height": H, "width": W, "flipud": True}, "frames": frames}


def test_sync_json_blur_null():
    frame = {"blur": None, "sharp": None, "spike_file": "spike/s/a.dat", "spike_begin": 0, "spike_end": 4}
    sync = parse_sync(_sync([frame]))
    assert sync.spike_only and sync.frames[0].source_name == "a"
    assert sync.to_dict()["frames"][0]["blur"] is None
    with pytest.raises(SyncError, match="some frames have a blur"):
        parse_sync(_sync([frame, {**frame, "blur": "blur/s/x.png", "spike_begin": 4, "spike_end": 8}]))
    with pytest.raises(SyncError, match="blur is missing"):
        parse_sync(_sync([{k: v for k, v in frame.items() if k != "blur"}]))
