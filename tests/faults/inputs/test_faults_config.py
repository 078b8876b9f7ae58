"""Fault matrix, input side (issue 11): config.yaml and build-sync flags with non-finite or out-of-
range numbers, text in other encodings, names that are not UTF-8. Each case makes the fault
happen and asserts the exit code, the message (file, found, expected, fix), the files that
survive and that nothing is left over."""

from __future__ import annotations

import pytest

from tests.support.input_faults import assert_clear_error, leftovers, rename_bytes, run, small_dataset, sync_dataset

# -- config.yaml and build-sync flags -----------------------------------------------------------


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
                   "\n".join(ln if not ln.startswith(f"{key}:") else f"{key}: {value}"
                             for ln in cfg.read_text().splitlines()) + "\n")
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
