"""`vrt-train`: train VRT on RGB (+ spike voxels) from a spikeprep LMDB cache (KAIR 006 recipe).

Read top to bottom: `train(cfg)` sets up ranks, data, model, optimiser; then one loop does
batch -> on-device assembly/augmentation -> forward -> Charbonnier -> backward -> step, with
validation and atomic checkpoints on rank 0. What a checkpoint holds is `vrt_train.checkpoint_state`,
what the run reports is `vrt_train.run_log`; the CLI (`python -m vrt_train`) is `vrt_train.cli`.

KAIR semantics: Adam, CosineAnnealingWarmRestarts stepped every iteration, Charbonnier loss;
parameters whose names contain any of ``fix_keys`` (SpyNet, deformable offsets) are frozen for
the first ``fix_iter`` iterations (KAIR: ``current_step < fix_iter`` with steps counted from
1, i.e. one iteration fewer) and then train in their own param group at ``fix_lr_mul`` x lr.

Freezing under DDP: as KAIR, frozen parameters get ``requires_grad=False``, so no gradient is
computed for them (SpyNet's backward is skipped entirely: on small crops SpyNet is the largest
part of VRT's compute) and Adam skips them (no update, no moment state, no weight decay). KAIR's
``static_graph`` DDP crashes when ``requires_grad`` flips at ``fix_iter``. Here DDP is used
without ``static_graph`` and without ``find_unused_parameters`` and is rebuilt once when the
frozen set changes (`_Wrapper.set_frozen`): a fresh reducer then registers exactly the
parameters that need gradients (all of them), and the old one's hooks go with it. The rebuild
costs one parameter broadcast; the alternative (keep everything trainable, drop frozen grads
after backward) would compute and all-reduce SpyNet gradients for all ``fix_iter`` iterations.

Bit-exact resume: every iteration reseeds torch's global RNG and the augmentation generator from
``(seed, rank, iteration)``, and the data stream is a pure function of ``(seed, epoch, index)``
whose position is ``iteration x per-rank batch`` (`ClipSampler.at`). A checkpoint stores the
model, EMA, optimiser, scheduler, GradScaler, RNG states (python, numpy, torch, cuda), the
iteration, best PSNR and the resolved config, so resuming reproduces the uninterrupted run.
"""

from __future__ import annotations

import copy
import datetime
import os
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from spikeprep import ConfigError, write_text_atomic

from . import data as data_mod
from . import packed_inputs
from .augment import SpikeNorm, assemble
from .checkpoint import clean_temp_files, init_weights, prepare_out_dir
from .checkpoint_state import TrainingState
from .config import Config, dump_config
from .data import ClipSampler, ShardDataset, ValDataset, effective_spike_norm, make_loader
from .errors import Preempted
from .factory import build_model  # noqa: F401  (public: vrt_train.train.build_model)
from .guard import StepGuard, requested_signal
from .metrics import charbonnier
from .resume import check_config, pick_checkpoint, restore
from .run_log import RunLog
from .selection import TEST_SPLIT_WARNING, validation_plan
from .spike_only import dataset_kwargs
from .telemetry import StepTelemetry
from .validate import validate
from .workers import WorkerInit, close_loader, next_batch

# -- setup ------------------------------------------------------------------------------------

def setup_distributed() -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, initialised_here) from torchrun's env vars (1 process if unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        # Rank 0 validates while the others wait at a barrier: allow long validations.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
        return dist.get_rank(), world, device, True
    return (dist.get_rank() if dist.is_initialized() else 0), world, device, False


def step_seed(seed: int, rank: int, it: int) -> int:
    return ((seed * 1_000_003 + it) * 1_009 + rank) % (2 ** 63)


def unwrap(model):
    return getattr(model, "module", model)


# -- training ---------------------------------------------------------------------------------

def train(cfg: Config, **kwargs) -> dict:
    """Train per ``cfg``; returns a summary dict (iter, psnr/ssim of output and input, paths).

    resume: a checkpoint path, "auto" (newest usable in ``out_dir``, or a fresh start) or None.
    init_from: an RGB/KAIR checkpoint loaded through `vrt_train.model.load_pretrained`.
    model_fn: ``spike_chans -> nn.Module`` replacing `build_model` (tests).
    Faults (see `vrt_train.guard`, `vrt_train.resume`): raises `TrainingDiverged`, `Preempted`
    (inside `vrt_train.guard.stop_on_signals`), `OutputError`, `CheckpointError`, `ConfigError`;
    DataLoader workers are shut down whichever way it ends.
    """
    with ExitStack() as cleanup:
        return _train(cfg, cleanup, **kwargs)


def _train(cfg: Config, cleanup: ExitStack, *, resume=None, init_from=None, progress: bool = True,
           model_fn=None) -> dict:
    rank, world, device, own_pg = setup_distributed()
    d, t = cfg.data, cfg.train
    if d.batch_size % world:
        raise ConfigError("data.batch_size (global) is not divisible by the number of processes",
                          found=f"batch_size {d.batch_size}, world size {world}",
                          expected=f"a multiple of {world}")
    per_rank = d.batch_size // world
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir = Path(cfg.out_dir)
    is_main = rank == 0
    if is_main:
        prepare_out_dir(out_dir)
    log = RunLog(out_dir, is_main, progress, t.print_every, t.tensorboard)
    for stale in clean_temp_files(out_dir) if is_main else []:
        log.print(f"removed {stale}, left by an interrupted checkpoint write")

    cache = data_mod.open_any(d.cache)  # through the module: tests replace the reader
    val_seqs, held, val_is_test = validation_plan(cache, d.val_from_train)
    dataset = ShardDataset(cache, d.num_frames, d.gt_size, "train", cfg.seed, d.samples_per_epoch, d.use_spike,
                           exclude=held, unpack_on_device=d.unpack_on_device, **dataset_kwargs(cfg))
    manifest = dataset.items.manifest
    norm = SpikeNorm.from_manifest(manifest, effective_spike_norm(manifest.params, d.spike_norm, d.inputs), d.inputs)
    val_set = ValDataset(dataset.items.cache, d.num_frames_val, d.use_spike, sequences=val_seqs,
                         **dataset_kwargs(cfg))
    if val_is_test:
        log.print(TEST_SPLIT_WARNING.format(seqs=", ".join(val_set.items.seqs)))
    spike_chans = dataset.items.channels if d.use_spike else 0

    torch.manual_seed(cfg.seed)
    model = model_fn(spike_chans) if model_fn else build_model(cfg, spike_chans)
    if init_from:
        init_weights(model, init_from, log)
    if t.zero_init_last:
        last = getattr(model, "conv_last", None)
        if last is None:
            raise ConfigError("train.zero_init_last needs a model with a conv_last layer (VRT)")
        with torch.no_grad():
            for p in last.parameters():
                p.zero_()
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False) if t.ema_decay > 0 else None
    if t.compile:  # in place: state_dict keys unchanged; DDP wraps the compiled module
        model.compile()

    fix_params = [p for n, p in model.named_parameters() if t.fix_iter and any(k in n for k in t.fix_keys)]
    fix_ids = {id(p) for p in fix_params}
    normal = [p for p in model.parameters() if id(p) not in fix_ids]
    groups = [{"params": normal, "lr": t.lr}]
    if fix_params:
        groups.append({"params": fix_params, "lr": t.lr * t.fix_lr_mul})
    optimizer = torch.optim.Adam(groups, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t.scheduler_periods,
                                                                     eta_min=t.eta_min)
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)

    start_it, best_psnr = 0, float("-inf")
    ckpt_path, state = pick_checkpoint(resume, out_dir, log)
    if state is not None:
        check_config(state, cfg, ckpt_path, manifest, spike_chans, log)
        start_it, best_psnr = restore(state, ckpt_path, model=model, ema=ema, optimizer=optimizer,
                                      scheduler=scheduler, scaler=scaler, world=world, log=log)
        del state

    net = _Wrapper(model, world, device)

    sampler = ClipSampler.at(start_it * per_rank, len(dataset), rank, world, cfg.seed)
    loader = make_loader(dataset, per_rank, d.workers, sampler, pin_memory=device.type == "cuda",
                         worker_init_fn=WorkerInit())
    batches = iter(loader)
    cleanup.callback(close_loader, batches)
    if is_main:
        write_text_atomic(out_dir / "config.yaml", dump_config(cfg))
    log.print(f"{cfg.name}: {sum(p.numel() for p in model.parameters()):,} parameters, spike_chans "
              f"{spike_chans}, {world} process(es), batch {per_rank}/rank, spike_norm {norm.mode}, "
              f"{len(dataset)} items/epoch, iterations {start_it}..{t.total_iter}")

    run_state = TrainingState(cfg, manifest, model, ema, optimizer, scheduler, scaler, spike_chans, world, norm,
                              val_is_test)

    summary = {"iter": start_it, "checkpoint": None, "best_checkpoint": None, "out_dir": str(out_dir)}
    t0, last_val = time.time(), None
    guard = StepGuard(t.max_nonfinite_steps, world, check_grads=not scaler.is_enabled())
    log.start(t.total_iter, start_it)
    tele = StepTelemetry(device, per_rank * world)
    for it in range(start_it, t.total_iter):
        torch.manual_seed(step_seed(cfg.seed, rank, it))
        aug_gen = torch.Generator().manual_seed(step_seed(cfg.seed, rank, it) ^ 0x5DEECE66D)
        tele.begin()
        batch = next_batch(batches)
        tele.data_ready()
        batch = packed_inputs.to_device(batch, dataset.items.packed, device)  # data.unpack_on_device
        L, H = assemble(batch, device, norm, d.augment, aug_gen, use_spike=d.use_spike)
        frozen = it < t.fix_iter
        net.set_frozen(fix_params, frozen)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with ctx:
            E = net.forward(L)
        loss = charbonnier(E.float(), H, t.charbonnier_eps)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if t.clip_grad:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], t.clip_grad)
        lr_used = optimizer.param_groups[0]["lr"]
        finite, loss_value, stop = guard.check(loss, model.parameters())  # the step's one host sync
        done = it + 1
        if finite:
            guard.passed()
            scaler.step(optimizer)
            scaler.update()
        else:
            _skip_scaler(scaler)
            guard.skip(done, loss_value, lr_used, log)
        scheduler.step()
        if ema is not None and finite:
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.mul_(t.ema_decay).add_(pm.detach(), alpha=1 - t.ema_decay)
                for be, bm in zip(ema.buffers(), model.buffers()):
                    be.copy_(bm)
        log.step(done, lr_used, frozen, tele.end(loss if finite else None, done,
                                               report=done % t.print_every == 0))

        validated = saved = False
        if done % t.val_every == 0 or done == t.total_iter:
            validated = True
            if is_main:
                last_val = validate(ema if ema is not None else model, val_set, cfg.val, norm, device, d.use_spike,
                                    stop=requested_signal)
                if last_val is None:
                    log.print(f"validation at iteration {done} abandoned: stop signal")
                else:
                    log.val(done, last_val)
                if last_val is not None and last_val["psnr"] > best_psnr:
                    best_psnr = last_val["psnr"]
                    summary["best_checkpoint"] = str(run_state.save_best(out_dir, done, best_psnr))
            if world > 1:
                dist.barrier()
        if done % t.checkpoint_every == 0 or done == t.total_iter:
            saved = True
            if is_main:
                summary["checkpoint"] = str(run_state.save(out_dir, done, best_psnr))
            if world > 1:
                dist.barrier()
        stop = guard.stop_after(stop, resync=validated)
        if stop and done < t.total_iter:
            path = out_dir / "checkpoints" / f"iter_{done:08d}.pt"
            if is_main and not saved:
                path = run_state.save(out_dir, done, best_psnr)
            if world > 1:
                dist.barrier()
            log.print(f"stop signal: checkpoint {path} written at iteration {done}")
            log.stop()
            raise Preempted(stop, done, path)
    log.stop()
    summary.update(iter=t.total_iter, seconds=time.time() - t0, skipped_steps=guard.skipped, **(last_val or {}))
    if own_pg:
        net.ddp = None  # release DDP's reducer while the group exists (torch 2.4 hangs otherwise)
        dist.barrier()  # every rank done with the group before any rank tears it down
        dist.destroy_process_group()
    return summary


def _skip_scaler(scaler) -> None:
    """A skipped step under fp16: lower the loss scale as an overflow would (and reset the
    scaler's per-step state, which a skipped `GradScaler.step` leaves behind)."""
    if scaler.is_enabled():
        scaler.update(scaler.get_scale() * scaler.get_backoff_factor())


class _Wrapper:
    """The model as trained: bare on one process, DDP (rebuilt when the frozen set changes) on many."""

    def __init__(self, model, world: int, device: torch.device):
        self.model, self.world, self.device = model, world, device
        self.frozen = None
        self.ddp = None

    def set_frozen(self, params, frozen: bool) -> None:
        if frozen == self.frozen:
            return
        for p in params:
            p.requires_grad_(not frozen)
        self.frozen = frozen
        if self.world > 1:
            self.ddp = None  # drop the old reducer (and its hooks) before building the new one
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def forward(self, x):
        return (self.ddp or self.model)(x)
