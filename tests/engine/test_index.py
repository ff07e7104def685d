"""The usearch sidecar on its own: what it keeps for repeated filters follows its changes."""

from __future__ import annotations

import numpy as np
import pytest

from vecduck.engine.index import IndexSettings, VectorIndex


@pytest.mark.parametrize("share", [0.01, 0.3], ids=["exact", "hnsw"])
def test_kept_candidate_vectors_and_mask_follow_changes(share: float) -> None:
    """The same candidate array searched again after its vectors change must see the
    change: what was derived from it is forgotten at every change of the index."""
    rng = np.random.default_rng(5)
    vectors = rng.random((80_000, 8), dtype=np.float32)  # 30%: more candidates than EXACT_LIMIT
    index = VectorIndex(IndexSettings(dimension=8, space="l2"), None)
    keys = np.arange(len(vectors), dtype=np.int64)
    index.add(keys, vectors)
    candidates = keys[: int(share * len(keys))].copy()
    query = rng.random((1, 8), dtype=np.float32)
    index.search(query, 3, candidates)
    index.search(query, 3, candidates)  # from what was kept
    target = int(candidates[-1])
    index.add(np.array([target]), query)  # replaced: now the nearest
    found, distances = index.search(query, 3, candidates)[0]
    assert found[0] == target and distances[0] == pytest.approx(0.0, abs=1e-6)
    # removed and added back far away (the store removes, then adds, when a vector changes)
    index.remove(np.array([target]))
    index.add(np.array([target]), query + 10.0)
    found, _ = index.search(query, 3, candidates)[0]
    assert target not in found.tolist()
    assert set(found.tolist()) <= set(candidates.tolist())


def unit_rows(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def true_cosine(query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    q, v = query.astype(np.float64), rows.astype(np.float64)
    return 1.0 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))


def test_unit_vectors_are_searched_by_inner_product_until_one_is_not(tmp_path) -> None:
    """A cosine index of unit vectors searches by inner product (cheaper per distance) and
    returns the same cosine distances; the first vector of another length switches it to
    cosine in place, for every vector, and the choice is saved with the file."""
    rng = np.random.default_rng(11)
    # a wide search: the graph is built on two threads, so it differs from run to run, and
    # the default width's recall (0.995) may miss one of the five nearest now and then
    settings = IndexSettings(dimension=16, space="cosine", ef_search=500)
    rows = unit_rows(rng, 5_000)
    path = str(tmp_path / "unit.usearch")
    index = VectorIndex(settings, path)
    index.add(np.arange(5_000, dtype=np.int64), rows)
    assert index.unit and index.index.metric_kind.name == "IP"
    query = 3.0 * rng.standard_normal(16).astype(np.float32)  # not unit: scaled as the graph needs
    keys, distances = index.search(query[None, :], 10)[0]
    expected = true_cosine(query, rows)
    assert np.allclose(distances, expected[keys], atol=1e-6)
    assert set(keys.tolist()) >= set(np.argsort(expected)[:5].tolist())  # HNSW finds the nearest

    index.save()
    reopened = VectorIndex(settings, path)
    assert reopened.load() and reopened.unit and reopened.index.metric_kind.name == "IP"

    longer = 2.5 * unit_rows(rng, 1)
    reopened.add(np.array([5_000], dtype=np.int64), longer)
    assert not reopened.unit
    all_rows = np.vstack([rows, longer])
    keys, distances = reopened.search(longer, 10)[0]  # by inner product: 1 - 6.25, not 0
    assert keys[0] == 5_000 and distances[0] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(distances, true_cosine(longer[0], all_rows)[keys], atol=1e-6)
    reopened.save()
    again = VectorIndex(settings, path)
    assert again.load() and not again.unit and again.index.metric_kind.name == "Cos"
    assert np.allclose(again.search(query[None, :], 10)[0][1], reopened.search(query[None, :], 10)[0][1])


@pytest.mark.parametrize("space", ["l2", "ip"])
def test_other_spaces_keep_their_metric(space: str) -> None:
    index = VectorIndex(IndexSettings(dimension=16, space=space), None)
    index.add(np.arange(100, dtype=np.int64), unit_rows(np.random.default_rng(2), 100))
    assert not index.unit


def test_zero_query_on_a_unit_index_is_at_distance_one() -> None:
    index = VectorIndex(IndexSettings(dimension=16, space="cosine"), None)
    index.add(np.arange(3_000, dtype=np.int64), unit_rows(np.random.default_rng(3), 3_000))
    _keys, distances = index.search(np.zeros((1, 16), np.float32), 5)[0]
    assert np.allclose(distances, 1.0)
