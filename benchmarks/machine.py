"""The machine a benchmark ran on (CPU model, cores, memory, versions), for its printed and JSON reports."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """cpu (model name), cores, memory_gib (physical memory, GiB), python, numpy and platform versions."""
    import numpy
    cpu = "?"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "numpy": numpy.__version__, "platform": platform.platform()}
