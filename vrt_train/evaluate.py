"""``vrt-train --test``: whole-sequence evaluation of a checkpoint, with a result card.

Inference is the validation's (`vrt_train.validate.restore_sequence`: KAIR ``main_test_vrt``'s
temporal chunks and spatial tiles from the config's ``val`` section, ``size_patch_testing:
auto`` included); the figures come from a `vrt_train.protocols` protocol. `run_test` returns
the card (a dict) and, given ``out``, writes ``OUT/result.json`` and ``OUT/result.md``;
`check_card` recomputes a card and lists the keys that differ.

Checkpoints (`load_eval_checkpoint`): ours (``iter_*.pt``, ``best.pt``: the weights under
``model``, EMA weights under ``ema`` preferred, plus ``spike_chans``, ``spike_norm``, ``config``)
or KAIR's (``{'params'|'params_ema': state_dict}`` or a bare state dict; S read from
``conv_first``'s input channels, the spike normalisation from the config and the cache).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from spikeprep import ConfigError

from .augment import SpikeNorm
from .config import Config, config_from_dict, to_dict
from .data import ValDataset, effective_spike_norm, open_any
from .errors import CheckpointError
from .factory import build_model
from .outputs import OutputOptions, SequenceSink
from .protocols import get_protocol
from .resume import load_weights, read_checkpoint
from .selection import is_test_split
from .spike_only import dataset_kwargs
from .validate import restore_sequence

SPLITS = {"val": "val", "test": "val", "train": "train", "all": None}
TOLERANCE = 1e-6


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EvalCheckpoint:
    """Weights to evaluate and what is known about them (``kind``: vrt-train | kair)."""

    path: Path
    kind: str
    weights: dict
    spike_chans: int
    spike_norm: dict | None
    state: dict | None  # our checkpoint's other keys (config, iter, val_is_test), None for KAIR's


def _kair_spike_chans(weights: dict, cfg: Config, path) -> int:
    """S of a KAIR-format state dict: ``conv_first`` takes ``blocks x (3 + S) [+ 1]`` channels."""
    w = weights.get("conv_first.weight")
    if w is None:
        raise CheckpointError("the checkpoint holds no VRT weights (no conv_first.weight)", path=path,
                              found=", ".join(sorted(weights)[:5]) or "an empty state dict",
                              fix="pass a vrt-train checkpoint or a KAIR VRT .pth")
    blocks = 9 if cfg.netG.get("pa_frames", 2) else 1
    per_block = (w.shape[1] - int(bool(cfg.netG.get("nonblind_denoising", False)))) / blocks
    return max(int(round(per_block)) - 3, 0)


def load_eval_checkpoint(path, cfg: Config) -> EvalCheckpoint:
    """Our checkpoint or a KAIR file at ``path``; CheckpointError when it is neither."""
    path = Path(path)
    state, why = read_checkpoint(path)
    if state is not None:
        weights = state["ema"] if state.get("ema") is not None else state["model"]
        rest = {k: v for k, v in state.items() if k not in ("model", "ema", "optimizer", "scheduler", "scaler", "rng")}
        return EvalCheckpoint(path, "vrt-train", weights, int(state.get("spike_chans", 0)),
                              state.get("spike_norm"), rest)
    from .model.errors import CheckpointMismatchError
    from .model.pretrained import read_checkpoint as read_kair
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
        weights, _ = read_kair(raw)
    except CheckpointMismatchError as exc:
        raise CheckpointError("checkpoint is neither a vrt-train nor a KAIR checkpoint", path=path,
                              found=f"{why}; {exc}") from None
    except Exception as exc:  # noqa: BLE001 - unreadable file
        raise CheckpointError("checkpoint is not readable", path=path, found=why or type(exc).__name__) from None
    extra = raw if isinstance(raw, dict) else {}
    spike_chans = extra.get("spike_chans")
    if not isinstance(spike_chans, int):
        spike_chans = _kair_spike_chans(weights, cfg, path)
    return EvalCheckpoint(path, "kair", weights, spike_chans, extra.get("spike_norm"), None)


def release_checkpoint(src, dst) -> Path:
    """Write our checkpoint ``src`` in the released (KAIR-readable) format: ``{"params": weights
    (EMA when trained with it), "spike_chans", "spike_norm", "config", "iter", "source_sha256"}``,
    plain tensors and data only (``torch.load(..., weights_only=True)`` reads it; KAIR's
    ``load_network(param_key='params')`` takes the weights and ignores the rest)."""
    state, why = read_checkpoint(Path(src))
    if state is None:
        raise CheckpointError("not a vrt-train checkpoint to release", path=src, found=why)
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    torch.save({"params": weights, "spike_chans": int(state.get("spike_chans", 0)),
                "spike_norm": state.get("spike_norm"), "config": state.get("config"), "iter": state.get("iter"),
                "source_sha256": sha256_file(src)}, dst)
    return Path(dst)


def latest_checkpoint(cfg: Config) -> Path:
    from .checkpoint import list_checkpoints
    found = list_checkpoints(cfg.out_dir)
    if not found:
        raise ConfigError("no checkpoint to test", path=Path(cfg.out_dir) / "checkpoints", found="none",
                          fix="train first or pass --checkpoint PATH")
    return found[-1]


def _versions() -> dict:
    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    return {"python": platform.python_version(), "torch": torch.__version__, "spikeprep": ver("spikeprep")}


def _cache_card(cache, split: str, seqs) -> dict:
    manifest = cache.manifest
    raw = (Path(cache.root) / "manifest.json").read_bytes() if getattr(cache, "root", None) else b""
    record = (manifest.import_record or {}).get("sequences", {}) if hasattr(manifest, "import_record") else {}
    chosen = {s: record[s] for s in seqs if s in record}
    return {"path": str(getattr(cache, "root", "")), "manifest_sha256": hashlib.sha256(raw).hexdigest(),
            "params": manifest.params.to_dict(), "params_hash": manifest.params_hash, "split": split,
            "sequences": list(seqs),
            "import": {"presets": sorted({e["preset"] for e in chosen.values()}),
                       "dataset_splits": sorted({e["split"] for e in chosen.values()}),
                       "blur_folders": sorted({e["blur_folder"] for e in chosen.values() if "blur_folder" in e}),
                       "fingerprints": {s: e["fingerprint"] for s, e in chosen.items()}} if chosen else None}


def run_test(cfg: Config, checkpoint=None, protocol: str = "kair", split: str | None = None, out=None,
             save_images=None, options: OutputOptions | None = None, progress: bool = True,
             model_fn=None) -> dict:
    """Evaluate ``checkpoint`` (default: the latest in ``cfg.out_dir``) on ``split`` (val | test
    | train | all; default val, the dataset's test half) of ``cfg.data.cache``; returns the card.

    save_images: a folder for ``SEQ/<frame name>.png`` (and ``SEQ.mp4`` per ``options``);
    out: a folder for ``result.json`` and ``result.md``.
    """
    proto = get_protocol(protocol)
    split = split or "val"
    if split not in SPLITS:
        raise ConfigError("unknown --split", found=repr(split), expected=" | ".join(SPLITS))
    ckpt_path = Path(checkpoint) if checkpoint else latest_checkpoint(cfg)
    ckpt = load_eval_checkpoint(ckpt_path, cfg)
    cache = open_any(cfg.data.cache)
    use_spike = ckpt.spike_chans > 0
    dataset = ValDataset(cache, None, use_spike, split=SPLITS[split], **dataset_kwargs(cfg))
    if not dataset.items.seqs:
        raise ConfigError(f"the cache has no {split} sequences to test on", path=cfg.data.cache,
                          fix="pass --split train|all, or a cache with a val split")
    if use_spike and dataset.items.channels != ckpt.spike_chans:
        raise ConfigError("the checkpoint and the cache disagree on the spike channels (S)", path=ckpt_path,
                          found=f"checkpoint S={ckpt.spike_chans}",
                          expected=f"the cache's S={dataset.items.channels} ({cfg.data.cache})",
                          fix="test with the cache the checkpoint was trained on")
    model = model_fn(ckpt.spike_chans) if model_fn else build_model(cfg, ckpt.spike_chans)
    load_weights(model, ckpt.weights, ckpt_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    if ckpt.spike_norm:
        norm = SpikeNorm(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt.spike_norm.items()})
    else:
        params = dataset.items.params
        inputs = cfg.data.inputs
        mode = effective_spike_norm(params, cfg.data.spike_norm, inputs)
        norm = SpikeNorm.from_manifest(dataset.items.manifest, mode, inputs)
    per_frame = {}
    for i in range(len(dataset)):
        item, output, target = restore_sequence(model, dataset, i, cfg.val, norm, device, use_spike)
        seq = item["seq"]
        sink = SequenceSink(save_images, seq, options or OutputOptions()) if save_images else None
        rows = []
        for frame, o, g, blurred in zip(item["frames"].tolist(), output, target, item["L_rgb"]):
            rows.append(proto.frame(o, g))
            if sink:
                sink.write(cache.frame_name(seq, frame), o.permute(1, 2, 0).numpy().astype("uint8"), blurred.numpy())
        if sink:
            sink.close()
        per_frame[seq] = rows
        if progress:
            s = proto.sequence(rows)
            print(f"{seq}: {s['frames']} frames, PSNR {s['psnr']:.4f} dB, SSIM {s['ssim']:.4f}", file=sys.stderr)
    card = _card(cfg, ckpt, proto, split, cache, per_frame)
    if out:
        write_card(card, out)
    return card


def _card(cfg, ckpt: EvalCheckpoint, proto, split, cache, per_frame) -> dict:
    overall = proto.overall(per_frame)
    cache_card = _cache_card(cache, split, list(per_frame))
    is_best = ckpt.path.name == "best.pt"
    val_is_test = (ckpt.state or {}).get("val_is_test")
    if val_is_test is None and is_best:  # older checkpoints: judge from the config and the cache
        saved = (ckpt.state or {}).get("config") or {}
        n = (saved.get("data") or {}).get("val_from_train", 0)
        val_is_test = not n and is_test_split(cache.manifest, [s for s in cache.sequences if cache.split(s) == "val"])
    card = {"protocol": proto.name, "protocol_source": proto.source, **overall,
            "sequences": {seq: proto.sequence(rows) for seq, rows in per_frame.items()},
            "frames": sum(len(r) for r in per_frame.values()),
            "checkpoint": {"path": str(ckpt.path), "sha256": sha256_file(ckpt.path), "kind": ckpt.kind,
                           "iter": (ckpt.state or {}).get("iter"), "spike_chans": ckpt.spike_chans},
            "selected_on_test_split": bool(is_best and val_is_test),
            "cache": cache_card, "config": to_dict(cfg), "software": _versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return card


def _fmt(x, digits) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else str(x)


def card_markdown(card: dict) -> str:
    """``result.md``: a table with one row per sequence and the overall figures."""
    lines = [f"# {card['config'].get('name', 'vrt')}: {card['protocol']} protocol, split {card['cache']['split']}", ""]
    if card.get("selected_on_test_split"):
        lines += ["> **Warning:** this checkpoint (best.pt) was selected on the test split: the figures "
                  "below are not an unbiased test result.", ""]
    lines += ["| sequence | frames | PSNR (dB) | SSIM | PSNR-Y (dB) | SSIM-Y |", "|---|---:|---:|---:|---:|---:|"]
    for seq, s in card["sequences"].items():
        lines.append(f"| {seq} | {s['frames']} | {_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 4)} | "
                     f"{_fmt(s['psnr_y'], 2)} | {_fmt(s['ssim_y'], 4)} |")
    over = "all frames" if card["protocol"] == "matlab-gopro" else "sequences"
    lines.append(f"| **overall** (mean over {over}) | {card['frames']} | **{_fmt(card['psnr'], 2)}** | "
                 f"**{_fmt(card['ssim'], 4)}** | {_fmt(card['psnr_y'], 2)} | {_fmt(card['ssim_y'], 4)} |")
    imp = card["cache"].get("import") or {}
    ck = card["checkpoint"]
    lines += ["", f"Protocol: {card['protocol_source']}.",
              f"Checkpoint: `{Path(ck['path']).name}` ({ck['kind']}, iteration {ck['iter']}), sha256 `{ck['sha256']}`.",
              f"Cache: manifest sha256 `{card['cache']['manifest_sha256']}`, S = {card['cache']['params'].get('S')}"
              f" ({card['cache']['params'].get('repr')})" + _import_words(imp) + ".",
              f"Software: {', '.join(f'{k} {v}' for k, v in card['software'].items())}; {card['date']}.", ""]
    return "\n".join(lines)


def _import_words(imp: dict | None) -> str:
    """``, preset P, dataset split S, blurred frames from F`` for the card's cache line."""
    if not imp:
        return ""
    return (f", preset {', '.join(imp['presets'])}, dataset split {', '.join(imp['dataset_splits'])}, "
            f"blurred frames from {', '.join(imp['blur_folders']) or 'unknown'}")


def write_card(card: dict, out) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    (out / "result.md").write_text(card_markdown(card), encoding="utf-8")


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


COMPARED = ("protocol", "psnr", "ssim", "psnr_y", "ssim_y", "frames", "sequences.", "checkpoint.sha256",
            "cache.manifest_sha256", "cache.params_hash", "cache.split", "selected_on_test_split")


def card_differences(old: dict, new: dict, tol: float = TOLERANCE) -> list[str]:
    """``["psnr: 31.2 -> 30.9", ...]`` for every compared key that differs (numbers by > tol)."""
    a, b = _flat(old), _flat(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if not any(key == c or (c.endswith(".") and key.startswith(c)) for c in COMPARED):
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            same = x == y or abs(x - y) <= tol
        else:
            same = x == y
        if not same:
            diffs.append(f"{key}: {x!r} -> {y!r}")
    return diffs


def check_card(path, progress: bool = True, model_fn=None) -> list[str]:
    """Recompute the card at ``path`` (its checkpoint, cache, protocol, split and config)."""
    try:
        old = json.loads(Path(path).read_text(encoding="utf-8"))
        cfg = config_from_dict(old["config"])
        args = dict(checkpoint=old["checkpoint"]["path"], protocol=old["protocol"], split=old["cache"]["split"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError("not a readable result card", path=path, found=f"{type(exc).__name__}: {exc}",
                          expected="a result.json written by vrt-train --test") from None
    new = run_test(cfg, **args, progress=progress, model_fn=model_fn)
    return card_differences(old, new)
