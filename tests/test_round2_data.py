"""Issue 25 ("nothing silently wrong", second round), data side: imported fields survive a
rebuild, concurrent --fix shifts once, nothing is written through links into a download,
sequence names that break meta_info.txt or the file-name limit are refused up front."""

from __future__ import annotations

import hashlib
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


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {path.readlink()}\n".encode())
        elif path.is_file():
            digest.update(f"F {rel} ".encode() + path.read_bytes() + b"\n")
        else:
            digest.update(f"D {rel}\n".encode())
    return digest.hexdigest()


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
