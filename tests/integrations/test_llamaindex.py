"""LlamaIndex's own `ChromaVectorStore` (llama-index-vector-stores-chroma), unchanged, over every
vecduck client: the store's API directly, and a `VectorStoreIndex` built on it.

LlamaIndex's `MockEmbedding` gives every text the same vector, which orders nothing; `HashEmbedding`
below gives each text a sha256-seeded Gaussian vector instead (deterministic, no model). Every answer
is checked against NumPy distances computed from those vectors.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import chromadb
import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.chroma import ChromaVectorStore

DIM = 16


def hash_vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).tolist()


class HashEmbedding(BaseEmbedding):
    """A deterministic, offline embedding model: one sha256-seeded Gaussian vector per text."""

    def _get_text_embedding(self, text: str) -> list[float]:
        return hash_vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return hash_vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return hash_vector(query)


#: (node id, source document id, text, metadata)
CORPUS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("n-apple", "doc-fruit", "Apples are crisp and grow in orchards", {"topic": "fruit", "rank": 1}),
    ("n-banana", "doc-fruit", "Bananas are yellow and grow in bunches", {"topic": "fruit", "rank": 2}),
    ("n-cherry", "doc-fruit", "Cherries are small red stone fruit", {"topic": "fruit", "rank": 3}),
    ("n-lemon", "doc-fruit", "Lemons are sour citrus fruit", {"topic": "fruit", "rank": 4}),
    ("n-cat", "doc-animal", "Cats sleep most of the day", {"topic": "animal", "rank": 1, "weight": 4.5}),
    ("n-dog", "doc-animal", "Dogs like long walks in the park", {"topic": "animal", "rank": 2, "weight": 30.0}),
    ("n-owl", "doc-animal", "Owls hunt at night", {"topic": "animal", "rank": 3, "weight": 1.2}),
    ("n-paris", "doc-city", "Paris is the capital of France", {"topic": "city", "rank": 1, "country": "fr"}),
    ("n-lyon", "doc-city", "Lyon is known for its food", {"topic": "city", "rank": 2, "country": "fr"}),
    ("n-berlin", "doc-city", "Berlin has many museums", {"topic": "city", "rank": 3, "country": "de"}),
    ("n-plain", "doc-note", "A note without any metadata", {}),
]
BY_ID = {node_id: (doc_id, text, meta) for node_id, doc_id, text, meta in CORPUS}
QUERIES = ["which fruit is sweet", "animals at night", "a city with museums"]


def vectors(texts: list[str]) -> np.ndarray:
    return np.asarray([hash_vector(text) for text in texts], dtype=np.float32)


def squared_l2(query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Chroma's default distance."""
    return ((matrix.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)


Keep = Callable[[str, dict[str, Any]], bool]


def everything(text: str, meta: dict[str, Any]) -> bool:
    return True


def nearest(query: str, k: int, keep: Keep = everything) -> list[tuple[str, float]]:
    """The k nearest (node id, distance) among the kept nodes (by text and metadata), nearest first."""
    kept = [(node_id, text) for node_id, _, text, meta in CORPUS if keep(text, meta)]
    found = squared_l2(vectors([query])[0], vectors([text for _, text in kept]))
    order = np.argsort(found, kind="stable")
    ranked = found[order][: k + 1]
    assert np.all(np.diff(ranked) > 1e-4), "near tie in the test data: the expected order is ambiguous"
    return [(kept[i][0], float(found[i])) for i in order[:k]]


def mmr_reference(query: np.ndarray, candidates: np.ndarray, k: int, threshold: float) -> list[int]:
    """LlamaIndex's MMR as it documents it: cosine similarity to the query, weighed by `threshold`,
    less the similarity to the most recently chosen one; the chosen indices in the order chosen."""
    unit = candidates.astype(np.float64) / np.linalg.norm(candidates, axis=1, keepdims=True)
    to_query = unit @ (query / np.linalg.norm(query))
    chosen = [int(np.argmax(to_query))]
    while len(chosen) < min(k, len(candidates)):
        score = threshold * to_query - (1 - threshold) * (unit @ unit[chosen[-1]])
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


def nodes() -> list[TextNode]:
    return [
        TextNode(
            id_=node_id,
            text=text,
            metadata=dict(meta),
            embedding=hash_vector(text),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)},
        )
        for node_id, doc_id, text, meta in CORPUS
    ]


def assert_nodes(found: list[Any], expected_ids: list[str]) -> None:
    """The nodes are the expected ones, in order, rebuilt with their text, metadata and source."""
    assert [node.node_id for node in found] == expected_ids
    for node in found:
        doc_id, text, meta = BY_ID[node.node_id]
        assert (node.text, node.metadata, node.ref_doc_id) == (text, meta, doc_id)


def filled_store(client: Any, name: str) -> ChromaVectorStore:
    # the store brings its own embeddings: no embedding function on the collection
    store = ChromaVectorStore(chroma_collection=client.get_or_create_collection(name, embedding_function=None))
    assert store.add(nodes()) == [node_id for node_id, _, _, _ in CORPUS]
    return store


def query(store: ChromaVectorStore, text: str, k: int, filters: MetadataFilters | None = None, **kwargs: Any) -> Any:
    asked = VectorStoreQuery(query_embedding=hash_vector(text), similarity_top_k=k, filters=filters, **kwargs)
    return store.query(asked)


def assert_similarities(similarities: list[float] | None, expected: list[tuple[str, float]]) -> None:
    """The store reports exp(-distance)."""
    assert similarities is not None
    np.testing.assert_allclose(similarities, [math.exp(-d) for _, d in expected], rtol=1e-4, atol=1e-9)


def test_query_with_and_without_filters(client: Any, collection_name: str) -> None:
    store = filled_store(client, collection_name)
    for text in QUERIES:
        expected = nearest(text, 4)
        found = query(store, text, 4)
        assert found.ids == [i for i, _ in expected]
        assert_nodes(found.nodes, found.ids)
        assert_similarities(found.similarities, expected)

    fruit = MetadataFilters(filters=[MetadataFilter(key="topic", value="fruit")])
    expected = nearest(QUERIES[1], 3, lambda _, meta: meta.get("topic") == "fruit")
    found = query(store, QUERIES[1], 3, fruit)
    assert_nodes(found.nodes, [i for i, _ in expected])
    assert_similarities(found.similarities, expected)

    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value=["animal", "city"], operator=FilterOperator.IN),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="rank", value=3, operator=FilterOperator.GTE),
                    MetadataFilter(key="country", value="fr", operator=FilterOperator.EQ),
                ],
                condition=FilterCondition.OR,
            ),
        ],
        condition=FilterCondition.AND,
    )
    keep = lambda _, m: m.get("topic") in ("animal", "city") and (m.get("rank", 0) >= 3 or m.get("country") == "fr")  # noqa: E731
    expected = nearest(QUERIES[0], 10, keep)
    assert 0 < len(expected) < 10  # fewer than k pass the filter: all of them come back, in order
    found = query(store, QUERIES[0], 10, nested)
    assert_nodes(found.nodes, [i for i, _ in expected])
    assert_similarities(found.similarities, expected)

    # chromadb's $ne and $nin keep the nodes without the key ("n-plain")
    light = MetadataFilters(
        filters=[
            MetadataFilter(key="weight", value=10.0, operator=FilterOperator.LT),
            MetadataFilter(key="topic", value=["fruit", "city"], operator=FilterOperator.NIN),
        ],
        condition=FilterCondition.OR,
    )
    expected = nearest(
        QUERIES[2], 4, lambda _, m: m.get("weight", math.inf) < 10.0 or m.get("topic") not in ("fruit", "city")
    )
    assert "n-plain" in [i for i, _ in expected]
    found = query(store, QUERIES[2], 4, light)
    assert_nodes(found.nodes, [i for i, _ in expected])

    # chroma-specific arguments pass through to the collection
    found = store.query(
        VectorStoreQuery(query_embedding=hash_vector(QUERIES[0]), similarity_top_k=2),
        where_document={"$contains": "grow"},
    )
    expected = nearest(QUERIES[0], 2, lambda text, _: "grow" in text)
    assert_nodes(found.nodes, [i for i, _ in expected])
    assert_similarities(found.similarities, expected)


@pytest.mark.parametrize("threshold", [0.2, 0.5])
def test_mmr_query_mode(client: Any, collection_name: str, threshold: float) -> None:
    store = filled_store(client, collection_name)
    for text, keep, filters in [
        (QUERIES[0], everything, None),
        (
            QUERIES[2],
            lambda _, meta: meta.get("topic") != "animal",  # $ne keeps "n-plain"
            MetadataFilters(filters=[MetadataFilter(key="topic", value="animal", operator=FilterOperator.NE)]),
        ),
    ]:
        candidates = nearest(text, 9, keep)  # the store prefetches 3 * 3 candidates
        chosen = mmr_reference(vectors([text])[0], vectors([BY_ID[i][1] for i, _ in candidates]), 3, threshold)
        expected = [candidates[i] for i in chosen]
        asked = VectorStoreQuery(
            query_embedding=hash_vector(text), similarity_top_k=3, filters=filters, mode=VectorStoreQueryMode.MMR
        )
        found = store.query(asked, mmr_threshold=threshold, mmr_prefetch_factor=3)
        assert found.ids == [i for i, _ in expected]
        assert_nodes(found.nodes, found.ids)
        assert_similarities(found.similarities, expected)
        if threshold == 0.2:  # the data makes diversity matter: not merely the 3 nearest
            assert sorted(found.ids) != sorted(i for i, _ in candidates[:3])


def test_get_nodes_and_delete(client: Any, collection_name: str) -> None:
    store = filled_store(client, collection_name)

    assert_nodes(store.get_nodes(["n-owl"]), ["n-owl"])
    assert sorted(node.node_id for node in store.get_nodes(["n-cat", "n-lyon"])) == ["n-cat", "n-lyon"]
    french = MetadataFilters(filters=[MetadataFilter(key="country", value="fr")])
    found = store.get_nodes(None, filters=french)  # type: ignore[arg-type]  # the store takes one MetadataFilters
    assert sorted(node.node_id for node in found) == ["n-lyon", "n-paris"]
    assert_nodes(found, [node.node_id for node in found])

    stored = store.client.get(include=["documents", "metadatas", "embeddings"])
    assert sorted(stored["ids"]) == sorted(BY_ID)
    for node_id, text, meta, vector in zip(
        stored["ids"], stored["documents"], stored["metadatas"], stored["embeddings"], strict=True
    ):
        doc_id, expected_text, expected_meta = BY_ID[node_id]
        assert text == expected_text
        assert {key: meta[key] for key in expected_meta} == expected_meta  # beside llama's own keys
        assert (meta["document_id"], meta["ref_doc_id"]) == (doc_id, doc_id)
        np.testing.assert_allclose(vector, hash_vector(expected_text), rtol=1e-6)

    store.delete("doc-animal")  # by ref_doc_id
    remaining = {i for i, (doc_id, _, _) in BY_ID.items() if doc_id != "doc-animal"}
    assert set(store.client.get()["ids"]) == remaining
    found = query(store, QUERIES[1], 3)
    assert found.ids == [i for i, _ in nearest(QUERIES[1], 3, lambda _, meta: meta.get("topic") != "animal")]

    store.delete_nodes(["n-apple", "n-plain"])
    remaining -= {"n-apple", "n-plain"}
    assert set(store.client.get()["ids"]) == remaining

    high_rank = MetadataFilters(filters=[MetadataFilter(key="rank", value=3, operator=FilterOperator.GTE)])
    store.delete_nodes(["n-lemon", "n-banana", "n-berlin"], filters=high_rank)  # ids AND filter
    remaining -= {"n-lemon", "n-berlin"}
    assert set(store.client.get()["ids"]) == remaining

    store.clear()
    assert store.client.get()["ids"] == []


def test_vector_store_index_end_to_end(connect: Any, client: Any, collection_name: str) -> None:
    """The usual LlamaIndex path: documents -> index over the store -> retrievers -> delete_ref_doc;
    then a new client reopens the collection as an index."""
    documents = [
        # no metadata in the embedded text, so the vectors are hash_vector(text)
        Document(text=text, doc_id=node_id, metadata=dict(meta), excluded_embed_metadata_keys=list(meta))
        for node_id, _, text, meta in CORPUS
    ]
    store = ChromaVectorStore(
        chroma_collection=client.get_or_create_collection(collection_name, embedding_function=None)
    )
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=HashEmbedding()
    )
    assert sorted(meta["ref_doc_id"] for meta in store.client.get()["metadatas"]) == sorted(BY_ID)

    def retrieved(index: VectorStoreIndex, text: str, **kwargs: Any) -> list[tuple[str, str, dict, float]]:
        return [
            (hit.node.ref_doc_id, hit.node.get_content(), hit.node.metadata, hit.score)
            for hit in index.as_retriever(**kwargs).retrieve(text)
        ]

    def as_hits(expected: list[tuple[str, float]]) -> list[tuple[str, str, dict, float]]:
        return [(i, BY_ID[i][1], BY_ID[i][2], pytest.approx(math.exp(-d), rel=1e-4)) for i, d in expected]

    assert retrieved(index, QUERIES[0], similarity_top_k=3) == as_hits(nearest(QUERIES[0], 3))
    cities = MetadataFilters(filters=[MetadataFilter(key="topic", value="city")])
    expected = nearest(QUERIES[1], 2, lambda _, meta: meta.get("topic") == "city")
    assert retrieved(index, QUERIES[1], similarity_top_k=2, filters=cities) == as_hits(expected)

    candidates = nearest(QUERIES[2], 8)
    chosen = mmr_reference(vectors([QUERIES[2]])[0], vectors([BY_ID[i][1] for i, _ in candidates]), 2, 0.3)
    mmr = retrieved(
        index, QUERIES[2], similarity_top_k=2, vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": 0.3}
    )
    assert mmr == as_hits([candidates[i] for i in chosen])

    index.delete_ref_doc("n-owl")
    assert "n-owl" not in {meta["ref_doc_id"] for meta in store.client.get()["metadatas"]}

    if connect.kind == "persistent":
        client.close()
    reopened = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=connect().get_collection(collection_name)), embed_model=HashEmbedding()
    )
    expected = nearest(QUERIES[1], 3, lambda text, _: text != BY_ID["n-owl"][1])
    assert retrieved(reopened, QUERIES[1], similarity_top_k=3) == as_hits(expected)


def test_from_collection(client: Any, collection_name: str) -> None:
    """`ChromaVectorStore.from_collection` insists on an instance of `chromadb.Collection`."""
    collection = client.get_or_create_collection(collection_name, embedding_function=None)
    if not isinstance(collection, chromadb.Collection):
        with pytest.raises(Exception, match="argument is not chromadb collection instance"):
            ChromaVectorStore.from_collection(collection)
        pytest.xfail("vecduck's collections are not chromadb.Collection: use ChromaVectorStore(chroma_collection=...)")
    store = ChromaVectorStore.from_collection(collection)
    some = nodes()[:3]
    store.add(some)
    expected = nearest(QUERIES[0], 2, lambda text, _: text in {node.text for node in some})
    found = query(store, QUERIES[0], 2)
    assert_nodes(found.nodes, [i for i, _ in expected])
    assert_similarities(found.similarities, expected)
