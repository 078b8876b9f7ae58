"""What a training run reports, on rank 0 only: the terminal (a rich progress bar and log lines, on
stderr), ``train.log``, ``val.csv``, ``train.csv``, ``curves.png`` and optional TensorBoard
(``tb/``), all inside ``out_dir``."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from .telemetry import add_scalars, append_csv


class RunLog:
    """Rank-0 output: rich progress (it/s, loss, lr, ETA), train.log, val.csv, TensorBoard."""

    def __init__(self, out_dir: Path, is_main: bool, progress: bool, print_every: int = 200,
                 tensorboard: bool = False):
        self.out_dir, self.on, self.show = out_dir, is_main, is_main and progress
        self.bar = self.tb = None
        self.last_val_iter = None
        self.print_every, self.want_tb = print_every, tensorboard

    def print(self, text: str) -> None:
        if not self.on:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "train.log", "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        if self.show:
            from rich.console import Console
            (self.bar.console if self.bar else Console(stderr=True)).print(text, markup=False, highlight=False)

    def start(self, total: int, start: int) -> None:
        if self.on and self.want_tb:
            try:  # optional: only when tensorboard is installed
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(os.fspath(self.out_dir / "tb"))
            except ImportError:
                self.print("tensorboard is not installed: logging to train.log and val.csv only")
        if self.show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]:.2f} it/s loss {task.fields[loss]:.4f} "
                                           "lr {task.fields[lr]:.2e}"), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.task = self.bar.add_task("train", total=total, completed=start, rate=0.0, loss=0.0, lr=0.0)
            self.bar.start()
        self.t0, self.it0 = time.time(), start

    def step(self, done: int, lr: float, frozen: bool, stats=None) -> None:
        """Per iteration (no device sync); ``stats`` (a `StepStats`) at print intervals."""
        if not self.on:
            return
        rate = (done - self.it0) / max(time.time() - self.t0, 1e-9)
        if self.bar:
            self.bar.update(self.task, completed=done, rate=rate, lr=lr,
                            **({"loss": stats.loss} if stats else {}))
        if stats is None:
            return
        if self.tb:
            add_scalars(self.tb, stats, lr)
        append_csv(self.out_dir, stats, lr)
        self.print(f"iter {done}: loss {stats.loss:.5f} lr {lr:.3e} {rate:.2f} it/s, {stats.line()}"
                   f"{' (flow/deform frozen)' if frozen else ''}")

    def val(self, done: int, res: dict) -> None:
        self.last_val_iter = done
        path = self.out_dir / "val.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["iter", "psnr", "ssim", "psnr_input", "ssim_input"])
            w.writerow([done] + [f"{res[k]:.4f}" for k in ("psnr", "ssim", "psnr_input", "ssim_input")])
        if self.tb:
            for k, v in res.items():
                self.tb.add_scalar(f"val/{k}", v, done)
        self.print(f"val iter {done}: PSNR {res['psnr']:.3f} dB SSIM {res['ssim']:.4f} "
                   f"(input {res['psnr_input']:.3f} dB / {res['ssim_input']:.4f})")
        from .curves import plot_curves
        plot_curves(self.out_dir)

    def stop(self) -> None:
        if self.bar:
            self.bar.stop()
        if self.tb:
            self.tb.close()
