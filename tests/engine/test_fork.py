"""collection.fork: the same records at once, sharing files; then two independent collections.

Independence is checked both ways for every kind of write, through compaction and
deletion of either side, across a reopen; a crash mid-fork leaves no half-collection;
the fork costs a fraction of re-adding the rows and almost no disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import vecduck
from vecduck.errors import UniqueConstraintError

DIM = 16


def disk_kb(folder: Path) -> int:
    """Bytes on disk, hard links counted once (as `du` counts them)."""
    return int(subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True, check=True).stdout.split()[0])


def records(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, int]], list[str]]:
    rng = np.random.default_rng(seed)
    return (
        [f"r{i}" for i in range(n)],
        rng.random((n, DIM), dtype=np.float32),
        [{"n": i, "even": i % 2} for i in range(n)],
        [f"document {i}" for i in range(n)],
    )


def snapshot(collection: vecduck.Collection) -> dict[str, tuple[object, ...]]:
    got = collection.get(include=["embeddings", "metadatas", "documents"])
    return {
        i: (tuple(np.round(e, 6)), tuple(sorted((m or {}).items())), d)
        for i, e, m, d in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True)
    }


def test_fork_is_a_copy_then_independent(tmp_path: Path) -> None:
    client = vecduck.PersistentClient(tmp_path)
    parent = client.create_collection("parent", embedding_function=None)
    ids, vectors, metadatas, documents = records(7_000)  # above the write buffer: in Parquet
    parent.add(ids=ids, embeddings=vectors, metadatas=metadatas, documents=documents)
    parent.add(ids=["buffered"], embeddings=vectors[:1], documents=["still in the write buffer"])
    parent.delete(ids=["r3"])
    before = snapshot(parent)

    fork = parent.fork("child")
    assert fork.name == "child" and fork.id != parent.id
    assert snapshot(fork) == before
    query = vectors[10:13]
    assert (
        fork.query(query_embeddings=query, n_results=5)["ids"]
        == parent.query(query_embeddings=query, n_results=5)["ids"]
    )
    assert parent.fork_count() == fork.fork_count() == 1

    # writes on either side stay on that side
    fork.add(ids=["only-in-fork"], embeddings=vectors[:1])
    fork.update(ids=["r1"], embeddings=vectors[5:6], documents=["changed in fork"])
    fork.delete(ids=["r2"])
    parent.upsert(ids=["only-in-parent"], embeddings=vectors[1:2])
    parent.delete(where={"n": {"$gte": 6_990}})
    assert "only-in-fork" not in parent.get(ids=["only-in-fork"])["ids"]
    assert parent.get(ids=["r1"])["documents"] == ["document 1"]
    assert parent.get(ids=["r2"])["ids"] == ["r2"]
    assert fork.get(ids=["only-in-parent"])["ids"] == []
    assert len(fork.get(where={"n": {"$gte": 6_990}})["ids"]) == 10
    assert fork.get(ids=["r1"])["documents"] == ["changed in fork"] and fork.get(ids=["r2"])["ids"] == []

    # a fork of a fork, a taken name, and the tree's count
    grandchild = fork.fork("grandchild")
    assert grandchild.count() == fork.count()
    assert parent.fork_count() == 2
    with pytest.raises(UniqueConstraintError):
        parent.fork("child")
    expected_fork = snapshot(fork)
    client.close()

    # compacting and deleting the parent never break the fork, across a reopen
    client = vecduck.PersistentClient(tmp_path)
    parent = client.get_collection("parent", embedding_function=None)
    parent.compact(retention=0)
    client.delete_collection("parent")
    vecduck.sql.compact(client._store_for_use(), 0)
    fork = client.get_collection("child", embedding_function=None)
    assert snapshot(fork) == expected_fork
    assert client.sql("SELECT count(*) FROM child").fetchone()[0] == len(expected_fork)
    assert fork.query(query_embeddings=query, n_results=3)["ids"][0][0] == "r10"
    assert snapshot(client.get_collection("grandchild", embedding_function=None)) == expected_fork
    assert fork.fork_count() == 2  # edges stay counted after a deletion, as in Chroma
    client.close()


def test_fork_is_fast_and_shares_the_disk(tmp_path: Path) -> None:
    n = 20_000
    client = vecduck.PersistentClient(tmp_path)
    parent = client.create_collection("big", embedding_function=None)
    ids, vectors, metadatas, documents = records(n, seed=1)
    started = time.perf_counter()
    parent.add(ids=ids, embeddings=vectors, metadatas=metadatas, documents=documents)
    client.flush()
    adding = time.perf_counter() - started
    size = disk_kb(tmp_path)
    started = time.perf_counter()
    fork = parent.fork("big-fork")
    forking = time.perf_counter() - started
    assert fork.count() == n
    assert disk_kb(tmp_path) <= size * 1.05, (size, disk_kb(tmp_path))
    # a sanity bound only (timings are benchmarks' business): the fork copies no rows
    assert forking < adding, (forking, adding)
    client.close()


CRASH = textwrap.dedent(
    """
    import os, sys, numpy as np, vecduck
    from vecduck.engine.registry import Registry
    client = vecduck.PersistentClient(sys.argv[1])
    parent = client.get_collection("crashy", embedding_function=None)
    real = Registry.insert
    Registry.insert = lambda *args, **kwargs: os._exit(9)  # die after the lake commit, before the registry's
    parent.fork("half")
    """
)


def test_a_crash_mid_fork_leaves_no_half_collection(tmp_path: Path) -> None:
    client = vecduck.PersistentClient(tmp_path)
    parent = client.create_collection("crashy", embedding_function=None)
    ids, vectors, metadatas, documents = records(6_000, seed=2)
    parent.add(ids=ids, embeddings=vectors, metadatas=metadatas, documents=documents)
    expected = snapshot(parent)
    client.close()
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr

    client = vecduck.PersistentClient(tmp_path)
    assert [c.name for c in client.list_collections()] == ["crashy"]
    assert snapshot(client.get_collection("crashy", embedding_function=None)) == expected
    client.sql("SELECT 1").fetchall()  # attaches the lake: the orphaned fork table is dropped
    known = {str(c.id) for c in client.list_collections()}
    assert {name.split(".", 1)[0] for name in os.listdir(tmp_path / "index")} <= known
    fork = client.get_collection("crashy", embedding_function=None).fork("half")  # the name is free
    assert snapshot(fork) == expected
    client.close()


def test_fork_after_updates_and_new_keys_matches_in_sql_and_get(tmp_path: Path) -> None:
    """A row updated in place keeps its key: the fork's table must take the new row (by key
    and write number), also when the parent's file predates a metadata column."""
    client = vecduck.PersistentClient(tmp_path)
    parent = client.create_collection("updates", embedding_function=None)
    ids, vectors, metadatas, documents = records(6_000, seed=3)
    parent.add(ids=ids, embeddings=vectors, metadatas=metadatas, documents=documents)  # in a Parquet file
    parent.upsert(ids=["r0", "r1"], embeddings=vectors[:2], metadatas=[{"late": 3}, {"late": 4}])  # buffered
    parent.update(ids=["r2"], documents=["updated"], embeddings=vectors[2:3])
    fork = parent.fork("updates-fork")
    rows = dict(client.sql('SELECT id, late FROM "updates-fork" WHERE id IN (\'r0\', \'r1\', \'r5\')').fetchall())
    assert rows == {"r0": 3, "r1": 4, "r5": None}
    assert client.sql('SELECT document FROM "updates-fork" WHERE id = \'r2\'').fetchone() == ("updated",)
    assert client.sql('SELECT count(*), count(DISTINCT id) FROM "updates-fork"').fetchone() == (6_000, 6_000)
    assert snapshot(fork) == snapshot(parent)
    client.close()
