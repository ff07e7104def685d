"""ef_search left at chromadb's default is calibrated on the collection's own vectors
(VectorIndex.calibrate); any other value is used as given. Recall is checked against
NumPy's exact answer on data where a width of 100 is not enough."""

from __future__ import annotations

import numpy as np
import pytest

import vecduck
from vecduck.engine.index import (
    AUTO_EF,
    CALIBRATION_QUERIES,
    CALIBRATION_TARGET,
    EF_LADDER,
    IndexSettings,
    VectorIndex,
)

K = 10


def hard_vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Uniform directions: no clusters for the graph to lean on, so a narrow search misses."""
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    distances = 1.0 - queries.astype(np.float64) @ vectors.astype(np.float64).T
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return sum(len(set(row) & set(t.tolist())) for row, t in zip(found, truth, strict=True)) / truth.size


def test_auto_width_is_calibrated_and_reaches_recall_a_width_of_100_does_not(tmp_path) -> None:
    vectors = hard_vectors(8_000)
    queries = hard_vectors(60, seed=1)
    truth = exact_top(vectors, queries)
    client = vecduck.PersistentClient(path=str(tmp_path))
    auto = client.create_collection("auto", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    fixed = client.create_collection(
        "fixed", embedding_function=None, configuration={"hnsw": {"space": "cosine", "ef_search": 101}}
    )
    ids = [str(i) for i in range(len(vectors))]
    for collection in (auto, fixed):
        collection.add(ids=ids, embeddings=vectors)

    def answers(collection) -> list[list[int]]:
        result = collection.query(query_embeddings=queries, n_results=K)
        return [[int(i) for i in row] for row in result["ids"]]

    auto_recall, fixed_recall = recall(answers(auto), truth), recall(answers(fixed), truth)
    assert fixed_recall < 0.97  # the data is hard enough for the test to mean something
    assert auto_recall >= 0.97 and auto_recall > fixed_recall
    # the configuration still reads chromadb's default: "auto" is not a new setting
    assert auto.configuration_json["hnsw"]["ef_search"] == AUTO_EF
    client.close()

    # the width found is kept with the index: a reopened collection answers the same
    client = vecduck.PersistentClient(path=str(tmp_path))
    again = client.get_collection("auto", embedding_function=None)
    assert recall(answers(again), truth) == auto_recall
    client.close()


@pytest.mark.parametrize("grown", [False, True], ids=["first", "after-growth"])
def test_calibration_follows_the_rule(grown: bool) -> None:
    """The width chosen is the smallest on the ladder whose recall on left-out own vectors
    reaches the target, computed here independently with NumPy; also when a grown index is
    calibrated again (its climb starts from the width found before)."""
    dim = 64 if grown else 32  # 64: 160 at 6,000 vectors, wider at 12,000
    everything = hard_vectors(12_000 if grown else 6_000, dim=dim, seed=3)
    vectors = everything[:6_000]
    index = VectorIndex(IndexSettings(dimension=dim, space="cosine"), None)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    index.search(vectors[:1], K)  # the first query from 5,000 vectors on calibrates
    if grown:
        first = index.calibrated_ef
        vectors = everything
        index.add(np.arange(6_000, len(vectors), dtype=np.int64), vectors[6_000:])
        index.search(vectors[:1], K)  # doubled: calibrated again
        assert index.calibrated_size == len(vectors) and first is not None
    keys = np.arange(len(vectors), dtype=np.int64)
    chosen = index.calibrated_ef
    assert chosen in EF_LADDER and index.index.expansion_search == max(AUTO_EF, chosen)

    sample = np.sort(np.random.default_rng(len(keys)).choice(len(keys), CALIBRATION_QUERIES, replace=False))
    distances = 1.0 - vectors[sample].astype(np.float64) @ vectors.astype(np.float64).T
    distances[np.arange(len(sample)), sample] = np.inf  # each query left out of its own answer
    truth = np.argsort(distances, axis=1, kind="stable")[:, :K]

    def recall_at(ef: int) -> float:
        # what a query gets at this width: the int8 graph's candidates, re-ranked exactly
        index.index.expansion_search = ef
        got = index._graph_search(vectors[sample], K + 1)
        rows = [[int(key) for key in found if key != sample[r]][:K] for r, (found, _) in enumerate(got)]
        return recall(rows, truth)

    assert recall_at(chosen) >= CALIBRATION_TARGET - 0.002
    smaller = [ef for ef in EF_LADDER if ef < chosen]
    if smaller:
        assert recall_at(smaller[-1]) < CALIBRATION_TARGET + 0.002


@pytest.mark.parametrize("ef_search", [16, 400])
def test_a_given_width_is_used_as_given(ef_search: int) -> None:
    vectors = hard_vectors(6_000, dim=16, seed=4)
    index = VectorIndex(IndexSettings(dimension=16, space="cosine", ef_search=ef_search), None)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    index.search(vectors[:3], K)
    assert index.calibrated_ef is None and index.index.expansion_search == ef_search


def test_small_indexes_are_not_calibrated() -> None:
    vectors = hard_vectors(3_000, dim=16, seed=5)
    index = VectorIndex(IndexSettings(dimension=16, space="cosine"), None)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    index.search(vectors[:3], K)
    assert index.calibrated_ef is None and index.index.expansion_search == AUTO_EF
