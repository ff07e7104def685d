"""LangChain's own `Chroma` vector store (langchain-chroma), unchanged, over every vecduck client.

Embeddings come from LangChain's `DeterministicFakeEmbedding` (a sha256-seeded Gaussian vector per
text, no model); every answer is checked against NumPy distances computed from those vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from chromadb import K, Knn, Search
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

DIM = 16
EMBEDDINGS = DeterministicFakeEmbedding(size=DIM)

#: (id, text, metadata); "plain" has no metadata, which langchain writes in an upsert of its own
CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    ("apple", "Apples are crisp and grow in orchards", {"topic": "fruit", "rank": 1, "sweet": True}),
    ("banana", "Bananas are yellow and grow in bunches", {"topic": "fruit", "rank": 2, "sweet": True}),
    ("cherry", "Cherries are small red stone fruit", {"topic": "fruit", "rank": 3, "sweet": True}),
    ("lemon", "Lemons are sour citrus fruit", {"topic": "fruit", "rank": 4, "sweet": False}),
    ("cat", "Cats sleep most of the day", {"topic": "animal", "rank": 1, "weight": 4.5}),
    ("dog", "Dogs like long walks in the park", {"topic": "animal", "rank": 2, "weight": 30.0}),
    ("owl", "Owls hunt at night", {"topic": "animal", "rank": 3, "weight": 1.2}),
    ("paris", "Paris is the capital of France", {"topic": "city", "rank": 1, "country": "fr"}),
    ("lyon", "Lyon is known for its food", {"topic": "city", "rank": 2, "country": "fr"}),
    ("berlin", "Berlin has many museums", {"topic": "city", "rank": 3, "country": "de"}),
    ("plain", "A note without any metadata", {}),
]
BY_ID = {doc_id: (text, meta) for doc_id, text, meta in CORPUS}
QUERIES = ["which fruit is sweet", "animals at night", "a city with museums"]

Keep = Callable[[str, dict[str, Any]], bool]


def everything(text: str, meta: dict[str, Any]) -> bool:
    return True


def vectors(texts: list[str]) -> np.ndarray:
    """The fake's vectors as the store keeps them (float32)."""
    return np.asarray(EMBEDDINGS.embed_documents(texts), dtype=np.float32)


def distances(space: str, query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Chroma's distances: squared L2, 1 - cosine similarity, 1 - inner product."""
    q, m = query.astype(np.float64), matrix.astype(np.float64)
    if space == "l2":
        return ((m - q) ** 2).sum(axis=1)
    if space == "cosine":
        return 1.0 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
    assert space == "ip"
    return 1.0 - m @ q


def nearest(query: str, k: int, keep: Keep = everything, space: str = "l2") -> list[tuple[str, float]]:
    """The k nearest (id, distance) among the kept documents, nearest first."""
    kept = [(doc_id, text) for doc_id, text, meta in CORPUS if keep(text, meta)]
    found = distances(space, vectors([query])[0], vectors([text for _, text in kept]))
    order = np.argsort(found, kind="stable")
    ranked = found[order][: k + 1]
    assert np.all(np.diff(ranked) > 1e-4), "near tie in the test data: the expected order is ambiguous"
    return [(kept[i][0], float(found[i])) for i in order[:k]]


def mmr_reference(query: np.ndarray, candidates: np.ndarray, k: int, lambda_mult: float) -> list[int]:
    """Maximal marginal relevance over cosine similarities, greedy, as langchain describes it."""
    unit = candidates.astype(np.float64) / np.linalg.norm(candidates, axis=1, keepdims=True)
    to_query = unit @ (query / np.linalg.norm(query))
    chosen = [int(np.argmax(to_query))]
    while len(chosen) < min(k, len(candidates)):
        redundancy = (unit @ unit[chosen].T).max(axis=1)
        score = lambda_mult * to_query - (1 - lambda_mult) * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


def assert_documents(found: list[Document], expected_ids: list[str]) -> None:
    """The documents are the expected ones, in order, with their own text and metadata."""
    assert [doc.id for doc in found] == expected_ids
    for doc in found:
        text, meta = BY_ID[doc.id]
        assert doc.page_content == text
        assert doc.metadata == meta


def new_store(client: Any, name: str, **kwargs: Any) -> Chroma:
    return Chroma(collection_name=name, embedding_function=EMBEDDINGS, client=client, **kwargs)


def filled_store(client: Any, name: str, **kwargs: Any) -> Chroma:
    store = new_store(client, name, **kwargs)
    ids = [doc_id for doc_id, _, _ in CORPUS]
    added = store.add_texts([text for _, text, _ in CORPUS], metadatas=[meta for _, _, meta in CORPUS], ids=ids)
    assert added == ids
    return store


def test_similarity_search_with_and_without_filters(client: Any, collection_name: str) -> None:
    store = filled_store(client, collection_name)
    for query in QUERIES:
        assert_documents(store.similarity_search(query, k=4), [i for i, _ in nearest(query, 4)])

    fruit = {"topic": "fruit"}
    expected = nearest(QUERIES[1], 3, lambda _, meta: meta.get("topic") == "fruit")
    assert_documents(store.similarity_search(QUERIES[1], k=3, filter=fruit), [i for i, _ in expected])

    compound = {"$and": [{"topic": {"$in": ["animal", "city"]}}, {"rank": {"$gte": 2}}]}
    expected = nearest(QUERIES[0], 10, lambda _, m: m.get("topic") in ("animal", "city") and m.get("rank", 0) >= 2)
    assert len(expected) == 4  # the filter leaves fewer than k: all of them come back, in order
    assert_documents(store.similarity_search(QUERIES[0], k=10, filter=compound), [i for i, _ in expected])

    expected = nearest(QUERIES[2], 3, lambda text, _: "grow" in text)
    found = store.similarity_search(QUERIES[2], k=3, where_document={"$contains": "grow"})
    assert_documents(found, [i for i, _ in expected])

    by_vector = store.similarity_search_by_vector(EMBEDDINGS.embed_query(QUERIES[2]), k=2, filter={"country": "fr"})
    assert_documents(by_vector, [i for i, _ in nearest(QUERIES[2], 2, lambda _, m: m.get("country") == "fr")])


def test_scores_are_numpy_distances(client: Any, collection_name: str) -> None:
    store = filled_store(client, collection_name)
    for query in QUERIES:
        expected = nearest(query, 5)
        found = store.similarity_search_with_score(query, k=5)
        assert_documents([doc for doc, _ in found], [i for i, _ in expected])
        np.testing.assert_allclose([s for _, s in found], [d for _, d in expected], rtol=1e-4, atol=1e-4)

    expected = nearest(QUERIES[0], 2, lambda _, meta: meta.get("sweet") is False or meta.get("topic") == "city")
    where = {"$or": [{"sweet": False}, {"topic": "city"}]}
    found = store.similarity_search_with_score(QUERIES[0], k=2, filter=where)
    assert_documents([doc for doc, _ in found], [i for i, _ in expected])
    np.testing.assert_allclose([s for _, s in found], [d for _, d in expected], rtol=1e-4, atol=1e-4)


RELEVANCE = {
    "l2": lambda d: 1.0 - d / math.sqrt(2),
    "cosine": lambda d: 1.0 - d,
    "ip": lambda d: 1.0 - d if d > 0 else -d,
}


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
@pytest.mark.parametrize("declared_by", ["configuration", "metadata"])
@pytest.mark.filterwarnings("ignore:Relevance scores must be between 0 and 1")
# chromadb.HttpClient sends {"type": "legacy"} for a configuration without an embedding function
# and warns when it reads it back, from a Chroma server as from vecduck's
@pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")
def test_distance_space_and_relevance_scores(client: Any, collection_name: str, space: str, declared_by: str) -> None:
    """The space (declared either way) sets the distances, and langchain reads it back from the
    collection's configuration to pick its relevance function."""
    if declared_by == "configuration":
        store = filled_store(client, collection_name, collection_configuration={"hnsw": {"space": space}})
    else:
        store = filled_store(client, collection_name, collection_metadata={"hnsw:space": space})
    expected = nearest(QUERIES[1], 4, space=space)

    found = store.similarity_search_with_score(QUERIES[1], k=4)
    assert_documents([doc for doc, _ in found], [i for i, _ in expected])
    np.testing.assert_allclose([s for _, s in found], [d for _, d in expected], rtol=1e-4, atol=1e-4)

    relevant = store.similarity_search_with_relevance_scores(QUERIES[1], k=4)
    assert_documents([doc for doc, _ in relevant], [i for i, _ in expected])
    scores = [RELEVANCE[space](d) for _, d in expected]
    np.testing.assert_allclose([s for _, s in relevant], scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lambda_mult", [0.25, 0.5])
def test_max_marginal_relevance_search(client: Any, collection_name: str, lambda_mult: float) -> None:
    store = filled_store(client, collection_name)
    for query, keep, where in [
        (QUERIES[0], everything, None),
        (QUERIES[2], lambda _, meta: meta.get("topic") != "animal", {"topic": {"$ne": "animal"}}),  # $ne keeps "plain"
    ]:
        candidates = [doc_id for doc_id, _ in nearest(query, 8, keep)]
        chosen = mmr_reference(vectors([query])[0], vectors([BY_ID[i][0] for i in candidates]), 4, lambda_mult)
        # langchain returns the chosen ones in the candidates' (nearest first) order
        expected = [candidates[i] for i in sorted(chosen)]
        found = store.max_marginal_relevance_search(query, k=4, fetch_k=8, lambda_mult=lambda_mult, filter=where)
        assert_documents(found, expected)
        if lambda_mult == 0.25:  # the data makes diversity matter: not merely the 4 nearest
            assert expected != candidates[:4]

    pure_relevance = store.max_marginal_relevance_search(QUERIES[1], k=3, fetch_k=6, lambda_mult=1.0)
    assert_documents(pure_relevance, [i for i, _ in nearest(QUERIES[1], 3)])


def test_get_update_and_delete(client: Any, collection_name: str) -> None:
    documents = [Document(page_content=text, metadata=meta, id=doc_id) for doc_id, text, meta in CORPUS]
    store = Chroma.from_documents(documents, EMBEDDINGS, collection_name=collection_name, client=client)

    everything_stored = store.get(include=["documents", "metadatas", "embeddings"])
    assert sorted(everything_stored["ids"]) == sorted(BY_ID)
    for doc_id, text, meta, vector in zip(
        everything_stored["ids"],
        everything_stored["documents"],
        everything_stored["metadatas"],
        everything_stored["embeddings"],
        strict=True,
    ):
        assert (text, meta or {}) == BY_ID[doc_id]
        np.testing.assert_allclose(vector, vectors([text])[0], rtol=1e-6)

    picked = store.get(ids=["owl", "paris"])
    assert sorted(zip(picked["ids"], picked["documents"], strict=True)) == [
        ("owl", BY_ID["owl"][0]),
        ("paris", BY_ID["paris"][0]),
    ]
    assert picked["embeddings"] is None  # langchain's default include: documents and metadatas
    cities = store.get(where={"topic": "city"})
    assert sorted(cities["ids"]) == ["berlin", "lyon", "paris"]
    assert all(meta["topic"] == "city" for meta in cities["metadatas"])
    pages = [store.get(limit=4, offset=offset)["ids"] for offset in (0, 4, 8)]
    assert [len(page) for page in pages] == [4, 4, 3]
    assert [i for page in pages for i in page] == store.get()["ids"]
    assert sorted(doc.id for doc in store.get_by_ids(["cat", "missing", "dog"])) == ["cat", "dog"]

    changed = Document(page_content="Dogs are loyal companions", metadata={"topic": "animal", "rank": 9})
    store.update_document("dog", changed)
    assert store.get(ids=["dog"])["documents"] == ["Dogs are loyal companions"]
    # chromadb's update merges the new keys into the stored metadata
    assert store.get(ids=["dog"])["metadatas"] == [{"topic": "animal", "rank": 9, "weight": 30.0}]
    nearest_dog = store.similarity_search_with_score("Dogs are loyal companions", k=1)
    assert nearest_dog[0][0].id == "dog"
    assert nearest_dog[0][1] == pytest.approx(0.0, abs=1e-4)

    store.delete(ids=["apple", "cat"])
    assert store.get(ids=["apple", "cat"])["ids"] == []
    remaining = {i for i in BY_ID if i not in ("apple", "cat")}
    assert set(store.get()["ids"]) == remaining
    kept = lambda _, meta: meta.get("topic") == "fruit" and meta.get("rank") != 1  # noqa: E731
    found = store.similarity_search(QUERIES[0], k=10, filter={"topic": "fruit"})
    assert_documents(found, [i for i, _ in nearest(QUERIES[0], 10, kept)])

    store.delete(where={"topic": "city"})  # extra arguments go to the collection's delete
    assert set(store.get()["ids"]) == remaining - {"paris", "lyon", "berlin"}

    store.reset_collection()
    assert store.get()["ids"] == []
    store.delete_collection()
    assert collection_name not in [c.name for c in client.list_collections()]


def test_hybrid_search_and_fork(client: Any, collection_name: str) -> None:
    """langchain hands chromadb's own `Search` expression to the collection; `fork` copies it."""
    store = filled_store(client, collection_name)
    search = (
        Search()
        .where((K("topic") == "fruit") | (K("country") == "fr"))
        .rank(Knn(query=EMBEDDINGS.embed_query(QUERIES[1])))
        .limit(4)
        .select(K.DOCUMENT, K.SCORE, "topic", "rank")
    )
    found = store.hybrid_search(search)
    expected = nearest(QUERIES[1], 4, lambda _, meta: meta.get("topic") == "fruit" or meta.get("country") == "fr")
    assert [doc.id for doc in found] == [i for i, _ in expected]
    for doc in found:
        text, meta = BY_ID[doc.id]
        assert doc.page_content == text
        assert doc.metadata == {key: meta[key] for key in ("topic", "rank")}  # only the selected keys

    fork = store.fork(f"{collection_name}-fork")
    try:
        fork.delete(ids=["apple"])
        assert len(store.get()["ids"]) == len(CORPUS)  # the original keeps what the fork dropped
        assert sorted(fork.get()["ids"]) == sorted(i for i in BY_ID if i != "apple")
        assert_documents(
            fork.similarity_search(QUERIES[0], k=3),
            [i for i, _ in nearest(QUERIES[0], 3, lambda t, _: t != BY_ID["apple"][0])],
        )
    finally:
        fork.delete_collection()


def test_a_second_client_reopens_the_store(connect: Any, client: Any, collection_name: str) -> None:
    """What one client wrote, a new client (for `persistent`: after the first closed) finds."""
    filled_store(client, collection_name)
    if connect.kind == "persistent":
        client.close()
    again = Chroma(
        collection_name=collection_name,
        embedding_function=EMBEDDINGS,
        client=connect(),
        create_collection_if_not_exists=False,
    )
    assert len(again.get()["ids"]) == len(CORPUS)
    found = again.similarity_search_with_score(QUERIES[0], k=3, filter={"topic": "animal"})
    expected = nearest(QUERIES[0], 3, lambda _, meta: meta.get("topic") == "animal")
    assert_documents([doc for doc, _ in found], [i for i, _ in expected])
    np.testing.assert_allclose([s for _, s in found], [d for _, d in expected], rtol=1e-4, atol=1e-4)
