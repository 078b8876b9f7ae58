"""xxh3_128 fingerprints and record checksums; caches built with blake2b (before 0.2) still verify
and resume with blake2b."""

from __future__ import annotations

import hashlib
import json

import pytest
import xxhash

import spikeprep
from spikeprep.cache.manifest import load_manifest
from spikeprep.cache.records import record_checksum_algorithm
from spikeprep.errors import CacheError
from spikeprep.inputs import fingerprint
from tests.support.cache_datasets import all_records, make_dataset
from tests.support.fault_injection import run_killed
from tests.support.paths import REPO

ROOT = REPO
OLD_DESCRIPTION = "blake2b-128 hex of the whole LMDB value (header + payload)"


def blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def test_fingerprints_against_the_libraries(tmp_path):
    data = bytes(range(256)) * 9000  # > 1 MiB: several chunks
    (tmp_path / "f").write_bytes(data)
    assert fingerprint.hash_file(tmp_path / "f") == {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
    assert fingerprint.hash_file(tmp_path / "f", "blake2b") == {"size": len(data), "blake2b": blake(data)}
    assert fingerprint.hash_bytes(data) == fingerprint.hash_file(tmp_path / "f")
    assert fingerprint.algorithm_of({"size": 1, "blake2b": "00"}) == "blake2b"
    assert fingerprint.describe({"size": 3, "xxh3_128": "ab"}) == "size 3 xxh3_128 ab"


def test_record_checksum_descriptions():
    assert record_checksum_algorithm("xxh3_128 hex of the whole LMDB value (header + payload)") == "xxh3_128"
    assert record_checksum_algorithm(OLD_DESCRIPTION) == "blake2b"
    assert record_checksum_algorithm("") == "blake2b"
    with pytest.raises(CacheError, match="unknown record checksum"):
        record_checksum_algorithm("md5 hex of everything")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sums")
    data = make_dataset(root / "data", sequences=("a", "b"), frames=3)
    spikeprep.voxelize_dataset(data, root / "cache", S=4, progress=False)
    return data, root / "cache"


def test_new_caches_name_xxh3_beside_every_digest(built):
    data, cache = built
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["record_checksum"].startswith("xxh3_128 ")
    records = all_records(cache)
    for seq, entry in manifest["sequences"].items():
        for key, digest in entry["records"].items():
            assert xxhash.xxh3_128(records[f"shard-00000.lmdb:{key}"]).hexdigest() == digest
        for rel, fp in entry["sources"].items():
            assert set(fp) == {"size", "xxh3_128"}


def test_blake2b_caches_still_verify(built, tmp_path):
    import shutil
    data, cache = built
    old = tmp_path / "old"
    shutil.copytree(cache, old)
    manifest = json.loads((old / "manifest.json").read_text())
    records = all_records(old)
    for entry in manifest["sequences"].values():
        entry["records"] = {k: blake(records[f"shard-00000.lmdb:{k}"]) for k in entry["records"]}
        entry["sources"] = {rel: {"size": fp["size"], "blake2b": blake((data / rel).read_bytes())}
                            for rel, fp in entry["sources"].items()}
    manifest["record_checksum"] = OLD_DESCRIPTION
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert load_manifest(old).record_algorithm == "blake2b"
    report = spikeprep.verify_cache(old, data_root=data)
    assert report.ok, report.problems
    assert report.records_checked == 18 and report.sources_checked > 0
    # the blake2b path really checks: one wrong digest is found
    manifest["sequences"]["b"]["records"]["b/000001/blur"] = "0" * 32
    (old / "manifest.json").write_text(json.dumps(manifest))
    problems = spikeprep.verify_cache(old).problems
    assert [(p.key, p.what.split(":")[0]) for p in problems] == [("b/000001/blur", "checksum mismatch")]
    # and an unknown algorithm is a manifest problem, not a crash
    manifest["record_checksum"] = "md5 of something"
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert "unknown algorithm" in spikeprep.verify_cache(old).problems[0].what


def test_an_interrupted_blake2b_build_resumes_with_blake2b(tmp_path):
    data = make_dataset(tmp_path / "data", sequences=("a", "b"), frames=3)
    cache = tmp_path / "cache"
    killed = run_killed("journal", 1, ["voxelize", data, cache, "--S", 4], cwd=ROOT)
    assert killed.returncode == -9
    # make the journal look like spikeprep 0.1's: no algorithm in the start line, blake2b digests
    journal = cache / "progress.jsonl"
    start, entry = (json.loads(line) for line in journal.read_text().splitlines())
    start.pop("record_checksum")
    records = all_records(cache)
    entry["records"] = {k: blake(records[f"shard-00000.lmdb:{k}"]) for k in entry["records"]}
    journal.write_text("".join(json.dumps(e) + "\n" for e in (start, entry)))
    summary = spikeprep.voxelize_dataset(data, cache, S=4, progress=False)
    assert summary.sequences_skipped == 1
    manifest = load_manifest(cache)
    assert manifest.record_checksum == OLD_DESCRIPTION
    records = all_records(cache)
    assert manifest.sequences["b"].records["b/000002/spike"] == blake(records["shard-00000.lmdb:b/000002/spike"])
    assert spikeprep.verify_cache(cache, data_root=data).ok
