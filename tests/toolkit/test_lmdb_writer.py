"""ShardWriter with writemap: background writeback while a transaction is open, the file cut
back to its used pages on close, records intact; an aborted transaction leaves nothing."""

from __future__ import annotations

import lmdb
import pytest

from spikeprep.lmdb_writer import ShardWriter


def test_writeback_during_the_transaction_and_file_cut_to_used_pages(tmp_path, monkeypatch):
    kicks = []
    writer = ShardWriter(lambda i: tmp_path / f"shard-{i:05d}.lmdb", initial_map_size=1 << 20, flush_bytes=50_000)
    original = writer._writeback
    monkeypatch.setattr(writer, "_writeback", lambda shard: (kicks.append(shard), original(shard)))
    values = {f"k{i:03d}": bytes([i]) * 20_000 for i in range(30)}
    assert writer.write_sequence(0, 600_000, lambda: iter(values.items())) == 600_000
    assert len(kicks) == 10 and set(kicks) == {0}  # each time 50 kB more were put (every 3rd value)
    writer.close()
    data = tmp_path / "shard-00000.lmdb" / "data.mdb"
    env = lmdb.open(str(data.parent), readonly=True, lock=False)
    info, psize = env.info(), env.stat()["psize"]
    assert data.stat().st_size == (info["last_pgno"] + 1) * psize  # not the whole map
    with env.begin() as txn:
        assert {k.decode(): bytes(v) for k, v in txn.cursor()} == values
    env.close()


def test_a_failed_transaction_leaves_the_last_commit(tmp_path):
    writer = ShardWriter(lambda i: tmp_path / f"shard-{i:05d}.lmdb", flush_bytes=10_000)
    writer.write_sequence(0, 0, lambda: iter([("a", b"1" * 30_000)]))

    def broken():
        yield "b", b"2" * 30_000
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        writer.write_sequence(0, 0, broken)
    writer.close()
    env = lmdb.open(str(tmp_path / "shard-00000.lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        assert [k for k, _ in txn.cursor()] == [b"a"]
    env.close()
