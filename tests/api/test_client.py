"""The embedded client end to end: persistence, processes, errors, distances, search."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecduck
from vecduck.errors import (
    AuthorizationError,
    DuplicateIDError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UniqueConstraintError,
)


@pytest.fixture
def client(tmp_path: Path):
    c = vecduck.PersistentClient(path=tmp_path / "db")
    yield c
    c.close()


def run_python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_data_survives_the_process(tmp_path: Path) -> None:
    folder = str(tmp_path / "db")
    run_python(
        """
        import sys, vecduck
        c = vecduck.PersistentClient(path=sys.argv[1])
        col = c.create_collection("docs", embedding_function=None, metadata={"hnsw:space": "cosine"})
        col.add(ids=["a", "b"], embeddings=[[1, 0], [0, 1]], metadatas=[{"k": 1}, None], documents=["x", None])
        col.add(ids="c", embeddings=[1.0, 1.0], metadatas={"k": 2.5}, documents="y")
        """,
        folder,
    )  # no close(): the write buffer alone must carry the data
    client = vecduck.PersistentClient(path=folder)
    col = client.get_collection("docs", embedding_function=None)
    got = col.get(include=["embeddings", "metadatas", "documents"])
    assert got["ids"] == ["a", "b", "c"]
    assert got["metadatas"] == [{"k": 1}, None, {"k": 2.5}]
    assert got["documents"] == ["x", None, "y"]
    np.testing.assert_array_equal(got["embeddings"], np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    assert col.metadata == {"hnsw:space": "cosine"}
    assert col.configuration_json["hnsw"]["space"] == "cosine"
    client.close()


def test_two_processes_see_each_others_writes(tmp_path: Path) -> None:
    folder = str(tmp_path / "db")
    client = vecduck.PersistentClient(path=folder)
    col = client.create_collection("shared", embedding_function=None)
    col.add(ids=["mine"], embeddings=[[0.0, 0.0]])
    assert col.count() == 1
    out = run_python(
        """
        import sys, vecduck
        c = vecduck.PersistentClient(path=sys.argv[1])
        col = c.get_collection("shared", embedding_function=None)
        print(col.count())
        col.add(ids=[f"theirs{i}" for i in range(3)], embeddings=[[1.0, float(i)] for i in range(3)])
        col.update(ids=["mine"], metadatas=[{"touched": True}])
        """,
        folder,
    )
    assert out.strip() == "1"
    assert col.count() == 4
    assert col.get(ids=["mine"])["metadatas"] == [{"touched": True}]
    hit = col.query(query_embeddings=[[1.0, 2.0]], n_results=1)
    assert hit["ids"] == [["theirs2"]]
    client.close()


def test_large_writes_reach_the_lake_and_are_searchable(client) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.random((30_000, 12), dtype=np.float32)
    col = client.create_collection("big", embedding_function=None)
    col.add(ids=[str(i) for i in range(len(vectors))], embeddings=vectors, metadatas=[{"i": i} for i in range(30_000)])
    assert col.count() == 30_000
    con = client._store_for_use().lake.con
    assert con.execute("SELECT count(*) FROM lake.big").fetchone()[0] == 30_000
    # Unfiltered: HNSW over 30,000 vectors; compare with exact neighbours.
    queries = rng.random((20, 12), dtype=np.float32)
    exact = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1).argsort(axis=1)[:, :10]
    got = col.query(query_embeddings=queries, n_results=10, include=["distances"])
    recall = np.mean([len(set(map(int, g)) & set(e.tolist())) / 10 for g, e in zip(got["ids"], exact, strict=True)])
    assert recall >= 0.95
    # Filtered to 1%: exact over the matches.
    filtered = col.query(query_embeddings=queries[:1], n_results=5, where={"i": {"$lt": 300}})
    mask = np.arange(300)
    want = mask[((vectors[:300] - queries[0]) ** 2).sum(-1).argsort()[:5]]
    assert [int(i) for i in filtered["ids"][0]] == want.tolist()


@pytest.mark.parametrize("where", [{"i": {"$lt": 300}}, {"i": {"$lt": 6_000}}], ids=["exact", "hnsw"])
def test_repeated_filters_follow_writes(client, where: dict) -> None:
    """A filter's candidates, their gathered vectors and key mask are kept while the same
    filter repeats; every write (a moved vector, a changed or new match) must show at once."""
    rng = np.random.default_rng(11)
    vectors = rng.random((30_000, 12), dtype=np.float32)
    col = client.create_collection("repeat", embedding_function=None)
    col.add(ids=[str(i) for i in range(len(vectors))], embeddings=vectors, metadatas=[{"i": i} for i in range(30_000)])
    query = rng.random(12, dtype=np.float32)
    limit = where["i"]["$lt"]

    def nearest(k: int = 5) -> list[str]:
        inside = [i for i in range(len(vectors)) if i < limit or i in moved_in]
        order = np.argsort(((vectors[inside] - query) ** 2).sum(-1), kind="stable")[:k]
        return [str(inside[j]) for j in order]

    moved_in: set[int] = set()
    exact = limit <= 300  # under 2% of the index: answered exactly; else HNSW, approximate

    def check(first: str | None = None) -> list[str]:
        got = col.query(query_embeddings=query, n_results=5, where=where, include=[])["ids"][0]
        want = nearest()
        assert all(int(rid) < limit or int(rid) in moved_in for rid in got)
        if exact:
            assert got == want
        else:
            assert len(set(got) & set(want)) >= 4, (got, want)
        if first is not None:
            assert got[0] == first
        return got

    check()
    check()  # the second time from what was kept
    # a candidate's vector moves onto the query: it must come first
    vectors[7] = query
    col.update(ids=["7"], embeddings=[query])
    check(first="7")
    # a record outside the filter moves into it, right beside the query
    vectors[29_999] = query + 1e-3
    moved_in.add(29_999)
    col.update(ids=["29999"], embeddings=[vectors[29_999]], metadatas=[{"i": 0}])
    assert "29999" in check(first="7")
    # and a candidate leaves, by deletion
    col.delete(ids=["7"])
    vectors[7] = np.inf
    assert check(first="29999")[0] != "7"


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_distances_have_chromadb_definitions(space: str) -> None:
    client = vecduck.Client()
    col = client.create_collection(f"space-{space}", embedding_function=None, metadata={"hnsw:space": space})
    vectors = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [2, -1, 0.5]], np.float32)
    col.add(ids=[str(i) for i in range(5)], embeddings=vectors)
    query = np.array([0.5, 0.2, -0.1], np.float32)
    got = col.query(query_embeddings=query, n_results=5, include=["distances"])
    if space == "l2":
        want = ((vectors - query) ** 2).sum(1)
    elif space == "ip":
        want = 1 - vectors @ query
    else:
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
        want = 1 - np.divide(vectors @ query, norms, out=np.zeros(5), where=norms > 0)
    order = [int(i) for i in got["ids"][0]]
    np.testing.assert_allclose(got["distances"][0], want[order], rtol=1e-5, atol=1e-6)
    assert list(np.sort(want)) == pytest.approx(got["distances"][0], abs=1e-6)
    client.delete_collection(f"space-{space}")


def test_errors_have_chromadb_classes(client) -> None:
    col = client.create_collection("errs", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
    with pytest.raises(UniqueConstraintError) as excinfo:
        client.create_collection("errs")
    assert isinstance(excinfo.value, InternalError)
    with pytest.raises(NotFoundError, match=r"Collection \[nope\] does not exist"):
        client.get_collection("nope")
    with pytest.raises(InvalidArgumentError, match="expecting embedding with dimension of 3, got 2"):
        col.add(ids=["b"], embeddings=[[1.0, 2.0]])
    with pytest.raises(InvalidArgumentError, match="dimension of 3, got 2"):
        col.query(query_embeddings=[[1.0, 2.0]])
    with pytest.raises(DuplicateIDError, match="in add"):
        col.add(ids=["x", "x"], embeddings=[[1.0, 2.0, 3.0]] * 2)
    with pytest.raises(ValueError, match="Unequal lengths"):
        col.add(ids=["x", "y"], embeddings=[[1.0, 2.0, 3.0]])
    with pytest.raises(InvalidArgumentError):
        col.add(ids=["x"], embeddings=[[1.0, float("nan"), 3.0]])
    with pytest.raises(InvalidArgumentError, match="Validation error: name"):
        client.create_collection("a")
    with pytest.raises(TypeError):
        col.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=0)
    with pytest.raises(ValueError, match="exactly one operator"):
        col.get(where={})
    with pytest.raises(InvalidArgumentError, match="Regex"):
        col.get(where_document={"$regex": "("})
    with pytest.raises(AuthorizationError):
        client.reset()
    assert col.count() == 1  # nothing above changed what is stored


def test_metadata_kinds_round_trip_and_filter(client) -> None:
    col = client.create_collection("kinds", embedding_function=None)
    metadatas = [
        {"v": 1, "tags": ["a", "b"]},
        {"v": 1.0, "tags": [1, 2]},
        {"v": "1", "flag": True},
        {"v": True},
        None,
    ]
    col.add(ids=list("abcde"), embeddings=[[float(i)] for i in range(5)], metadatas=metadatas)
    assert col.get()["metadatas"] == metadatas
    assert col.get(where={"v": 1})["ids"] == ["a", "b"]
    assert col.get(where={"v": True})["ids"] == ["d"]
    assert col.get(where={"v": "1"})["ids"] == ["c"]
    assert col.get(where={"v": {"$ne": 1}})["ids"] == ["c", "d", "e"]
    assert col.get(where={"tags": {"$contains": "a"}})["ids"] == ["a"]
    assert col.get(where={"tags": {"$contains": 2}})["ids"] == ["b"]
    assert col.get(where={"tags": {"$not_contains": 2}})["ids"] == ["a", "c", "d", "e"]
    with pytest.raises(ValueError, match="same type"):
        col.get(where={"v": {"$in": [1, "1"]}})
    col.update(ids=["a"], metadatas=[{"v": None, "new": "x"}])
    assert col.get(ids=["a"])["metadatas"] == [{"tags": ["a", "b"], "new": "x"}]
    col.upsert(ids=["c"], metadatas=[{"v": None, "flag": None}], embeddings=[[9.0]])
    assert col.get(ids=["c"])["metadatas"] == [None]  # every key removed: no metadata, as chromadb reads it


def test_storage_order_and_paging(client) -> None:
    col = client.create_collection("order", embedding_function=None)
    col.add(ids=["c", "a", "b"], embeddings=[[1.0], [2.0], [3.0]])
    col.upsert(ids=["a"], embeddings=[[5.0]])
    assert col.get()["ids"] == ["c", "a", "b"]
    col.delete(ids=["c"])
    col.add(ids=["c"], embeddings=[[0.0]])
    assert col.get()["ids"] == ["a", "b", "c"]
    assert col.get(limit=1, offset=1)["ids"] == ["b"]
    assert col.delete(where={"$or": [{"x": 1}, {"x": 2}]}) == {"deleted": 0}
    assert col.peek(2)["embeddings"].shape == (2, 1)


def test_torn_index_file_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    client = vecduck.PersistentClient(path=folder)
    col = client.create_collection("torn", embedding_function=None)
    col.add(ids=[str(i) for i in range(50)], embeddings=np.eye(50, dtype=np.float32))
    collection_id = str(col.id)
    client.close()
    index_file = folder / "index" / f"{collection_id}.usearch"
    assert index_file.exists()
    index_file.write_bytes(index_file.read_bytes()[: index_file.stat().st_size // 2])
    client = vecduck.PersistentClient(path=folder)
    col = client.get_collection("torn", embedding_function=None)
    hit = col.query(query_embeddings=np.eye(50, dtype=np.float32)[17], n_results=1)
    assert hit["ids"] == [["17"]]
    client.close()


def test_in_memory_client_leaves_nothing_and_shares_store() -> None:
    first = vecduck.Client()
    second = vecduck.EphemeralClient()
    col = first.create_collection("mem-shared", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0]])
    assert second.get_collection("mem-shared", embedding_function=None).count() == 1
    first.delete_collection("mem-shared")
    assert "mem-shared" not in [c.name for c in second.list_collections()]


def test_in_memory_client_removes_its_folder_at_exit() -> None:
    out = run_python(
        """
        import vecduck
        c = vecduck.Client()
        col = c.create_collection("gone", embedding_function=None)
        col.add(ids=[str(i) for i in range(6000)], embeddings=[[float(i), 1.0] for i in range(6000)])
        print(c._store_for_use().folder)
        """
    )
    folder = Path(out.strip())
    assert folder.name.startswith("vecduck-memory-")
    assert not folder.exists()


def test_relative_and_moved_folders_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    client = vecduck.PersistentClient(path="data")
    client.create_collection("docs", embedding_function=None).add(ids=["a", "b"], embeddings=[[1.0], [2.0]])
    client.close()  # moves the buffer into the lake, whose catalog records the data path
    assert vecduck.duckdb_connect("data").sql("SELECT count(*) FROM docs").fetchone() == (2,)
    (tmp_path / "data").rename(tmp_path / "moved")
    client = vecduck.PersistentClient(path="moved")
    col = client.get_collection("docs", embedding_function=None)
    col.add(ids=["c"], embeddings=[[3.0]])
    client.flush()
    assert vecduck.duckdb_connect("moved").sql("SELECT count(*) FROM docs").fetchone() == (3,)
    assert col.get()["ids"] == ["a", "b", "c"]
    client.close()


def test_persistent_settings_and_clear_system_cache(tmp_path: Path) -> None:
    """As chromadb: a PersistentClient's settings say where it persists, and
    `SharedSystemClient.clear_system_cache()` gives the next client a fresh start (the
    in-memory data gone, the folder's kept). In a process of its own: the reset closes
    every store of the process."""
    script = textwrap.dedent(
        """
        import sys, vecduck
        from vecduck.api.client import SharedSystemClient

        folder = sys.argv[1]
        client = vecduck.PersistentClient(path=folder)
        assert client.get_settings().is_persistent
        assert client.get_settings().persist_directory == folder
        client.create_collection("on-disk").add(ids=["a"], embeddings=[[1.0, 2.0]])
        vecduck.Client().create_collection("in-memory")
        SharedSystemClient.clear_system_cache()
        assert vecduck.Client().list_collections() == []
        assert vecduck.PersistentClient(path=folder).get_collection("on-disk").count() == 1
        vecduck.Client.clear_system_cache()  # the same, from the client class
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "kept")], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
