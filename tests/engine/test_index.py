"""The usearch sidecar on its own: what it keeps for repeated filters follows its changes."""

from __future__ import annotations

from typing import Any

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


def missed(graph: Any, vectors: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Keys that a very wide usearch search for their own vector does not return first
    (searched at 128 first, then the few missed at 4,096, which finds every vector the
    graph links in at this size)."""
    suspects = np.arange(len(keys))
    for width in (128, 4_096):
        graph.expansion_search = width
        found = np.asarray(graph.search(vectors[suspects], 1, threads=2).keys).reshape(-1)
        suspects = suspects[found != keys[suspects]]
    return keys[suspects]


def unreachable(index: VectorIndex, vectors: np.ndarray, keys: np.ndarray) -> list[int]:
    return missed(index.index, vectors, keys).tolist()


def build(path: str | None, vectors: np.ndarray, keys: np.ndarray, batch: int) -> VectorIndex:
    index = VectorIndex(IndexSettings(dimension=vectors.shape[1], space="l2"), path)
    for start in range(0, len(keys), batch):  # batches of >= 256: inserted on every core
        index.add(keys[start : start + batch], vectors[start : start + batch])
    index.search(vectors[:1], 1)  # every insert done
    return index


@pytest.mark.parametrize("saved", [False, True], ids=["in-memory", "saved"])
def test_every_vector_is_linked_into_the_graph(tmp_path, saved: bool) -> None:
    """usearch's multi-threaded inserts leave a few vectors that no graph node links to
    (unum-cloud/USearch#735; 10-20 in 40,000 random 16-d vectors): stored, yet no
    search returns them. The index finds such nodes and inserts them again: in one large
    insert at once, after many smaller ones at the next save."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((40_000, 16)).astype(np.float32)
    keys = np.arange(len(vectors), dtype=np.int64) * 7 + 3
    if saved:
        index = build(str(tmp_path / "x.usearch"), vectors, keys, batch=2_000)
        index.save()
    else:
        index = build(None, vectors, keys, batch=len(keys))
    assert unreachable(index, vectors, keys) == []
    assert len(index) == len(keys)
    np.testing.assert_array_equal(index.vectors(keys), vectors)  # nothing re-inserted changed
    assert index.churn < 0.01 * len(keys)  # only the few unlinked vectors went in again


def test_orphans_read_from_a_saved_graph(tmp_path) -> None:
    """`orphans` reads the saved graph: the vectors it names are the ones a wide search
    misses (NumPy-free truth: usearch's own search); removed nodes are never named; a file
    of another layout gives None rather than a guess."""
    from usearch.index import Index

    from vecduck.engine.usearch_file import orphans

    rng = np.random.default_rng(12)
    vectors = rng.standard_normal((40_000, 16)).astype(np.float32)
    keys = np.arange(len(vectors), dtype=np.int64) + 100
    raw = Index(ndim=16, metric="l2sq", dtype="f32", connectivity=16, expansion_add=100)
    raw.add(keys, vectors, threads=2)
    raw.remove(keys[:50])
    path = str(tmp_path / "raw.usearch")
    raw.save(path)
    live = np.asarray(raw.keys, np.int64)
    named = orphans(path, 16, 16, live)
    assert named is not None
    unlinked = set(missed(raw, vectors[50:], keys[50:]).tolist())
    assert unlinked, "expected usearch's parallel insert to leave at least one vector unlinked"
    assert unlinked <= set(named.tolist())
    assert not set(named.tolist()) & set(keys[:50].tolist())
    assert orphans(path, 16, 8, live) is None  # another connectivity: the sizes do not add up
    assert orphans(path, 16, 16, live[1:]) is None  # not the keys the index holds
    with open(path, "r+b") as f:
        f.truncate(len(f.read()) - 4)
    assert orphans(path, 16, 16, live) is None
