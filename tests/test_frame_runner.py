"""--workers 1 (a compute thread beside the writer) gives the serial build's cache, in order."""

from __future__ import annotations

from cache_datasets import make_dataset
from test_cache import all_records, manifest_without_time

import spikeprep
from spikeprep.cache.build import FrameRunner
from spikeprep.cache.plan import plan_build


def test_thread_runner_yields_in_job_order(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a",), frames=6)
    plan = plan_build(data, S=4, shard_size=1 << 30)
    jobs = plan.sequences[0].jobs()
    runner = FrameRunner(plan.config, 1)
    try:
        assert [r.index for r in runner.map(jobs, None)] == list(range(6))
    finally:
        runner.close()


def test_workers_1_equals_workers_0(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=4)
    for workers in (0, 1):
        spikeprep.voxelize_dataset(data, tmp_path / f"w{workers}", S=4, workers=workers, val=["b"],
                                   hot_pixels="detect", progress=False)
    assert all_records(tmp_path / "w1") == all_records(tmp_path / "w0")
    assert manifest_without_time(tmp_path / "w1") == manifest_without_time(tmp_path / "w0")
