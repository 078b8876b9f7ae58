"""Fault matrix, input side (issue 11): inputs voxelize converts (grayscale, RGBA, palette, 16-bit,
all-zero spikes: one warning each, never silent) or refuses (damaged png/.dat, hostile png
headers, a foreign progress.jsonl). Each case makes the fault happen and asserts the exit code,
the message (file, found, expected, fix), the files that survive and that nothing is left over."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import spikeprep
from spikeprep.errors import LayoutError
from tests.support.input_faults import assert_clear_error, leftovers, run, small_dataset

# -- conversions: never silent -------------------------------------------------------------------

def warnings_of(result) -> list[str]:
    return [ln for ln in result.output.splitlines() if ln.startswith("warning:")]


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
    from spikeprep.inputs.images import read_image
    (tmp_path / "f.png").write_bytes(data)
    with pytest.raises(LayoutError, match="RGB frame cannot be decoded"):
        read_image(tmp_path / "f.png")


def test_foreign_progress_jsonl_is_refused_and_kept(tmp_path, built):
    data, _ = built
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "progress.jsonl").write_text('[]\n{"kind": "start"}\n')
    assert_clear_error(run("voxelize", data, cache, "--S", 4), 1, "not a spikeprep cache")
    assert (cache / "progress.jsonl").read_text() == '[]\n{"kind": "start"}\n'
