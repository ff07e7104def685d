"""`Collection.add_parquet`: Parquet files written by another engine become rows, copied by
DuckDB, then indexed; checked against the files read back with pyarrow and NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vecduck
from vecduck.errors import InvalidArgumentError

DIM = 12


def write_files(folder: Path, rows: int, seed: int = 0) -> tuple[list[Path], pa.Table]:
    """Two Parquet files (as polars or Spark would write them: fixed-size float32 vectors)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    table = pa.table(
        {
            "doc_id": [f"d{i}" for i in range(rows)],
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            "year": pa.array(rng.integers(1990, 2025, rows), pa.int32()),
            "score": rng.random(rows),
            "source": [f"s{i % 5}" for i in range(rows)],
            "tags": [[f"t{i % 3}", "x"] for i in range(rows)],
            "body": [f"text {i}" for i in range(rows)],
        }
    )
    half = rows // 2
    paths = [folder / "part-0.parquet", folder / "part-1.parquet"]
    pq.write_table(table.slice(0, half), paths[0])
    pq.write_table(table.slice(half), paths[1])
    return paths, table


def test_rows_metadata_and_vectors_arrive_and_are_searchable(tmp_path: Path) -> None:
    paths, table = write_files(tmp_path, 3000)
    client = vecduck.PersistentClient(tmp_path / "db")
    collection = client.create_collection("imported", embedding_function=None)
    collection.add(ids=["d10", "own"], embeddings=[[0.5] * DIM, [1.0] * DIM], metadatas=[{"mine": True}, None])

    added = collection.add_parquet(
        paths, id_column="doc_id", embedding_column="vec", document_column="body"
    )

    assert added == 3000 - 1  # d10 was there: add keeps existing records
    assert collection.count() == 3001
    vectors = np.stack(table.column("vec").to_numpy(zero_copy_only=False)).astype(np.float32)
    got = collection.get(ids=["d7", "d10"], include=["metadatas", "documents", "embeddings"])
    by_id = dict(zip(got["ids"], range(2), strict=True))
    seven = by_id["d7"]
    assert got["metadatas"][seven] == {
        "year": table.column("year")[7].as_py(),
        "score": table.column("score")[7].as_py(),
        "source": "s2",
        "tags": ["t1", "x"],
    }
    assert got["documents"][seven] == "text 7"
    np.testing.assert_array_equal(got["embeddings"][seven], vectors[7])
    assert got["metadatas"][by_id["d10"]] == {"mine": True}

    # the nearest neighbours under a filter, against NumPy over the imported rows
    query = vectors[123]
    years = table.column("year").to_numpy()
    ids = np.array(table.column("doc_id").to_pylist())
    keep = (years >= 2000) & (ids != "d10")
    distances = ((vectors[keep] - query) ** 2).sum(axis=1)
    expected = ids[keep][np.argsort(distances)[:5]].tolist()
    answer = collection.query(query_embeddings=[query], n_results=5, where={"year": {"$gte": 2000}})
    assert answer["ids"][0] == expected

    counts = dict(client.sql("SELECT source, count(*) FROM imported GROUP BY source").fetchall())
    assert counts["s0"] == sum(1 for i in range(3000) if i % 5 == 0 and i != 10)

    assert collection.add_parquet(paths, id_column="doc_id", embedding_column="vec") == 0  # all present
    client.close()
    reopened = vecduck.PersistentClient(tmp_path / "db").get_collection("imported")
    assert reopened.count() == 3001


def test_bad_files_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    client = vecduck.PersistentClient(tmp_path / "db")
    collection = client.create_collection("strict", embedding_function=None)
    collection.add(ids=["a"], embeddings=[[0.0] * DIM])
    bad = {
        "duplicate ids": pa.table({"id": ["x", "x"], "embedding": [[1.0] * DIM, [2.0] * DIM]}),
        "wrong dimension": pa.table({"id": ["x"], "embedding": [[1.0] * (DIM + 1)]}),
        "NaN": pa.table({"id": ["x"], "embedding": [[float("nan")] * DIM]}),
        "null id": pa.table({"id": [None, "y"], "embedding": [[1.0] * DIM, [1.0] * DIM]}),
        "no metadata type": pa.table(
            {"id": ["x"], "embedding": [[1.0] * DIM], "when": pa.array([0], pa.timestamp("s"))}
        ),
        "infinite metadata": pa.table({"id": ["x"], "embedding": [[1.0] * DIM], "w": [float("inf")]}),
        "no embedding column": pa.table({"id": ["x"], "vector": [[1.0] * DIM]}),
    }
    for name, table in bad.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        with pytest.raises(InvalidArgumentError):
            collection.add_parquet(path)
    assert collection.count() == 1
    assert collection.get()["ids"] == ["a"]


def test_not_over_http() -> None:
    assert vecduck.HttpClient is not None
    from vecduck.http_client import HttpCollection

    with pytest.raises(NotImplementedError):
        HttpCollection.add_parquet(None, "x.parquet")  # type: ignore[arg-type]
