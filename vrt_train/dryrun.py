"""``vrt-train --opt CFG --dry-run``: will this config fit, and how long will it take?

One training step (forward, backward, optimizer) and one validation chunk at the config's
sizes, with the per-process batch a ``torchrun`` launch would give (global batch /
``WORLD_SIZE``), on the device training would use; nothing is written.

Memory is measured, never guessed (`vrt_train.memory`). A training step's peak grows linearly
with the pixels of the batch (B x T x h x w; attention windows have a fixed size), so:

- on CPU the kernel kills a process that runs out of memory instead of raising, so first two
  reduced steps (one clip at two small crops, after a warm-up step that creates the Adam state)
  give ``peak = a + b x pixels``; the full step runs only when its prediction fits in
  ``BUDGET`` x the available RAM;
- on CUDA the full step runs directly; an out-of-memory error is caught and the same reduced
  steps are measured.

When the full step does not fit, the report names settings that do, from those measured lines:
the largest batch, number of frames or ``gt_size`` that fits, and gradient checkpointing of
every attention and FFN block (measured with its own two reduced steps). On CUDA each
suggestion is then run for real and marked verified (or dropped).

All flow/deformable parameters are trainable during the dry run (the state after ``fix_iter``,
which needs the most memory), unless ``fix_iter >= total_iter`` (they stay frozen all run).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import time
from dataclasses import dataclass, field

import torch

from spikeprep import ConfigError

from . import packed_inputs
from .augment import SpikeNorm, assemble
from .config import Config, replace
from .data import ShardDataset, ValDataset, effective_spike_norm
from .factory import build_model
from .memory import Measured, available_bytes, fit_line, gib, measure, synchronize
from .metrics import charbonnier
from .spike_only import dataset_kwargs

BUDGET = 0.85        # fraction of the available memory a step may take
CHECKPOINT_ALL = {"use_checkpoint_attn": True, "use_checkpoint_ffn": True,
                  "no_checkpoint_attn_blocks": [], "no_checkpoint_ffn_blocks": []}


@dataclass
class DryRunReport:
    """What `dry_run` found (sizes in bytes, times in seconds)."""

    device: str
    world: int
    batch: int                       # per process
    frames: int
    gt_size: int
    parameters: int
    available: int                   # free device memory (CPU: available RAM) before the step
    fits: bool
    step: Measured | None = None     # the full training step (None when it was not run)
    predicted_peak: float | None = None    # from the reduced steps (CPU always; CUDA after OOM)
    val_chunk: Measured | None = None
    val_shape: tuple = ()            # (frames, C, h, w) of one validation piece
    val_pieces: int = 0              # model calls in one full validation
    estimate_s: float | None = None  # time to total_iter (steps + validations)
    suggestions: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")


class _Stepper:
    """A model + Adam (+ EMA copy) on the device, stepping on crops of one assembled batch."""

    def __init__(self, model, cfg: Config, device, L, H):
        t = cfg.train
        self.model, self.device, self.L, self.H, self.t = model, device, L, H, t
        model.to(device).train().requires_grad_(True)
        if t.fix_iter >= t.total_iter:  # the run never unfreezes flow/deformable parameters
            for name, p in model.named_parameters():
                p.requires_grad_(not any(k in name for k in t.fix_keys))
        self.ema = copy.deepcopy(model).requires_grad_(False) if t.ema_decay > 0 else None
        if t.compile:
            model.compile()
        self.opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                    betas=tuple(t.betas))
        self.scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)

    def _step(self, b: int, frames: int, size: int) -> None:
        L = self.L[:b, :frames, :, :size, :size].contiguous()
        H = self.H[:b, :frames, :, :size, :size].contiguous()
        ctx = torch.autocast(self.device.type, dtype=self.amp) if self.amp else contextlib.nullcontext()
        with ctx:
            E = self.model(L)
        loss = charbonnier(E.float(), H, self.t.charbonnier_eps)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.t.clip_grad:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        del L, H, E, loss

    def run(self, b: int, frames: int, size: int) -> Measured | None:
        """One measured step; None on CUDA out-of-memory."""
        try:
            _, m = measure(lambda: self._step(b, frames, size), self.device)
            return m
        except torch.cuda.OutOfMemoryError:
            self.opt.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            return None

    def line(self, frames: int, sizes: list[int]) -> tuple[float, float] | None:
        """``(a, b)`` of ``peak = a + b x pixels`` from one-clip steps at ``sizes``."""
        if self.run(1, frames, sizes[0]) is None:  # warm-up: Adam state, lazy buffers
            return None
        points = [(frames * s * s, self.run(1, frames, s)) for s in sizes]
        if any(m is None for _, m in points):
            return None
        return fit_line([x for x, _ in points], [m.peak_bytes for _, m in points])

    def close(self) -> None:
        self.model.to("cpu")
        del self.opt, self.ema
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _probe_sizes(minimum: int, gt: int, f: int) -> list[int]:
    step = 8 * f // _gcd(8, f)
    s1 = -(-minimum // step) * step
    s2 = -(-int(s1 * 1.5) // step) * step
    return sorted({min(s1, gt), min(s2, gt)})


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _largest(values, fits) -> int | None:
    ok = [v for v in values if fits(v)]
    return max(ok) if ok else None


def _suggest(line, budget, b, T, gt, minimum, f) -> list[tuple[str, dict, float]]:
    """Largest batch / frames / gt_size that the measured line says fits: (text, change, peak)."""
    a, k = line
    peak = lambda bb, tt, ss: a + k * bb * tt * ss * ss  # noqa: E731
    out = []
    nb = _largest(range(1, b), lambda v: peak(v, T, gt) <= budget)
    if nb:
        out.append((f"data.batch_size={nb} per process", {"batch": nb}, peak(nb, T, gt)))
    nt = _largest(range(2, T), lambda v: peak(b, v, gt) <= budget)
    if nt:
        out.append((f"data.num_frames={nt}", {"frames": nt}, peak(b, nt, gt)))
    step = 8 * f // _gcd(8, f)
    sizes = range(-(-minimum // step) * step, gt, step)
    ns = _largest(sizes, lambda v: peak(b, T, v) <= budget)
    if ns:
        out.append((f"data.gt_size={ns}", {"size": ns}, peak(b, T, ns)))
    return out


def dry_run(cfg: Config, *, model_fn=None, device=None, emit=print) -> DryRunReport:
    """Measure one training step and one validation chunk of ``cfg``; see the module docstring.

    model_fn: ``spike_chans -> nn.Module`` replacing `build_model` (tests); emit: where the
    report's lines go (one call per line).
    """
    device = torch.device(device) if device is not None else _device()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    d, t = cfg.data, cfg.train
    if d.batch_size % world:
        raise ConfigError("data.batch_size (global) is not divisible by the number of processes",
                          found=f"batch_size {d.batch_size}, world size {world}", expected=f"a multiple of {world}")
    per_rank = d.batch_size // world
    dataset = ShardDataset(d.cache, d.num_frames, d.gt_size, "train", cfg.seed, d.samples_per_epoch, d.use_spike,
                           unpack_on_device=d.unpack_on_device, **dataset_kwargs(cfg))
    manifest = dataset.items.manifest
    norm = SpikeNorm.from_manifest(manifest, effective_spike_norm(manifest.params, d.spike_norm, d.inputs), d.inputs)
    spike_chans = dataset.items.channels if d.use_spike else 0
    t0 = time.perf_counter()
    items = [dataset[(0, i % len(dataset))] for i in range(per_rank)]
    item_s = (time.perf_counter() - t0) / per_rank
    batch = packed_inputs.to_device(torch.utils.data.default_collate(items), dataset.items.packed, device)
    L, H = assemble(batch, device, norm, d.augment, torch.Generator().manual_seed(cfg.seed), use_spike=d.use_spike)

    make = (lambda ch: model_fn(ch)) if model_fn else (lambda ch, c=cfg: build_model(c, ch))
    torch.manual_seed(cfg.seed)
    model = make(spike_chans)
    n_params = sum(p.numel() for p in model.parameters())
    from .validate import model_multiples
    minimum = max(model_multiples(model)[2], 8)
    f = dataset.items.f
    T, gt = d.num_frames, d.gt_size
    avail = available_bytes(device)
    budget = BUDGET * avail
    rep = DryRunReport(str(device), world, per_rank, T, gt, n_params, avail, fits=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    out = rep.lines.append
    out(f"dry run of {cfg.name} on {device} ({name}): {world} process(es), batch {per_rank}/process, "
        f"{T} frames x {gt}x{gt}, {3 + spike_chans} input channels, amp {t.amp or 'off'}, "
        f"compile {'on' if t.compile else 'off'}")
    out(f"parameters: {n_params:,}")
    stepper = _Stepper(model, cfg, device, L, H)
    sizes = _probe_sizes(minimum, gt, f)
    line = None
    if device.type == "cpu":
        line = stepper.line(T, sizes)
        rep.available = avail = available_bytes(device)  # now with the weights and Adam's state in RAM
        budget = BUDGET * avail
        rep.predicted_peak = line[0] + line[1] * per_rank * T * gt * gt
        rep.fits = rep.predicted_peak <= budget
        out(f"reduced steps (1 clip at {' and '.join(f'{s}x{s}' for s in sizes)}): predicted peak of the full step "
            f"{gib(rep.predicted_peak)} of {gib(avail)} available RAM")
    if rep.fits:
        warm = stepper.run(per_rank, T, gt)
        rep.step = stepper.run(per_rank, T, gt) if warm is not None else None
        if warm is not None and rep.step is not None:
            total = "allocated in total" if device.type == "cuda" else "resident set of the process"
            out(f"training step: peak {gib(rep.step.peak_bytes)} above the weights and optimizer state "
                f"({gib(rep.step.total_bytes)} {total}), {rep.step.seconds:.3f} s/step "
                f"(2nd step; 1st {warm.seconds:.3f} s), {gib(avail)} was available")
        else:
            rep.fits = False
            out(f"training step: CUDA out of memory ({gib(avail)} free before the step)")
            line = stepper.line(T, sizes)
            if line:
                rep.available = avail = available_bytes(device)
                budget = BUDGET * avail
                rep.predicted_peak = line[0] + line[1] * per_rank * T * gt * gt
    if not rep.fits:
        out(f"DOES NOT FIT: the training step needs about {gib(rep.predicted_peak or 0)}, "
            f"{gib(budget)} usable ({BUDGET:.0%} of {gib(avail)})")
        rep.suggestions, stepper = _suggestions(cfg, stepper, line, budget, per_rank, T, gt, minimum, f,
                                                spike_chans, device, L, H, sizes, out)
    stepper.model.eval()
    _validation_chunk(rep, cfg, stepper.model, dataset, device, spike_chans, out)
    if rep.step is not None:
        n_val = -(-t.total_iter // t.val_every)
        val_s = (rep.val_chunk.seconds * rep.val_pieces) if rep.val_chunk else 0.0
        rep.estimate_s = t.total_iter * rep.step.seconds + n_val * val_s
        loader_ms = 1000 * item_s * per_rank / max(d.workers, 1)
        out(f"estimated time to total_iter {t.total_iter:,}: {_duration(rep.estimate_s)} "
            f"({t.total_iter:,} steps x {rep.step.seconds:.3f} s + {n_val} validations x {val_s:.1f} s); "
            f"loader {1000 * item_s:.1f} ms/sample in one worker, ~{loader_ms:.1f} ms/step with {max(d.workers, 1)} "
            f"worker(s)"
            f"{' (hidden behind the step)' if loader_ms < 1000 * rep.step.seconds else ' (SLOWER than the step)'}")
    out("no checkpoint written")
    stepper.close()
    for text in rep.lines:
        emit(text)
    return rep


def _verify(stepper, device, b, frames, size) -> str | None:
    """On CUDA, run a suggested setting for real: its measured figures, or None when it OOMs."""
    if device.type != "cuda":
        return ""
    m = stepper.run(b, frames, size)
    return None if m is None else f", verified: {gib(m.peak_bytes)}, {m.seconds:.3f} s/step"


def _suggestions(cfg, stepper, line, budget, b, T, gt, minimum, f, spike_chans, device, L, H,
                 sizes, out) -> tuple[list[str], "_Stepper"]:
    """Settings that fit, each predicted from measured lines (and run on CUDA); the stepper
    that is still alive (the checkpointed one when it was built)."""
    texts = []
    for text, change, peak in (_suggest(line, budget, b, T, gt, minimum, f) if line else []):
        verified = _verify(stepper, device, change.get("batch", b), change.get("frames", T), change.get("size", gt))
        if verified is not None:
            texts.append(f"{text} (predicted {gib(peak)}{verified})")
    if model_is_vrt(stepper.model) and any(cfg.netG.get(k) != v for k, v in CHECKPOINT_ALL.items()):
        stepper.close()
        torch.manual_seed(cfg.seed)
        stepper = _Stepper(build_model(replace(cfg, netG=CHECKPOINT_ALL), spike_chans), cfg, device, L, H)
        ck_line = stepper.line(T, sizes)
        if ck_line:
            peak = ck_line[0] + ck_line[1] * b * T * gt * gt
            out(f"with gradient checkpointing of every block: predicted {gib(peak)}")
            verified = _verify(stepper, device, b, T, gt) if peak <= budget else None
            if verified is not None:
                texts.insert(0, "netG.use_checkpoint_attn=true netG.use_checkpoint_ffn=true "
                                "netG.no_checkpoint_attn_blocks=[] netG.no_checkpoint_ffn_blocks=[] "
                                f"(predicted {gib(peak)}{verified})")
    out("settings that fit (each on its own):" if texts else "no single setting found that fits")
    for text in texts:
        out(f"  --set {text}")
    return texts, stepper


def model_is_vrt(model) -> bool:
    return type(model).__name__ == "VRT"


def _validation_chunk(rep, cfg, model, dataset, device, spike_chans, out) -> None:
    """One validation piece (a chunk of ``num_frame_testing`` frames, one tile) measured."""
    from .tiles import BUDGET as VAL_BUDGET
    from .tiles import choose_tile, resolve_tiles
    from .validate import _run_padded, _starts, model_multiples
    v = cfg.val
    val = ValDataset(dataset.items.cache, cfg.data.num_frames_val, cfg.data.use_spike, **dataset_kwargs(cfg))
    height, width = val.rgb_hw
    lengths = [min(val.items.cache.num_frames(s), cfg.data.num_frames_val or 10**9) for s in val.items.seqs]
    frames = min(v.num_frame_testing or max(lengths), max(lengths))
    C = 3 + spike_chans
    vc = resolve_tiles(model, v, (1, frames, C, height, width), device, _run_padded, model_multiples(model)[2])
    tile = vc.size_patch_testing
    h, w = (min(tile, height), min(tile, width)) if tile else (height, width)
    if device.type == "cpu":  # judge before running: the kernel kills, it does not raise
        minimum = model_multiples(model)[2]
        x_small = torch.zeros(1, frames, C, min(minimum, h), min(minimum, w))
        _, m = measure(lambda: _run_padded(model, x_small, device), device)
        predicted = m.peak_bytes * (h * w) / (x_small.shape[-1] * x_small.shape[-2])
        if predicted > VAL_BUDGET * available_bytes(device):
            a, b = 0.0, m.peak_bytes / (x_small.shape[-1] * x_small.shape[-2])
            fit = choose_tile(a, b, VAL_BUDGET * available_bytes(device), height, width, minimum, v.tile_overlap)
            out(f"validation chunk: {frames} frames x {h}x{w} predicted {gib(predicted)}: DOES NOT FIT; "
                f"--set val.size_patch_testing={fit or 'auto'}")
            return
    x = torch.zeros(1, frames, C, h, w)
    try:
        _, rep.val_chunk = measure(lambda: _run_padded(model, x, device), device)
    except torch.cuda.OutOfMemoryError:
        out(f"validation chunk: {frames} frames x {h}x{w}: CUDA out of memory; try val.size_patch_testing: auto")
        return
    stride = (tile - v.tile_overlap) if tile else 0
    tiles = (len(_starts(height, tile, stride)) * len(_starts(width, tile, stride))) if tile else 1
    chunks = sum(len(_starts(n, frames, frames - v.num_frame_overlapping)) if frames < n else 1 for n in lengths)
    rep.val_shape, rep.val_pieces = (frames, C, h, w), chunks * tiles
    out(f"validation chunk: {frames} frames x {h}x{w}{' (auto tile)' if v.size_patch_testing == 'auto' else ''}: "
        f"peak {gib(rep.val_chunk.peak_bytes)}, {rep.val_chunk.seconds:.3f} s; a full validation is "
        f"{len(lengths)} sequence(s) x {chunks // max(len(lengths), 1)} chunk(s) x {tiles} tile(s) = {rep.val_pieces} "
        f"pieces, ~{rep.val_chunk.seconds * rep.val_pieces:.1f} s")
    synchronize(device)


def _duration(seconds: float) -> str:
    d, rem = divmod(int(seconds), 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d} d {h} h {m} min" if d else f"{h} h {m} min {s} s" if h else f"{m} min {s} s"
