"""Issue 25 ("nothing silently wrong", second round), data side: imported fields survive a
rebuild, concurrent --fix shifts once, nothing is written through links into a download,
sequence names that break meta_info.txt or the file-name limit are refused up front."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import spikeprep
from spikeprep.cli import main
from spikeprep.sync import load_sync
from tests.support.replicas import tree_hash

RNG = np.random.default_rng(25)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_image(path: Path, h: int = 16, w: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), RNG.integers(0, 256, (h, w, 3), np.uint8))


def random_dat(path: Path, n: int, h: int = 8, w: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.packbits(RNG.random((n, h * w)) < 0.3, axis=1, bitorder="little").tofile(path)


def x4k_source(root: Path, clips: dict[tuple[str, str], list[str]], n_full: int = 80, split: str = "train") -> Path:
    """A tiny Spk-X4K1000FPS download: ``{split}_blurry_65``, ``{split}_fullRGB`` and one
    ``{split}_spike_2xds/.../spike.dat`` (8x8 spike frames, 16x16 RGB) per clip."""
    for (group, clip), names in clips.items():
        for name in names:
            write_image(root / f"{split}_blurry_65" / group / clip / f"{name}.png")
            write_image(root / f"{split}_fullRGB" / group / clip / f"{name}.png")
        random_dat(root / f"{split}_spike_2xds" / group / clip / "spike.dat", n_full)
    return root


def timing_root(root: Path, name: str = "seq", frames: int = 3, spf: int = 10) -> Path:
    """Our layout, one sequence with a continuous stream and fixed timing in config.yaml."""
    for i in range(frames):
        write_image(root / "blur" / name / f"{i:06d}.png")
    random_dat(root / "spike" / name / "spikes.dat", frames * spf)
    (root / "spike" / name / "config.yaml").write_text(
        yaml.safe_dump({"spike_h": 8, "spike_w": 8, "flipud": True, "spike_rate": float(spf * 100),
                        "frame_rate": 100.0, "exposure": 0.5}))
    return root


# -- 9: names that meta_info.txt cannot hold --------------------------------------------------------

@pytest.mark.parametrize("clip", ["occ 008", "occ\n008", "occ\t008", "occ\x07008"])
def test_import_refuses_sequence_names_with_whitespace_or_control_characters(tmp_path, clip):
    src = x4k_source(tmp_path / "src", {("002", clip): ["0008", "0010"]})
    result = run("import", "x4k", src, tmp_path / "data", "--spike-size", "8x8")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "error:" in result.output and "whitespace or a control character" in result.output
    assert repr("002_" + clip) in result.output and "rename" in result.output
    assert not (tmp_path / "data" / "spike").exists()  # nothing written


@pytest.mark.parametrize("name", ["my seq", "seq\nnext", "seq\x1b"])
def test_build_sync_refuses_sequence_names_with_whitespace_or_control_characters(tmp_path, name):
    root = timing_root(tmp_path / "data", name)
    result = run("build-sync", root)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "whitespace or a control character" in result.output and repr(name) in result.output
    assert "rename" in result.output
    assert not (root / "spike" / name / "sync.json").exists()


# -- 13: names too long for a file name -----------------------------------------------------------

@pytest.mark.parametrize("parts", [("a" * 150, "c" * 150),  # each short enough, joined 301 bytes
                                   ("002", "é" * 125),         # 254 bytes in 129 characters
                                   ("002", "b" * 240)])        # 244 bytes
def test_import_refuses_sequence_names_too_long_for_a_file_name(tmp_path, parts):
    src = x4k_source(tmp_path / "src", {parts: ["0008"]})
    name = "_".join(parts)
    size = len(name.encode())
    result = run("import", "x4k", src, tmp_path / "data", "--spike-size", "8x8")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "sequence name is too long" in result.output and f"{size} bytes" in result.output
    assert "243 bytes" in result.output and "255" in result.output
    assert name[:30] in result.output and name not in result.output  # shortened in the message
    assert not (tmp_path / "data" / "spike").exists() and not (tmp_path / "data" / "import.json").exists()


# -- 2: a rebuild keeps what import wrote -----------------------------------------------------------

X4K = {("002", "clip"): ["0000_002", "0008", "0017_001"]}  # centres 3, 32, 70: padded at both ends
SEQ = "002_clip"


def imported_x4k(tmp_path: Path) -> tuple[Path, dict]:
    src = x4k_source(tmp_path / "src", X4K)
    root = tmp_path / "data"
    result = run("import", "x4k", src, root, "--spike-size", "8x8")
    assert result.exit_code == 0, result.output
    return root, json.loads((root / "spike" / SEQ / "sync.json").read_text())


def test_build_sync_keeps_the_import_windows_split_names_and_padding(tmp_path):
    root, before = imported_x4k(tmp_path)
    assert before["split"] == "train" and before["frames"][0]["pad_before"] == 29
    for args in ([], ["--force"]):
        result = run("build-sync", root, *args)
        assert result.exit_code == 0, result.output
        assert "kept existing" not in result.output
        assert json.loads((root / "spike" / SEQ / "sync.json").read_text()) == before
    # a window_shift (what check-sync --fix writes) moves the import's windows, padding and all
    config = root / "spike" / SEQ / "config.yaml"
    config.write_text(config.read_text() + "window_shift: -5\n")
    assert run("build-sync", root, "--force").exit_code == 0
    after = load_sync(root / "spike" / SEQ / "sync.json")
    assert after.split == "train" and [f.name for f in after.frames] == ["0000_002", "0008", "0017_001"]
    assert after.source["mode"] == "import" and after.source["preset"] == "x4k"
    assert after.source["window_shift"] == -5
    first, mid, last = after.frames
    assert (first.spike_begin, first.spike_end, first.pad_before, first.pad_after, first.pad_value) == (0, 31, 34, 0, 1)
    assert (before["frames"][1]["spike_begin"], before["frames"][1]["spike_end"]) == (0, 65)
    assert (mid.spike_begin, mid.spike_end, mid.pad_before, mid.pad_after) == (0, 60, 5, 0)
    assert (last.spike_begin, last.spike_end, last.pad_before, last.pad_after) == (33, 80, 0, 18)
    assert {f.length for f in after.frames} == {65}
    config.write_text(config.read_text().replace("window_shift: -5", "window_shift: 0"))
    assert run("build-sync", root, "--force").exit_code == 0  # back to exactly what import wrote
    assert json.loads((root / "spike" / SEQ / "sync.json").read_text()) == before


def test_build_sync_with_another_window_source_keeps_split_names_and_import_identity(tmp_path):
    root, before = imported_x4k(tmp_path)
    result = run("build-sync", root, "--force", "--spike-rate", "1000", "--frame-rate", "100")
    assert result.exit_code == 0, result.output
    sync = load_sync(root / "spike" / SEQ / "sync.json")
    assert [(f.spike_begin, f.spike_end) for f in sync.frames] == [(0, 10), (10, 20), (20, 30)]
    assert sync.split == "train" and [f.name for f in sync.frames] == ["0000_002", "0008", "0017_001"]
    assert sync.source["mode"] == "timing" and sync.source["import"] == {
        "preset": "x4k", "rule": before["source"]["rule"]}
    result = run("build-sync", root, "--force", "--spike-rate", "1000", "--frame-rate", "100")
    assert result.exit_code == 0, result.output
    again = load_sync(root / "spike" / SEQ / "sync.json")  # later rebuilds keep them too
    assert again == sync and "unchanged" in result.output


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim") / "data"
    spikeprep.simulate_dataset(root, sequences=1, frames=12, height=32, width=48, spikes_per_frame=80,
                               motion=3.0, threshold=1.0, seed=3)
    return root


def as_imported(root: Path, shift: int) -> dict:
    """Rewrite seq000's sync.json as an import writes it (split, names, T, source), its windows
    ``shift`` spike frames late (what check-sync should find)."""
    spikeprep.build_sync(root)
    path = root / "spike" / "seq000" / "sync.json"
    raw = json.loads(path.read_text())
    for frame in raw["frames"]:
        frame["spike_begin"] += shift
        frame["spike_end"] += shift
        frame["name"] = "f" + Path(frame["blur"]).stem
    raw.update(split="test", T=6, source={"mode": "import", "preset": "s-vrt", "rule": "whole file"})
    path.write_text(json.dumps(raw, indent=1) + "\n")
    return raw


def test_check_sync_fix_keeps_the_import_windows_split_names_and_T(simulated, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(simulated, root)
    before = as_imported(root, 16)
    result = run("check-sync", root, "--fix")
    assert result.exit_code == 0, result.output
    assert "fixed" in result.output
    after = load_sync(root / "spike" / "seq000" / "sync.json")
    shift = yaml.safe_load((root / "spike" / "seq000" / "config.yaml").read_text())["window_shift"]
    assert abs(shift + 16) <= 2
    assert after.split == "test" and after.T == 6 and after.source["preset"] == "s-vrt"
    assert [f.name for f in after.frames] == [f["name"] for f in before["frames"]]
    assert [(f.spike_begin, f.spike_end) for f in after.frames] == [
        (f["spike_begin"] + shift, f["spike_end"] + shift) for f in before["frames"]]
    result = run("check-sync", root, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["sequences"]["seq000"]["verdict"] == "ok"


def test_build_sync_refuses_to_rebuild_an_imported_sequence_whose_sync_json_is_unreadable(tmp_path):
    root, _ = imported_x4k(tmp_path)
    (root / "spike" / SEQ / "sync.json").write_text("{")
    result = run("build-sync", root, "--force", "--spike-rate", "1000", "--frame-rate", "100")
    assert result.exit_code == 1 and "imported sequence is unreadable" in result.output
    assert "--force" in result.output and (root / "spike" / SEQ / "sync.json").read_text() == "{"


# -- 5: two --fix runs at once shift once ------------------------------------------------------------

def test_two_concurrent_fixes_shift_once(simulated, tmp_path):
    from spikeprep.alignment.check import check_sync
    from spikeprep.alignment.fix import apply_fixes

    root = tmp_path / "data"
    shutil.copytree(simulated, root)
    config = root / "spike" / "seq000" / "config.yaml"
    config.write_text(config.read_text() + "window_shift: 16\n")  # windows 16 spike frames late
    spikeprep.build_sync(root)
    measured = [check_sync(root), check_sync(root)]  # both runs measure before either writes
    offset = measured[0][0].judgement.best_offset
    assert abs(offset + 16) <= 2 and measured[1][0].judgement.best_offset == offset
    barrier, results, errors = threading.Barrier(2), [None, None], []

    def fix(i):
        try:
            barrier.wait()
            results[i] = apply_fixes(root, measured[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fix, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    shift = yaml.safe_load(config.read_text())["window_shift"]
    assert shift == 16 + offset  # one shift, not two
    assert load_sync(root / "spike" / "seq000" / "sync.json").source["window_shift"] == shift
    statuses = sorted(r[0].status for r in results)
    assert statuses == ["already fixed", "fixed"], results
    # a third run with the same (now stale) measurement changes nothing either
    assert apply_fixes(root, measured[0])[0].status == "already fixed"
    assert yaml.safe_load(config.read_text())["window_shift"] == shift
    result = run("check-sync", root, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["sequences"]["seq000"]["verdict"] == "ok"


def test_fix_refuses_a_measurement_made_before_another_change(simulated, tmp_path):
    from spikeprep.alignment.check import check_sync
    from spikeprep.alignment.fix import apply_fixes

    root = tmp_path / "data"
    shutil.copytree(simulated, root)
    config = root / "spike" / "seq000" / "config.yaml"
    config.write_text(config.read_text() + "window_shift: 16\n")
    spikeprep.build_sync(root)
    stale = check_sync(root)
    config.write_text(config.read_text().replace("window_shift: 16", "window_shift: 8"))
    spikeprep.build_sync(root, force=True)  # someone moved the windows after the measurement
    fixes = apply_fixes(root, stale)
    assert fixes[0].status == "not fixed" and "changed since" in fixes[0].change
    assert yaml.safe_load(config.read_text())["window_shift"] == 8


# -- 6: nothing is written through a link the user made ----------------------------------------------

@pytest.mark.parametrize("linked", ["spike", "blur", "sharp"])
def test_import_refuses_data_root_folders_linked_into_source(tmp_path, linked):
    src = x4k_source(tmp_path / "src", X4K)
    (src / "notes").mkdir()
    root = tmp_path / "data"
    root.mkdir()
    (root / linked).symlink_to(src / "notes", target_is_directory=True)
    before = tree_hash(src)
    result = run("import", "x4k", src, root, "--spike-size", "8x8")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert tree_hash(src) == before and not any((src / "notes").iterdir())
    assert f"{linked}" in result.output and str(src / "notes") in result.output
    assert "real folder" in result.output
    assert (root / linked).is_symlink() and not (root / "import.json").exists()


def test_import_refuses_a_sequence_folder_linked_into_source(tmp_path):
    src = x4k_source(tmp_path / "src", X4K)
    root = tmp_path / "data"
    (root / "spike").mkdir(parents=True)
    (root / "spike" / SEQ).symlink_to(src / "train_spike_2xds/002/clip", target_is_directory=True)
    before = tree_hash(src)
    result = run("import", "x4k", src, root, "--spike-size", "8x8", "--force")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert tree_hash(src) == before and f"spike/{SEQ}" in result.output and "real folder" in result.output
    assert (root / "spike" / SEQ).is_symlink()


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_fix_refuses_to_write_through_a_linked_sequence_folder(simulated, tmp_path, where):
    root = tmp_path / "data"
    shutil.copytree(simulated, root)
    config = root / "spike" / "seq000" / "config.yaml"
    config.write_text(config.read_text() + "window_shift: 16\n")
    spikeprep.build_sync(root)
    target = (root / "store" if where == "inside" else tmp_path / "elsewhere") / "seq000"
    target.parent.mkdir()
    shutil.move(root / "spike" / "seq000", target)
    (root / "spike" / "seq000").symlink_to(target, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    result = run("check-sync", root, "--fix")
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "spike/seq000 is a link to" in text and str(target) in text and "real folder" in text
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert (root / "spike" / "seq000").is_symlink()
