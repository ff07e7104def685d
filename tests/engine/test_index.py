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
    vectors = rng.random((20_000, 8), dtype=np.float32)
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
