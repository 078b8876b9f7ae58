"""`verify` checks meta_info.txt against the manifest (issue 25 #9): a KAIR-style consumer reads
it, splitting each line on whitespace."""

from __future__ import annotations

import pytest

import spikeprep


@pytest.fixture
def cache(tmp_path):
    data = tmp_path / "data"
    spikeprep.simulate_dataset(data, sequences=2, frames=2, height=32, width=32, spikes_per_frame=8)
    spikeprep.build_sync(data)
    spikeprep.voxelize_dataset(data, tmp_path / "cache", S=2, progress=False)
    return tmp_path / "cache"


def _problems(cache):
    return [p.what for p in spikeprep.verify_cache(cache).problems]


def test_intact_meta_info_verifies(cache):
    assert (cache / "meta_info.txt").read_text() == "seq000 2 (32,32,3) 0\nseq001 2 (32,32,3) 0\n"
    assert _problems(cache) == []


def test_a_changed_line_is_named(cache):
    (cache / "meta_info.txt").write_text("seq000 2 (32,32,3) 0\nseq001 3 (32,32,3) 0\n")
    assert _problems(cache) == ["meta_info.txt differs from the manifest at line 2: found 'seq001 3 (32,32,3) 0', "
                                "expected 'seq001 2 (32,32,3) 0' (re-run the same voxelize command to rewrite it)"]


def test_a_missing_line_and_a_missing_file(cache):
    (cache / "meta_info.txt").write_text("seq000 2 (32,32,3) 0\n")
    assert "found '(no line)', expected 'seq001 2 (32,32,3) 0'" in _problems(cache)[0]
    (cache / "meta_info.txt").unlink()
    assert _problems(cache) == ["meta_info.txt is missing (re-run the same voxelize command)"]
    spikeprep.voxelize_dataset(cache.parent / "data", cache, S=2, progress=False)  # rewrites it
    assert _problems(cache) == []


def test_a_line_that_splits_wrong_is_named(cache):
    (cache / "meta_info.txt").write_text("seq000 2 (32,32,3) 0\nseq 001 2 (32,32,3) 0\n")
    problems = _problems(cache)
    assert len(problems) == 2 and "does not split into 4 fields" in problems[1]
