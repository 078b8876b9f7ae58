"""Bounded, in-order execution over any executor's futures (local processes, a Dask cluster)."""

from __future__ import annotations

from collections import deque


def in_order(submit, jobs, limit: int, wait=None):
    """Yield the results of ``submit(job)`` (a future per job) in job order, with at most
    ``limit`` futures in flight; futures still pending when the consumer stops or an error
    escapes are cancelled. ``wait(future)``: how to get a result (default ``future.result()``;
    the Dask runner's watches the cluster while it waits)."""
    wait = wait or (lambda future: future.result())
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append(submit(job))
            if len(pending) >= limit:
                yield wait(pending.popleft())
        while pending:
            yield wait(pending.popleft())
    finally:
        for future in pending:
            future.cancel()
