"""spikeprep import: every preset's windows, skips, padding, splits and names equal what its
official loader feeds (transcribed in tests/replicas.py), SOURCE is never written, errors are clear."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from spikeprep import SpikeStream, load_sync
from spikeprep.cli import main
from tests.support import replicas


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def imported(root: Path) -> dict:
    """``{sequence: SyncFile}`` of every sync.json in DATA_ROOT."""
    return {p.parent.name: load_sync(p) for p in sorted((root / "spike").glob("*/sync.json"))}


def fed(root: Path, frame, h: int, w: int) -> np.ndarray:
    """What our sync.json says the network sees for a frame: the window with its padding."""
    stream = SpikeStream(filepath=root / frame.spike_file, spike_h=h, spike_w=w, print_dat_detail=False)
    core = stream.get_block_spikes(frame.spike_begin, frame.spike_end - frame.spike_begin)
    pad = lambda k: np.full((k, h, w), frame.pad_value, np.uint8)  # noqa: E731
    return np.concatenate([pad(frame.pad_before), core.astype(np.uint8), pad(frame.pad_after)])


# -- spk-gopro --------------------------------------------------------------------------------

GOPRO_SEQS = {"train": {"GOPR0372_07_00": ["000047", "000048"], "GOPR0374_11_00": ["000001"]},
              "test": {"GOPR0384_11_00": ["000001", "000002"]}}


def test_spk_gopro_windows_splits_names_at_full_size(tmp_path):
    src = replicas.spk_gopro(tmp_path / "src", GOPRO_SEQS, rgb=(72, 128))
    before = replicas.tree_hash(src)
    result = run("import", "spk-gopro", src, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert replicas.tree_hash(src) == before
    syncs = imported(tmp_path / "data")
    assert {k: s.split for k, s in syncs.items()} == {"GOPR0372_07_00": "train", "GOPR0374_11_00": "train",
                                                      "GOPR0384_11_00": "test"}
    seq = syncs["GOPR0372_07_00"]
    assert [f.name for f in seq.frames] == ["000047", "000048"]
    assert seq.frames[0].blur == "blur/GOPR0372_07_00/000047.png"
    assert (tmp_path / "data" / seq.frames[0].blur).resolve() == (
        src / "GOPRO_Large/train/GOPR0372_07_00/blur_gamma/000047.png").resolve()
    for name, sync in syncs.items():
        split = sync.split
        for frame in sync.frames:
            dat = src / "GOPRO_Large_spike_seq" / split / name / "spike" / f"{frame.name}.dat"
            spikes = replicas.loader_decode(dat, 360, 640)
            b, e = replicas.spk_gopro_window(len(spikes))
            assert (frame.spike_begin, frame.spike_end) == (b, e) and e - b == 56
            np.testing.assert_array_equal(fed(tmp_path / "data", frame, 360, 640), spikes[b:e])
    assert (tmp_path / "data" / "spike/GOPR0374_11_00/000001.dat").is_symlink()
    config = yaml.safe_load((tmp_path / "data/spike/GOPR0374_11_00/config.yaml").read_text())
    assert config == {"spike_h": 360, "spike_w": 640, "flipud": True, "window_spikes": 56}
    assert not (tmp_path / "data/spike/GOPR0374_11_00/config.yaml").is_symlink()


def test_spk_gopro_linear_blur_and_selection(tmp_path):
    src = replicas.spk_gopro(tmp_path / "src", GOPRO_SEQS, spike=(8, 16), rgb=(16, 32))
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16", "--blur", "linear",
                 "--split", "test")
    assert result.exit_code == 0, result.output
    syncs = imported(tmp_path / "data")
    assert list(syncs) == ["GOPR0384_11_00"]
    link = tmp_path / "data" / syncs["GOPR0384_11_00"].frames[0].blur
    assert os.readlink(link).endswith("GOPR0384_11_00/blur/000001.png")
    result = run("import", "spk-gopro", src, tmp_path / "data2", "--spike-size", "8x16",
                 "--sequence", "GOPR0374_11_00")
    assert result.exit_code == 0 and list(imported(tmp_path / "data2")) == ["GOPR0374_11_00"]


def test_spk_gopro_missing_dat_names_every_frame(tmp_path):
    src = replicas.spk_gopro(tmp_path / "src", GOPRO_SEQS, spike=(8, 16), rgb=(16, 32))
    (src / "GOPRO_Large_spike_seq/train/GOPR0372_07_00/spike/000048.dat").unlink()
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16")
    assert result.exit_code == 1 and "1 of 2 frames have no .dat" in result.output
    assert "000048.dat" in result.output and not (tmp_path / "data").exists()


# -- dry run, idempotence, --force, SOURCE untouched ------------------------------------------

def test_dry_run_writes_nothing_and_reimport_is_idempotent(tmp_path):
    src = replicas.spk_gopro(tmp_path / "src", GOPRO_SEQS, spike=(8, 16), rgb=(16, 32))
    before = replicas.tree_hash(src)
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "GOPR0384_11_00" in result.output and "test" in result.output
    assert not (tmp_path / "data").exists()
    assert run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16").exit_code == 0
    snapshot = replicas.tree_hash(tmp_path / "data")
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16")
    assert result.exit_code == 0 and "unchanged" in result.output
    assert replicas.tree_hash(tmp_path / "data") == snapshot
    # SOURCE changes: refused without --force, then replaced
    replicas.random_dat(src / "GOPRO_Large_spike_seq/test/GOPR0384_11_00/spike/000001.dat", 96, 8, 16)
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16")
    assert result.exit_code == 1 and "SOURCE changed" in result.output and "--force" in result.output
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16", "--force")
    assert result.exit_code == 0 and "replaced" in result.output
    assert imported(tmp_path / "data")["GOPR0384_11_00"].frames[0].spike_begin == 96 // 2 - 28
    # other options on an existing DATA_ROOT also need --force
    result = run("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16", "--blur", "linear")
    assert result.exit_code == 1 and "--force" in result.output
    assert replicas.tree_hash(src) != before  # (we changed it ourselves above)


def test_data_root_inside_source_is_refused(tmp_path):
    src = replicas.spk_gopro(tmp_path / "src", GOPRO_SEQS, spike=(8, 16), rgb=(16, 32))
    before = replicas.tree_hash(src)
    result = run("import", "spk-gopro", src, src / "data", "--spike-size", "8x16")
    assert result.exit_code == 2 and "inside SOURCE" in result.output
    assert replicas.tree_hash(src) == before


def test_unknown_split_sequence_option_and_layout_errors(tmp_path):
    src = replicas.spk_gopro(tmp_path / "src", GOPRO_SEQS, spike=(8, 16), rgb=(16, 32))
    args = ("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16")
    assert "--split names a split" in run(*args, "--split", "val").output
    assert "--sequence names a sequence" in run(*args, "--sequence", "nope").output
    result = run(*args, "--pad", "zeros")
    assert result.exit_code == 2 and "does not apply to preset spk-gopro" in result.output
    result = run("import", "x4k", src, tmp_path / "data")
    assert result.exit_code == 1 and "does not look like Spk-X4K1000FPS" in result.output
    result = run("import", "spk-gopro", tmp_path / "absent", tmp_path / "data")
    assert result.exit_code == 1 and "SOURCE not found" in result.output
    assert run(*args[:-1], "360-640").exit_code == 2


# -- s-vrt --------------------------------------------------------------------------------------

def test_svrt_whole_files_and_dataset_config(tmp_path):
    src = replicas.svrt(tmp_path / "src", {"train": {"GOPR0372_07_00": 56}, "test": {"GOPR0384_11_00": 88}},
                        spike=(8, 16), rgb=(16, 32))
    before = replicas.tree_hash(src)
    result = run("import", "s-vrt", src, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "svrt-tfp" in result.output and replicas.tree_hash(src) == before
    syncs = imported(tmp_path / "data")
    assert {k: (s.split, s.height, s.width) for k, s in syncs.items()} == {
        "GOPR0372_07_00": ("train", 8, 16), "GOPR0384_11_00": ("test", 8, 16)}
    assert [(f.name, f.spike_begin, f.spike_end) for f in syncs["GOPR0384_11_00"].frames] == [
        ("000000", 0, 88), ("000001", 0, 88), ("000002", 0, 88)]
    assert syncs["GOPR0372_07_00"].frames[1].sharp == "sharp/GOPR0372_07_00/000001.png"
    assert syncs["GOPR0372_07_00"].T == 3  # S-VRT trains on 6-frame clips; this replica has 3 frames


# -- s-sdm --------------------------------------------------------------------------------------

def test_ssdm_skips_frames_without_dat_and_uses_the_97_window(tmp_path):
    src = replicas.ssdm(tmp_path / "src", {"train": {"GOPR0372_07_00": 4}, "test": {"GOPR0384_11_00": 3}},
                        drop_last=True)
    before = replicas.tree_hash(src)
    result = run("import", "s-sdm", src, tmp_path / "data", "--dry-run")
    assert result.exit_code == 0 and "2 no .dat" in result.output, result.output
    result = run("import", "s-sdm", src, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert replicas.tree_hash(src) == before
    syncs = imported(tmp_path / "data")
    train = syncs["GOPR0372_07_00"]
    assert train.split == "train" and [f.name for f in train.frames] == ["000019", "000032"]
    assert syncs["GOPR0384_11_00"].split == "test" and [f.name for f in syncs["GOPR0384_11_00"].frames] == ["000019"]
    for frame in train.frames:
        spikes = replicas.loader_decode(src / f"GOPRO/train/spike_data/GOPR0372_07_00/{frame.name}.dat", 180, 320)
        b, e = replicas.ssdm_window(len(spikes))
        assert (frame.spike_begin, frame.spike_end) == (b, e) == (20, 117)
        np.testing.assert_array_equal(fed(tmp_path / "data", frame, 180, 320), spikes[b:e])
    assert not (tmp_path / "data/blur/GOPR0372_07_00/000006.png").exists()


# -- rsb ----------------------------------------------------------------------------------------

def test_rsb_jpg_inputs_no_sharp_and_other_lengths(tmp_path):
    src = replicas.rsb(tmp_path / "src", {"calib_high": [("0001", 137), ("0002", 150)],
                                          "fan": [("0001", 60)]}, rgb=(40, 64))
    before = replicas.tree_hash(src)
    result = run("import", "rsb", src, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "not 137" in result.output and "whole file" in result.output and "no ground truth" in result.output
    assert replicas.tree_hash(src) == before
    syncs = imported(tmp_path / "data")
    high = syncs["calib_high"]
    assert high.split == "test" and all(f.sharp is None for f in high.frames)
    assert high.frames[0].blur == "blur/calib_high/0001.jpg"
    assert [(f.spike_begin, f.spike_end) for f in high.frames] == [replicas.ssdm_window(137),
                                                                   replicas.ssdm_window(150)]
    assert [(f.spike_begin, f.spike_end) for f in syncs["fan"].frames] == [(0, 60)]
    result = run("import", "rsb", src, tmp_path / "data2", "--margins", "10", "5")
    assert result.exit_code == 0, result.output
    assert [(f.spike_begin, f.spike_end) for f in imported(tmp_path / "data2")["calib_high"].frames] == [
        (10, 132), (10, 145)]


# -- x4k ------------------------------------------------------------------------------------------

X4K_CLIPS = {("002", "occ008.320_f2881"): [3, 32, 47, 70], ("003", "occ010.200_f1001"): [40]}


@pytest.mark.parametrize("pad", ["ones", "zeros"])
def test_x4k_nested_names_centres_and_padding(tmp_path, pad):
    src = replicas.x4k(tmp_path / "src", "train", X4K_CLIPS, n_full=80, spike=(16, 16), rgb=(32, 32))
    before = replicas.tree_hash(src)
    result = run("import", "x4k", src, tmp_path / "data", "--spike-size", "16x16", "--pad", pad)
    assert result.exit_code == 0, result.output
    assert replicas.tree_hash(src) == before
    syncs = imported(tmp_path / "data")
    assert list(syncs) == ["002_occ008.320_f2881", "003_occ010.200_f1001"]
    seq = syncs["002_occ008.320_f2881"]
    assert [f.name for f in seq.frames] == ["0000_002", "0008", "0011_002", "0017_001"]
    spikes = replicas.loader_decode(src / "train_spike_2xds/002/occ008.320_f2881/spike.dat", 16, 16)
    for frame in seq.frames:
        c = replicas.x4k_centre(frame.name)
        want = replicas.x4k_window(spikes, c, value=1.0 if pad == "ones" else 0.0)
        got = fed(tmp_path / "data", frame, 16, 16)
        assert got.shape == (65, 16, 16)
        np.testing.assert_array_equal(got, want)
        assert 0 <= frame.spike_begin < frame.spike_end <= 80
    first, last = seq.frames[0], seq.frames[-1]
    assert (first.spike_begin, first.spike_end, first.pad_before, first.pad_after) == (0, 36, 29, 0)
    assert (last.spike_begin, last.spike_end, last.pad_before, last.pad_after) == (38, 80, 0, 23)
    raw = json.loads((tmp_path / "data/spike/002_occ008.320_f2881/sync.json").read_text())
    assert raw["frames"][0]["pad_value"] == (1 if pad == "ones" else 0) and "pad_before" not in raw["frames"][1]
    assert (tmp_path / "data/sharp/002_occ008.320_f2881/0000_002.png").resolve() == (
        src / "train_fullRGB/002/occ008.320_f2881/0000_002.png").resolve()


def test_x4k_skip_padding_and_split_sizes(tmp_path):
    src = replicas.x4k(tmp_path / "src", "train", X4K_CLIPS, n_full=80, spike=(16, 16), rgb=(32, 32))
    result = run("import", "x4k", src, tmp_path / "data", "--spike-size", "16x16", "--pad", "skip")
    assert result.exit_code == 0, result.output
    assert [f.name for f in imported(tmp_path / "data")["002_occ008.320_f2881"].frames] == ["0008", "0011_002"]
    both = replicas.x4k(tmp_path / "both", "train", {("002", "clipB"): [40]}, n_full=72, rgb=(24, 24))
    replicas.x4k(both, "val", {("001", "clipA"): [40]}, n_full=72, spike=(256, 256), rgb=(16, 16))
    result = run("import", "x4k", both, tmp_path / "data3")
    assert result.exit_code == 2 and "differ in size" in result.output and "--split" in result.output
    assert "384x384" in result.output and "256x256" in result.output
    result = run("import", "x4k", both, tmp_path / "data3", "--split", "val")
    assert result.exit_code == 0, result.output
    assert {s.split for s in imported(tmp_path / "data3").values()} == {"val"}


def test_name_collisions_are_errors(tmp_path):
    src = replicas.x4k(tmp_path / "src", "train", {("002", "a_b"): [40], ("002_a", "b"): [40]},
                       n_full=80, spike=(8, 8), rgb=(16, 16))
    result = run("import", "x4k", src, tmp_path / "data", "--spike-size", "8x8")
    assert result.exit_code == 1 and "same sequence name" in result.output and "002_a_b" in result.output


# -- build-sync never writes through a link into SOURCE ------------------------------------------

def test_build_sync_on_linked_sequence_folders_leaves_source_alone(tmp_path):
    src = replicas.ssdm(tmp_path / "src", {"train": {"seqA": 3}}, spike=(8, 16), rgb=(16, 32))
    seq_spikes = src / "GOPRO/train/spike_data/seqA"
    (seq_spikes / "config.yaml").write_text("spike_h: 8\nspike_w: 16\nwindow_spikes: 97\n")
    (src / "GOPRO/train/blur_data/seqA/000006.png").unlink()  # the frame S-SDM simulates no .dat for
    before = replicas.tree_hash(src)
    roots = []
    for k, window in enumerate((None, "101")):
        root = tmp_path / f"data{k}"
        (root / "blur").mkdir(parents=True)
        (root / "spike").mkdir()
        (root / "blur/seqA").symlink_to(src / "GOPRO/train/blur_data/seqA")
        (root / "spike/seqA").symlink_to(seq_spikes)
        args = ["build-sync", root] + (["--window-spikes", window] if window else [])
        result = run(*args)
        assert result.exit_code == 0, result.output
        sync = root / "spike/seqA/sync.json"
        assert sync.is_file() and not sync.is_symlink() and not (root / "spike/seqA").is_symlink()
        roots.append(root)
    assert replicas.tree_hash(src) == before and not (seq_spikes / "sync.json").exists()
    lengths = [{f.length for f in load_sync(r / "spike/seqA/sync.json").frames} for r in roots]
    assert lengths == [{97}, {101}]


# -- every error path, each made to happen ---------------------------------------------------------

def _gopro(tmp_path):
    return replicas.spk_gopro(tmp_path / "src", {"train": {"GOPR0372_07_00": ["000001", "000002"]}},
                              spike=(8, 16), rgb=(16, 32))


def _ssdm(tmp_path):
    return replicas.ssdm(tmp_path / "src", {"train": {"seqA": 3}}, spike=(8, 16), rgb=(16, 32))


def _x4k(tmp_path):
    return replicas.x4k(tmp_path / "src", "train", {("002", "clip"): [40]}, n_full=80, spike=(8, 8), rgb=(16, 16))


def _svrt(tmp_path):
    return replicas.svrt(tmp_path / "src", {"train": {"GOPR0372_07_00": 56}}, spike=(8, 16), rgb=(16, 32))


ERRORS = [
    ("spk-gopro", _gopro, lambda s: (s / "GOPRO_Large_spike_seq/train/GOPR0372_07_00/spike/000001.dat").write_bytes(
        b"\0" * 16 * 10), ["--spike-size", "8x16"], "shorter than the 56-frame window"),
    ("spk-gopro", _gopro, lambda s: (s / "GOPRO_Large_spike_seq/train/GOPR0372_07_00/spike/000001.dat").write_bytes(
        b"\0" * 100), ["--spike-size", "8x16"], "not a whole number of frames"),
    ("spk-gopro", _gopro, lambda s: (s / "GOPRO_Large/train/GOPR0372_07_00/sharp/000002.png").unlink(),
     ["--spike-size", "8x16"], "1 of 2 frames have no sharp frame"),
    ("spk-gopro", _gopro, lambda s: [p.unlink() for p in (s / "GOPRO_Large/train/GOPR0372_07_00/blur_gamma").iterdir()],
     ["--spike-size", "8x16"], "sequence has no blurry frames"),
    ("spk-gopro", _gopro, lambda s: replicas.write_image(s / "GOPRO_Large/train/GOPR0372_07_00/sharp/000002.png", 8, 8),
     ["--spike-size", "8x16"], "images differ in size"),
    ("s-vrt", _svrt, lambda s: (s / "GOPRO_Large_spike_seq/test").mkdir(), [], "no test_GT_blurred/"),
    ("s-sdm", _ssdm, lambda s: replicas.random_dat(s / "GOPRO/train/spike_data/seqA/000099.dat", 137, 8, 16),
     ["--spike-size", "8x16"], "1 spike files have no blurry frame"),
    ("s-sdm", _ssdm, lambda s: [p.unlink() for p in (s / "GOPRO/train/spike_data/seqA").iterdir()],
     ["--spike-size", "8x16"], "sequence has no spike files"),
    ("s-sdm", _ssdm, lambda s: None, ["--spike-size", "8x16", "--blur", "linear"], "does not apply to preset s-sdm"),
    ("rsb", lambda t: replicas.rsb(t / "src", {"a": [("0001", 30)]}, spike=(8, 16), rgb=(16, 32)), lambda s: None,
     ["--spike-size", "8x16", "--margins", "20", "10"], "not longer than --margins"),
    ("rsb", _ssdm, lambda s: None, [], "does not look like the RSB real captures"),
    ("x4k", _x4k, lambda s: (s / "train_spike_2xds/002/clip/spike.dat").unlink(), ["--spike-size", "8x8"],
     "clip has no spike stream"),
    ("x4k", _x4k, lambda s: [replicas.write_image(s / f"train_{k}/002/clip/frame7.png", 16, 16)
                             for k in ("blurry_65", "fullRGB")],
     ["--spike-size", "8x8"], "not AAAA or AAAA_BBB"),
    ("x4k", lambda t: replicas.x4k(t / "src", "train", {("002", "clip"): [1]}, n_full=20, spike=(8, 8), rgb=(16, 16)),
     lambda s: None, ["--spike-size", "8x8", "--pad", "skip"], "every frame of the clip was skipped"),
]


@pytest.mark.parametrize("preset, make, spoil, args, message", ERRORS,
                         ids=[f"{e[0]}-{e[4][:24]}" for e in ERRORS])
def test_import_errors(tmp_path, preset, make, spoil, args, message):
    src = make(tmp_path)
    spoil(src)
    before = replicas.tree_hash(src)
    result = run("import", preset, src, tmp_path / "data", *args)
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert not (tmp_path / "data").exists() and replicas.tree_hash(src) == before


def test_x4k_pre_cut_files_are_used_whole(tmp_path):
    src = _x4k(tmp_path)
    (src / "train_spike_2xds/002/clip/spike.dat").unlink()
    replicas.random_dat(src / "train_spike_2xds_65/002/clip/0010.dat", 65, 8, 8)
    result = run("import", "x4k", src, tmp_path / "data", "--spike-size", "8x8")
    assert result.exit_code == 0, result.output
    frame = imported(tmp_path / "data")["002_clip"].frames[0]
    assert (frame.name, frame.spike_file, frame.spike_begin, frame.spike_end) == \
        ("0010", "spike/002_clip/0010.dat", 0, 65)


def test_replace_refuses_foreign_files_and_bad_records(tmp_path):
    src = _gopro(tmp_path)
    args = ("import", "spk-gopro", src, tmp_path / "data", "--spike-size", "8x16")
    assert run(*args).exit_code == 0
    (tmp_path / "data/spike/GOPR0372_07_00/notes.txt").write_text("mine")
    result = run(*args, "--blur", "linear", "--force")
    assert result.exit_code == 1 and "holds files spikeprep did not create" in result.output
    assert (tmp_path / "data/spike/GOPR0372_07_00/notes.txt").read_text() == "mine"
    assert (tmp_path / "data/spike/GOPR0372_07_00/000001.dat").is_symlink()  # nothing was removed
    (tmp_path / "data/import.json").write_text("{not json")
    result = run(*args)
    assert result.exit_code == 1 and "import record is not valid JSON" in result.output
    result = run("import", "spk-gopro", src, tmp_path / "d2", "--spike-size", "8x16")
    assert result.exit_code == 0
    assert run("import", "spk-gopro", tmp_path / "d2/blur", tmp_path / "d2").exit_code == 2


def test_two_data_roots_over_one_download(tmp_path):
    src = _gopro(tmp_path)
    before = replicas.tree_hash(src)
    for name, blur in (("gamma", "gamma"), ("linear", "linear")):
        result = run("import", "spk-gopro", src, tmp_path / name, "--spike-size", "8x16", "--blur", blur)
        assert result.exit_code == 0, result.output
    for name, folder in (("gamma", "blur_gamma"), ("linear", "blur")):
        link = tmp_path / name / imported(tmp_path / name)["GOPR0372_07_00"].frames[0].blur
        assert f"/{folder}/000001.png" in os.readlink(link)
    assert replicas.tree_hash(src) == before


def test_scaled_down_copies_take_the_spike_size_from_the_rgb_ratio(tmp_path):
    """A copy at 1/40 size (RGB 18x32, spikes 9x16): the loader's 360x640 does not divide the
    files, RGB / 2 (the loader's paired-crop scale) does."""
    src = replicas.spk_gopro(tmp_path / "src", {"train": {"GOPR0372_07_00": ["000001"]}}, spike=(9, 16), rgb=(18, 32))
    assert run("import", "spk-gopro", src, tmp_path / "data").exit_code == 0
    sync = imported(tmp_path / "data")["GOPR0372_07_00"]
    assert (sync.height, sync.width) == (9, 16) and sync.frames[0].spike_end - sync.frames[0].spike_begin == 56
    src = replicas.rsb(tmp_path / "rsb", {"a": [("0001", 137)]}, spike=(10, 16), rgb=(40, 64))
    assert run("import", "rsb", src, tmp_path / "data2").exit_code == 0
    assert imported(tmp_path / "data2")["a"].height == 10
