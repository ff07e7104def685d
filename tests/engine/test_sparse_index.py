"""The sparse-vector index: scores against a NumPy brute force, through writes, saves,
damage and a SIGKILL; it is derived data and always agrees with the stored vectors."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import vecduck
from vecduck import K, Knn, Search, SparseVector
from vecduck.engine.columns import ARROW_TYPES
from vecduck.engine.sparse import SparseIndex

VOCABULARY = 60


def random_vectors(rng: np.random.Generator, n: int) -> list[SparseVector | None]:
    """Sparse vectors over a small vocabulary (some empty, some absent)."""
    out: list[SparseVector | None] = []
    for _ in range(n):
        if rng.random() < 0.1:
            out.append(None)
            continue
        size = int(rng.integers(0, 8))
        indices = sorted(rng.choice(VOCABULARY, size, replace=False).tolist())
        out.append(SparseVector(indices, rng.random(size).round(3).tolist()))
    return out


def dense(vector: SparseVector | None) -> np.ndarray:
    row = np.zeros(VOCABULARY)
    if vector is not None:
        row[vector.indices] = vector.values
    return row


def brute_force(
    vectors: dict[int, SparseVector | None], terms: list[int], weights: list[float], limit: int, bm25: bool
) -> tuple[list[int], np.ndarray]:
    """Best `limit` keys by 1 - q.d among keys sharing a term (BM25: idf-scaled query)."""
    keys = sorted(vectors)
    matrix = np.array([dense(vectors[k]) for k in keys]) if keys else np.zeros((0, VOCABULARY))
    query = np.zeros(VOCABULARY)
    query[terms] = weights
    if bm25:
        n = len(keys)
        holders = (matrix[:, terms] != 0) | np.array(
            [[t in (vectors[k].indices if vectors[k] else []) for t in terms] for k in keys], dtype=bool
        ).reshape(len(keys), len(terms))
        n_t = holders.sum(axis=0)
        query[terms] = np.asarray(weights) * np.log1p((n - n_t + 0.5) / (n_t + 0.5))
    shares = np.array([bool(vectors[k]) and bool(set(vectors[k].indices) & set(terms)) for k in keys], dtype=bool)
    scores = 1.0 - matrix @ query
    order = sorted((s, k) for s, k, ok in zip(scores, keys, shares, strict=True) if ok)[:limit]
    return [k for _, k in order], np.array([s for s, _ in order])


def column(vectors: list[SparseVector | None]) -> pa.Array:
    return pa.array(
        [None if v is None else {"indices": v.indices, "values": v.values, "labels": None} for v in vectors],
        ARROW_TYPES["sparse"],
    )


@pytest.mark.parametrize("bm25", [False, True])
def test_index_follows_writes_and_matches_brute_force(bm25: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(7 + bm25)
    index = SparseIndex()
    stored: dict[int, SparseVector | None] = {}
    next_key = 1
    for step in range(40):
        action = rng.random()
        if action < 0.5 or not stored:  # new records
            batch = random_vectors(rng, int(rng.integers(1, 30)))
            keys = np.arange(next_key, next_key + len(batch))
            next_key += len(batch)
        elif action < 0.8:  # rewrite some records (an update keeps the key)
            keys = rng.choice(sorted(stored), min(len(stored), int(rng.integers(1, 10))), replace=False)
            batch = random_vectors(rng, len(keys))
        else:  # delete some
            keys = rng.choice(sorted(stored), min(len(stored), int(rng.integers(1, 5))), replace=False)
            index.remove(keys)
            for key in keys.tolist():
                stored.pop(key)
            continue
        index.replace(keys, column(batch))
        stored.update(zip(keys.tolist(), batch, strict=True))
        if step % 5 == 4:
            index.seq = step
            index.save(str(tmp_path / "s.sparse.arrow"))
            loaded = SparseIndex.load(str(tmp_path / "s.sparse.arrow"))
            assert loaded is not None and loaded.seq == step
            index = loaded
        terms = sorted(rng.choice(VOCABULARY, 3, replace=False).tolist())
        weights = rng.random(3).round(3).tolist()
        limit = int(rng.integers(1, 20))
        keys_found, scores = index.search(
            np.array(terms), np.array(weights), limit, None, len(stored) if bm25 else None
        )
        expected_keys, expected_scores = brute_force(stored, terms, weights, limit, bm25)
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
        assert keys_found.tolist() == expected_keys
        candidates = np.array(sorted(rng.choice(sorted(stored), max(1, len(stored) // 3), replace=False).tolist()))
        keys_found, _ = index.search(np.array(terms), np.array(weights), limit, candidates, None)
        allowed = {k: stored[k] for k in candidates.tolist()}
        assert keys_found.tolist() == brute_force(allowed, terms, weights, limit, False)[0]


# many postings per slot (summed over every slot) and few (sorted)
@pytest.mark.parametrize("vocabulary", [6, 5000])
@pytest.mark.parametrize("bm25", [False, True])
def test_ties_at_the_cut_are_broken_by_key(vocabulary: int, bm25: bool) -> None:
    """Many records with the very same vector tie; the `limit` returned are the lowest
    keys among the best score, as a brute force over (score, key) says."""
    rng = np.random.default_rng(vocabulary + bm25)
    shapes = [
        SparseVector(sorted(rng.choice(vocabulary, 3, replace=False).tolist()), [1.0, 0.5, 0.25])
        for _ in range(8 if vocabulary < 100 else 300)
    ]
    n = 4000
    chosen = rng.integers(0, len(shapes), n)
    stored = {key: shapes[c] for key, c in enumerate(chosen.tolist())}
    index = SparseIndex()
    index.replace(
        np.arange(n),
        pa.array(
            [{"indices": v.indices, "values": v.values, "labels": None} for v in stored.values()], ARROW_TYPES["sparse"]
        ),
    )
    index.remove(np.arange(0, n, 7))  # dead postings, skipped
    for key in range(0, n, 7):
        stored.pop(key)
    for shape in shapes[:4]:
        terms, weights = shape.indices, [0.7, 0.2, 0.1]
        for limit in (1, 10, 100, 1000):
            keys, scores = index.search(np.array(terms), np.array(weights), limit, None, len(stored) if bm25 else None)
            expected_keys, expected_scores = brute_force_wide(stored, terms, weights, limit, bm25)
            assert keys.tolist() == expected_keys
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)


def brute_force_wide(
    vectors: dict[int, SparseVector], terms: list[int], weights: list[float], limit: int, bm25: bool
) -> tuple[list[int], list[float]]:
    """brute_force for any vocabulary: dot products term by term, in float64."""
    query = dict(zip(terms, weights, strict=True))
    if bm25:
        n = len(vectors)
        for term in terms:
            n_t = sum(term in v.indices for v in vectors.values())
            query[term] *= float(np.log1p((n - n_t + 0.5) / (n_t + 0.5)))
    scored = []
    for key, vector in vectors.items():
        shared = [(i, x) for i, x in zip(vector.indices, vector.values, strict=True) if i in query]
        if shared:
            scored.append((1.0 - sum(query[i] * np.float32(x) for i, x in shared), key))
    scored.sort()  # equal vectors sum to equal scores: ties go by key
    best = scored[:limit]
    return [k for _, k in best], [s for s, _ in best]


def test_damaged_file_reads_as_missing(tmp_path: Path) -> None:
    index = SparseIndex()
    index.replace(np.arange(1, 4), column([SparseVector([1, 2], [1.0, 2.0]), None, SparseVector([3], [1.0])]))
    path = str(tmp_path / "x.sparse.arrow")
    index.save(path)
    assert SparseIndex.load(path) is not None
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff\xfe garbage \x00")
    assert SparseIndex.load(path) is None
    os.remove(path)
    assert SparseIndex.load(path) is None


def sparse_search(collection: vecduck.Collection, terms: list[int], values: list[float], where: dict | None = None):
    search = Search().rank(Knn(query=SparseVector(terms, values), key="sp", limit=25)).select(K.SCORE)
    if where is not None:
        search = search.where(where)
    result = collection.search(search)
    return result["ids"][0], result["scores"][0]


def expected_from_stored(collection: vecduck.Collection, terms: list[int], values: list[float], where=None):
    """Brute force over what `get` returns (the stored truth), by id."""
    got = collection.get(where=where, include=["metadatas"])
    by_key = {i: (m or {}).get("sp") for i, m in enumerate(got["metadatas"])}
    keys, scores = brute_force(by_key, terms, values, 25, False)
    return [got["ids"][k] for k in keys], scores


def test_collection_index_survives_close_damage_and_reopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[bool] = []
    load = SparseIndex.load.__func__  # type: ignore[attr-defined]

    def recording_load(cls: type[SparseIndex], path: str) -> SparseIndex | None:
        found = load(cls, path)
        loads.append(found is not None)
        return found

    monkeypatch.setattr(SparseIndex, "load", classmethod(recording_load))
    rng = np.random.default_rng(3)
    client = vecduck.PersistentClient(tmp_path)
    collection = client.create_collection("sparse-persist", embedding_function=None)
    vectors = random_vectors(rng, 400)
    collection.add(
        ids=[f"r{i}" for i in range(400)],
        embeddings=rng.random((400, 4)),
        metadatas=[{"sp": v, "n": i} if v else {"n": i} for i, v in enumerate(vectors)],
    )
    query = ([3, 11, 29], [1.0, 0.5, 0.25])
    first = sparse_search(collection, *query)
    ids, scores = expected_from_stored(collection, *query)
    assert first[0] == ids
    np.testing.assert_allclose(first[1], scores, rtol=1e-5, atol=1e-6)
    collection.update(ids=["r1", "r2"], metadatas=[{"sp": SparseVector([3, 11], [9.0, 9.0])}, {"sp": None}])
    collection.delete(ids=["r5"])
    after = sparse_search(collection, *query)
    assert after[0][0] == "r1" and "r2" not in after[0] and "r5" not in after[0]
    client.close()

    saved = glob.glob(str(tmp_path / "index" / "*.sparse.arrow"))
    assert len(saved) == 1
    client = vecduck.PersistentClient(tmp_path)
    collection = client.get_collection("sparse-persist", embedding_function=None)
    assert sparse_search(collection, *query) == after
    assert loads[-1] is True  # opened from the saved index, not rebuilt
    ids, scores = expected_from_stored(collection, *query)
    assert after[0] == ids
    client.close()

    with open(saved[0], "r+b") as f:  # a torn sidecar is rebuilt from the rows
        f.truncate(os.path.getsize(saved[0]) // 3)
    client = vecduck.PersistentClient(tmp_path)
    collection = client.get_collection("sparse-persist", embedding_function=None)
    assert sparse_search(collection, *query) == after
    assert loads[-1] is False  # the torn file was refused and the index rebuilt from the rows
    filtered = sparse_search(collection, *query, where={"n": {"$lt": 200}})
    assert filtered[0] == expected_from_stored(collection, *query, where={"n": {"$lt": 200}})[0]
    client.close()


def test_index_built_after_the_last_write_is_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse index first built by a search in a read-only session is saved when that
    session closes: the next one loads it instead of rebuilding it from the rows."""
    loads: list[bool] = []
    load = SparseIndex.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        SparseIndex, "load", classmethod(lambda cls, path: loads.append(load(cls, path) is not None) or load(cls, path))
    )
    rng = np.random.default_rng(5)
    vectors = random_vectors(rng, 300)
    client = vecduck.PersistentClient(tmp_path)
    collection = client.create_collection("built-late", embedding_function=None)
    collection.add(
        ids=[f"r{i}" for i in range(300)],
        embeddings=rng.random((300, 4)),
        metadatas=[{"sp": v} if v else {"n": i} for i, v in enumerate(vectors)],
    )
    client.close()  # no search yet: no sparse index to save
    assert glob.glob(str(tmp_path / "index" / "*.sparse.arrow")) == []

    query = ([3, 11, 29], [1.0, 0.5, 0.25])
    for session in range(2):
        client = vecduck.PersistentClient(tmp_path)
        collection = client.get_collection("built-late", embedding_function=None)
        found = sparse_search(collection, *query)
        assert found[0] == expected_from_stored(collection, *query)[0]
        assert loads[-1] is (session == 1)  # built from the rows, then loaded from its file
        client.close()
        assert len(glob.glob(str(tmp_path / "index" / "*.sparse.arrow"))) == 1


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, vecduck
    from vecduck import SparseVector
    path = sys.argv[1]
    rng = np.random.default_rng(11)
    client = vecduck.PersistentClient(path)
    col = client.get_or_create_collection("sparse-crash", embedding_function=None)
    i = 0
    while True:
        n = int(rng.integers(1, 300))
        ids = [f"w{i + j}" for j in range(n)]
        metas = [{"sp": SparseVector(sorted(rng.choice(60, 4, replace=False).tolist()), rng.random(4).tolist())}
                 for _ in range(n)]
        col.upsert(ids=ids, embeddings=rng.random((n, 4)), metadatas=metas)
        if i % 3 == 0:
            col.delete(ids=ids[: n // 4])
        if i % 5 == 0:
            col.search(vecduck.Search().rank(vecduck.Knn(query=SparseVector([1, 2], [1.0, 1.0]), key="sp")))
            client.flush()  # saves the sparse index: later writes make it stale
        print(i, flush=True)
        i += n
    """
)


def test_sigkill_leaves_an_index_that_agrees_with_the_rows(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        lines = 0
        deadline = time.monotonic() + 120
        while lines < 25 and time.monotonic() < deadline:
            if child.stdout.readline():
                lines += 1
            elif child.poll() is not None:
                break
        assert lines >= 25, child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    client = vecduck.PersistentClient(tmp_path)
    collection = client.get_collection("sparse-crash", embedding_function=None)
    for query in (([1, 2], [1.0, 1.0]), ([7, 30, 45], [0.3, 1.0, 0.2])):
        got = sparse_search(collection, *query)
        ids, scores = expected_from_stored(collection, *query)
        assert got[0] == ids
        np.testing.assert_allclose(got[1], scores, rtol=1e-5, atol=1e-6)
    client.close()
