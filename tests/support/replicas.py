"""Tiny faithful replicas of the public RGB + spike datasets' download layouts, and plain-numpy
transcriptions of the windows their official loaders feed the network.

Layouts as read from the loaders (see spikeprep/datasets/*.py for the files):
Spk-GoPro and X4K (SpkDeblurNet), S-VRT's GoPro folders, S-SDM's Spike-GOPRO and RSB.
Nothing here imports spikeprep: spike files are written with numpy in SpikeCV's layout (rows
bottom-up, LSB-first bits) so the tests compare spikeprep against an independent writer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import yaml

RNG = np.random.default_rng(1234)


def write_dat(path: Path, spikes: np.ndarray) -> None:
    """``(n, h, w)`` bool -> SpikeCV .dat: each frame flipped upside down, bits LSB first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = spikes[:, ::-1, :].reshape(len(spikes), -1)
    np.packbits(flat, axis=1, bitorder="little").tofile(path)


def random_dat(path: Path, n: int, h: int, w: int, p: float = 0.3) -> None:
    write_dat(path, RNG.random((n, h, w)) < p)


def write_image(path: Path, h: int, w: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), RNG.integers(0, 256, (h, w, 3), np.uint8))


def loader_decode(path: Path, h: int, w: int) -> np.ndarray:
    """The loaders' ``load_vidar_dat``: whole file -> ``(n, h, w)`` 0/1, flipped upright."""
    raw = np.fromfile(path, np.uint8)
    n = len(raw) // (h * w // 8)
    bits = np.unpackbits(raw[:n * h * w // 8].reshape(n, -1), axis=1, bitorder="little")
    return bits.reshape(n, h, w)[:, ::-1, :]


def tree_hash(root: Path) -> str:
    """sha256 over every entry under ``root`` (path, kind, bytes or link target)."""
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


# -- Spk-GoPro (SpkDeblurNet codes/dataset/gopro_sequence.py) ---------------------------------

def spk_gopro(root: Path, seqs: dict[str, dict[str, list[str]]], spike=(360, 640), rgb=(720, 1280)) -> Path:
    """``GOPRO_Large/{split}/SEQ/{blur,blur_gamma,sharp}/NAME.png`` and
    ``GOPRO_Large_spike_seq/{split}/SEQ/spike/NAME.dat`` of 8 x (SEQ's second field) frames."""
    for split, by_seq in seqs.items():
        (root / "GOPRO_Large" / split).mkdir(parents=True, exist_ok=True)
        (root / "GOPRO_Large" / split / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # the loader removes it
        for seq, names in by_seq.items():
            n = 8 * int(seq.split("_")[1])
            for name in names:
                for kind in ("blur", "blur_gamma", "sharp"):
                    write_image(root / "GOPRO_Large" / split / seq / kind / f"{name}.png", *rgb)
                random_dat(root / "GOPRO_Large_spike_seq" / split / seq / "spike" / f"{name}.dat", n, *spike)
    return root


def spk_gopro_window(n: int) -> tuple[int, int]:
    """gopro_sequence.py: ``spike[sslen//2-28 : sslen//2+28]``."""
    return n // 2 - 28, n // 2 + 28


# -- S-VRT (data/dataset_video_train_rgbspike.py + prepare_gopro_spike_dataset.py) -----------

def svrt(root: Path, seqs: dict[str, dict[str, int]], spike=(360, 640), rgb=(720, 1280)) -> Path:
    """``GOPRO_Large/{split}_GT[_blurred]/SEQ/NNNNNN.png``, spikes as Spk-GoPro (lengths given per
    sequence), ``GOPRO_Large_spike_seq/config.yaml`` as S-VRT's prepare script writes it."""
    spike_root = root / "GOPRO_Large_spike_seq"
    for split, by_seq in seqs.items():
        for seq, n in by_seq.items():
            for i in range(3):
                name = f"{i:06d}"
                write_image(root / "GOPRO_Large" / f"{split}_GT" / seq / f"{name}.png", *rgb)
                write_image(root / "GOPRO_Large" / f"{split}_GT_blurred" / seq / f"{name}.png", *rgb)
                random_dat(spike_root / split / seq / "spike" / f"{name}.dat", n, *spike)
    (spike_root / "config.yaml").write_text(yaml.safe_dump(
        {"spike_h": spike[0], "spike_w": spike[1], "is_labeled": False, "labeled_data_type": [0]}, sort_keys=False))
    return root


def svrt_tfp(spikes: np.ndarray, S: int, hw: int = 20) -> np.ndarray:
    """S-VRT's voxelize_spikes_tfp + prepare_spike_tfp's uint8 storage, transcribed:
    centres ``(e0 + e1) // 2`` of ``np.linspace(0, T, S + 1, dtype=int)`` segments (``T // 2``
    for S = 1) clamped to ``[hw, T - hw]``; ``spikes[c-hw : c+hw+1]`` (one frame shorter at the
    upper clamp) averaged in float32, times 255, truncated to uint8."""
    T = len(spikes)
    assert T > 2 * hw
    if S == 1:
        centres = [T // 2]
    else:
        edges = np.linspace(0, T, S + 1, dtype=int)
        centres = [(a + b) // 2 for a, b in zip(edges[:-1], edges[1:])]
    out = []
    for c in centres:
        c = max(hw, min(c, T - hw))
        window = spikes[c - hw:c + hw + 1].astype(np.float32)
        value = (window.mean(axis=0) * np.float32(255)).astype(np.uint8)
        out.append(np.rint(value.astype(np.float32) / 255 * 255).astype(np.uint8))
    return np.stack(out)


# -- S-SDM Spike-GOPRO (scripts/spike_simulate.py, codes/dataset.py, train_deblur.py) ----------

def ssdm(root: Path, seqs: dict[str, dict[str, int]], spike=(180, 320), rgb=(720, 1280),
         drop_last: bool = False) -> Path:
    """``GOPRO/{split}/{blur,sharp,spike}_data/SEQ/NNNNNN.{png,png,dat}``: blurry frames 13k+6,
    no ``.dat`` for the first (and, with ``drop_last``, the last); 137-frame files."""
    for split, by_seq in seqs.items():
        for seq, n_blur in by_seq.items():
            for k in range(n_blur):
                name = f"{13 * k + 6:06d}"
                write_image(root / "GOPRO" / split / "blur_data" / seq / f"{name}.png", *rgb)
                write_image(root / "GOPRO" / split / "sharp_data" / seq / f"{name}.png", *rgb)
                if k == 0 or (drop_last and k == n_blur - 1):
                    continue
                random_dat(root / "GOPRO" / split / "spike_data" / seq / f"{name}.dat", 137, *spike)
    return root


def ssdm_window(n: int) -> tuple[int, int]:
    """train_deblur.py's exposure window: ``cal_tfp(spike, len//2, 97)`` slices
    ``spike[idx - 97//2 : idx + 97//2 + 1]``."""
    idx = n // 2
    return idx - 97 // 2, idx + 97 // 2 + 1


def rsb(root: Path, seqs: dict[str, list[tuple[str, int]]], spike=(250, 400), rgb=(1000, 1600),
        orphan_jpg: bool = True) -> Path:
    """``spike_data/SEQ/NAME.dat`` + ``blur_data/SEQ/NAME.jpg`` (no sharp); optionally one jpg
    without a ``.dat``."""
    for seq, frames in seqs.items():
        for name, n in frames:
            random_dat(root / "spike_data" / seq / f"{name}.dat", n, *spike)
            write_image(root / "blur_data" / seq / f"{name}.jpg", *rgb)
        if orphan_jpg:
            write_image(root / "blur_data" / seq / "zz_no_spikes.jpg", *rgb)
    return root


# -- X4K1000FPS (SpkDeblurNet codes/dataset/x4k1000fps_sequence.py) ---------------------------

def x4k_name(index: int) -> str:
    """The fullRGB name of original frame ``index``: ``AAAA`` for 4*AAAA, ``AAAA_BBB`` otherwise."""
    a, r = divmod(index, 4)
    return f"{a:04d}" if r == 0 else f"{a:04d}_{r - 1:03d}"


def x4k_centre(name: str) -> int:
    """_get_ori_index: ``AAAA`` -> 4*AAAA, ``AAAA_BBB`` -> 4*AAAA + BBB + 1."""
    parts = name.split("_")
    return int(parts[0]) * 4 + (int(parts[1]) + 1 if len(parts) == 2 else 0)


def x4k(root: Path, split: str, clips: dict[tuple[str, str], list[int]], n_full: int = 80,
        spike=(384, 384), rgb=(768, 768), length: int = 65) -> Path:
    """``{split}_blurry_65/NNN/clip/NAME.png`` at the given original indices, every frame in
    ``{split}_fullRGB``, one ``{split}_spike_2xds/NNN/clip/spike.dat`` of ``n_full`` frames."""
    for (group, clip), centres in clips.items():
        for i in range(n_full):
            write_image(root / f"{split}_fullRGB" / group / clip / f"{x4k_name(i)}.png", *rgb)
        for c in centres:
            write_image(root / f"{split}_blurry_{length}" / group / clip / f"{x4k_name(c)}.png", *rgb)
        random_dat(root / f"{split}_spike_2xds" / group / clip / "spike.dat", n_full, *spike)
    return root


def x4k_window(spikes: np.ndarray, c: int, half: int = 32, value: float = 1.0) -> np.ndarray:
    """The (commented-out) continuous-stream loader: ``spike[c-32 : c+32+1]``, padded past either
    end with frames of ``value`` (torch.ones in the loader)."""
    n, h, w = spikes.shape
    before, after = max(0, half - c), max(0, c + half + 1 - n)
    core = spikes[max(0, c - half):min(n, c + half + 1)].astype(np.float32)
    pad = lambda k: np.full((k, h, w), value, np.float32)  # noqa: E731
    return np.concatenate([pad(before), core, pad(after)])
