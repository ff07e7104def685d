"""Chroma's Search API over one collection's read model.

A search runs as Chroma's does: the filter picks the candidate records; every `Knn`
in the rank expression scores its best `limit` candidates (dense ones by the
collection's distance through the vector index, sparse ones by `1 - dot` through the
sparse index, BM25-weighted where the key asks for it); the expression combines
those scores record by record; records then sort by score (ties by storage order),
are grouped when asked, and the page is cut. Without a rank expression the
candidates come in storage order.

Combining scores follows Chroma's rule for who takes part: a record missing from a
`Knn` takes that Knn's `default`, and a `Knn` without a default keeps only the
records it found. Scores are float32, as Chroma's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecduck.engine.rows import load_metadata_column

# Rank expressions are nested tuples (built by vecduck.api.search from Chroma's JSON):
#   ("knn", index into SearchPlan.knns, default | None, return_rank)
#   ("val", value)
#   ("abs" | "exp" | "log", child)
#   ("sum" | "mul" | "max" | "min", [children])
#   ("sub" | "div", left, right)
RankNode = tuple[Any, ...]


@dataclass
class KnnQuery:
    """One nearest-neighbour search: dense (`#embedding`) or sparse (a metadata key)."""

    key: str
    limit: int
    dense: np.ndarray | None = None  # float32 vector
    terms: np.ndarray | None = None  # sparse indices (uint32)
    weights: np.ndarray | None = None  # sparse values (float64)


@dataclass
class SearchPlan:
    """One search, checked: the engine's form of Chroma's search payload."""

    where: dict[str, Any] | None = None
    rank: RankNode | None = None
    knns: list[KnnQuery] = field(default_factory=list)
    group_keys: list[str] = field(default_factory=list)
    # ("min" | "max", sort keys, k): keep k records per group (MinK / MaxK)
    aggregate: tuple[str, list[str], int] | None = None
    offset: int = 0
    limit: int | None = None


@dataclass
class Domain:
    """Scores of some records (`keys` sorted, `values`), and the score of all others
    (`default`; None: the others take no part)."""

    keys: np.ndarray
    values: np.ndarray
    default: np.float32 | None

    @classmethod
    def flat(cls, value: float) -> Domain:
        return cls(np.empty(0, np.int64), np.empty(0, np.float32), np.float32(value))

    def at(self, keys: np.ndarray) -> np.ndarray:
        """The scores of `keys` (each either in the support or taking the default)."""
        found = np.full(len(keys), np.nan if self.default is None else self.default, np.float32)
        if len(self.keys):
            where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            hit = self.keys[where] == keys
            found[hit] = self.values[where[hit]]
        return found

    def map(self, op: Callable[[Any], Any]) -> Domain:
        default = None if self.default is None else np.float32(op(np.float32(self.default)))
        return Domain(self.keys, op(self.values).astype(np.float32), default)


def merge(left: Domain, right: Domain, op: Callable[[Any, Any], Any]) -> Domain:
    """Combine two domains record by record, with Chroma's rule for defaults."""
    if not len(left.keys) and left.default is not None:  # a constant (as every RRF has)
        constant = left.default
        return _with_default(right, op(constant, right.values), lambda d: op(constant, d))
    if not len(right.keys) and right.default is not None:
        constant = right.default
        return _with_default(left, op(left.values, constant), lambda d: op(d, constant))
    if left.default is not None and right.default is not None:
        keys = np.union1d(left.keys, right.keys)
        default = np.float32(op(np.float32(left.default), np.float32(right.default)))
    elif left.default is not None:
        keys, default = right.keys, None
    elif right.default is not None:
        keys, default = left.keys, None
    else:
        keys, default = np.intersect1d(left.keys, right.keys, assume_unique=True), None
    values = op(left.at(keys), right.at(keys)).astype(np.float32)
    return Domain(keys, values, default)


def _with_default(domain: Domain, values: np.ndarray, of_default: Callable[[Any], Any]) -> Domain:
    """`domain`'s records with new `values`, its default (if any) mapped by `of_default`."""
    default = None if domain.default is None else np.float32(of_default(np.float32(domain.default)))
    return Domain(domain.keys, np.asarray(values).astype(np.float32), default)


_FOLDS: dict[str, tuple[float, Callable[[Any, Any], Any]]] = {
    "sum": (0.0, np.add),
    "mul": (1.0, np.multiply),
    "max": (float(np.finfo(np.float32).min), np.maximum),
    "min": (float(np.finfo(np.float32).max), np.minimum),
}
_UNARY: dict[str, Callable[[Any], Any]] = {"abs": np.abs, "exp": np.exp, "log": np.log}
_BINARY: dict[str, Callable[[Any, Any], Any]] = {"sub": np.subtract, "div": np.divide}


def evaluate(node: RankNode, knn_results: Sequence[tuple[np.ndarray, np.ndarray]]) -> Domain:
    """The scores a rank expression gives, from each Knn's (keys, scores) best-first."""
    kind = node[0]
    if kind == "knn":
        _kind, position, default, return_rank = node
        keys, scores = knn_results[position]
        values = np.arange(len(keys), dtype=np.float32) if return_rank else np.asarray(scores, np.float32)
        order = np.argsort(keys, kind="stable")
        return Domain(keys[order], values[order], None if default is None else np.float32(default))
    if kind == "val":
        return Domain.flat(node[1])
    if kind in _UNARY:
        return evaluate(node[1], knn_results).map(_UNARY[kind])
    if kind in _BINARY:
        return merge(evaluate(node[1], knn_results), evaluate(node[2], knn_results), _BINARY[kind])
    start, op = _FOLDS[kind]
    result = Domain.flat(start)
    for child in node[1]:
        result = merge(result, evaluate(child, knn_results), op)
    return result


def ranked(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """The domain's records by score, lowest first, ties by key (storage order); NaN last."""
    order = np.lexsort((domain.keys, np.isnan(domain.values), domain.values))
    return domain.keys[order], domain.values[order]


# -- group by -------------------------------------------------------------------------------
_TYPE_ORDER = {bool: 0, int: 1, float: 2, str: 3}


def _sortable(value: Any) -> tuple[Any, ...]:
    """A metadata value ordered as Chroma orders them: missing first, then by type
    (bool < int < float < str < sparse vector < lists), then by value."""
    if value is None:
        return (0,)
    kind = _TYPE_ORDER.get(type(value))
    if kind is not None:
        return (1, kind, value)
    if isinstance(value, list):
        item = type(value[0]) if value else str
        return (1, 5 + {bool: 0, int: 1, float: 2}.get(item, 3), tuple(value))
    indices = getattr(value, "indices", None)
    if indices is not None:
        return (1, 4, tuple(indices), tuple(getattr(value, "values", ())))
    return (1, 9, repr(value))


def group(
    keys: np.ndarray,
    scores: np.ndarray,
    metadatas: Sequence[dict[str, Any] | None],
    group_keys: Sequence[str],
    aggregate: tuple[str, list[str], int],
) -> tuple[np.ndarray, np.ndarray]:
    """Chroma's RankedGroupBy: group ranked records by metadata values, keep the first k
    of each group by the aggregate's keys (MinK ascending, MaxK descending; `#score` is
    the score), then order all kept records by score again."""
    kind, sort_keys, k = aggregate

    def values_of(i: int, names: Sequence[str]) -> tuple[tuple[Any, ...], ...]:
        metadata = metadatas[i] or {}
        return tuple(
            _sortable(float(scores[i])) if name == "#score" else _sortable(metadata.get(name)) for name in names
        )

    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in range(len(keys)):  # in score order: each group's list keeps it
        groups.setdefault(values_of(i, group_keys), []).append(i)
    kept: list[int] = []
    for members in groups.values():
        members.sort(key=lambda i: values_of(i, sort_keys), reverse=kind == "max")
        kept.extend(members[:k])
    chosen = np.asarray(kept, np.int64)
    order = np.lexsort((keys[chosen], np.isnan(scores[chosen]), scores[chosen]))
    return keys[chosen][order], scores[chosen][order]


def page(keys: np.ndarray, scores: np.ndarray, offset: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    end = None if limit is None else offset + limit
    return keys[offset:end], scores[offset:end]


@dataclass
class SearchHits:
    """One search's records, in result order, and their scores."""

    keys: np.ndarray
    scores: np.ndarray


def execute(store: Any, state: Any, plan: SearchPlan, bm25_keys: set[str]) -> SearchHits:
    """Run one search on a collection's read model (the store's lock is held).

    `store` gives the filter's candidates (`_search_candidates`), the vector index and
    the sparse indexes (`_sparse_index`); `bm25_keys` are the sparse keys whose queries
    take BM25's inverse document frequencies."""
    candidates = store._search_candidates(state, plan.where)
    if plan.rank is None:
        keys = state.rows.keys() if candidates is None else candidates
        keys = keys[plan.offset : None if plan.limit is None else plan.offset + plan.limit]
        return SearchHits(keys, np.arange(len(keys), dtype=np.float32))
    results = _all_knns(store, state, plan.knns, candidates, bm25_keys)
    with np.errstate(all="ignore"):  # log(0), x / 0: the score is not finite (None), not a warning
        keys, scores = ranked(evaluate(plan.rank, results))
    if plan.aggregate is not None and plan.group_keys and len(keys):
        metadatas = load_metadata_column(state.rows.take(keys, ["metadata"]).column("metadata"))
        keys, scores = group(keys, scores, metadatas, plan.group_keys, plan.aggregate)
    keys, scores = page(keys, scores, plan.offset, plan.limit)
    return SearchHits(keys, scores)


_dense_worker: ThreadPoolExecutor | None = None


def _all_knns(
    store: Any, state: Any, knns: list[KnnQuery], candidates: np.ndarray | None, bm25_keys: set[str]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every Knn's results. In a hybrid search the dense ones run on a second thread while
    the sparse ones run here: the vector index and NumPy release the GIL, so the two
    overlap on a second core."""
    global _dense_worker
    dense = [i for i, knn in enumerate(knns) if knn.dense is not None]
    if not dense or len(dense) == len(knns):
        return [_knn(store, state, knn, candidates, knn.key in bm25_keys) for knn in knns]
    if _dense_worker is None:
        _dense_worker = ThreadPoolExecutor(1, thread_name_prefix="vecduck-knn")
    pending = {i: _dense_worker.submit(_knn, store, state, knns[i], candidates, False) for i in dense}
    results = [
        None if i in pending else _knn(store, state, knn, candidates, knn.key in bm25_keys)
        for i, knn in enumerate(knns)
    ]
    return [pending[i].result() if i in pending else found for i, found in enumerate(results)]


def _knn(
    store: Any, state: Any, knn: KnnQuery, candidates: np.ndarray | None, bm25: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A Knn's best `limit` candidates and their scores, best first."""
    empty = (np.empty(0, np.int64), np.empty(0, np.float32))
    if candidates is not None and len(candidates) == 0:
        return empty
    if knn.dense is not None:
        index = state.index
        if index is None or len(index) == 0:
            return empty
        store._materialize(state)
        keys, distances = index.search(knn.dense[None, :], knn.limit, candidates)[0]
        keys, distances = np.asarray(keys, np.int64), np.asarray(distances, np.float32)
        order = np.lexsort((keys, distances))  # ties in storage order, as Chroma's records sort
        return keys[order], distances[order]
    sparse = store._sparse_index(state, knn.key)
    assert knn.terms is not None and knn.weights is not None
    keys, scores = sparse.search(knn.terms, knn.weights, knn.limit, candidates, state.rows.live if bm25 else None)
    return keys, scores.astype(np.float32)


__all__ = [
    "Domain",
    "KnnQuery",
    "RankNode",
    "SearchHits",
    "SearchPlan",
    "evaluate",
    "execute",
    "group",
    "merge",
    "page",
    "ranked",
]
