"""Adds without ids (vecduck's deliberate difference) and three behaviours matched to chromadb 1.5.9,
each checked side by side with chromadb's own EphemeralClient where chromadb defines them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import chromadb
import pytest

import vecduck


def test_add_without_ids_generates_distinct_uuid4_ids() -> None:
    collection = vecduck.Client().create_collection("idless", embedding_function=None)
    assert collection.add(embeddings=[[1.0, 2.0], [3.0, 4.0]], metadatas=[{"s": "a"}, {"s": "b"}]) is None
    got = collection.get(include=["metadatas", "embeddings"])
    assert len(set(got["ids"])) == 2
    assert all(uuid.UUID(i).version == 4 for i in got["ids"])
    assert sorted(m["s"] for m in got["metadatas"]) == ["a", "b"]
    collection.add(documents=["doc1000101"], embeddings=[[0.0, 1.0]])  # counted from any field
    assert collection.count() == 3
    with pytest.raises(ValueError):
        collection.add()  # nothing to count records from
    for method in (collection.upsert, collection.update):
        with pytest.raises(TypeError):
            method(embeddings=[[1.0, 2.0]])  # still required, as in chromadb
    with pytest.raises(ValueError):
        collection.delete()


def test_add_without_ids_with_documents_embeds_them() -> None:
    collection = vecduck.Client().create_collection("idless-docs")  # the default embedding function
    collection.add(documents=["doc1000101", "doc288822"], metadatas=[{"source": "my_source"}] * 2)
    got = collection.get(include=["documents", "embeddings"])
    assert sorted(got["documents"]) == ["doc1000101", "doc288822"] and got["embeddings"].shape == (2, 384)


@pytest.fixture(params=["chromadb", "vecduck"])
def client(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "chromadb":
        # chromadb keeps one in-memory instance per process and refuses another with other
        # settings: the ones every reference client of the suite uses, and none left behind
        from chromadb.api.client import SharedSystemClient

        reference = chromadb.EphemeralClient(
            settings=chromadb.Settings(allow_reset=True, anonymized_telemetry=False)
        )
        reference.reset()
        yield reference
        reference.reset()
        SharedSystemClient.clear_system_cache()
        return
    yield vecduck.Client()


def test_update_of_unknown_ids_fixes_the_dimension(client: object) -> None:
    collection = client.create_collection(f"dim-{uuid.uuid4().hex[:8]}", embedding_function=None)
    collection.update(ids=["nobody"], embeddings=[[1.0, 2.0]])
    assert collection.count() == 0
    with pytest.raises(Exception, match="dimension of 2"):
        collection.add(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
    collection.add(ids=["a"], embeddings=[[1.0, 2.0]])
    assert collection.count() == 1


def test_modify_with_none_values_drops_them(client: object) -> None:
    name = f"meta-{uuid.uuid4().hex[:8]}"
    collection = client.create_collection(name, metadata={"a": 1, "c": 2}, embedding_function=None)
    collection.modify(metadata={"c": None})
    assert client.get_collection(name, embedding_function=None).metadata is None
    collection.modify(metadata={"b": None, "d": 3})
    assert client.get_collection(name, embedding_function=None).metadata == {"d": 3}


def test_removing_every_key_leaves_no_metadata(client: object) -> None:
    collection = client.create_collection(f"keys-{uuid.uuid4().hex[:8]}", embedding_function=None)
    collection.add(ids=["a", "b"], embeddings=[[1.0, 2.0], [2.0, 1.0]], metadatas=[{"k": 1, "j": 2}, {"k": 1}])
    collection.update(ids=["a", "b"], metadatas=[{"k": None, "j": None}, {"j": None}])
    assert collection.get(ids=["a", "b"], include=["metadatas"])["metadatas"] == [None, {"k": 1}]
