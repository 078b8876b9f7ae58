"""VRT training step: our `vrt_train.model.VRT` vs KAIR's ``models/network_vrt.py`` class, one run.

KAIR's class is loaded from a KAIR checkout the user gives (``--kair PATH``; never vendored;
it needs ``einops``). Both models get KAIR's 006 GoPro settings (``configs/006_vrt_gopro_rgb.yaml``
netG, SpyNet randomly initialised: no download), the same weights (ours loads KAIR's state_dict
with ``strict=True``) and the same input; the outputs are compared first. Then, for each
variant, KAIR and ours alternate in the same process:

- forward (``no_grad``, eval mode): seconds and peak memory
- forward + backward (train mode, loss = mean square of the output): seconds and peak memory

Variants (``--variants``, comma separated): ``fp32`` (006 as configured: checkpointing on for
most attention/FFN blocks), ``nockpt`` (no gradient checkpointing), ``ckpt`` (checkpointing of
every block), ``bf16`` (autocast; on CUDA only where bf16 is supported), ``compile``
(torch.compile of both, first call excluded). Peak memory: CUDA ``max_memory_allocated`` above
the level before the pass; CPU: growth of the resident set (``vrt_train.memory``).

Usage: python benchmarks/train_step.py --kair /path/to/KAIR [--shape 1x6x3x64x64]
       [--variants fp32,nockpt,bf16] [--repeat 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages
from vrt_train.config import load_config  # noqa: E402
from vrt_train.memory import gib, measure  # noqa: E402
from vrt_train.model import VRT  # noqa: E402

VARIANTS = ("fp32", "nockpt", "ckpt", "bf16", "compile")


def load_kair_vrt(kair_root: Path):
    """KAIR's VRT class from ``KAIR/models/network_vrt.py`` (imported from the user's checkout)."""
    path = Path(kair_root) / "models" / "network_vrt.py"
    if not path.is_file():
        sys.exit(f"error: {path} not found: --kair must be a KAIR checkout (github.com/cszn/KAIR)")
    spec = importlib.util.spec_from_file_location("kair_network_vrt", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module.VRT


def netg_006(variant: str) -> dict:
    netg = dict(load_config(ROOT / "configs" / "006_vrt_gopro_rgb.yaml").netG, spynet_path=None)
    if variant == "nockpt":
        netg.update(use_checkpoint_attn=False, use_checkpoint_ffn=False)
    elif variant == "ckpt":
        netg.update(use_checkpoint_attn=True, use_checkpoint_ffn=True,
                    no_checkpoint_attn_blocks=[], no_checkpoint_ffn_blocks=[])
    return netg


def build_pair(KairVRT, variant: str, device):
    netg = netg_006(variant)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kair = KairVRT(**netg)
        ours = VRT(**netg)
    ours.load_state_dict(kair.state_dict(), strict=True)
    kair, ours = kair.to(device), ours.to(device)
    if variant == "compile":
        kair.compile()
        ours.compile()
    return {"KAIR": kair, "ours": ours}


def passes(model, x, amp, device):
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext

    @torch.no_grad()
    def forward():
        model.eval()
        with ctx():
            return model(x)

    def forward_backward():
        model.train()
        model.zero_grad(set_to_none=True)
        with ctx():
            out = model(x)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    return forward, forward_backward


def timed(fn, device, repeat: int, warmup: bool):
    """(fastest seconds, largest peak growth, the last call's result) over ``repeat`` calls."""
    if warmup:
        measure(fn, device)
    runs = [measure(fn, device) for _ in range(repeat)]
    return min(m.seconds for _, m in runs), max(m.peak_bytes for _, m in runs), runs[-1][0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kair", required=True, help="path of a KAIR checkout (models/network_vrt.py)")
    ap.add_argument("--shape", default="1x6x3x64x64", help="input B x T x C x H x W")
    ap.add_argument("--variants", default="fp32,nockpt,bf16", help=f"comma separated, of {','.join(VARIANTS)}")
    ap.add_argument("--repeat", type=int, default=1, help="timed passes per measurement (the fastest is kept)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*use_reentrant.*")
    warnings.filterwarnings("ignore", message="None of the inputs have requires_grad")
    device = torch.device(args.device)
    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"error: unknown variants {sorted(unknown)}, expected some of {VARIANTS}")
    if "bf16" in variants and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        print("bf16 is not supported on this GPU: skipped")
        variants.remove("bf16")
    KairVRT = load_kair_vrt(Path(args.kair))
    torch.manual_seed(1)
    x = torch.rand(shape).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), {os.cpu_count()} cpus, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; input {shape}; 006 GoPro netG (spynet random)")

    rows = []
    for variant in variants:
        pair = build_pair(KairVRT, variant, device)
        outs = {}
        for who in ("KAIR", "ours"):
            fwd, fwdbwd = passes(pair[who], x, variant == "bf16", device)
            warm = variant == "compile"
            f_s, f_m, outs[who] = timed(fwd, device, args.repeat, warm)
            b_s, b_m, _ = timed(fwdbwd, device, args.repeat, warm)
            rows.append((variant, who, f_s, f_m, b_s, b_m))
            print(f"  {variant:<8} {who:<5} forward {f_s:7.2f} s {gib(f_m):>10}   "
                  f"fwd+bwd {b_s:7.2f} s {gib(b_m):>10}", flush=True)
        diff = (outs["KAIR"].float() - outs["ours"].float()).abs().max().item()
        print(f"  {variant:<8} same weights, same input: max |KAIR - ours| = {diff:.2e} (forward, eval)", flush=True)
        del pair, outs

    print(f"\n| variant | model | forward s | forward peak | fwd+bwd s | fwd+bwd peak | speed-up fwd / fwd+bwd |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for k in range(0, len(rows), 2):
        (v, _, kf, kfm, kb, kbm), (_, _, of, ofm, ob, obm) = rows[k], rows[k + 1]
        print(f"| {v} | KAIR | {kf:.2f} | {gib(kfm)} | {kb:.2f} | {gib(kbm)} | |")
        print(f"| {v} | ours | {of:.2f} | {gib(ofm)} | {ob:.2f} | {gib(obm)} | {kf / of:.2f}x / {kb / ob:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
