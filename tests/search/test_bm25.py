"""BM25 collections (schema `SparseVectorIndexConfig(bm25=True)` on `#document`) and text
queries, on every client kind.

The collection computes the documents' sparse vectors itself; the expected ones come from
chromadb's own `ChromaBm25EmbeddingFunction`, and the expected scores from the IDF formula
`ln(1 + (n - n_t + 0.5) / (n_t + 0.5))` over the collection's live records (n: all of
them, n_t: those whose vector holds term t): score = 1 - sum_t q_t * idf(t) * d_t. Dense
text queries are embedded with vecduck's offline DefaultEmbeddingFunction, the collection's.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import search_reference as ref
from search_backends import Backend, unique
from search_reference import KnnSpec, Query, knn

BM25 = ref.BM25_KEY
VOCABULARY = [
    "the", "a", "of", "and", "fox", "foxes", "running", "runs", "runner", "dog", "dogs", "quick",
    "lazy", "river", "rivers", "stone", "music", "musical", "apple", "apples", "over", "jumps",
]  # fmt: skip
DIM = 384


@functools.cache
def dense_function() -> Any:
    from vecduck.utils.embedding_functions import DefaultEmbeddingFunction

    return DefaultEmbeddingFunction()


@functools.cache
def chroma_bm25() -> Any:
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

    return ChromaBm25EmbeddingFunction()


@functools.cache
def bm25_vector(text: str) -> tuple[list[int], list[float]]:
    vector = chroma_bm25()([text])[0]
    return list(vector.indices), list(vector.values)


@functools.cache
def bm25_query(text: str) -> tuple[list[int], list[float]]:
    vector = chroma_bm25().embed_query([text])[0]
    return list(vector.indices), list(vector.values)


@functools.cache
def text_embedding(text: str) -> np.ndarray:
    return np.asarray(dense_function().embed_query([text])[0], np.float32)


QUERIES = {
    "fox dog": Query(vector="fox dog", key=BM25),
    "running": Query(vector="running foxes quick", key=BM25),
    "apples": Query(vector="apple apple river", key=BM25),
    "fox dog explicit": Query(indices=bm25_query("fox dog")[0], values=bm25_query("fox dog")[1], key=BM25),
    "lazy dog": Query(vector="lazy dog", key=BM25),
    "lazy dog dense": Query(vector="lazy dog"),
    "zebra": Query(vector="zebra", key=BM25),
    "fox": Query(vector="fox", key=BM25),
    "fox dense": Query(vector="fox"),
}


class Corpus:
    """The live records of the BM25 collection, in insertion order."""

    def __init__(self, ids: list[str], documents: list[str | None], embeddings: np.ndarray, groups: list[Any]) -> None:
        self.ids = list(ids)
        self.documents = dict(zip(ids, documents, strict=True))
        self.embeddings = dict(zip(ids, embeddings, strict=True))
        self.groups = dict(zip(ids, groups, strict=True))

    def add(self, record_id: str, document: str | None, embedding: np.ndarray, group: Any) -> None:
        self.ids.append(record_id)
        self.documents[record_id] = document
        self.embeddings[record_id] = embedding
        self.groups[record_id] = group

    def delete(self, ids: list[str]) -> None:
        self.ids = [i for i in self.ids if i not in ids]

    def vectors(self) -> list[tuple[list[int], list[float]] | None]:
        return [None if self.documents[i] is None else bm25_vector(self.documents[i]) for i in self.ids]

    def expected(self, node: Any, group: int | None = None) -> ref.Expected:
        vectors = self.vectors()
        idf = ref.bm25_idf(vectors, len(self.ids))
        matrix = np.stack([self.embeddings[i] for i in self.ids])

        def scores(spec: KnnSpec) -> dict[int, float]:
            query = QUERIES[spec.query]
            if query.key == BM25:
                indices, values = (query.indices, query.values) if query.sparse else bm25_query(query.vector)
                weighted = [v * idf(t) for t, v in zip(indices, values, strict=True)]
                return ref.sparse_scores(vectors, indices, weighted)
            return dict(enumerate(ref.dense_distances(matrix, text_embedding(query.vector), "l2").tolist()))

        candidates = [p for p, i in enumerate(self.ids) if group is None or self.groups[i] == group]
        expected = ref.evaluate_rank(node, candidates, scores)
        return ref.Expected([(self.ids[p], s, t) for p, s, t in expected.ranked], expected.ambiguous)


SEARCHES: list[tuple[Any, int | None]] = [
    (knn("fox dog", limit=10), None),
    (knn("running", limit=1000), None),
    (knn("apples", limit=5), 1),
    (knn("fox dog explicit", limit=10), None),
    (
        (
            "rrf",
            [knn("lazy dog dense", 20, 50.0, True), knn("lazy dog", 20, 50.0, True)],
            60,
            [0.6, 0.4],
            False,
        ),
        None,
    ),
    (knn("lazy dog dense", limit=8), 2),
    (knn("zebra", limit=5), None),
    (("sum", [("mul", [knn("fox", 30, 1.0), ("val", 0.5)]), knn("fox dense", 30, 3.0)]), None),
]


def check_phase(collection: Any, api: Any, corpus: Corpus, phase: str) -> None:
    # the sparse vectors the collection computed from the documents
    stored = collection.get(ids=corpus.ids, include=["metadatas", "documents"])
    problems = []
    for record_id, document, metadata in zip(stored["ids"], stored["documents"], stored["metadatas"], strict=True):
        assert document == corpus.documents[record_id], (phase, record_id)
        vector = (metadata or {}).get(BM25)
        if corpus.documents[record_id] is None:
            if vector is not None:
                problems.append(f"{phase} {record_id}: a record without document has a BM25 vector")
            continue
        want = bm25_vector(corpus.documents[record_id])
        if vector is None:
            problems.append(f"{phase} {record_id}: no BM25 vector")
        elif list(vector.indices) != want[0] or not np.allclose(vector.values, want[1], rtol=1e-6):
            problems.append(f"{phase} {record_id}: BM25 vector {vector} != {want}")
    assert sorted(stored["ids"]) == sorted(corpus.ids)

    searches = []
    for node, group in SEARCHES:
        search = api.Search().rank(ref.build_rank(node, api, QUERIES)).select(api.K.SCORE)
        searches.append(search.where(api.K("g") == group) if group is not None else search)
    result = collection.search(searches)
    for at, (node, group) in enumerate(SEARCHES):
        expected = corpus.expected(node, group)
        assert not expected.ambiguous, (phase, node)
        what = f"{phase}: {str(node)[:70]} g={group}"
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=what)
    assert result["ids"][3] == result["ids"][0], "an explicit sparse query takes the IDF weights too"
    assert not problems, "\n".join(problems[:30])


def make_corpus(seed: int, n: int) -> Corpus:
    rng = np.random.default_rng(seed)
    documents: list[str | None] = [" ".join(rng.choice(VOCABULARY, size=int(rng.integers(1, 12)))) for _ in range(n)]
    for i in (5, 17, 44, 61):
        documents[i] = None
    documents[23] = "the of and a"  # stopwords only: an empty sparse vector
    embeddings = rng.normal(size=(n, DIM)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    groups = [None if i % 10 == 9 else i % 3 for i in range(n)]
    return Corpus([f"b{i}" for i in range(n)], documents, embeddings, groups)


def test_bm25_lifecycle(backend: Backend) -> None:
    """Added documents get BM25 vectors and are scored with the collection's IDF; an update
    of the documents recomputes them; a deletion takes records out of scoring and of n / n_t."""
    api = backend.api
    corpus = make_corpus(99, 90)
    name = unique("bm25")
    collection = backend.create(name, schema=backend.bm25_schema(), embedding_function=dense_function())
    collection.add(
        ids=corpus.ids,
        embeddings=np.stack([corpus.embeddings[i] for i in corpus.ids]),
        documents=[corpus.documents[i] for i in corpus.ids],
        metadatas=[None if g is None else {"g": g} for g in (corpus.groups[i] for i in corpus.ids)],
    )
    collection = backend.settle(collection)
    check_phase(collection, api, corpus, "added")

    changed = {"b3": "zebra fox fox", "b10": "the lazy river", "b41": "music musical apples", "b5": "fox runs"}
    # the same embeddings (else the collection's function would embed the new documents)
    same = np.stack([corpus.embeddings[i] for i in changed])
    collection.update(ids=list(changed), documents=list(changed.values()), embeddings=same)
    corpus.documents.update(changed)
    # a metadata-only update keeps the vector; an upsert computes those of its documents
    collection.update(ids=["b20", "b21"], metadatas=[{"g": 0}, {"g": 1}])
    corpus.groups.update({"b20": 0, "b21": 1})
    extra = np.stack([corpus.embeddings["b30"], corpus.embeddings["b31"]])
    collection.upsert(
        ids=["b30", "b900"],
        documents=["fox fox dogs river", "zebra apple"],
        embeddings=extra,
        metadatas=[{"g": 1}, {"g": 1}],
    )
    corpus.add("b900", "zebra apple", extra[1], 1)
    corpus.documents["b30"] = "fox fox dogs river"
    corpus.groups["b30"] = 1
    check_phase(collection, api, corpus, "updated")

    gone = ["b0", "b1", "b17", "b44", "b10", "b62", "b63", "b64", "b65", "b66", "b67", "b68"]
    collection.delete(ids=gone)
    corpus.delete(gone)
    collection = backend.settle(collection)
    check_phase(collection, api, corpus, "deleted")
    result = collection.search(api.Search().rank(api.Knn(query="fox", key=BM25, limit=1000)))
    assert not set(gone) & set(result["ids"][0])


def test_text_query_needs_a_function_for_its_key(backend: Backend) -> None:
    """A text query on a key without a sparse embedding function is refused (ValueError on
    the client that embeds, an invalid-argument error on the server otherwise)."""
    api = backend.api
    collection = backend.create(unique("no-function"), space="l2")
    collection.add(ids=["a"], embeddings=[[1.0, 0.0]], metadatas=[{ref.SPARSE_KEY: api.SparseVector([1], [1.0])}])
    try:
        collection.search(api.Search().rank(api.Knn(query="words", key=ref.SPARSE_KEY)))
    except Exception as error:  # the kind depends on the client
        assert "embed" in str(error).lower() or "sparse" in str(error).lower(), error
    else:
        raise AssertionError("a text query without an embedding function was accepted")
