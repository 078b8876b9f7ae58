"""The whole output of the CLI's reports, pinned (as sqlite-utils pins its commands' output): exact
equality with a literal, never a substring, so any added, removed or changed key, value or line
fails here.

The data root is tiny and deterministic: ``spikeprep simulate`` with fixed arguments (seed 0),
``build-sync``, ``voxelize --S 4``. The commands run with the working directory at the folder that
holds ``data`` and ``cache`` and name them relatively, so no temporary path reaches the output.
Nothing is normalised: these reports carry no path but the one given, and no timing, date or
version (the simulate, build-sync and voxelize summaries, which print timings, are not pinned).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from spikeprep.cli import main


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder with ``data`` (2 sequences x 3 frames, 32x32, 20 spike frames per RGB frame) and
    its cache ``cache`` (S=4, seq001 the validation split)."""
    root = tmp_path_factory.mktemp("cli-output")
    data, cache = root / "data", root / "cache"
    assert invoke("simulate", data, "--sequences", 2, "--frames", 3, "--height", 32, "--width", 32,
                  "--spikes-per-frame", 20)[0] == 0
    assert invoke("build-sync", data)[0] == 0
    assert invoke("voxelize", data, cache, "--S", 4, "--val", "seq001")[0] == 0
    return root


@pytest.fixture
def here(root, monkeypatch):
    monkeypatch.chdir(root)


VERIFY_JSON = """\
{
 "cache": "cache",
 "ok": true,
 "records_checked": 18,
 "sources_checked": 0,
 "frames_recomputed": 0,
 "problems": [],
 "notes": []
}
"""

VERIFY_DATA_JSON = """\
{
 "cache": "cache",
 "ok": true,
 "records_checked": 18,
 "sources_checked": 16,
 "frames_recomputed": 6,
 "problems": [],
 "notes": []
}
"""

CHECK_SYNC_JSON = """\
{
 "sequences": {
  "seq000": {
   "score": 0.687,
   "best_offset": 0,
   "best_score": 0.687,
   "orientation": "as-is",
   "verdict": "weak",
   "reason": "only 2 frame(s) keep every moved window inside the stream (need 5)",
   "best_offset_s": 0.0,
   "gain": 0.0,
   "threshold": 0.005,
   "score_blur": 0.6898,
   "score_sharp": 0.6848,
   "frames": 3,
   "common_frames": 2,
   "search": 8,
   "window_len": 10,
   "spike_rate": 20000.0,
   "mode": "timing",
   "offsets": [
    0
   ],
   "curves": {
    "as-is": [
     0.687
    ],
    "flipud": [
     0.1629
    ],
    "fliplr": [
     -0.046
    ],
    "rot180": [
     -0.0517
    ]
   },
   "orientation_scores": {
    "as-is": 0.687,
    "flipud": 0.1629,
    "fliplr": -0.046,
    "rot180": -0.0517
   },
   "exposure": null
  },
  "seq001": {
   "score": 0.5316,
   "best_offset": 0,
   "best_score": 0.5316,
   "orientation": "as-is",
   "verdict": "weak",
   "reason": "only 2 frame(s) keep every moved window inside the stream (need 5)",
   "best_offset_s": 0.0,
   "gain": 0.0,
   "threshold": 0.005,
   "score_blur": 0.5328,
   "score_sharp": 0.5305,
   "frames": 3,
   "common_frames": 2,
   "search": 8,
   "window_len": 10,
   "spike_rate": 20000.0,
   "mode": "timing",
   "offsets": [
    0
   ],
   "curves": {
    "as-is": [
     0.5316
    ],
    "flipud": [
     -0.0066
    ],
    "fliplr": [
     -0.0515
    ],
    "rot180": [
     -0.119
    ]
   },
   "orientation_scores": {
    "as-is": 0.5316,
    "flipud": -0.0066,
    "fliplr": -0.0515,
    "rot180": -0.119
   },
   "exposure": null
  }
 }
}
"""


def test_verify_json(here):
    assert invoke("verify", "cache", "--json") == (0, VERIFY_JSON)


def test_verify_data_json(here):
    assert invoke("verify", "cache", "--data", "data", "--json") == (0, VERIFY_DATA_JSON)


def test_check_sync_json(here):
    assert invoke("check-sync", "data", "--json") == (0, CHECK_SYNC_JSON)


def test_verify_ok_lines(here):
    assert invoke("verify", "cache") == (0, "ok: 18 records, 0 sources, 0 frames re-voxelized in cache\n")
    assert invoke("verify", "cache", "--data", "data") == (
        0, "ok: 18 records, 16 sources, 6 frames re-voxelized in cache\n")
