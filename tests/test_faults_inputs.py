"""Fault matrix, input side (issue 11): each case makes the fault happen and asserts the exit code,
the message (file, found, expected, fix), the files that survive and that nothing is left over.

Families: verify on damaged sources or a doctored manifest; conversions that must warn (grayscale,
RGBA, palette, 16-bit, all-zero spikes); config.yaml and build-sync flags with non-finite or
out-of-range numbers, non-UTF-8 text and names; read-only DATA_ROOT or CACHE parent and a full
disk (private mount namespaces, skipped where not permitted).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cache_datasets
import datasets
import spikeprep
from namespaces import mount_supported, read_only, run_in_namespace, spikeprep_command, tmpfs
from spikeprep.cli import main
from spikeprep.errors import LayoutError, OutputError
from spikeprep.files import write_text_atomic

LEFTOVER_SUFFIXES = (".partial", ".tmp")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output, result.output
    return result


def leftovers(*roots) -> list[Path]:
    return [p for root in roots for p in Path(root).rglob("*")
            if p.name.endswith(LEFTOVER_SUFFIXES) or ".tmp" in p.name]


def assert_clear_error(result, code: int, *words):
    """Exit ``code``, one ``error:`` line naming found/expected, no traceback, and ``words``."""
    assert result.exit_code == code, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("error: "))
    assert "found" in line and "expected" in line, line
    for word in words:
        assert word in line, (word, line)
    return line


# -- verify: damaged sources and a doctored manifest ---------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults-verify")
    data = cache_datasets.make_dataset(root / "data", sequences=("a", "b", "c"), frames=3,
                                       rgb_hw=(16, 24), spike_hw=(16, 24), window=8)
    spikeprep.voxelize_dataset(data, root / "cache", S=4, val=["c"], progress=False)
    return data, root / "cache"


@pytest.fixture
def copy(built, tmp_path):
    data, cache = built
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(cache, tmp_path / "cache")
    return tmp_path / "data", tmp_path / "cache"


def problems(cache, data=None):
    result = run("verify", cache, *(["--data", data] if data else []), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == (0 if report["ok"] else 1)
    return report["problems"]


def whats(found, sequence="a"):
    return [p["what"] for p in found if p["sequence"] == sequence]


def test_verify_clean_cache_has_no_stats_problem(built):
    data, cache = built
    assert problems(cache, data) == []


def test_verify_zero_byte_png(copy):
    data, cache = copy
    (data / "blur/a/000001.png").write_bytes(b"")
    found = problems(cache, data)
    assert any(p["key"] == "blur/a/000001.png" and "empty (0 bytes)" in p["what"] for p in found)
    assert any("lost frames since the build: 1 of 3 frames" in w for w in whats(found))
    assert problems(cache) == []  # the cache itself is intact
    assert run("verify", cache, "--data", data).exit_code == 1


def test_verify_deleted_png(copy):
    data, cache = copy
    (data / "sharp/a/000002.png").unlink()
    found = problems(cache, data)
    assert any(p["key"] == "sharp/a/000002.png" and p["what"] == "source file missing" for p in found)
    assert any("1 of 3 frames have a missing or empty png (first: frame 2" in w for w in whats(found))


@pytest.mark.parametrize("keep", [0, 30])  # of 4 + 3 * 12 = 40 spike frames
def test_verify_shortened_dat(copy, keep):
    data, cache = copy
    dat = data / "spike/b/spikes.dat"
    dat.write_bytes(dat.read_bytes()[: keep * 16 * 24 // 8])
    found = problems(cache, data)
    lost = [w for w in whats(found, "b") if "spike stream lost frames" in w]
    assert len(lost) == 1 and f"{keep} spike frames now, the windows need 36" in lost[0]
    assert not any("cannot recompute" in w for w in whats(found, "b"))  # reported once, not per frame
    assert whats(found, "a") == []


def test_verify_sync_json_no_longer_parses(copy):
    data, cache = copy
    (data / "spike/a/sync.json").write_text('{"format": "spikeprep.sync", ')
    found = problems(cache, data)
    assert any(p["key"] == "spike/a/sync.json" and "not valid JSON" in p["what"] for p in found)
    (data / "spike/a/sync.json").write_bytes("{}".encode("utf-16"))
    assert any("not UTF-8 text" in w for w in whats(problems(cache, data)))


def test_verify_sync_json_lost_frames(copy):
    data, cache = copy
    path = data / "spike/a/sync.json"
    raw = json.loads(path.read_text())
    raw["frames"] = raw["frames"][:2]
    path.write_text(json.dumps(raw))
    assert any("lost frames since the build: sync.json lists 2 frames, the cache holds 3" in w
               for w in whats(problems(cache, data)))


def test_verify_decoder_crash_is_a_problem(copy, monkeypatch):
    data, cache = copy
    import spikeprep.cache.verify as verify

    def broken(job, *args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(verify, "compute_frame", broken)
    report = spikeprep.verify_cache(cache, data_root=data, sample=2)
    assert len(report.problems) == 2
    assert all("RuntimeError: decoder exploded" in p.what for p in report.problems)


def edit_manifest(cache: Path, edit) -> None:
    """Edit manifest.json in place. spike_stats is outside ``params``, so ``params_hash`` stays
    valid; it is recomputed anyway so the edit is the only difference."""
    path = cache / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    from spikeprep.cache.manifest import params_hash
    raw["params_hash"] = params_hash(raw["params"])
    path.write_text(json.dumps(raw))


def test_verify_recomputes_spike_stats(copy, built):
    _, cache = copy
    stored = json.loads((built[1] / "manifest.json").read_text())["spike_stats"]
    # independent reference: mean/std/q995 of the train sequences' spike records with plain numpy
    reader = spikeprep.open_cache(built[1], buffers=False)
    voxels = np.stack([reader.read(s, i).spike for s in ("a", "b") for i in range(3)]).astype(np.float64)
    per_channel = voxels.transpose(1, 0, 2, 3).reshape(4, -1)
    np.testing.assert_allclose(stored["mean"], per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(stored["std"], per_channel.std(1), rtol=1e-12)
    np.testing.assert_allclose(stored["q995"], np.quantile(per_channel, 0.995, axis=1), rtol=1e-12)
    assert stored["over"] == ["a", "b"]

    edit_manifest(cache, lambda m: m["spike_stats"]["mean"].__setitem__(1, m["spike_stats"]["mean"][1] * (1 + 1e-15)))
    assert problems(cache) == []  # float rounding is not a problem
    edit_manifest(cache, lambda m: m["spike_stats"]["std"].__setitem__(2, m["spike_stats"]["std"][2] * 1.001))
    found = problems(cache)
    assert [(p["key"], p["what"].split(" differs")[0]) for p in found] == [("manifest.json", "spike_stats.std")]
    result = run("verify", cache)
    assert result.exit_code == 1 and "spike_stats.std differs" in result.output


def test_verify_stats_over_the_wrong_sequences(copy):
    _, cache = copy
    edit_manifest(cache, lambda m: m["spike_stats"].__setitem__("over", ["a", "b", "c"]))
    found = problems(cache)
    assert any("spike_stats.over lists ['a', 'b', 'c'], the train sequences are ['a', 'b']" in p["what"]
               for p in found)


@pytest.mark.parametrize("bad", ["x", [None, 1, 2, 3], ["nan", 0, 0, 0]])
def test_malformed_stats_are_a_clear_error(copy, bad):
    _, cache = copy
    edit_manifest(cache, lambda m: m["spike_stats"].__setitem__("mean", bad))
    found = problems(cache)
    assert len(found) == 1 and "spike_stats.mean" in found[0]["what"]
    assert_clear_error(run("info", cache), 1, "spike_stats.mean", "manifest.json")


def test_verify_impossible_frame_count_does_not_hang(copy):
    _, cache = copy
    edit_manifest(cache, lambda m: m["sequences"]["a"].__setitem__("num_frames", 10 ** 12))
    assert any("manifest says 1000000000000 frames" in w for w in whats(problems(cache)))


def test_info_malformed_spike_rate(copy):
    _, cache = copy
    edit_manifest(cache, lambda m: m["sequences"]["a"].__setitem__("spike_rate", "fast"))
    assert_clear_error(run("info", cache), 1, "spike_rate", "'fast'", "a finite number")


# -- conversions: never silent -------------------------------------------------------------------

def small_dataset(root: Path, sequences=("a",), frames=2, rate=0.2) -> Path:
    return cache_datasets.make_dataset(root, sequences=sequences, frames=frames, rgb_hw=(16, 24),
                                       spike_hw=(16, 24), window=8, rate=rate, sharp=False)


def warnings_of(result) -> list[str]:
    return [l for l in result.output.splitlines() if l.startswith("warning:")]


def voxelize(data, cache):
    result = run("voxelize", data, cache, "--S", 4)
    assert result.exit_code == 0, result.output
    return result


def save_png(path: Path, image: Image.Image) -> None:
    image.save(path, format="PNG")


def test_rgb_pngs_give_no_warning(tmp_path):
    data = small_dataset(tmp_path / "data")
    assert warnings_of(voxelize(data, tmp_path / "cache")) == []
    assert spikeprep.open_cache(tmp_path / "cache").manifest.sequences["a"].warnings == ()


def gray(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 24), np.uint8)


@pytest.mark.parametrize("kind,make,reference,words", [
    ("grayscale", lambda g: Image.fromarray(g, "L"), lambda g: np.repeat(g[..., None], 3, 2),
     "gray value is copied into R, G and B"),
    ("rgba", lambda g: Image.fromarray(np.dstack([g, 255 - g, g // 2, g]), "RGBA"),
     lambda g: np.dstack([g, 255 - g, g // 2]), "alpha dropped (not composited)"),
    ("palette", lambda g: Image.fromarray(np.dstack([g, g // 3, 255 - g]), "RGB").quantize(16),
     None, "replaced by its palette colour"),
    ("grayscale-alpha", lambda g: Image.fromarray(np.dstack([g, 255 - g]), "LA"),
     lambda g: np.repeat(g[..., None], 3, 2), "alpha dropped"),
])
def test_converted_inputs_warn_once_per_sequence(tmp_path, kind, make, reference, words):
    data = small_dataset(tmp_path / "data", frames=3)
    images = []
    for i in range(3):
        image = make(gray(i))
        save_png(data / f"blur/a/{i:06d}.png", image)
        images.append(image)
    result = voxelize(data, tmp_path / "cache")
    warned = warnings_of(result)
    assert len(warned) == 1, result.output
    assert "sequence a: 3 frame(s) converted" in warned[0] and words in warned[0]
    assert "blur/a/000000.png" in warned[0]
    cache = spikeprep.open_cache(tmp_path / "cache")
    for i, image in enumerate(images):
        expected = reference(gray(i)) if reference else np.asarray(image.convert("RGB"))
        np.testing.assert_array_equal(cache.read("a", i).blur, expected)
    assert len(cache.manifest.sequences["a"].warnings) == 1  # recorded
    info = run("info", tmp_path / "cache")
    assert info.exit_code == 0 and any(words in w for w in warnings_of(info))


def test_one_gray_frame_among_rgb_frames(tmp_path):
    data = small_dataset(tmp_path / "data", frames=3)
    save_png(data / "blur/a/000001.png", Image.fromarray(gray(), "L"))
    warned = warnings_of(voxelize(data, tmp_path / "cache"))
    assert len(warned) == 1 and "1 frame(s) converted, grayscale" in warned[0]
    assert "first: blur/a/000001.png" in warned[0]


@pytest.mark.parametrize("scale,words", [(257, "high byte, v >> 8 (65535 -> 255)"),
                                         (16, "16x or more too dark")])
def test_sixteen_bit_pngs_are_converted_with_a_warning(tmp_path, scale, words):
    data = small_dataset(tmp_path / "data")
    raw = []
    for i in range(2):
        rgb16 = np.random.default_rng(i).integers(0, 256, (16, 24, 3)).astype(np.uint16) * scale
        assert cv2.imwrite(str(data / f"blur/a/{i:06d}.png"), rgb16[..., ::-1])  # BGR on disk
        raw.append(rgb16)
    warned = warnings_of(voxelize(data, tmp_path / "cache"))
    assert len(warned) == 1 and "16-bit png" in warned[0] and words in warned[0]
    cache = spikeprep.open_cache(tmp_path / "cache")
    for i, rgb16 in enumerate(raw):
        np.testing.assert_array_equal(cache.read("a", i).blur, (rgb16 >> 8).astype(np.uint8))


def test_all_zero_spike_stream_warns_in_voxelize_and_info(tmp_path):
    data = small_dataset(tmp_path / "data", sequences=("a", "b"))
    dat = data / "spike/a/spikes.dat"
    dat.write_bytes(bytes(dat.stat().st_size))
    result = voxelize(data, tmp_path / "cache")
    warned = warnings_of(result)
    assert len(warned) == 1 and "sequence a: no spike in any of its 2 frames' windows" in warned[0]
    assert "spike/a/spikes.dat" in warned[0]
    info = run("info", tmp_path / "cache")
    assert info.exit_code == 0 and len(warnings_of(info)) == 1 and "sequence a" in warnings_of(info)[0]
    assert spikeprep.cache_info(tmp_path / "cache")["sequences"][0]["spike_rate"] == 0


# -- damaged inputs in voxelize -----------------------------------------------------------------

@pytest.mark.parametrize("content,words", [
    (b"", "RGB frame is an empty file"),
    (b"x", "RGB frame cannot be decoded"),
    ("truncate", "RGB frame cannot be decoded"),
])
def test_voxelize_damaged_png(tmp_path, content, words):
    data = small_dataset(tmp_path / "data")
    png = data / "blur/a/000001.png"
    png.write_bytes(png.read_bytes()[:60] if content == "truncate" else content)
    line = assert_clear_error(run("voxelize", data, tmp_path / "cache", "--S", 4), 1, words, str(png))
    assert "restore" in line
    assert leftovers(tmp_path) == []


def test_voxelize_damaged_png_with_workers_keeps_the_message(tmp_path):
    data = small_dataset(tmp_path / "data")
    (data / "blur/a/000001.png").write_bytes(b"")
    line = assert_clear_error(run("voxelize", data, tmp_path / "cache", "--S", 4, "--workers", 2), 1,
                              "RGB frame is an empty file", "000001.png", "found 0 bytes")
    assert not line.endswith("..")


def test_errors_keep_their_fields_across_processes():
    err = LayoutError("x", path="/p", found=3, expected=4, fix="do y")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is LayoutError and str(copy) == str(err) and copy.path == "/p" and copy.fix == "do y"


@pytest.mark.parametrize("damage,words", [
    (lambda p: p.write_bytes(b""), "spike window outside the stream"),
    (lambda p: p.write_bytes(p.read_bytes()[:-7]), "not a whole number of frames"),
    (lambda p: (p.unlink(), p.mkdir()), "source file cannot be read"),
])
def test_voxelize_damaged_dat(tmp_path, damage, words):
    data = small_dataset(tmp_path / "data")
    damage(data / "spike/a/spikes.dat")
    assert_clear_error(run("voxelize", data, tmp_path / "cache", "--S", 4), 1, words, "spikes.dat")


def test_voxelize_utf16_sync_json(tmp_path):
    data = small_dataset(tmp_path / "data")
    path = data / "spike/a/sync.json"
    path.write_bytes(path.read_text().encode("utf-16"))
    assert_clear_error(run("voxelize", data, tmp_path / "cache"), 1, "sync.json is not UTF-8 text",
                       "UTF-16", "iconv")
    assert not (tmp_path / "cache").exists()


# -- config.yaml and build-sync flags -----------------------------------------------------------

def sync_dataset(root: Path) -> Path:
    return datasets.make_dataset(root, frames=3, spikes_per_frame=10)


@pytest.mark.parametrize("key,value,words", [
    ("spike_rate", ".inf", "spike_rate=inf"),
    ("offset", ".nan", "offset=nan"),
    ("frame_rate", "-.inf", "frame_rate=-inf"),
    ("exposure", ".nan", "exposure=nan"),
    ("spike_rate", "-5", "spike_rate=-5.0"),
    ("spike_rate", "true", "spike_rate=True"),
    ("spike_h", "0", "spike_h"),
    ("frame_rate", "1e-300", "not a finite number of spike frames"),
])
def test_bad_config_numbers(tmp_path, key, value, words):
    data = sync_dataset(tmp_path)
    cfg = data / "spike/seqA/config.yaml"
    cfg.write_text(cfg.read_text() + f"{key}: {value}\n" if key not in cfg.read_text() else
                   "\n".join(l if not l.startswith(f"{key}:") else f"{key}: {value}"
                             for l in cfg.read_text().splitlines()) + "\n")
    assert_clear_error(run("build-sync", data), 1, words)
    assert not (data / "spike/seqA/sync.json").exists() and leftovers(data) == []


@pytest.mark.parametrize("flag,value", [("--offset", "nan"), ("--spike-rate", "inf"),
                                        ("--frame-rate", "-1"), ("--exposure", "0"),
                                        ("--exposure", "nan"), ("--window-spikes", "0")])
def test_bad_build_sync_flags(tmp_path, flag, value):
    data = sync_dataset(tmp_path)
    assert_clear_error(run("build-sync", data, flag, value), 2, flag)
    assert not (data / "spike/seqA/sync.json").exists()


@pytest.mark.parametrize("encode,words", [
    (lambda t: t.encode("utf-16"), "UTF-16 text (byte-order mark ff fe)"),
    (lambda t: t.encode("utf-16-be"), "not UTF-8"),
    (lambda t: ("# caf\u00e9\n" + t).encode("latin-1"), "byte 0xe9 at offset 5"),
])
def test_config_yaml_not_utf8(tmp_path, encode, words):
    data = sync_dataset(tmp_path)
    cfg = data / "spike/seqA/config.yaml"
    cfg.write_bytes(encode(cfg.read_text()))
    line = assert_clear_error(run("build-sync", data), 1, "config.yaml is not UTF-8 text", words, str(cfg))
    assert "iconv" in line


def test_config_yaml_with_utf8_bom_is_read(tmp_path):
    data = sync_dataset(tmp_path)
    cfg = data / "spike/seqA/config.yaml"
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    assert run("build-sync", data).exit_code == 0


@pytest.mark.parametrize("text,words", [("", "must be a mapping"), ("spike_h: [\n", "not valid YAML"),
                                        ("- 1\n- 2\n", "must be a mapping"),
                                        ("!!python/object:os.system x\n", "not valid YAML")])
def test_garbage_config_yaml(tmp_path, text, words):
    data = sync_dataset(tmp_path)
    (data / "spike/seqA/config.yaml").write_text(text)
    assert_clear_error(run("build-sync", data), 1, words)


@pytest.mark.parametrize("line", ["nan 7", "0 inf", "0 1e400"])
def test_non_finite_timestamps(tmp_path, line):
    data = sync_dataset(tmp_path)
    (data / "spike/seqA/timestamps.txt").write_text(f"{line}\n10 17\n20 27\n")
    assert_clear_error(run("build-sync", data), 1, "timestamps line 1 is not finite")


def test_timestamps_utf16(tmp_path):
    data = sync_dataset(tmp_path)
    (data / "spike/seqA/timestamps.txt").write_bytes("0 7\n10 17\n20 27\n".encode("utf-16"))
    assert_clear_error(run("build-sync", data), 1, "timestamps.txt is not UTF-8 text")


def test_existing_sync_json_in_another_encoding_is_kept_not_a_crash(tmp_path):
    data = sync_dataset(tmp_path)
    path = data / "spike/seqA/sync.json"
    path.write_bytes("{}".encode("utf-16"))
    result = run("build-sync", data)
    assert result.exit_code == 0 and "kept" in result.output


def rename_bytes(parent: Path, old: str, new: bytes) -> None:
    os.rename(os.fsencode(parent / old), os.fsencode(parent) + b"/" + new)


def test_non_utf8_sequence_folder_build_sync(tmp_path):
    data = sync_dataset(tmp_path)
    for sub in ("blur", "sharp", "spike"):
        rename_bytes(data / sub, "seqA", b"seq\xff")
    line = assert_clear_error(run("build-sync", data), 1, "sequence folder name is not valid UTF-8",
                              "b'seq\\xff'")
    assert "rename" in line
    assert list(data.rglob("sync.json")) == []


def test_non_utf8_frame_name_build_sync(tmp_path):
    data = sync_dataset(tmp_path)
    rename_bytes(data / "blur/seqA", "000001.png", b"00000\xe9.png")
    rename_bytes(data / "sharp/seqA", "000001.png", b"00000\xe9.png")
    assert_clear_error(run("build-sync", data), 1, "file name is not valid UTF-8", "b'00000\\xe9.png'")


def test_non_utf8_sequence_folder_voxelize(tmp_path):
    data = small_dataset(tmp_path / "data")
    rename_bytes(data / "spike", "a", b"a\xff")
    assert_clear_error(run("voxelize", data, tmp_path / "cache"), 1, "not valid UTF-8", "b'a\\xff'")
    assert not (tmp_path / "cache").exists()


# -- read-only folders and a full disk ----------------------------------------------------------

def test_atomic_text_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "sync.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        write_text_atomic(target, "new")
    assert "ENOSPC" in str(caught.value) and "free disk space" in str(caught.value)
    assert target.read_text() == "old" and leftovers(tmp_path) == []


needs_mounts = pytest.mark.skipif(mount_supported() is not None, reason=str(mount_supported()))


@needs_mounts
def test_build_sync_into_read_only_data_root(tmp_path):
    data = sync_dataset(tmp_path / "data")
    done = run_in_namespace(f"{read_only(data)} && {spikeprep_command('build-sync', data)}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(l for l in done.stderr.splitlines() if l.startswith("error:"))
    assert "cannot write sync.json" in line and "EROFS" in line and "read-only" in line
    assert str(data / "spike/seqA/sync.json") in line
    assert leftovers(data) == [] and not (data / "spike/seqA/sync.json").exists()


@needs_mounts
def test_voxelize_and_verify_from_read_only_data_root(tmp_path):
    data = small_dataset(tmp_path / "data", sequences=("a", "b"))
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    cache = tmp_path / "cache"
    done = run_in_namespace(f"{read_only(data)} && {spikeprep_command('voxelize', data, cache, '--S', 4)}"
                            f" && {spikeprep_command('verify', cache, '--data', data)}")
    assert done.returncode == 0, done.stderr
    assert "ok: " in done.stdout
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


@needs_mounts
def test_voxelize_into_read_only_cache_parent(tmp_path):
    data = small_dataset(tmp_path / "data")
    parent = tmp_path / "parent"
    parent.mkdir()
    done = run_in_namespace(f"{read_only(parent)} && "
                            f"{spikeprep_command('voxelize', data, parent / 'cache', '--S', 4)}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(l for l in done.stderr.splitlines() if l.startswith("error:"))
    assert "EROFS" in line and str(parent / "cache") in line and "expected" in line
    assert list(parent.iterdir()) == []


@needs_mounts
def test_disk_full_during_voxelize_then_resume(tmp_path):
    """A tmpfs that holds one sequence (~250 kB) but not two: the second sequence's LMDB commit
    fails (LMDB reports the short write as EIO); after the disk grows the same command resumes."""
    data = cache_datasets.make_dataset(tmp_path / "data", sequences=("a", "b"), frames=4,
                                       rgb_hw=(64, 96), spike_hw=(64, 96), window=8)
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    cache = disk / "cache"
    voxelize_cmd = spikeprep_command("voxelize", data, cache, "--S", 4)
    script = (f"{tmpfs(disk, '300k')} && "
              f"{{ {voxelize_cmd} >{out}/1.out 2>{out}/1.err; echo $? >{out}/1.rc; }}; "
              f"find {disk} -name '*.partial' -o -name '*.tmp*' >{out}/leftovers; "
              f"ls {cache} >{out}/ls; "
              f"mount -o remount,size=4m {disk} && "
              f"{{ {voxelize_cmd} >{out}/2.out 2>{out}/2.err; echo $? >{out}/2.rc; }}; "
              f"{spikeprep_command('verify', cache, '--data', data)} >{out}/3.out 2>&1; echo $? >{out}/3.rc")
    run_in_namespace(script)
    first_err = (out / "1.err").read_text()
    assert (out / "1.rc").read_text().strip() == "1", first_err
    assert "Traceback" not in first_err
    line = next(l for l in first_err.splitlines() if l.startswith("error:"))
    assert "cannot write the LMDB shard" in line and "bytes free" in line and "re-run the same command" in line
    assert (out / "leftovers").read_text() == ""
    assert "manifest.json" not in (out / "ls").read_text()
    assert (out / "2.rc").read_text().strip() == "0", (out / "2.err").read_text()
    assert "2 sequences (1 already done)" in (out / "2.out").read_text()
    assert (out / "3.rc").read_text().strip() == "0" and "ok: " in (out / "3.out").read_text()


@pytest.mark.parametrize("flag,value", [("--motion", "inf"), ("--threshold", "nan"), ("--spike-rate", "inf")])
def test_simulate_non_finite_flags(tmp_path, flag, value):
    assert_clear_error(run("simulate", tmp_path / "out", "--frames", 2, "--sequences", 1, flag, value),
                       2, flag, value)
    assert not (tmp_path / "out" / "spike").exists()


@needs_mounts
def test_simulate_onto_a_full_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = run_in_namespace(f"{tmpfs(disk, '100k')} && "
                            f"{spikeprep_command('simulate', disk / 'out', '--frames', 4, '--height', 64, '--width', 64)}"
                            f"; echo rc=$? ; find {disk} -name '*.partial'")
    assert "rc=1" in done.stdout and "Traceback" not in done.stderr
    line = next(l for l in done.stderr.splitlines() if l.startswith("error:"))
    assert "ENOSPC" in line and "free disk space" in line
    assert ".partial" not in done.stdout.split("rc=1")[1]


def test_non_utf8_data_root_and_cache_paths_work(tmp_path):
    """Only names spikeprep stores (sequences, frames) must be UTF-8; the folders above may not be."""
    small_dataset(tmp_path / "plain" / "data")  # cv2.imwrite cannot write under such a path
    parent = Path(os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9j\xe0"))
    os.rename(tmp_path / "plain", parent)
    data = parent / "data"
    cache = parent / "cache"
    assert run("voxelize", data, cache, "--S", 4).exit_code == 0
    assert run("verify", cache, "--data", data).exit_code == 0
    assert run("info", cache).exit_code == 0


def test_simulate_from_frames_under_a_non_utf8_folder(tmp_path):
    frames = Path(os.fsdecode(os.fsencode(tmp_path) + b"/fr\xe9mes"))
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:03d}.png").write_bytes(cv2.imencode(".png", np.full((32, 32, 3), 40 * i, np.uint8))[1])
    result = run("simulate", tmp_path / "out", "--from-frames", frames, "--images-per-frame", 1,
                 "--spikes-per-frame", 4)
    assert result.exit_code == 0, result.output
    (frames / "001.png").write_bytes(b"")
    assert_clear_error(run("simulate", tmp_path / "out2", "--from-frames", frames, "--images-per-frame", 1,
                           "--spikes-per-frame", 4), 1, "001.png")


def test_build_sync_removes_a_partial_file_left_by_a_killed_run(tmp_path):
    data = sync_dataset(tmp_path)
    assert run("build-sync", data).exit_code == 0
    (data / "spike/seqA/sync.json.partial").write_text('{"format": "spikeprep.sy')
    result = run("build-sync", data)
    assert result.exit_code == 0 and "unchanged" in result.output
    assert leftovers(data) == []


@needs_mounts
def test_verify_and_info_on_a_read_only_cache(tmp_path, built):
    data, cache = built
    shutil.copytree(cache, tmp_path / "cache")
    done = run_in_namespace(f"{read_only(tmp_path / 'cache')} && "
                            f"{spikeprep_command('verify', tmp_path / 'cache', '--data', data)} && "
                            f"{spikeprep_command('info', tmp_path / 'cache')}")
    assert done.returncode == 0, done.stderr
    assert "ok: " in done.stdout and "spike_stats over 2 train" in done.stdout


def _json_paths(obj, prefix=()):
    """Every key path of a JSON object (first element of lists; records' keys are not descended)."""
    if prefix:
        yield prefix
    if isinstance(obj, dict) and prefix[-1:] != ("records",):
        for key, value in obj.items():
            yield from _json_paths(value, prefix + (key,))
    elif isinstance(obj, list) and obj:
        yield from _json_paths(obj[0], prefix + (0,))


def test_garbage_anywhere_in_the_manifest_is_never_a_traceback(built, tmp_path):
    """Each manifest value replaced by garbage: `info` exits 0 or 1 with a clear error, `verify`
    exits 0 or 1 with a report; never a traceback (params_hash refreshed so the edit is seen)."""
    from spikeprep.cache.manifest import params_hash
    _, cache = built
    shutil.copytree(cache, tmp_path / "cache")
    target = tmp_path / "cache" / "manifest.json"
    original = json.loads(target.read_text())
    tried, values = 0, (None, "x", [None], -1, {})
    for n, path in enumerate(_json_paths(original)):
        for garbage in (values[n % 5],):  # one per key, rotating, so every kind is seen
            raw = json.loads(json.dumps(original))
            node = raw
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = garbage
            if path[0] == "params" and isinstance(raw["params"], dict):
                raw["params_hash"] = params_hash(raw["params"])
            target.write_text(json.dumps(raw))
            for command in ("info", "verify"):
                result = run(command, tmp_path / "cache")  # asserts: no exception, no traceback
                assert result.exit_code in (0, 1), (path, garbage, result.output)
                tried += 1
    assert tried > 80


def _png_with_header(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 5)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("data", [_png_with_header(100000, 100000), _png_with_header(0, 0),
                                  _png_with_header(4, 4, 3, 2), _png_with_header(16, 24)],
                         ids=["beyond-opencv-limit", "zero-size", "bad-depth", "short-data"])
def test_hostile_png_headers(tmp_path, data):
    from spikeprep.images import read_image
    (tmp_path / "f.png").write_bytes(data)
    with pytest.raises(LayoutError, match="RGB frame cannot be decoded"):
        read_image(tmp_path / "f.png")


def test_verify_hot_pixel_cache_with_a_damaged_stream(tmp_path):
    data = cache_datasets.make_dataset(tmp_path / "data", sequences=("a", "b"), frames=2, rgb_hw=(16, 24),
                                       spike_hw=(16, 24), window=8, stuck={"a": (2, 3)}, rate=0.05)
    spikeprep.voxelize_dataset(data, tmp_path / "cache", S=4, hot_pixels="detect", progress=False)
    dat = data / "spike/a/spikes.dat"
    dat.write_bytes(dat.read_bytes()[:-5])  # not a whole number of frames any more
    found = problems(tmp_path / "cache", data)
    assert any("cannot re-detect hot pixels" in w or "spike stream cannot be read" in w
               for w in whats(found))
    assert whats(found, "b") == []


def test_verify_sync_json_renamed_sequence(copy):
    data, cache = copy
    path = data / "spike/a/sync.json"
    raw = json.loads(path.read_text())
    raw["sequence"] = "zzz"
    path.write_text(json.dumps(raw))
    assert any("sync.json now names sequence 'zzz'" in w for w in whats(problems(cache, data)))


def test_foreign_progress_jsonl_is_refused_and_kept(tmp_path, built):
    data, _ = built
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "progress.jsonl").write_text('[]\n{"kind": "start"}\n')
    assert_clear_error(run("voxelize", data, cache, "--S", 4), 1, "not a spikeprep cache")
    assert (cache / "progress.jsonl").read_text() == '[]\n{"kind": "start"}\n'
