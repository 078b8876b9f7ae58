"""Fault matrix, input side (issue 11): `verify` on damaged sources (png, .dat, sync.json) and a
doctored manifest: a report, never a crash. Each case makes the fault happen and asserts the
exit code, the message (file, found, expected, fix), the files that survive and that nothing is
left over."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import spikeprep
from tests.support import cache_datasets
from tests.support.input_faults import assert_clear_error, run

# -- verify: damaged sources and a doctored manifest ---------------------------------------------

def problems(cache, data=None):
    result = run("verify", cache, *(["--data", data] if data else []), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == (0 if report["ok"] else 1)
    return report["problems"]


def whats(found, sequence="a"):
    return [p["what"] for p in found if p["sequence"] == sequence]


def test_verify_clean_cache_has_no_stats_problem(built):
    data, cache = built
    assert problems(cache, data) == []


def test_verify_zero_byte_png(copy):
    data, cache = copy
    (data / "blur/a/000001.png").write_bytes(b"")
    found = problems(cache, data)
    assert any(p["key"] == "blur/a/000001.png" and "empty (0 bytes)" in p["what"] for p in found)
    assert any("lost frames since the build: 1 of 3 frames" in w for w in whats(found))
    assert problems(cache) == []  # the cache itself is intact
    assert run("verify", cache, "--data", data).exit_code == 1


def test_verify_deleted_png(copy):
    data, cache = copy
    (data / "sharp/a/000002.png").unlink()
    found = problems(cache, data)
    assert any(p["key"] == "sharp/a/000002.png" and p["what"] == "source file missing" for p in found)
    assert any("1 of 3 frames have a missing or empty png (first: frame 2" in w for w in whats(found))


@pytest.mark.parametrize("keep", [0, 30])  # of 4 + 3 * 12 = 40 spike frames
def test_verify_shortened_dat(copy, keep):
    data, cache = copy
    dat = data / "spike/b/spikes.dat"
    dat.write_bytes(dat.read_bytes()[: keep * 16 * 24 // 8])
    found = problems(cache, data)
    lost = [w for w in whats(found, "b") if "spike stream lost frames" in w]
    assert len(lost) == 1 and f"{keep} spike frames now, the windows need 36" in lost[0]
    assert not any("cannot recompute" in w for w in whats(found, "b"))  # reported once, not per frame
    assert whats(found, "a") == []


def test_verify_sync_json_no_longer_parses(copy):
    data, cache = copy
    (data / "spike/a/sync.json").write_text('{"format": "spikeprep.sync", ')
    found = problems(cache, data)
    assert any(p["key"] == "spike/a/sync.json" and "not valid JSON" in p["what"] for p in found)
    (data / "spike/a/sync.json").write_bytes("{}".encode("utf-16"))
    assert any("not UTF-8 text" in w for w in whats(problems(cache, data)))


def test_verify_sync_json_lost_frames(copy):
    data, cache = copy
    path = data / "spike/a/sync.json"
    raw = json.loads(path.read_text())
    raw["frames"] = raw["frames"][:2]
    path.write_text(json.dumps(raw))
    assert any("lost frames since the build: sync.json lists 2 frames, the cache holds 3" in w
               for w in whats(problems(cache, data)))


def test_verify_decoder_crash_is_a_problem(copy, monkeypatch):
    data, cache = copy
    import spikeprep.cache.verify_data as verify

    def broken(job, *args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(verify, "compute_frame", broken)
    report = spikeprep.verify_cache(cache, data_root=data, sample=2)
    assert len(report.problems) == 2
    assert all("RuntimeError: decoder exploded" in p.what for p in report.problems)


def edit_manifest(cache: Path, edit) -> None:
    """Edit manifest.json in place. spike_stats is outside ``params``, so ``params_hash`` stays
    valid; it is recomputed anyway so the edit is the only difference."""
    path = cache / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    from spikeprep.cache.manifest import params_hash
    raw["params_hash"] = params_hash(raw["params"])
    path.write_text(json.dumps(raw))


def test_verify_recomputes_spike_stats(copy, built):
    _, cache = copy
    stored = json.loads((built[1] / "manifest.json").read_text())["spike_stats"]
    # independent reference: mean/std/q995 of the train sequences' spike records with plain numpy
    reader = spikeprep.open_cache(built[1], buffers=False)
    voxels = np.stack([reader.read(s, i).spike for s in ("a", "b") for i in range(3)]).astype(np.float64)
    per_channel = voxels.transpose(1, 0, 2, 3).reshape(4, -1)
    np.testing.assert_allclose(stored["mean"], per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(stored["std"], per_channel.std(1), rtol=1e-12)
    np.testing.assert_allclose(stored["q995"], np.quantile(per_channel, 0.995, axis=1), rtol=1e-12)
    assert stored["over"] == ["a", "b"]

    edit_manifest(cache, lambda m: m["spike_stats"]["mean"].__setitem__(1, m["spike_stats"]["mean"][1] * (1 + 1e-15)))
    assert problems(cache) == []  # float rounding is not a problem
    edit_manifest(cache, lambda m: m["spike_stats"]["std"].__setitem__(2, m["spike_stats"]["std"][2] * 1.001))
    found = problems(cache)
    assert [(p["key"], p["what"].split(" differs")[0]) for p in found] == [("manifest.json", "spike_stats.std")]
    result = run("verify", cache)
    assert result.exit_code == 1 and "spike_stats.std differs" in result.output


def test_verify_stats_over_the_wrong_sequences(copy):
    _, cache = copy
    edit_manifest(cache, lambda m: m["spike_stats"].__setitem__("over", ["a", "b", "c"]))
    found = problems(cache)
    assert any("spike_stats.over lists ['a', 'b', 'c'], the train sequences are ['a', 'b']" in p["what"]
               for p in found)


@pytest.mark.parametrize("bad", ["x", [None, 1, 2, 3], ["nan", 0, 0, 0]])
def test_malformed_stats_are_a_clear_error(copy, bad):
    _, cache = copy
    edit_manifest(cache, lambda m: m["spike_stats"].__setitem__("mean", bad))
    found = problems(cache)
    assert len(found) == 1 and "spike_stats.mean" in found[0]["what"]
    assert_clear_error(run("info", cache), 1, "spike_stats.mean", "manifest.json")


def test_verify_impossible_frame_count_does_not_hang(copy):
    _, cache = copy
    edit_manifest(cache, lambda m: m["sequences"]["a"].__setitem__("num_frames", 10 ** 12))
    assert any("manifest says 1000000000000 frames" in w for w in whats(problems(cache)))


def test_info_malformed_spike_rate(copy):
    _, cache = copy
    edit_manifest(cache, lambda m: m["sequences"]["a"].__setitem__("spike_rate", "fast"))
    assert_clear_error(run("info", cache), 1, "spike_rate", "'fast'", "a finite number")


def _json_paths(obj, prefix=()):
    """Every key path of a JSON object (first element of lists; records' keys are not descended)."""
    if prefix:
        yield prefix
    if isinstance(obj, dict) and prefix[-1:] != ("records",):
        for key, value in obj.items():
            yield from _json_paths(value, prefix + (key,))
    elif isinstance(obj, list) and obj:
        yield from _json_paths(obj[0], prefix + (0,))


def test_garbage_anywhere_in_the_manifest_is_never_a_traceback(built, tmp_path):
    """Each manifest value replaced by garbage: `info` exits 0 or 1 with a clear error, `verify`
    exits 0 or 1 with a report; never a traceback (params_hash refreshed so the edit is seen)."""
    from spikeprep.cache.manifest import params_hash
    _, cache = built
    shutil.copytree(cache, tmp_path / "cache")
    target = tmp_path / "cache" / "manifest.json"
    original = json.loads(target.read_text())
    tried, values = 0, (None, "x", [None], -1, {})
    for n, path in enumerate(_json_paths(original)):
        for garbage in (values[n % 5],):  # one per key, rotating, so every kind is seen
            raw = json.loads(json.dumps(original))
            node = raw
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = garbage
            if path[0] == "params" and isinstance(raw["params"], dict):
                raw["params_hash"] = params_hash(raw["params"])
            target.write_text(json.dumps(raw))
            for command in ("info", "verify"):
                result = run(command, tmp_path / "cache")  # asserts: no exception, no traceback
                assert result.exit_code in (0, 1), (path, garbage, result.output)
                tried += 1
    assert tried > 80


def test_verify_hot_pixel_cache_with_a_damaged_stream(tmp_path):
    data = cache_datasets.make_dataset(tmp_path / "data", sequences=("a", "b"), frames=2, rgb_hw=(16, 24),
                                       spike_hw=(16, 24), window=8, stuck={"a": (2, 3)}, rate=0.05)
    spikeprep.voxelize_dataset(data, tmp_path / "cache", S=4, hot_pixels="detect", progress=False)
    dat = data / "spike/a/spikes.dat"
    dat.write_bytes(dat.read_bytes()[:-5])  # not a whole number of frames any more
    found = problems(tmp_path / "cache", data)
    assert any("cannot re-detect hot pixels" in w or "spike stream cannot be read" in w
               for w in whats(found))
    assert whats(found, "b") == []


def test_verify_sync_json_renamed_sequence(copy):
    data, cache = copy
    path = data / "spike/a/sync.json"
    raw = json.loads(path.read_text())
    raw["sequence"] = "zzz"
    path.write_text(json.dumps(raw))
    assert any("sync.json now names sequence 'zzz'" in w for w in whats(problems(cache, data)))
