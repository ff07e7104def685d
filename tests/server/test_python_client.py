"""chromadb's official Python client (and vecduck.HttpClient) against `vecduck run`."""

from __future__ import annotations

import threading
from typing import Any

import chromadb
import chromadb.errors
import numpy as np
import pytest
from conftest import Server

import vecduck.errors
from vecduck.http_client import HttpClient


@pytest.fixture(scope="module")
def chroma(strict_server: Server) -> Any:
    return chromadb.HttpClient(
        host="127.0.0.1", port=strict_server.port, settings=chromadb.Settings(anonymized_telemetry=False)
    )


def test_server_calls(chroma: Any) -> None:
    assert chroma.heartbeat() > 1_600_000_000 * 10**9
    assert chroma.get_version() == vecduck.__version__
    assert chroma.get_max_batch_size() == 64 * 1024 * 1024 // 2048  # the default body limit at 2 KB a record
    assert chroma.get_user_identity().tenant == "default_tenant"


def test_collections_crud(chroma: Any) -> None:
    created = chroma.create_collection("crud-a", metadata={"owner": "me"}, embedding_function=None)
    assert created.name == "crud-a" and created.metadata == {"owner": "me"}
    assert created.configuration_json["embedding_function"] is None
    got = chroma.get_collection("crud-a", embedding_function=None)
    assert got.id == created.id
    same = chroma.get_or_create_collection("crud-a", metadata={"other": 1}, embedding_function=None)
    assert same.id == created.id and same.metadata == {"owner": "me"}  # returned unchanged
    other = chroma.get_or_create_collection("crud-b", embedding_function=None)
    assert other.id != created.id
    names = {c.name for c in chroma.list_collections()}
    assert {"crud-a", "crud-b"} <= names
    assert chroma.count_collections() == len(names)
    everything = [c.name for c in chroma.list_collections()]
    assert [c.name for c in chroma.list_collections(limit=1, offset=1)] == everything[1:2]
    with pytest.raises(chromadb.errors.ChromaError, match="already exists"):
        chroma.create_collection("crud-a", embedding_function=None)
    with pytest.raises(chromadb.errors.NotFoundError):
        chroma.get_collection("crud-none", embedding_function=None)
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        chroma.create_collection("a", embedding_function=None)
    chroma.delete_collection("crud-a")
    chroma.delete_collection("crud-b")
    with pytest.raises(chromadb.errors.NotFoundError):
        chroma.delete_collection("crud-a")


def test_no_function_reports_the_default_in_the_schema(chroma: Any) -> None:
    """As chroma's server: a collection created with embedding_function=None and no index
    configuration reports the default function in its schema (the client embeds with it);
    with an index configuration it reports "legacy" (nothing to embed with)."""
    plain = chroma.create_collection("schema-no-ef", embedding_function=None)
    configured = chroma.create_collection(
        "schema-legacy", embedding_function=None, configuration={"hnsw": {"space": "ip"}}
    )
    try:

        def schema_function(collection: Any) -> Any:
            return collection.schema.keys["#embedding"].float_list.vector_index.config.embedding_function

        assert schema_function(plain).name() == "default"
        assert schema_function(configured) is None
        assert configured.configuration_json["embedding_function"] == {"type": "legacy"}
        with pytest.raises(ValueError, match="You must provide an embedding function"):
            configured.add(ids=["a"], documents=["text"])
    finally:
        chroma.delete_collection("schema-no-ef")
        chroma.delete_collection("schema-legacy")


def test_default_embedding_function_config_is_stored_not_run(chroma: Any) -> None:
    collection = chroma.create_collection("with-ef", configuration={"hnsw": {"space": "cosine"}})
    stored = collection.configuration_json
    assert stored["embedding_function"] == {"name": "default", "type": "known", "config": {}}
    assert stored["hnsw"]["space"] == "cosine"
    chroma.delete_collection("with-ef")


def test_records_scenario(chroma: Any) -> None:
    col = chroma.create_collection("records", metadata={"hnsw:space": "l2"}, embedding_function=None)
    col.add(ids="one", embeddings=[1.0, 0.0, 0.0], metadatas={"k": 1, "tags": ["p", "q"]}, documents="hello world")
    col.add(
        ids=["two", "three", "four"],
        embeddings=np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32),
        metadatas=[{"k": 2, "f": 2.5}, None, {"k": 4, "b": True}],
        documents=["Foo bar", None, "lorem ipsum"],
        uris=["u2", None, "u4"],
    )
    col.add(ids=["one"], embeddings=[[9, 9, 9]], documents=["ignored"])  # existing id: left unchanged
    assert col.count() == 4

    got = col.get(include=["embeddings", "metadatas", "documents", "uris"])
    assert got["ids"] == ["one", "two", "three", "four"]
    assert got["metadatas"] == [{"k": 1, "tags": ["p", "q"]}, {"k": 2, "f": 2.5}, None, {"k": 4, "b": True}]
    assert got["documents"] == ["hello world", "Foo bar", None, "lorem ipsum"]
    assert got["uris"] == [None, "u2", None, "u4"]
    np.testing.assert_array_equal(got["embeddings"], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])

    # upsert: new id inserted, existing merged
    col.upsert(ids=["four", "five"], embeddings=[[1, 1, 1], [2, 0, 0]], metadatas=[{"k": 40}, {"k": 5}])
    assert col.get(ids=["four"])["metadatas"] == [{"k": 40, "b": True}]
    # update: metadata merge, None deletes, unknown ids ignored, embedding kept
    col.update(ids=["one", "ghost"], metadatas=[{"k": None, "new": "x"}, {"k": 0}])
    one = col.get(ids="one", include=["metadatas", "embeddings", "documents"])
    assert one["metadatas"] == [{"tags": ["p", "q"], "new": "x"}]
    np.testing.assert_array_equal(one["embeddings"], [[1, 0, 0]])
    col.update(ids=["two"], embeddings=[[0, 2, 0]], documents=["Foo bar baz"])
    assert col.get(ids="two")["documents"] == ["Foo bar baz"]

    # get with filters, paging, include
    assert col.get(where={"k": {"$gte": 4}})["ids"] == ["four", "five"]
    assert col.get(where={"$or": [{"k": 2}, {"new": "x"}]})["ids"] == ["one", "two"]
    assert col.get(where_document={"$contains": "bar"})["ids"] == ["two"]
    assert col.get(limit=2, offset=1)["ids"] == ["two", "three"]
    only_ids = col.get(include=[])
    assert only_ids["documents"] is None and only_ids["metadatas"] is None
    peeked = col.peek(limit=2)
    assert peeked["ids"] == ["one", "two"] and peeked["embeddings"].shape == (2, 3)

    # query
    result = col.query(query_embeddings=[[1, 0, 0]], n_results=2)
    assert result["ids"] == [["one", "five"]]
    assert result["distances"][0] == pytest.approx([0.0, 1.0])
    filtered = col.query(
        query_embeddings=[[1, 0, 0], [0, 0, 1]],
        n_results=10,
        where={"k": {"$gt": 3}},
        include=["metadatas", "distances", "embeddings", "documents"],
    )
    assert filtered["ids"] == [["five", "four"], ["four", "five"]]
    assert filtered["metadatas"][0] == [{"k": 5}, {"k": 40, "b": True}]
    assert filtered["embeddings"][0].shape == (2, 3)
    assert col.query(query_embeddings=[[1, 0, 0]], ids=["three", "nope"], n_results=3)["ids"] == [["three"]]

    # delete
    assert col.delete(ids=["three"]) == {"deleted": 1}
    assert col.delete(where={"k": {"$gte": 40}}) == {"deleted": 1}
    assert col.get()["ids"] == ["one", "two", "five"]
    assert col.count() == 3

    # modify
    col.modify(name="records-renamed", metadata={"v": 2})
    renamed = chroma.get_collection("records-renamed", embedding_function=None)
    assert renamed.metadata == {"v": 2} and renamed.count() == 3
    col.modify(configuration={"hnsw": {"ef_search": 33}})
    assert chroma.get_collection("records-renamed").configuration_json["hnsw"]["ef_search"] == 33

    # errors
    with pytest.raises(chromadb.errors.InvalidArgumentError, match="dimension"):
        col.add(ids=["bad"], embeddings=[[1, 2]])
    with pytest.raises(chromadb.errors.InvalidArgumentError, match="dimension"):
        col.query(query_embeddings=[[1, 2]])
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        col.add(ids=[""], embeddings=[[1, 2, 3]])
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        col.get(where_document={"$regex": "("})
    with pytest.raises(ValueError, match="in add"):
        col.add(ids=["x", "y"], embeddings=[[1, 2, 3]])  # client-side check, unchanged
    other = chroma.create_collection("records-renamed-2", embedding_function=None)
    with pytest.raises(chromadb.errors.ChromaError, match="already exists"):
        other.modify(name="records-renamed")
    chroma.delete_collection("records-renamed")
    chroma.delete_collection("records-renamed-2")
    with pytest.raises(chromadb.errors.NotFoundError):
        col.count()


def test_reset_is_refused(chroma: Any) -> None:
    with pytest.raises(chromadb.errors.ChromaError, match="Reset is disabled"):
        chroma.reset()


def test_reset_when_allowed(server: Server) -> None:
    client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
    client.create_collection("to-reset", embedding_function=None)
    assert client.reset() is True
    assert client.count_collections() == 0


def test_vecduck_http_client(strict_server: Server) -> None:
    client = HttpClient(host="127.0.0.1", port=strict_server.port)
    official = chromadb.HttpClient(host="127.0.0.1", port=strict_server.port).get_user_identity()
    identity = client.get_user_identity()
    assert (identity.user_id, identity.tenant, identity.databases) == (
        official.user_id,
        official.tenant,
        official.databases,
    )
    col = client.create_collection("vd-http", embedding_function=None, metadata={"hnsw:space": "cosine"})
    col.add(ids=["a", "b"], embeddings=[[1, 0], [0, 1]], metadatas=[{"x": 1}, None], documents=["d1", "d2"])
    col.update(ids="a", metadatas={"x": None, "y": 2})
    got = col.get(include=["embeddings", "metadatas", "documents"])
    assert got["ids"] == ["a", "b"] and got["metadatas"] == [{"y": 2}, None]
    assert got["embeddings"].dtype == np.float32 and got["embeddings"].shape == (2, 2)
    result = col.query(query_embeddings=[1, 0], n_results=5, include=["embeddings", "distances"])
    assert result["ids"] == [["a", "b"]] and result["distances"][0] == pytest.approx([0.0, 1.0])
    assert col.peek()["embeddings"].shape == (2, 2) and col.count() == 2 and col.dimension == 2
    assert col.delete(where={"y": 2}) == {"deleted": 1}
    col.modify(name="vd-http-2")
    assert col.name == "vd-http-2"
    assert [c.name for c in client.list_collections()] == ["vd-http-2"]
    with pytest.raises(vecduck.errors.UniqueConstraintError):
        client.create_collection("vd-http-2", embedding_function=None)
    with pytest.raises(vecduck.errors.NotFoundError):
        client.get_collection("vd-none")
    with pytest.raises(vecduck.errors.InvalidArgumentError, match="dimension"):
        col.add(ids=["z"], embeddings=[[1, 2, 3]])
    with pytest.raises(vecduck.errors.DuplicateIDError, match="in add"):
        col.add(ids=["a", "a"], embeddings=[[1, 2], [1, 2]])
    with pytest.raises(vecduck.errors.AuthorizationError):
        client.reset()
    client.delete_collection("vd-http-2")
    client.close()


def test_many_clients_at_once(server: Server) -> None:
    """Writers and readers in parallel threads: every write lands, no request fails."""
    setup = chromadb.HttpClient(host="127.0.0.1", port=server.port)
    setup.create_collection("parallel", embedding_function=None)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
            col = client.get_collection("parallel", embedding_function=None)
            for batch in range(5):
                ids = [f"w{worker}-{batch}-{i}" for i in range(20)]
                vectors = np.random.default_rng(worker * 100 + batch).random((20, 8), dtype=np.float32)
                col.add(ids=ids, embeddings=vectors, metadatas=[{"w": worker}] * 20)
                seen = col.get(where={"w": worker}, include=[])["ids"]
                assert len(seen) == 20 * (batch + 1)
                col.query(query_embeddings=vectors[:2], n_results=3)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert setup.get_collection("parallel", embedding_function=None).count() == 8 * 5 * 20
    setup.delete_collection("parallel")


def test_record_calls_follow_changes_made_elsewhere(chroma: Any, strict_server: Server) -> None:
    """The server keeps a collection it has looked up for record calls: a delete, a rename or
    new records from another process on the same folder still show at its next call."""
    served = chroma.create_collection("elsewhere-a", embedding_function=None)
    served.add(ids=["a"], embeddings=[[1.0, 0.0]])
    assert served.count() == 1
    elsewhere = vecduck.PersistentClient(str(strict_server.path))
    try:
        mine = elsewhere.get_collection("elsewhere-a")
        mine.add(ids=["b"], embeddings=[[0.0, 1.0]])
        mine.modify(name="elsewhere-b", metadata={"moved": True})
        assert served.count() == 2
        assert served.get(ids=["b"], include=["embeddings"])["embeddings"][0].tolist() == [0.0, 1.0]
        renamed = chroma.get_collection("elsewhere-b", embedding_function=None)
        assert renamed.id == served.id and renamed.metadata == {"moved": True}
        elsewhere.delete_collection("elsewhere-b")
    finally:
        elsewhere.close()
    for call in (
        lambda: served.count(),
        lambda: served.add(ids=["c"], embeddings=[[1.0, 1.0]]),
        lambda: served.get(),
        lambda: served.query(query_embeddings=[[1.0, 0.0]], n_results=1),
        lambda: served.delete(ids=["a"]),
    ):
        with pytest.raises(chromadb.errors.NotFoundError):
            call()
