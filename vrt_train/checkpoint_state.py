"""What a checkpoint holds, and the two kinds the loop writes (``best.pt``, ``iter_*.pt``).

`TrainingState` keeps references to everything a bit-exact resume needs (model, EMA, optimiser,
scheduler, GradScaler; RNG states are read at save time) and the run's identity (config, cache,
spike channels, world size, spike normalisation). `vrt_train.resume.restore` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spikeprep import write_text_atomic

from .augment import SpikeNorm
from .checkpoint import atomic_save, rng_state, save_checkpoint
from .config import Config, dump_config, to_dict
from .guard import assert_finite_weights
from .resume import cache_identity


@dataclass
class TrainingState:
    """The live objects of one training run, gathered into a checkpoint dict on demand."""

    cfg: Config
    manifest: object  # the cache's `spikeprep.Manifest`: its identity is checked on resume
    model: torch.nn.Module
    ema: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    spike_chans: int  # spike input channels of the model (the cache's S; 0 for RGB only)
    world: int  # number of processes the run trains with
    norm: SpikeNorm
    val_is_test: bool = False  # validation (which selects best.pt) runs on a test split

    def snapshot(self, done: int, best_psnr: float) -> dict:
        """The checkpoint after ``done`` iterations; raises `TrainingDiverged` rather than
        return non-finite weights (a checkpoint is never garbage)."""
        assert_finite_weights(done, model=self.model, ema=self.ema)
        return {"iter": done, "cache": cache_identity(self.manifest), "model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng_state(), "best_psnr": best_psnr,
                "config": to_dict(self.cfg), "spike_chans": self.spike_chans, "world_size": self.world,
                "spike_norm": dict(self.norm.__dict__), "val_is_test": self.val_is_test}

    def save(self, out_dir: Path, done: int, best_psnr: float) -> Path:
        """``out_dir/checkpoints/iter_<done>.pt`` (+ its config YAML), keeping the last
        ``train.keep_last``; returns its path."""
        return save_checkpoint(self.snapshot(done, best_psnr), self.cfg, out_dir, done,
                               self.cfg.train.keep_last)

    def save_best(self, out_dir: Path, done: int, best_psnr: float) -> Path:
        """``out_dir/checkpoints/best.pt`` (+ its config YAML), replaced atomically; returns its path."""
        best = Path(out_dir) / "checkpoints" / "best.pt"
        atomic_save(self.snapshot(done, best_psnr), best)
        write_text_atomic(best.with_suffix(".yaml"), dump_config(self.cfg))
        return best
