"""Peak memory and free memory of the training device, measured (never guessed).

- CUDA: ``torch.cuda.max_memory_allocated`` (reset with ``reset_peak_memory_stats``) and
  ``torch.cuda.mem_get_info`` plus what PyTorch's caching allocator holds but does not use.
- CPU: the process's resident set. Linux keeps its high-water mark in ``/proc/self/status``
  (``VmHWM``) and resets it to the current RSS when ``5`` is written to
  ``/proc/self/clear_refs``; elsewhere ``resource.getrusage`` gives a peak that never resets.
  Free memory is ``MemAvailable`` (``/proc/meminfo``), lowered to the cgroup's limit when one
  is set (containers), since the kernel kills a process that goes above it instead of raising.

All sizes are bytes.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def rss_bytes() -> int:
    """Current resident set size of this process."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """High-water mark of the resident set since the last `reset_peak_rss` (or process start)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS; False where the OS cannot."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _cgroup_room() -> int | None:
    """Bytes left under this cgroup's memory limit (v2 or v1), None when unlimited/unknown."""
    for limit, usage in [("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")]:
        try:
            raw = Path(limit).read_text().strip()
            used = int(Path(usage).read_text().strip())
        except (OSError, ValueError):
            continue
        if raw == "max" or int(raw) >= 1 << 60:
            return None
        return max(int(raw) - used, 0)
    return None


def available_bytes(device) -> int:
    """Memory a new allocation on ``device`` can still get."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    avail = None
    try:
        m = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        avail = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    if avail is None:  # not Linux: physical memory as the bound
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    room = _cgroup_room()
    return min(avail, room) if room is not None else avail


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so that the RSS measures
    live memory and a later peak is not hidden by blocks a previous step freed."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def synchronize(device) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMeter:
    """Peak memory of ``device`` since `reset`: absolute on CUDA (allocated tensors), and as
    growth of the resident set over its value at `reset` on CPU."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            trim_heap()
            reset_peak_rss()
            self.base = rss_bytes()

    def peak(self) -> int:
        """Peak bytes: CUDA allocated (absolute), CPU RSS growth since `reset`."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return max(peak_rss_bytes() - self.base, 0)

    def absolute(self) -> int:
        """Peak bytes in total: CUDA allocated, CPU resident set (high-water mark)."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return peak_rss_bytes()

    def growth(self) -> int:
        """Peak bytes above the level at `reset` (both devices)."""
        if self.device.type == "cuda":
            return max(int(torch.cuda.max_memory_allocated(self.device)) - self.base, 0)
        return self.peak()


@dataclass(frozen=True)
class Measured:
    """One measured call: wall seconds (device synchronised), peak growth over the memory in
    use before the call, and the peak in total (CUDA allocated / CPU resident), in bytes."""

    seconds: float
    peak_bytes: int
    total_bytes: int = 0


def measure(fn, device) -> tuple[object, Measured]:
    """``fn()`` once, timed with the device synchronised, with its peak memory growth."""
    synchronize(device)
    meter = PeakMeter(device)
    t0 = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, Measured(time.perf_counter() - t0, meter.growth(), meter.absolute())


def fit_line(xs, ys) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` through the points; ``(a, b)`` (b >= 0)."""
    n = len(xs)
    if n == 1:
        return 0.0, ys[0] / xs[0]
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    b = max(b, 0.0)
    return my - b * mx, b


def gib(n: float) -> str:
    """``1.23 GiB`` / ``456 MiB``."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
