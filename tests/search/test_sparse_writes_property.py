"""Random write sequences (hypothesis) on a BM25 collection that also holds user sparse
vectors, then dense, sparse and BM25 searches against the reference.

Adds, updates (documents, sparse vectors, metadata), upserts, deletions, re-adds of deleted
ids and (on the persistent client) flushes to the lake come in random order, so the sparse
indexes meet many small writes, rewritten and dead postings and rebuilt sidecars. After
the writes, BM25 text queries (IDF over the live records) and dot-product queries on the
user key are compared with search_reference, as are `rank=None` pages (insertion order).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import search_reference as ref
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from search_backends import unique
from search_reference import KnnSpec, Query, knn

import vecduck
from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction

EXAMPLES = int(os.environ.get("VECDUCK_SEARCH_EXAMPLES", "40")) // 5
DERANDOMIZE = not os.environ.get("VECDUCK_SEARCH_RANDOM")
# the default run does not shrink a failure (that can take minutes): set VECDUCK_SEARCH_RANDOM
PHASES = (Phase.explicit, Phase.generate) if DERANDOMIZE else tuple(Phase)
WORDS = ["fox", "dog", "river", "stone", "apple", "music", "runs", "running", "the", "of", "quick", "lazy"]
BM25 = ref.BM25_KEY
SP = ref.SPARSE_KEY


@functools.cache
def bm25_vector(text: str) -> tuple[list[int], list[float]]:
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction as Chroma

    vector = Chroma()([text])[0]
    return list(vector.indices), list(vector.values)


documents = st.one_of(st.none(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join))
sparse_vectors = st.one_of(
    st.none(),
    st.dictionaries(st.integers(0, 9), st.floats(0.125, 1.0, width=32), min_size=1, max_size=4).map(
        lambda d: (sorted(d), [d[i] for i in sorted(d)])
    ),
)
coordinates = st.floats(-1.0, 1.0, width=32)
# document, user sparse vector, group, embedding
records = st.tuples(documents, sparse_vectors, st.integers(0, 2), st.tuples(coordinates, coordinates))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(records, min_size=1, max_size=12)),
        st.tuples(st.just("update"), st.lists(st.tuples(st.integers(0, 10**6), records), min_size=1, max_size=5)),
        st.tuples(st.just("upsert"), st.lists(st.tuples(st.integers(0, 10**6), records), min_size=1, max_size=5)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 10**6), min_size=1, max_size=5)),
    ),
    min_size=1,
    max_size=10,
)
# at most one flush (writing to the lake takes a while), somewhere in the sequence
operations = st.tuples(operations, st.one_of(st.none(), st.integers(0, 10))).map(
    lambda p: p[0] if p[1] is None else [*p[0][: p[1]], ("flush", None), *p[0][p[1] :]]
)
QUERIES = {
    "bm25 a": Query(vector="fox dog", key=BM25),
    "bm25 b": Query(vector="running river the", key=BM25),
    "sp a": Query(indices=[1, 4, 7], values=[0.9, 0.5, 0.3], key=SP),
    "sp b": Query(indices=[0, 2, 3, 9], values=[0.2, 1.0, 0.6, 0.4], key=SP),
    "dense a": Query(vector=[0.25, -0.5]),
    "dense b": Query(vector=[-0.75, 1.0]),
}
SEARCHES = [
    (knn("bm25 a", limit=5), None),
    (knn("bm25 b", limit=1000), None),
    (knn("bm25 a", limit=1000), 1),
    (knn("sp a", limit=4), None),
    (knn("sp b", limit=1000), 2),
    (("rrf", [knn("bm25 b", 10, 20.0, True), knn("sp b", 10, 20.0, True)], 60, [2.0, 1.0], False), None),
    (knn("dense a", limit=3), None),
    (knn("dense b", limit=1000), 1),
    (("sum", [knn("dense a", 6, 2.0), knn("sp a", 6, 1.5), knn("bm25 a", 6, 1.0)]), 0),
]


class Live:
    """The reference state: live records in insertion order."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str | None, Any, int, Any]] = {}
        self.next_id = 0

    def new_id(self) -> str:
        self.next_id += 1
        return f"w{self.next_id}"

    def pick(self, number: int, deleted: list[str]) -> str:
        """An existing id (or, for some numbers, a deleted one to re-add or a new one)."""
        if number % 7 == 0 and deleted:
            return deleted[number % len(deleted)]
        if not self.records or number % 11 == 0:
            return f"w{10**7 + number}"
        ids = list(self.records)
        return ids[number % len(ids)]

    def expected(self, node: Any, group: int | None) -> ref.Expected:
        ids = list(self.records)
        bm25 = [None if r[0] is None else bm25_vector(r[0]) for r in self.records.values()]
        user = [r[1] for r in self.records.values()]
        embeddings = np.asarray([r[3] for r in self.records.values()], np.float32).reshape(len(ids), 2)
        idf = ref.bm25_idf(bm25, len(ids))

        def scores(spec: KnnSpec) -> dict[int, float]:
            query = QUERIES[spec.query]
            if query.key == BM25:
                indices, values = bm25_vector(query.vector)
                return ref.sparse_scores(bm25, indices, [v * idf(t) for t, v in zip(indices, values, strict=True)])
            if query.sparse:
                return ref.sparse_scores(user, query.indices, query.values)
            return dict(enumerate(ref.dense_distances(embeddings, query.vector, "l2").tolist()))

        candidates = [p for p, i in enumerate(ids) if group is None or self.records[i][2] == group]
        expected = ref.evaluate_rank(node, candidates, scores, lambda spec: not QUERIES[spec.query].sparse)
        return ref.Expected([(ids[p], s, t) for p, s, t in expected.ranked], expected.ambiguous)


def metadata(sparse: Any, group: int) -> dict[str, Any]:
    out: dict[str, Any] = {"g": group}
    if sparse is not None:
        out[SP] = vecduck.SparseVector(list(sparse[0]), [float(v) for v in sparse[1]])
    return out


@pytest.fixture(scope="module", params=["embedded", "persistent"])
def write_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if request.param == "embedded":
        yield vecduck.Client()
        return
    client = vecduck.PersistentClient(tmp_path_factory.mktemp("sparse-writes"))
    yield client
    client.close()


@settings(
    max_examples=max(EXAMPLES, 5),
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    phases=PHASES,
)
@given(steps=operations)
# found by this test: a record without the sparse keys, a deletion (even of a missing id), a
# record with them; and records with a key written to the lake, then one without it
@example(steps=[("add", [(None, None, 0, (0, 1))]), ("delete", [0]), ("add", [("fox", ([1], [0.5]), 0, (1, 0))])])
@example(steps=[("add", [("fox", ([1], [0.5]), 0, (0, 1))]), ("flush", None), ("add", [(None, None, 0, (1, 0))])])
def test_random_writes_then_sparse_searches(write_client: Any, steps: list[Any]) -> None:
    config = vecduck.SparseVectorIndexConfig(
        source_key=vecduck.K.DOCUMENT, embedding_function=ChromaBm25EmbeddingFunction(), bm25=True
    )
    schema = vecduck.Schema().create_index(config=config, key=BM25)
    collection = write_client.create_collection(unique("writes"), schema=schema, embedding_function=None)
    live, deleted = Live(), []
    for kind, payload in steps:
        if kind == "flush":
            if write_client.path is not None:  # the in-memory store is shared: its flush writes everything
                write_client.flush()
            continue
        if kind == "delete":
            ids = sorted({live.pick(n, deleted) for n in payload})
            collection.delete(ids=ids)
            for i in ids:
                if live.records.pop(i, None) is not None:
                    deleted.append(i)
            continue
        if kind == "add":
            batch = [(live.new_id(), record) for record in payload]
        else:
            batch = list({live.pick(n, deleted): record for n, record in payload}.items())
            if kind == "update":
                batch = [(i, r) for i, r in batch if i in live.records]  # updating a missing id is ignored
                if not batch:
                    continue
        ids = [i for i, _r in batch]
        arguments: dict[str, Any] = {
            "ids": ids,
            "embeddings": [list(r[3]) for _i, r in batch],
            "documents": [r[0] for _i, r in batch],
            "metadatas": [metadata(r[1], r[2]) for _i, r in batch],
        }
        if kind != "add" and any(r[0] is None for _i, r in batch):
            del arguments["documents"]  # keep the documents of existing records (new ones get none)
        getattr(collection, kind)(**arguments)
        for record_id, (document, sparse, group, embedding) in batch:
            if "documents" not in arguments:
                document = live.records[record_id][0] if record_id in live.records else None
            if record_id in live.records:
                old = live.records[record_id]
                # metadata updates merge: a record given no sparse vector keeps its old one
                live.records[record_id] = (document, sparse if sparse is not None else old[1], group, embedding)
            else:
                live.records[record_id] = (document, sparse, group, embedding)
                if record_id in deleted:
                    deleted.remove(record_id)

    searches = []
    for node, group in SEARCHES:
        search = vecduck.Search().rank(ref.build_rank(node, vecduck, QUERIES)).select(vecduck.K.SCORE)
        searches.append(search if group is None else search.where(vecduck.K("g") == group))
    searches.append(vecduck.Search().select(vecduck.K.SCORE))
    expected = [live.expected(node, group) for node, group in SEARCHES]
    assume(not any(e.ambiguous for e in expected))
    result = collection.search(searches)
    problems = []
    for at, ((node, group), want) in enumerate(zip(SEARCHES, expected, strict=True)):
        what = f"{str(node)[:60]} g={group}"
        problems += ref.check_page(result["ids"][at], result["scores"][at], want.ranked, what=what)
    if result["ids"][-1] != list(live.records):
        problems.append(f"rank=None order {result['ids'][-1]} != {list(live.records)}")
    assert not problems, "\n".join(problems[:20])
