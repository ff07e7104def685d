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


def exact_neighbours(space: str, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """chromadb's distances from `query` to every row, in float64 (NumPy, not vecduck)."""
    q, v = query.astype(np.float64), rows.astype(np.float64)
    if space == "cosine":
        return true_cosine(query, rows)
    if space == "ip":
        return 1.0 - v @ q
    return ((v - q) ** 2).sum(axis=1)


@pytest.mark.parametrize("space", ["cosine", "l2", "ip"])
def test_the_int8_graph_answers_with_exact_distances(tmp_path, space: str) -> None:
    """The graph holds int8 vectors, yet what a search returns is ranked and measured on
    the float32 vectors: the distances are chromadb's to float32 precision, the nearest
    are found, and stored vectors come back exactly, before and after a save and reopen."""
    rng = np.random.default_rng(11)
    # a wide search: the graph is built on two threads, so it differs from run to run
    settings = IndexSettings(dimension=16, space=space, ef_search=500)
    rows = (unit_rows(rng, 5_000) * rng.uniform(0.5, 3.0, (5_000, 1))).astype(np.float32)  # of many lengths
    path = str(tmp_path / "int8.usearch")
    index = VectorIndex(settings, path)
    keys = np.arange(5_000, dtype=np.int64)
    index.add(keys, rows)
    assert index.index.dtype.name.lower() == "i8"
    queries = (3.0 * rng.standard_normal((20, 16))).astype(np.float32)

    def check(searched: VectorIndex) -> None:
        for query, (found, distances) in zip(queries, searched.search(queries, 10), strict=True):
            expected = exact_neighbours(space, query, rows)
            assert np.allclose(distances, expected[found], rtol=1e-5, atol=1e-6)
            assert np.all(np.diff(distances) >= 0)
            assert set(found.tolist()) >= set(np.argsort(expected, kind="stable")[:5].tolist())
        np.testing.assert_array_equal(searched.vectors(keys[::7]), rows[::7])

    check(index)
    index.save()
    reopened = VectorIndex(settings, path)
    assert reopened.load()
    check(reopened)
    # a write after the reopen: kept beside the mapped file until the next save
    moved = (rows[:100] * 2.0).astype(np.float32)
    reopened.add(keys[:100], moved)
    rows[:100] = moved
    check(reopened)


def test_zero_query_on_a_cosine_index_is_at_distance_one() -> None:
    index = VectorIndex(IndexSettings(dimension=16, space="cosine"), None)
    index.add(np.arange(3_000, dtype=np.int64), unit_rows(np.random.default_rng(3), 3_000))
    _keys, distances = index.search(np.zeros((1, 16), np.float32), 5)[0]
    assert np.allclose(distances, 1.0)


def test_vectors_far_from_the_origin_keep_their_neighbours() -> None:
    """L2 vectors spread by 1 around a point 1,000 away: scaled as they are, they would
    all round to the same bytes. The quantizer centres them first."""
    rng = np.random.default_rng(4)
    rows = (1_000.0 + rng.standard_normal((4_000, 16))).astype(np.float32)
    index = VectorIndex(IndexSettings(dimension=16, space="l2"), None)
    index.add(np.arange(4_000, dtype=np.int64), rows)
    queries = (1_000.0 + rng.standard_normal((50, 16))).astype(np.float32)
    hits = 0
    for query, (found, _) in zip(queries, index.search(queries, 10), strict=True):
        hits += len(set(found.tolist()) & set(np.argsort(exact_neighbours("l2", query, rows))[:10].tolist()))
    assert hits / 500 >= 0.95


def test_a_batch_beyond_the_scale_refits_the_graph() -> None:
    """The int8 scale is fitted to the first vectors. A later batch far larger would be
    clipped to the same bytes; the index is rebuilt with a scale fitted to all of them
    at its next search, and finds the new vectors' neighbours among themselves."""
    rng = np.random.default_rng(6)
    small = rng.standard_normal((3_000, 16)).astype(np.float32)
    large = (10.0 * rng.standard_normal((3_000, 16))).astype(np.float32)
    index = VectorIndex(IndexSettings(dimension=16, space="l2"), None)
    index.add(np.arange(3_000, dtype=np.int64), small)
    assert len(index) == 3_000  # (inserted on a background thread: waited for)
    first_bound = index.quantizer.bound
    index.add(np.arange(3_000, 6_000, dtype=np.int64), large)
    assert len(index) == 6_000 and index.needs_rebuild()
    rows = np.vstack([small, large])
    queries = large[:30] + rng.standard_normal((30, 16)).astype(np.float32)
    hits = 0
    for query, (found, _) in zip(queries, index.search(queries, 10), strict=True):
        hits += len(set(found.tolist()) & set(np.argsort(exact_neighbours("l2", query, rows))[:10].tolist()))
    assert index.quantizer.bound > 5 * first_bound and not index.needs_rebuild()
    assert hits / 300 >= 0.95


def test_a_file_of_the_float32_format_is_not_trusted(tmp_path) -> None:
    """A file saved before the int8 graph (its marker names no format) is rebuilt from the
    table, not read as an int8 graph."""
    import json

    path = str(tmp_path / "old.usearch")
    index = VectorIndex(IndexSettings(dimension=16, space="l2"), path)
    index.add(np.arange(100, dtype=np.int64), unit_rows(np.random.default_rng(2), 100))
    index.save()
    assert VectorIndex(IndexSettings(dimension=16, space="l2"), path).load()
    with open(path + ".json") as f:
        marker = json.load(f)
    del marker["format"]
    with open(path + ".json", "w") as f:
        json.dump(marker, f)
    assert not VectorIndex(IndexSettings(dimension=16, space="l2"), path).load()


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
    return missed(index.index, index._graph_vectors(vectors), keys).tolist()


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
    vectors = np.clip(np.rint(30 * rng.standard_normal((40_000, 16))), -127, 127).astype(np.int8)
    keys = np.arange(len(vectors), dtype=np.int64) + 100
    raw = Index(ndim=16, metric="l2sq", dtype="i8", connectivity=16, expansion_add=100)
    raw.add(keys, vectors, threads=2)
    raw.remove(keys[:50])
    path = str(tmp_path / "raw.usearch")
    raw.save(path)
    live = np.asarray(raw.keys, np.int64)
    named = orphans(path, 16, 16, live)  # 16 bytes per int8 vector
    assert named is not None
    unlinked = set(missed(raw, vectors[50:], keys[50:]).tolist())
    assert unlinked, "expected usearch's parallel insert to leave at least one vector unlinked"
    assert unlinked <= set(named.tolist())
    assert not set(named.tolist()) & set(keys[:50].tolist())
    assert orphans(path, 64, 16, live) is None  # float32 vectors: not this file
    assert orphans(path, 16, 8, live) is None  # another connectivity: the sizes do not add up
    assert orphans(path, 16, 16, live[1:]) is None  # not the keys the index holds
    with open(path, "r+b") as f:
        f.truncate(len(f.read()) - 4)
    assert orphans(path, 16, 16, live) is None
