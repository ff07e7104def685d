"""DataFrames in and out: pandas, polars and Arrow round trips with every metadata kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import vecduck
from vecduck.errors import DuplicateIDError, InvalidArgumentError

N = 300
D = 8


@pytest.fixture
def client(tmp_path: Path):
    c = vecduck.PersistentClient(path=tmp_path / "db")
    yield c
    c.close()


def _vectors(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, D), dtype=np.float32)


def _columns(n: int = N) -> dict[str, list]:
    return {
        "id": [f"r{i}" for i in range(n)],
        "document": [f"document number {i}" for i in range(n)],
        "style": [f"s{i % 3}" for i in range(n)],
        "year": [1990 + i for i in range(n)],
        "score": [i / 7 for i in range(n)],
        "flag": [i % 2 == 0 for i in range(n)],
        "tags": [["a", "b"] if i % 2 else ["c"] for i in range(n)],
        "ranks": [[i, i + 1] for i in range(n)],
        "weights": [[0.5, i / 3] for i in range(n)],
        "bits": [[True, i % 2 == 1] for i in range(n)],
    }


def _frame(kind: str, n: int = N) -> object:
    cols = _columns(n)
    vectors = _vectors(n)
    if kind == "pandas":
        return pd.DataFrame({**cols, "embedding": list(vectors)})
    if kind == "polars":
        return pl.DataFrame({**cols, "embedding": vectors})  # a fixed-size Array column
    return pa.table({**cols, "embedding": pa.array(vectors.tolist(), pa.list_(pa.float32()))})  # a list column


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow"])
def test_round_trip_every_metadata_kind(client, kind):
    col = client.create_collection(f"docs_{kind}", embedding_function=None)
    written = col.upsert_df(_frame(kind), chunk_rows=128)  # three chunks
    assert written == N and col.count() == N

    out = col.to_polars(include_embeddings=True)
    expected = _columns()
    for key, values in expected.items():
        assert out[key].to_list() == values, key
    assert out.schema["year"] == pl.Int64 and out.schema["score"] == pl.Float64 and out.schema["flag"] == pl.Boolean
    assert out.schema["tags"] == pl.List(pl.String) and out.schema["ranks"] == pl.List(pl.Int64)
    np.testing.assert_allclose(out["embedding"].to_numpy(), _vectors(), rtol=1e-6)

    # the same records through chromadb's API: metadata dicts are exact
    got = col.get(ids=["r1"], include=["metadatas", "documents", "embeddings"])
    assert got["metadatas"][0] == {k: v[1] for k, v in expected.items() if k not in ("id", "document")}
    assert got["documents"] == ["document number 1"]

    pandas_out = col.to_pandas()
    assert list(pandas_out["id"]) == expected["id"] and pandas_out["year"].dtype == np.int64
    arrow_out = col.to_arrow(columns=["id", "year"])
    assert arrow_out.column_names == ["id", "year"] and arrow_out.column("year").type == pa.int64()


def test_embedding_as_separate_array_and_explicit_columns(client):
    col = client.create_collection("explicit", embedding_function=None)
    df = pl.DataFrame({"doc_id": ["a", "b", "c"], "text": ["x", "y", "z"], "style": ["p", "q", "p"], "junk": [1, 2, 3]})
    vectors = _vectors(3)
    col.add_df(df, id="doc_id", embedding=vectors, document="text", metadata=["style"])
    got = col.get(include=["metadatas", "documents", "embeddings"])
    assert got["ids"] == ["a", "b", "c"] and got["documents"] == ["x", "y", "z"]
    assert got["metadatas"] == [{"style": "p"}, {"style": "q"}, {"style": "p"}]  # junk not stored
    np.testing.assert_allclose(got["embeddings"], vectors)


def test_integer_ids_become_strings(client):
    col = client.create_collection("ints", embedding_function=None)
    col.add_df(pa.table({"id": [1, 2], "embedding": _vectors(2).tolist()}))
    assert col.get()["ids"] == ["1", "2"]


def test_nulls_mean_absent_on_add_and_kept_on_upsert(client):
    col = client.create_collection("nulls", embedding_function=None)
    vectors = _vectors(3)
    col.add_df(pd.DataFrame({"id": ["a", "b", "c"], "embedding": list(vectors), "year": [2000, None, 2002.0]}))
    assert col.get(ids=["b"])["metadatas"] == [None]  # NaN / null: no key at all
    assert col.get(ids=["a"])["metadatas"] == [{"year": 2000}]  # pandas made it float; stored as float 2000.0
    # upsert with a null leaves the stored value alone ...
    col.upsert_df(pl.DataFrame({"id": ["a"], "embedding": vectors[:1], "year": [None], "style": ["new"]}))
    assert col.get(ids=["a"])["metadatas"] == [{"year": 2000, "style": "new"}]
    # ... unless nulls="delete" asks for chromadb's rule
    col.upsert_df(pl.DataFrame({"id": ["a"], "embedding": vectors[:1], "year": [None], "style": ["s"]}), nulls="delete")
    assert col.get(ids=["a"])["metadatas"] == [{"style": "s"}]


def test_update_df_changes_metadata_only(client):
    col = client.create_collection("upd", embedding_function=None)
    vectors = _vectors(2)
    col.add_df(pl.DataFrame({"id": ["a", "b"], "embedding": vectors, "document": ["x", "y"], "n": [1, 2]}))
    col.update_df(pl.DataFrame({"id": ["a", "zzz"], "n": [10, 20]}))
    got = col.get(include=["metadatas", "documents", "embeddings"])
    assert got["ids"] == ["a", "b"] and got["metadatas"] == [{"n": 10}, {"n": 2}] and got["documents"] == ["x", "y"]
    np.testing.assert_allclose(got["embeddings"], vectors)


class _HashEmbedding:
    """A deterministic embedding function: the first letters as numbers (no model needed)."""

    def __call__(self, input: list[str]) -> list[np.ndarray]:
        return [np.array([len(t), ord(t[0]), ord(t[-1]), 1.0], np.float32) for t in input]

    @staticmethod
    def name() -> str:
        return "test-hash"


def test_documents_only_frame_is_embedded(client):
    col = client.create_collection("docs_only", embedding_function=_HashEmbedding())
    col.add_df(pd.DataFrame({"id": ["a", "b"], "document": ["hello", "world!"]}))
    got = col.get(include=["embeddings"])
    np.testing.assert_allclose(got["embeddings"][1], [6, ord("w"), ord("!"), 1])
    # null vectors in an embedding column are filled from the document
    frame = pa.table({"id": ["c", "d"], "document": ["cat", "dog"], "embedding": [[9.0, 9.0, 9.0, 9.0], None]})
    col.add_df(frame)
    got = col.get(ids=["c", "d"], include=["embeddings"])
    np.testing.assert_allclose(got["embeddings"], [[9, 9, 9, 9], [3, ord("d"), ord("g"), 1]])


def test_clear_errors(client):
    col = client.create_collection("errors", embedding_function=None)
    with pytest.raises(InvalidArgumentError, match="No id column"):
        col.add_df(pl.DataFrame({"x": [1]}))
    with pytest.raises(InvalidArgumentError, match="embedding column"):
        col.add_df(pl.DataFrame({"id": ["a"], "n": [1]}))
    with pytest.raises(DuplicateIDError):
        col.add_df(pl.DataFrame({"id": ["a", "a"], "embedding": _vectors(2)}))
    with pytest.raises(InvalidArgumentError, match="different lengths"):
        col.add_df(pa.table({"id": ["a", "b"], "embedding": [[1.0, 2.0], [1.0]]}))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        col.add_df(pa.table({"id": ["a"], "embedding": [[1.0, float("nan")]]}))
    with pytest.raises(InvalidArgumentError, match="metadata values"):
        col.add_df(pa.table({"id": ["a"], "embedding": [[1.0, 2.0]], "blob": [b"bytes"]}))
    assert col.count() == 0


def test_chunks_are_atomic_writes_through_the_lake(client):
    col = client.create_collection("big", embedding_function=None)
    n = 12_000
    col.add_df(
        pl.DataFrame({"id": [str(i) for i in range(n)], "embedding": _vectors(n), "k": np.arange(n) % 5}),
        chunk_rows=6_000,
    )
    assert col.count() == n
    versions = col.versions()
    assert [v.rows_inserted for v in versions[:2]] == [6_000, 6_000]  # one snapshot per chunk


def test_query_and_get_results_as_frames(client):
    col = client.create_collection("results", embedding_function=None)
    col.add_df(_frame("polars"))
    queries = _vectors(2, seed=5)
    result = col.query(query_embeddings=queries, n_results=4, where={"style": "s1"})
    frame = result.to_polars()
    assert frame.columns[:5] == ["query", "rank", "id", "distance", "document"]
    assert frame["query"].to_list() == [0] * 4 + [1] * 4 and frame["rank"].to_list() == [0, 1, 2, 3] * 2
    assert frame["id"].to_list() == result["ids"][0] + result["ids"][1]
    assert set(frame["style"].to_list()) == {"s1"} and frame.schema["year"] == pl.Int64
    assert frame["distance"].is_sorted() or frame.filter(pl.col("query") == 0)["distance"].is_sorted()
    got = col.get(limit=5, include=["metadatas", "documents", "embeddings"])
    pdf = got.to_pandas()
    assert list(pdf["id"]) == got["ids"] and pdf["tags"][1] is not None
    assert got.to_arrow().column("embedding").type == pa.list_(pa.float32(), D)
    assert "<table" in result._repr_html_() and "<table" in got._repr_html_()


def test_to_arrow_filters_and_html(client):
    col = client.create_collection("filters", embedding_function=None, metadata={"hnsw:space": "cosine"})
    col.add_df(_frame("arrow"))
    out = col.to_arrow(where={"year": {"$gte": 2200}}, where_document={"$contains": "number 29"})
    assert (
        out.column("id").to_pylist()
        == ["r290", "r291", "r292", "r293", "r294", "r295", "r296", "r297", "r298", "r299"][: out.num_rows]
    )
    assert out.num_rows == 10
    html = col._repr_html_()
    assert "filters" in html and "cosine" in html and "year" in html and "int" in html and "300" in html
    assert "filters" in client._repr_html_()
