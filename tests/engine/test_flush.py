"""A flush or close moves the write buffers of many collections into the lake in one commit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import vecduck


def snapshots(folder: Path) -> int:
    con = vecduck.duckdb_connect(folder)
    try:
        return con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()[0]
    finally:
        con.close()


def test_close_commits_every_buffered_collection_at_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    client = vecduck.PersistentClient(path=tmp_path)
    expected = {}
    for number in range(12):
        collection = client.create_collection(f"many{number:02d}", embedding_function=None)
        vectors = rng.standard_normal((number + 1, 4)).astype(np.float32)
        collection.add(
            ids=[f"r{i}" for i in range(number + 1)],
            embeddings=vectors,
            metadatas=[{"n": i, f"only{number}": True} for i in range(number + 1)],
        )
        expected[f"many{number:02d}"] = vectors
    client.flush()  # the first commit of each: its table and its view
    before = snapshots(tmp_path)
    for number in range(12):
        client.get_collection(f"many{number:02d}").upsert(ids=["r0"], embeddings=[[9.0, 9.0, 9.0, 9.0]])
        expected[f"many{number:02d}"][0] = 9.0
    client.close()
    assert snapshots(tmp_path) == before + 1  # twelve collections, one lake commit

    con = vecduck.duckdb_connect(tmp_path)
    for name, vectors in expected.items():
        rows = con.execute(f'SELECT id, embedding, n FROM lake."{name}" ORDER BY n').fetchall()
        assert [row[0] for row in rows] == [f"r{i}" for i in range(len(vectors))]
        np.testing.assert_array_equal(np.asarray([row[1] for row in rows], np.float32), vectors)
    con.close()
    reopened = vecduck.PersistentClient(path=tmp_path)
    assert [c.name for c in reopened.list_collections()] == sorted(expected)
    assert (
        reopened.get_collection("many05").get(ids=["r0"], include=["embeddings"])["embeddings"][0].tolist() == [9.0] * 4
    )
    reopened.close()
