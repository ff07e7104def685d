"""The usearch sidecar on its own: what it keeps for repeated filters follows its changes."""

from __future__ import annotations

import numpy as np
import pytest

import vecduck.engine.index as index_module
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


def test_unit_vectors_are_searched_by_inner_product_until_one_is_not(tmp_path, monkeypatch) -> None:
    """A float32 cosine index of unit vectors searches by inner product (cheaper per
    distance) and returns the same cosine distances; the first vector of another length
    switches it to cosine in place, for every vector, and the choice is saved with the file."""
    monkeypatch.setattr(index_module, "GRAPH_DTYPE", "f32")  # (an i8 graph is searched by cosine)
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


# -- the i8 graph of unit vectors and the exact vectors beside it ---------------------------
def exact_distances_of(query: np.ndarray, rows: np.ndarray, space: str) -> np.ndarray:
    """chromadb's distances in float64, computed here with NumPy."""
    q, v = query.astype(np.float64), rows.astype(np.float64)
    if space == "l2":
        diff = v - q
        return np.einsum("ij,ij->i", diff, diff)
    if space == "ip":
        return 1.0 - v @ q
    return 1.0 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))


def exact_top(query: np.ndarray, rows: np.ndarray, k: int, space: str) -> np.ndarray:
    distances = exact_distances_of(query, rows, space)
    return np.lexsort((np.arange(len(rows)), distances))[:k]


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_unit_vectors_are_graphed_in_i8_and_answered_exactly(tmp_path, space: str) -> None:
    """Unit vectors go into an i8 graph, but stored vectors come back bit for bit, and every
    distance returned is the exact one in the collection's space (NumPy, float64), whether
    the answer came from the graph, a filtered search or a reopened file."""
    rng = np.random.default_rng(21)
    rows = unit_rows(rng, 6_000, 32)
    keys = np.arange(len(rows), dtype=np.int64)
    path = str(tmp_path / "i8.usearch")
    settings = IndexSettings(dimension=32, space=space, ef_search=400)
    index = VectorIndex(settings, path)
    index.add(keys, rows)
    assert index.quantised and index.index.dtype.name == "I8"
    queries = 2.0 * unit_rows(rng, 20, 32)  # not unit length: exact distances still

    def check(ix: VectorIndex, rows: np.ndarray) -> None:
        keys = np.arange(len(rows), dtype=np.int64)
        assert np.array_equal(ix.vectors(keys[::7]), rows[::7])  # exact, not rounded
        assert np.array_equal(ix.vectors(keys[:3]), rows[:3])
        hits = 0
        for query, (found, distances) in zip(queries, ix.search(queries, 10), strict=True):
            assert np.allclose(distances, exact_distances_of(query, rows[found], space), rtol=1e-6, atol=1e-6)
            assert np.all(np.diff(distances) >= 0)
            hits += len(set(found.tolist()) & set(exact_top(query, rows, 10, space).tolist()))
        assert hits >= 0.97 * 10 * len(queries)
        candidates = keys[1::2].copy()  # 50%: through the graph, filtered
        found, distances = ix.search(queries[:1], 10, candidates)[0]
        assert set(found.tolist()) <= set(candidates.tolist())
        assert np.allclose(distances, exact_distances_of(queries[0], rows[found], space), rtol=1e-6, atol=1e-6)

    check(index, rows)
    index.save()
    with open(path + ".json") as f:
        assert '"dtype": "i8"' in f.read()
    reopened = VectorIndex(settings, path)
    assert reopened.load() and reopened.quantised
    check(reopened, rows)
    # changed after reopening (one replaced, one added), saved again, reopened again
    changed = unit_rows(rng, 2, 32)
    reopened.add(np.array([10, 6_000], dtype=np.int64), changed)
    rows = np.vstack([rows, changed[1:]])
    rows[10] = changed[0]
    check(reopened, rows)
    reopened.save()
    third = VectorIndex(settings, path)
    assert third.load() and third.quantised
    check(third, rows)


def test_a_torn_i8_file_is_not_trusted(tmp_path) -> None:
    rows = unit_rows(np.random.default_rng(22), 3_000, 8)
    path = str(tmp_path / "torn.usearch")
    index = VectorIndex(IndexSettings(dimension=8), path)
    index.add(np.arange(3_000, dtype=np.int64), rows)
    index.save()
    with open(path, "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)  # the footer gone, as after a crash mid-copy
    assert not VectorIndex(IndexSettings(dimension=8), path).load()


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_a_vector_of_another_length_switches_the_graph_to_float32(tmp_path, space: str) -> None:
    """i8 holds unit vectors only: the first other vector rebuilds the graph in float32,
    with nothing lost, and the file saved then is a plain float32 one."""
    rng = np.random.default_rng(23)
    rows = unit_rows(rng, 3_000, 16)
    path = str(tmp_path / "switch.usearch")
    settings = IndexSettings(dimension=16, space=space, ef_search=400)
    index = VectorIndex(settings, path)
    index.add(np.arange(3_000, dtype=np.int64), rows)
    assert index.quantised
    longer = (3.0 * rng.standard_normal((2_000, 16))).astype(np.float32)
    index.add(np.arange(3_000, 5_000, dtype=np.int64), longer)
    assert not index.quantised and index.index.dtype.name == "F32"
    everything = np.vstack([rows, longer])
    assert np.array_equal(index.vectors(np.arange(5_000, dtype=np.int64)), everything)
    query = longer[5] + np.float32(0.001)
    found, distances = index.search(query[None, :], 5)[0]
    assert found[0] == 3_005
    assert np.allclose(distances, exact_distances_of(query, everything[found], space), rtol=1e-5, atol=1e-6)
    index.save()
    reopened = VectorIndex(settings, path)
    assert reopened.load() and not reopened.quantised
    assert np.array_equal(reopened.vectors(np.arange(5_000, dtype=np.int64)), everything)


def test_an_index_saved_before_the_exact_block_still_opens_as_float32(tmp_path, monkeypatch) -> None:
    """Files written by earlier versions (float32 graph, no exact block, no dtype in the
    marker) open as they are, keep answering exactly, and calibrate inside a save."""
    import json

    rng = np.random.default_rng(24)
    rows = unit_rows(rng, 6_000, 8)  # unit, yet float32: as every earlier file; calibrated at the save
    path = str(tmp_path / "old.usearch")
    with monkeypatch.context() as patch:
        patch.setattr(index_module, "GRAPH_DTYPE", "f32")
        old = VectorIndex(IndexSettings(dimension=8), path)
        old.add(np.arange(6_000, dtype=np.int64), rows)
        old.save()
        assert old.calibrated_ef is not None
    with open(path + ".json") as f:
        marker = json.load(f)
    del marker["dtype"]
    with open(path + ".json", "w") as f:
        json.dump(marker, f)
    index = VectorIndex(IndexSettings(dimension=8), path)
    assert index.load() and not index.quantised and index.index.dtype.name == "F32"
    assert np.array_equal(index.vectors(np.arange(6_000, dtype=np.int64)), rows)
    found, _ = index.search(rows[7][None, :], 1)[0]
    assert found[0] == 7
    index.add(np.arange(6_000, 13_000, dtype=np.int64), unit_rows(rng, 7_000, 8))
    index.save()  # doubled: calibrated again inside the save, from usearch's own vectors
    assert index.calibrated_size == 13_000 and not index.quantised


def test_a_refused_file_leaves_the_index_as_it_was(tmp_path, monkeypatch) -> None:
    """A float32 file whose marker does not match is refused, and the new index stays what
    it was (i8, empty): the vectors then added from the table come back exact."""
    import json

    rng = np.random.default_rng(25)
    path = str(tmp_path / "refused.usearch")
    with monkeypatch.context() as patch:
        patch.setattr(index_module, "GRAPH_DTYPE", "f32")
        old = VectorIndex(IndexSettings(dimension=8), path)
        old.add(np.arange(400, dtype=np.int64), rng.random((400, 8), dtype=np.float32))
        old.save()
    with open(path + ".json") as f:
        marker = json.load(f)
    marker["count"] = 3
    with open(path + ".json", "w") as f:
        json.dump(marker, f)
    index = VectorIndex(IndexSettings(dimension=8), path)
    assert not index.load()
    assert index.quantised and index.index.dtype.name == "I8" and len(index) == 0
    rows = rng.random((420, 8), dtype=np.float32)  # not unit length: rebuilt in float32
    index.add(np.arange(420, dtype=np.int64), rows)
    assert not index.quantised
    assert np.array_equal(index.vectors(np.arange(420, dtype=np.int64)), rows)
    index.save()
    again = VectorIndex(IndexSettings(dimension=8), path)
    assert again.load() and np.array_equal(again.vectors(np.arange(420, dtype=np.int64)), rows)
