"""`vrt-train --test`: whole-sequence evaluation, protocols, result cards, honest model selection.

Self-contained: a small real cache (simulate -> build-sync -> voxelize) with two validation
sequences of unequal length (4 and 6 frames) marked as a dataset's ``test`` split through
DATA_ROOT/import.json, and a 2-iteration checkpoint of configs/demo_tiny_cpu.yaml trained here.
KAIR's metrics are reimplemented below in plain numpy/cv2 (not imported from vrt_train).
"""

from __future__ import annotations

import json
import shutil
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="the trainer tests need torch (pip install \"spikeprep[train]\")")

import torch

import spikeprep
from tests.support.paths import CONFIGS
from vrt_train.cli import main
from vrt_train.config import load_config

CONFIG = CONFIGS / "demo_tiny_cpu.yaml"
SIZE = 48
VAL = ("seq002", "seqx00")  # 4 and 6 frames


# -- KAIR's metric definitions, in numpy -------------------------------------------------------

def np_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse))


def np_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """KAIR calculate_ssim: cv2 Gaussian 11x11 sigma 1.5, 'valid' window, mean over channels."""
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.transpose())
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def one(x, y):
        x, y = x.astype(np.float64), y.astype(np.float64)
        mu1, mu2 = cv2.filter2D(x, -1, win)[5:-5, 5:-5], cv2.filter2D(y, -1, win)[5:-5, 5:-5]
        s1 = cv2.filter2D(x * x, -1, win)[5:-5, 5:-5] - mu1 ** 2
        s2 = cv2.filter2D(y * y, -1, win)[5:-5, 5:-5] - mu2 ** 2
        s12 = cv2.filter2D(x * y, -1, win)[5:-5, 5:-5] - mu1 * mu2
        return (((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s1 + s2 + C2))).mean()
    return float(np.mean([one(a[..., c], b[..., c]) for c in range(a.shape[2])]))


# -- fixtures ----------------------------------------------------------------------------------

def cli(args) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("vrt_test")
    spikeprep.simulate_dataset(root / "data", sequences=3, frames=4, height=SIZE, width=SIZE, exposure=1.0)
    spikeprep.simulate_dataset(root / "more", sequences=1, frames=6, height=SIZE, width=SIZE, exposure=1.0, seed=5)
    for kind in ("blur", "sharp", "spike"):
        shutil.move(root / "more" / kind / "seq000", root / "data" / kind / "seqx00")
    spikeprep.build_sync(root / "data")
    record = {"format": "spikeprep.import", "version": 1, "sequences": {
        s: {"preset": "spk-gopro", "source": "/src", "split": "test" if s in VAL else "train",
            "frames": 6 if s == "seqx00" else 4, "fingerprint": f"fp-{s}"}
        for s in ("seq000", "seq001", "seq002", "seqx00")}}
    (root / "data" / "import.json").write_text(json.dumps(record))
    spikeprep.voxelize_dataset(root / "data", root / "cache", S=4, val=VAL, progress=False)
    return root / "cache"


def base_args(cache, out):
    return ["--opt", str(CONFIG), "--set", f"data.cache={cache}", "--set", f"out_dir={out}",
            "--set", f"data.gt_size={SIZE}", "--set", "train.total_iter=2", "--set", "train.val_every=2",
            "--set", "train.checkpoint_every=2", "--set", "val.num_frame_testing=4",
            "--set", "val.num_frame_overlapping=2", "--quiet"]


@pytest.fixture(scope="module")
def run(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli(base_args(cache, out)) == 0
    return out


def _ckpt(run):
    return run / "checkpoints" / "iter_00000002.pt"


def _test(cache, run, tmp_path, *extra, name="card") -> dict:
    code = cli(base_args(cache, run) + ["--test", "--out", str(tmp_path / name), *extra])
    assert code == 0
    return json.loads((tmp_path / name / "result.json").read_text())


# -- tests ---------------------------------------------------------------------------------------

@pytest.mark.slow  # the module's cache + 2-iteration training (~30 s), then CPU VRT inference
def test_kair_and_matlab_protocols_match_numpy_on_saved_images(cache, run, tmp_path):
    card = _test(cache, run, tmp_path, "--checkpoint", str(_ckpt(run)), "--save-images", str(tmp_path / "img"))
    c = spikeprep.open_cache(str(cache))
    per_seq, all_frames = {}, []
    for seq in VAL:
        rows = []
        for i in range(c.num_frames(seq)):
            out = cv2.imread(str(tmp_path / "img" / seq / f"{c.frame_name(seq, i)}.png"))[:, :, ::-1]
            gt = np.asarray(c.read(seq, i).sharp)
            rows.append((np_psnr(out, gt), np_ssim(out, gt)))
        per_seq[seq] = rows
        all_frames += rows
    assert set(card["sequences"]) == set(VAL)
    for seq, rows in per_seq.items():
        s = card["sequences"][seq]
        assert s["frames"] == len(rows)
        assert abs(s["psnr"] - np.mean([r[0] for r in rows])) < 1e-3
        assert abs(s["ssim"] - np.mean([r[1] for r in rows])) < 1e-4
    seq_mean = np.mean([np.mean([r[0] for r in rows]) for rows in per_seq.values()])
    assert abs(card["psnr"] - seq_mean) < 1e-3
    assert abs(card["ssim"] - np.mean([np.mean([r[1] for r in rows]) for rows in per_seq.values()])) < 1e-4
    assert card["protocol"] == "kair" and {"psnr_y", "ssim_y"} <= set(card)
    assert card["cache"]["import"]["presets"] == ["spk-gopro"] and card["cache"]["import"]["dataset_splits"] == ["test"]
    digest = __import__("hashlib").sha256((cache / "manifest.json").read_bytes()).hexdigest()
    assert card["cache"]["manifest_sha256"] == digest
    assert card["checkpoint"]["kind"] == "vrt-train" and card["selected_on_test_split"] is False
    assert {"python", "torch", "spikeprep"} <= set(card["software"]) and card["config"]["name"] == "demo_tiny_cpu"
    md = (tmp_path / "card" / "result.md").read_text()
    assert "| seqx00 | 6 |" in md and "overall" in md
    # matlab-gopro: the mean over ALL frames (unequal lengths: differs from the sequence mean)
    mat = _test(cache, run, tmp_path, "--checkpoint", str(_ckpt(run)), "--protocol", "matlab-gopro", name="mat")
    frame_mean = np.mean([r[0] for r in all_frames])
    assert abs(mat["psnr"] - frame_mean) < 1e-3 and abs(frame_mean - seq_mean) > 1e-6
    assert mat["sequences"]["seqx00"]["psnr"] == pytest.approx(card["sequences"]["seqx00"]["psnr"], abs=1e-9)


@pytest.mark.slow  # the module's cache + 2-iteration training (~30 s), then CPU VRT inference
def test_kair_format_and_released_checkpoints_give_the_same_figures(cache, run, tmp_path):
    from vrt_train.evaluate import load_eval_checkpoint, release_checkpoint
    ours = _test(cache, run, tmp_path, "--checkpoint", str(_ckpt(run)), name="ours")
    state = torch.load(_ckpt(run), map_location="cpu", weights_only=False)
    torch.save({"params": state["model"]}, tmp_path / "kair.pth")
    kair = _test(cache, run, tmp_path, "--checkpoint", str(tmp_path / "kair.pth"), name="kair")
    assert kair["checkpoint"]["kind"] == "kair" and kair["checkpoint"]["spike_chans"] == 4
    assert abs(kair["psnr"] - ours["psnr"]) < 1e-9 and abs(kair["ssim"] - ours["ssim"]) < 1e-9
    release_checkpoint(_ckpt(run), tmp_path / "released.pth")
    raw = torch.load(tmp_path / "released.pth", map_location="cpu", weights_only=True)  # plain tensors + data
    assert set(raw["params"]) == set(state["model"])
    cfg = load_config(CONFIG)
    back = load_eval_checkpoint(tmp_path / "released.pth", cfg)
    assert back.spike_chans == 4 and back.spike_norm == state["spike_norm"]
    assert all(torch.equal(back.weights[k], v) for k, v in state["model"].items())
    rel = _test(cache, run, tmp_path, "--checkpoint", str(tmp_path / "released.pth"), name="rel")
    assert abs(rel["psnr"] - ours["psnr"]) < 1e-9


@pytest.mark.slow  # the module's cache + 2-iteration training (~30 s), then CPU VRT inference
def test_check_card_reproduces_and_catches_a_changed_checkpoint(cache, run, tmp_path, capsys):
    ckpt = tmp_path / "copy.pt"
    shutil.copy(_ckpt(run), ckpt)
    _test(cache, run, tmp_path, "--checkpoint", str(ckpt))
    card = tmp_path / "card" / "result.json"
    assert cli(base_args(cache, run) + ["--test", "--check-card", str(card)]) == 0
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    with torch.no_grad():
        state["model"]["conv_last.bias"] += 0.05
    torch.save(state, ckpt)
    capsys.readouterr()
    assert cli(base_args(cache, run) + ["--test", "--check-card", str(card)]) == 3
    err = capsys.readouterr().err
    assert "checkpoint.sha256" in err and "differs: psnr:" in err


@pytest.mark.slow  # the module's cache + 2-iteration training (~30 s), then CPU VRT inference
def test_test_split_warning_and_best_card(cache, run, tmp_path):
    log = (run / "train.log").read_text()
    assert "validation split is the dataset's test split (seq002, seqx00)" in log
    best = run / "checkpoints" / "best.pt"
    assert torch.load(best, map_location="cpu", weights_only=False)["val_is_test"] is True
    card = _test(cache, run, tmp_path, "--checkpoint", str(best))
    assert card["selected_on_test_split"] is True
    assert "selected on the test split" in (tmp_path / "card" / "result.md").read_text()


@pytest.mark.slow  # the module's cache + 2-iteration training (~30 s), then CPU VRT inference
def test_val_from_train_is_deterministic_and_recorded(cache, tmp_path):
    from vrt_train.data import ShardDataset
    from vrt_train.selection import held_out, validation_plan
    c = spikeprep.open_cache(str(cache))
    assert validation_plan(c, 1) == (["seq001"], ["seq001"], False)
    assert held_out(["b", "c", "a"], 2) == ["b", "c"] and held_out(["a"], 0) == []
    assert validation_plan(c, 0) == (None, [], True)
    assert {s for s, _ in ShardDataset(c, 2, SIZE, exclude=["seq001"]).clips} == {"seq000"}
    out = tmp_path / "held"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli(base_args(cache, out) + ["--set", "data.val_from_train=1", "--set", "train.total_iter=1",
                                            "--set", "train.val_every=1", "--set", "train.checkpoint_every=1"]) == 0
    state = torch.load(out / "checkpoints" / "iter_00000001.pt", map_location="cpu", weights_only=False)
    assert state["config"]["data"]["val_from_train"] == 1 and state["val_is_test"] is False
    assert "test split" not in (out / "train.log").read_text()
    with pytest.raises(Exception, match="holds out every training sequence"):
        validation_plan(c, 2)


@pytest.mark.slow  # the module's cache + 2-iteration training (~30 s), then CPU VRT inference
def test_other_S_is_a_one_line_error_and_rgb_only_works(cache, run, tmp_path, capsys):
    from vrt_train.factory import build_model
    cfg = load_config(CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"params": build_model(cfg, 2).state_dict()}, tmp_path / "s2.pth")
        torch.save(build_model(cfg, 0).state_dict(), tmp_path / "rgb.pth")
    capsys.readouterr()
    assert cli(base_args(cache, run) + ["--test", "--checkpoint", str(tmp_path / "s2.pth"),
                                        "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "S=2" in err and "S=4" in err and "Traceback" not in err
    card = _test(cache, run, tmp_path, "--checkpoint", str(tmp_path / "rgb.pth"), name="rgb")
    assert card["checkpoint"]["spike_chans"] == 0 and np.isfinite(card["psnr"])
    # a network of another size: one line naming the checkpoint
    capsys.readouterr()
    assert cli(base_args(cache, run) + ["--set", "netG.embed_dims=[8,8,8,8,8,8,8,24,24]", "--test", "--checkpoint",
                                        str(_ckpt(run)), "--out", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit this network" in err and "iter_00000002.pt" in err


# -- MATLAB ssim against GNU Octave ------------------------------------------------------------

# Produced with GNU Octave 7.3.0 + image 2.14.0 (Debian bookworm: apt-get install octave
# octave-image), which has no ssim: MATLAB's documented ssim algorithm was written out in an Octave
# script (Gaussian sigma 1.5 on 2*ceil(3*1.5)+1 = 11 taps; 2-D: fspecial + imfilter(...,'conv',
# 'replicate'); 3-D (an H x W x 3 array): the 11x11x11 Gaussian by convn on padarray(...,
# 'replicate'); C1 = (0.01*255)^2, C2 = (0.03*255)^2; mean of the map) and evaluated on the
# arrays of `_octave_arrays` (built there with ndgrid, the same formulas); psnr and rgb2ycbcr are
# Octave's own. Printed with %.12f.
OCTAVE = {"ssim_rgb": 0.499968831001, "psnr_rgb": 10.469684884145, "ssim_y": 0.524747255465,
          "psnr_y": 14.429380925678}


def _octave_arrays():
    i, j, c = np.meshgrid(np.arange(16), np.arange(20), np.arange(3), indexing="ij")
    a = np.mod(i * 7 + j * 13 + c * 29 + np.mod(i * j, 17), 256)
    b = np.mod(a + np.mod(i * 3 + j * 5 + c * 11, 23) + 40 * (i > 8), 256)
    return torch.from_numpy(a).permute(2, 0, 1).double(), torch.from_numpy(b).permute(2, 0, 1).double()


def test_matlab_protocol_matches_octave_reference():
    from vrt_train.protocols import matlab_frame
    a, b = _octave_arrays()
    got = matlab_frame(a, b)
    assert got["ssim"] == pytest.approx(OCTAVE["ssim_rgb"], abs=1e-9)
    assert got["psnr"] == pytest.approx(OCTAVE["psnr_rgb"], abs=1e-9)
    assert got["ssim_y"] == pytest.approx(OCTAVE["ssim_y"], abs=1e-9)
    assert got["psnr_y"] == pytest.approx(OCTAVE["psnr_y"], abs=1e-9)
    # and the 'kair' frame figures are KAIR's numpy definitions
    from vrt_train.protocols import kair_frame
    k = kair_frame(a, b)
    an, bn = a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy()
    assert k["psnr"] == pytest.approx(np_psnr(an, bn), abs=1e-9)
    assert k["ssim"] == pytest.approx(np_ssim(an, bn), abs=1e-9)
