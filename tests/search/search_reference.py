"""Chroma's Search API semantics written out from its docs, to check vecduck against.

Nothing here calls vecduck. The expected answers come from the data the tests generate:
NumPy distances for dense Knn, dot products for sparse Knn, the BM25 inverse document
frequency formula applied to the vectors of chromadb's own `ChromaBm25EmbeddingFunction`,
and a small evaluator of the documented rank-combination rules (each Knn scores its best
`limit` candidates; a record must be found by at least one Knn; a Knn without a default
drops the records it did not find; `Val` is a constant; `Rrf` is
`-sum(w_i / (k + rank_i))`), then grouping, paging and selection as the docs describe.

Scores are computed in float64 from the float32 inputs; comparisons allow float32 error
(`tolerance`) and accept swaps between records whose expected scores are that close.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SPARSE_KEY = "sp"  # the user-provided sparse vectors of the main data set (no schema)
BM25_KEY = "sparse_embedding"  # the schema's BM25 index
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "cat", "bird", "apple", "river"]
CATS = ["a", "b", "c", "d"]
TAGS = ["red", "green", "blue"]
SPARSE_DIM = 12
FIXED_SELECT = ["#document", "#embedding", "#metadata", "#score"]


def tolerance(value: float) -> float:
    """How far a float32 score may be from its float64 reference."""
    return 2e-5 * (1.0 + abs(value))


# -- data ------------------------------------------------------------------------------------
@dataclass
class Record:
    id: str
    embedding: np.ndarray  # float32
    document: str | None
    metadata: dict[str, Any] | None  # scalar and array values (the sparse vector is apart)
    sparse: tuple[list[int], list[float]] | None = None  # stored under SPARSE_KEY

    def full_metadata(self, sparse_class: Any) -> dict[str, Any] | None:
        """The metadata as added: with the sparse vector (of the client's class) under SPARSE_KEY."""
        if self.metadata is None and self.sparse is None:
            return None
        metadata = dict(self.metadata or {})
        if self.sparse is not None:
            metadata[SPARSE_KEY] = sparse_class(indices=list(self.sparse[0]), values=list(self.sparse[1]))
        return metadata

    def value(self, key: str) -> Any:
        """The metadata value under `key`, or None when missing."""
        return None if self.metadata is None else self.metadata.get(key)


def make_records(seed: int, n: int = 240, dim: int = 4, prefix: str = "r") -> list[Record]:
    """Random records: ints, floats, strs, bools, str and int arrays, documents, sparse
    vectors; every field is missing from some records and a few have no metadata at all."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        embedding = rng.normal(size=dim).astype(np.float32)
        document = None if rng.random() < 0.06 else " ".join(rng.choice(WORDS, size=int(rng.integers(2, 8))))
        metadata: dict[str, Any] | None = {}
        sparse = None
        if rng.random() < 0.05:
            metadata = None
        else:
            assert metadata is not None
            if rng.random() < 0.9:
                metadata["n"] = int(rng.integers(0, 20))
            if rng.random() < 0.9:
                metadata["x"] = float(rng.random()) + 1e-9
            if rng.random() < 0.9:
                metadata["cat"] = str(rng.choice(CATS))
            if rng.random() < 0.85:
                metadata["flag"] = bool(rng.random() < 0.5)
            if rng.random() < 0.7:
                metadata["tags"] = sorted({str(t) for t in rng.choice(TAGS, size=int(rng.integers(1, 3)))})
            if rng.random() < 0.7:
                metadata["nums"] = [int(v) for v in rng.integers(0, 6, size=int(rng.integers(1, 4)))]
            if rng.random() < 0.8:
                k = int(rng.integers(1, 5))
                indices = sorted(int(t) for t in rng.choice(SPARSE_DIM, size=k, replace=False))
                values = [float(v) for v in rng.uniform(0.1, 1.0, size=k).astype(np.float32)]
                sparse = (indices, values)
            if not metadata and sparse is None:
                metadata = None
        records.append(Record(f"{prefix}{i}", embedding, document, metadata, sparse))
    return records


# -- filters -----------------------------------------------------------------------------------
ID_LIST = ["r3", "r17", "r100", "r101", "r239", "no-such-id"]


def _num(record: Record, key: str, test: Callable[[Any], bool]) -> bool:
    value = record.value(key)
    return value is not None and test(value)


def _doc(record: Record, test: Callable[[str], bool]) -> bool:
    return record.document is not None and test(record.document)


def _array_has(record: Record, key: str, item: Any) -> bool:
    value = record.value(key)
    return isinstance(value, list) and item in value


@dataclass
class FilterCase:
    """A where expression (built from a client's expression classes) and its meaning."""

    name: str
    build: Callable[[Any], Any]  # api -> where
    matches: Callable[[Record], bool]


FILTERS = [
    FilterCase("id_in", lambda api: api.K.ID.is_in(ID_LIST), lambda r: r.id in ID_LIST),
    FilterCase("id_not_in", lambda api: api.K.ID.not_in(ID_LIST), lambda r: r.id not in ID_LIST),
    FilterCase("doc_contains", lambda api: api.K.DOCUMENT.contains("fox"), lambda r: _doc(r, lambda d: "fox" in d)),
    FilterCase(
        "doc_not_contains",
        lambda api: api.K.DOCUMENT.not_contains("fox"),
        lambda r: not _doc(r, lambda d: "fox" in d),
    ),
    FilterCase(
        "doc_regex",
        lambda api: api.K.DOCUMENT.regex(r"\bdog\b"),
        lambda r: _doc(r, lambda d: re.search(r"\bdog\b", d) is not None),
    ),
    FilterCase(
        "doc_not_regex",
        lambda api: api.K.DOCUMENT.not_regex(r"^the [a-z]+"),
        lambda r: not _doc(r, lambda d: re.search(r"^the [a-z]+", d) is not None),
    ),
    FilterCase(
        "doc_regex_case_insensitive",
        lambda api: api.K.DOCUMENT.regex("(?i)FOX|BIRD$"),
        lambda r: _doc(r, lambda d: re.search("(?i)FOX|BIRD$", d) is not None),
    ),
    FilterCase("int_eq", lambda api: api.K("n") == 5, lambda r: r.value("n") == 5),
    FilterCase("int_ne", lambda api: api.K("n") != 5, lambda r: r.value("n") != 5),
    FilterCase("int_gt", lambda api: api.K("n") > 10, lambda r: _num(r, "n", lambda v: v > 10)),
    FilterCase("int_gte", lambda api: api.K("n") >= 10, lambda r: _num(r, "n", lambda v: v >= 10)),
    FilterCase("int_lt", lambda api: api.K("n") < 3, lambda r: _num(r, "n", lambda v: v < 3)),
    FilterCase("int_lte", lambda api: api.K("n") <= 3, lambda r: _num(r, "n", lambda v: v <= 3)),
    FilterCase("float_gt", lambda api: api.K("x") > 0.5, lambda r: _num(r, "x", lambda v: v > 0.5)),
    FilterCase("float_lte", lambda api: api.K("x") <= 0.25, lambda r: _num(r, "x", lambda v: v <= 0.25)),
    FilterCase("int_in", lambda api: api.K("n").is_in([1, 2, 3]), lambda r: r.value("n") in (1, 2, 3)),
    FilterCase("int_not_in", lambda api: api.K("n").not_in([1, 2, 3]), lambda r: r.value("n") not in (1, 2, 3)),
    FilterCase("str_eq", lambda api: api.K("cat") == "a", lambda r: r.value("cat") == "a"),
    FilterCase("str_ne", lambda api: api.K("cat") != "a", lambda r: r.value("cat") != "a"),
    FilterCase("str_in", lambda api: api.K("cat").is_in(["a", "b"]), lambda r: r.value("cat") in ("a", "b")),
    FilterCase("str_not_in", lambda api: api.K("cat").not_in(["a", "b"]), lambda r: r.value("cat") not in ("a", "b")),
    FilterCase("bool_eq", lambda api: api.K("flag") == True, lambda r: r.value("flag") is True),  # noqa: E712
    FilterCase("bool_ne", lambda api: api.K("flag") != True, lambda r: r.value("flag") is not True),  # noqa: E712
    FilterCase("bool_eq_false", lambda api: api.K("flag") == False, lambda r: r.value("flag") is False),  # noqa: E712
    FilterCase("str_array_contains", lambda api: api.K("tags").contains("red"), lambda r: _array_has(r, "tags", "red")),
    FilterCase(
        "str_array_not_contains",
        lambda api: api.K("tags").not_contains("red"),
        lambda r: not _array_has(r, "tags", "red"),
    ),
    FilterCase("int_array_contains", lambda api: api.K("nums").contains(3), lambda r: _array_has(r, "nums", 3)),
    FilterCase(
        "int_array_not_contains",
        lambda api: api.K("nums").not_contains(3),
        lambda r: not _array_has(r, "nums", 3),
    ),
    FilterCase(
        "and",
        lambda api: (api.K("n") >= 5) & (api.K("cat") == "b"),
        lambda r: _num(r, "n", lambda v: v >= 5) and r.value("cat") == "b",
    ),
    FilterCase(
        "or",
        lambda api: (api.K("flag") == True) | api.K.DOCUMENT.contains("dog"),  # noqa: E712
        lambda r: r.value("flag") is True or _doc(r, lambda d: "dog" in d),
    ),
    FilterCase(
        "nested",
        lambda api: (
            ((api.K("x") < 0.5) | api.K.ID.is_in(ID_LIST))
            & api.K("tags").contains("blue")
            & api.K.DOCUMENT.not_contains("cat")
        ),
        lambda r: (
            (_num(r, "x", lambda v: v < 0.5) or r.id in ID_LIST)
            and _array_has(r, "tags", "blue")
            and not _doc(r, lambda d: "cat" in d)
        ),
    ),
    FilterCase(
        "negations_and",
        lambda api: api.K("cat").not_in(["a"]) & (api.K("n") != 3) & api.K.ID.not_in(["r0", "r1"]),
        lambda r: r.value("cat") != "a" and r.value("n") != 3 and r.id not in ("r0", "r1"),
    ),
    FilterCase("nothing", lambda api: api.K("cat") == "zzz", lambda r: False),
]
FILTER_BY_NAME = {case.name: case for case in FILTERS}


def matching(records: Sequence[Record], case: FilterCase | None) -> list[int]:
    """Positions (insertion order) of the records the filter keeps."""
    return [i for i, r in enumerate(records) if case is None or case.matches(r)]


# -- Knn ---------------------------------------------------------------------------------------
def dense_distances(embeddings: np.ndarray, query: Any, space: str) -> np.ndarray:
    """Chroma's distances: l2 = squared euclidean, cosine = 1 - cos, ip = 1 - dot."""
    e = np.asarray(embeddings, np.float32).astype(np.float64)
    q = np.asarray(query, np.float32).astype(np.float64)
    if space == "l2":
        return ((e - q) ** 2).sum(axis=1)
    if space == "ip":
        return 1.0 - e @ q
    if space == "cosine":
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        return 1.0 - e @ (q / np.linalg.norm(q))
    raise ValueError(space)


def sparse_scores(
    vectors: Sequence[tuple[Sequence[int], Sequence[float]] | None],
    query_indices: Sequence[int],
    query_values: Sequence[float],
) -> dict[int, float]:
    """`1 - dot(query, doc)` of each record sharing an index with the query."""
    query = {int(t): float(np.float32(v)) for t, v in zip(query_indices, query_values, strict=True)}
    scores = {}
    for i, vector in enumerate(vectors):
        if vector is None:
            continue
        shared = [(t, v) for t, v in zip(*vector, strict=True) if int(t) in query]
        if shared:
            scores[i] = 1.0 - sum(query[int(t)] * float(np.float32(v)) for t, v in shared)
    return scores


def bm25_idf(vectors: Sequence[tuple[Sequence[int], Sequence[float]] | None], n_records: int) -> Callable[[int], float]:
    """idf(t) = ln(1 + (n - n_t + 0.5) / (n_t + 0.5)) over the given live records."""
    counts: dict[int, int] = {}
    for vector in vectors:
        if vector is not None:
            for t in set(int(t) for t in vector[0]):
                counts[t] = counts.get(t, 0) + 1

    def idf(t: int) -> float:
        n_t = counts.get(int(t), 0)
        return math.log(1.0 + (n_records - n_t + 0.5) / (n_t + 0.5))

    return idf


@dataclass
class KnnHits:
    """A Knn's found records, best first: positions and scores."""

    positions: list[int]
    scores: list[float]
    ambiguous: bool  # a near tie decides membership (at the limit) or the ranks

    def value(self, position: int, return_rank: bool) -> float | None:
        try:
            at = self.positions.index(position)
        except ValueError:
            return None
        return float(at) if return_rank else self.scores[at]


def knn_hits(
    scores: dict[int, float],
    candidates: Iterable[int],
    limit: int,
    return_rank: bool,
    exact_ties_at_limit: bool = False,
) -> KnnHits:
    """The best `limit` candidates by score (ties by insertion order). With
    `exact_ties_at_limit`, an exact tie across the limit counts as ambiguous too (an
    approximate index need not cut equal distances by insertion order)."""
    allowed = set(candidates)
    ranked = sorted(((s, i) for i, s in scores.items() if i in allowed), key=lambda p: (p[0], p[1]))

    def near(a: float, b: float) -> bool:  # exact ties are no ambiguity: insertion order decides
        return 0 < abs(a - b) <= 2 * tolerance(a)

    ambiguous = len(ranked) > limit and (
        near(ranked[limit - 1][0], ranked[limit][0])
        or (exact_ties_at_limit and ranked[limit - 1][0] == ranked[limit][0])
    )
    if return_rank:
        top = ranked[:limit]
        ambiguous = ambiguous or any(near(a[0], b[0]) for a, b in itertools.pairwise(top))
    top = ranked[:limit]
    return KnnHits([i for _s, i in top], [s for s, _i in top], ambiguous)


# -- rank expressions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KnnSpec:
    """One Knn in a rank tree: `query` names an entry of the test's query table."""

    query: str
    limit: int | None = None  # None: not given (16)
    default: float | None = None
    return_rank: bool = False

    @property
    def effective_limit(self) -> int:
        return 16 if self.limit is None else self.limit


# Rank trees are tuples:
#   ("knn", KnnSpec) ("val", c) ("sum", [nodes]) ("mul", [nodes]) ("sub", a, b) ("div", a, b)
#   ("max", a, b) ("min", a, b) ("abs", a) ("exp", a) ("log", a) ("neg", a)
#   ("rrf", [nodes], k, weights | None, normalize)
Node = tuple[Any, ...]


@dataclass
class Query:
    """A query of the test's table: dense (`vector`, on #embedding) or sparse (on `key`)."""

    vector: Any = None  # dense: list / ndarray; text queries are given as str
    indices: list[int] | None = None
    values: list[float] | None = None
    key: str = "#embedding"

    @property
    def sparse(self) -> bool:
        return self.indices is not None


def knn(query: str, limit: int | None = None, default: float | None = None, return_rank: bool = False) -> Node:
    return ("knn", KnnSpec(query, limit, default, return_rank))


def val(value: float) -> Node:
    return ("val", value)


def knn_specs(node: Node) -> list[KnnSpec]:
    kind = node[0]
    if kind == "knn":
        return [node[1]]
    if kind == "val":
        return []
    if kind in ("sum", "mul", "rrf"):
        return [spec for child in node[1] for spec in knn_specs(child)]
    return [spec for child in node[1:] if isinstance(child, tuple) for spec in knn_specs(child)]


def build_rank(node: Node, api: Any, queries: dict[str, Query]) -> Any:
    """The rank expression of a client's classes (`api`), written with the documented operators."""
    kind = node[0]
    if kind == "knn":
        spec: KnnSpec = node[1]
        query = queries[spec.query]
        if query.sparse:
            value = api.SparseVector(indices=list(query.indices), values=list(query.values))
        else:
            value = query.vector
        kwargs: dict[str, Any] = {"query": value, "key": query.key, "return_rank": spec.return_rank}
        if spec.limit is not None:
            kwargs["limit"] = spec.limit
        if spec.default is not None:
            kwargs["default"] = spec.default
        return api.Knn(**kwargs)
    if kind == "val":
        return api.Val(node[1])
    if kind == "sum":
        return functools.reduce(operator.add, [build_rank(c, api, queries) for c in node[1]])
    if kind == "mul":
        return functools.reduce(operator.mul, [build_rank(c, api, queries) for c in node[1]])
    if kind == "rrf":
        _kind, children, k, weights, normalize = node
        return api.Rrf(ranks=[build_rank(c, api, queries) for c in children], k=k, weights=weights, normalize=normalize)
    built = [build_rank(c, api, queries) for c in node[1:]]
    if kind == "sub":
        return built[0] - built[1]
    if kind == "div":
        return built[0] / built[1]
    if kind == "max":
        return built[0].max(built[1])
    if kind == "min":
        return built[0].min(built[1])
    if kind == "abs":
        return abs(built[0])
    if kind == "exp":
        return built[0].exp()
    if kind == "log":
        return built[0].log()
    if kind == "neg":
        return -built[0]
    raise ValueError(kind)


def _evaluate(node: Node, position: int, hits: dict[KnnSpec, KnnHits]) -> tuple[float | None, float]:
    """(score or None, largest magnitude met on the way) of one record."""
    kind = node[0]
    if kind == "knn":
        spec: KnnSpec = node[1]
        value = hits[spec].value(position, spec.return_rank)
        if value is None:
            value = spec.default
        return value, 0.0 if value is None else abs(value)
    if kind == "val":
        return float(node[1]), abs(float(node[1]))
    if kind == "rrf":
        _kind, children, k, weights, normalize = node
        weights = list(weights) if weights else [1.0] * len(children)
        if normalize:
            total = sum(weights)
            weights = [w / total for w in weights]
        terms = []
        for child, weight in zip(children, weights, strict=True):
            rank, _magnitude = _evaluate(child, position, hits)
            if rank is None:
                return None, 0.0
            terms.append(weight / (k + rank))
        # float32 error is relative to the terms (not to k + rank, divided away)
        return -math.fsum(terms), max(abs(t) for t in terms) * len(terms)
    children = node[1] if kind in ("sum", "mul") else node[1:]
    values, magnitude = [], 0.0
    for child in children:
        value, child_magnitude = _evaluate(child, position, hits)
        if value is None:
            return None, 0.0
        values.append(value)
        magnitude = max(magnitude, child_magnitude)
    if kind == "sum":
        result = math.fsum(values)
    elif kind == "mul":
        result = math.prod(values)
    elif kind == "sub":
        result = values[0] - values[1]
    elif kind == "div":
        result = values[0] / values[1]
    elif kind == "max":
        result = max(values)
    elif kind == "min":
        result = min(values)
    elif kind == "abs":
        result = abs(values[0])
    elif kind == "exp":
        result = math.exp(values[0]) if values[0] < 700 else math.inf  # out of float32's range anyway
    elif kind == "log":
        result = math.log(values[0])
    elif kind == "neg":
        result = -values[0]
    else:
        raise ValueError(kind)
    return result, max(magnitude, abs(result))


@dataclass
class Expected:
    """A reference ranking: (position, score, tolerance) best first, and whether a near tie
    inside some Knn makes the answer depend on float32 rounding."""

    ranked: list[tuple[int, float, float]]
    ambiguous: bool


def evaluate_rank(
    node: Node,
    candidates: Sequence[int],
    knn_scores: Callable[[KnnSpec], dict[int, float]],
    exact_ties_at_limit: Callable[[KnnSpec], bool] = lambda spec: False,
) -> Expected:
    """The documented rank semantics over the filtered `candidates`: every Knn takes its best
    `limit` candidates; the records found by any Knn are scored (a Knn that did not find a
    record gives its default, or drops the record without one); sorted by score, ties by
    insertion order."""
    hits = {}
    for spec in knn_specs(node):
        if spec not in hits:
            hits[spec] = knn_hits(
                knn_scores(spec), candidates, spec.effective_limit, spec.return_rank, exact_ties_at_limit(spec)
            )
    found = sorted({p for h in hits.values() for p in h.positions})
    ranked = []
    for position in found:
        score, magnitude = _evaluate(node, position, hits)
        if score is not None:
            ranked.append((position, score, 2e-5 * (1.0 + magnitude)))
    ranked.sort(key=lambda item: (item[1], item[0]))
    return Expected(ranked, any(h.ambiguous for h in hits.values()))


# -- group by ---------------------------------------------------------------------------------------
def _compare_missing_first(a: Any, b: Any) -> int:
    if a is None or b is None:
        return (a is not None) - (b is not None)
    return (a > b) - (a < b)


def _sorted_groups(
    ranked: list[tuple[int, float, float]],
    records: Sequence[Record],
    group_keys: Sequence[str],
    kind: str,
    sort_keys: Sequence[str],
) -> list[list[tuple[int, float, float]]]:
    """The ranked records grouped by their values of `group_keys` (missing: a null group),
    each group sorted by `sort_keys` (MinK ascending, MaxK descending, a missing value
    before any value, stable: ties keep score order)."""
    groups: dict[tuple[Any, ...], list[tuple[int, float, float]]] = {}
    for item in ranked:
        record = records[item[0]]
        key = tuple((type(record.value(g)).__name__, record.value(g)) for g in group_keys)
        groups.setdefault(key, []).append(item)

    def sort_values(item: tuple[int, float, float]) -> list[Any]:
        return [item[1] if key == "#score" else records[item[0]].value(key) for key in sort_keys]

    def compare(a: tuple[int, float, float], b: tuple[int, float, float]) -> int:
        for x, y in zip(sort_values(a), sort_values(b), strict=True):
            order = _compare_missing_first(x, y)
            if order:
                return order if kind == "min" else -order
        return 0

    return [sorted(members, key=functools.cmp_to_key(compare)) for members in groups.values()]


def group_ranked(
    ranked: list[tuple[int, float, float]],
    records: Sequence[Record],
    group_keys: Sequence[str],
    kind: str,
    sort_keys: Sequence[str],
    k: int,
) -> list[tuple[int, float, float]]:
    """GroupBy with MinK / MaxK: the first k of each group (see _sorted_groups), then all
    kept records sorted by score (ties by insertion order)."""
    kept = [item for members in _sorted_groups(ranked, records, group_keys, kind, sort_keys) for item in members[:k]]
    kept.sort(key=lambda item: (item[1], item[0]))
    return kept


def group_ambiguous(
    ranked: list[tuple[int, float, float]],
    records: Sequence[Record],
    group_keys: Sequence[str],
    kind: str,
    sort_keys: Sequence[str],
    k: int,
) -> bool:
    """Whether a near (not exact) score tie decides which records a group keeps."""
    for members in _sorted_groups(ranked, records, group_keys, kind, sort_keys):
        if len(members) > k:
            (pa, sa, ta), (pb, sb, tb) = members[k - 1], members[k]
            same_fields = all(records[pa].value(key) == records[pb].value(key) for key in sort_keys if key != "#score")
            if same_fields and sa != sb and abs(sa - sb) <= ta + tb:
                return True
    return False


# -- comparisons ---------------------------------------------------------------------------------------
def check_page(
    got_ids: Sequence[str],
    got_scores: Sequence[float] | None,
    expected: Sequence[tuple[str, float, float]],
    offset: int = 0,
    limit: int | None = None,
    what: str = "",
) -> list[str]:
    """Problems of a result page against the expected full ranking (id, score, tolerance):
    position by position the id must be expected there up to a near tie, with its score."""
    page = list(expected[offset : None if limit is None else offset + limit])
    problems = []
    if len(got_ids) != len(page):
        problems.append(
            f"{what}: {len(got_ids)} hits, expected {len(page)}: got {list(got_ids)[:12]}, expected "
            f"{[e[0] for e in page][:12]}"
        )
        return problems
    if len(set(got_ids)) != len(got_ids):
        problems.append(f"{what}: repeated ids {list(got_ids)}")
    by_id = {e[0]: e for e in expected}
    for at, got in enumerate(got_ids):
        want_id, want_score, want_tol = page[at]
        if got not in by_id:
            problems.append(f"{what}: position {at} holds {got}, which should not be there (expected {want_id})")
            continue
        _id, score, tol = by_id[got]
        if got != want_id and abs(score - want_score) > tol + want_tol:
            problems.append(
                f"{what}: position {offset + at} holds {got} (score {score:.7g}), expected {want_id} "
                f"(score {want_score:.7g})"
            )
        if got_scores is not None:
            value = got_scores[at]
            if value is None or abs(float(value) - score) > tol:
                problems.append(f"{what}: score of {got} is {value}, expected {score:.7g} (±{tol:.2g})")
    return problems


def normalize_metadata(metadata: Any) -> Any:
    """Metadata with sparse vectors (any client's class, or their dict) as comparable tuples."""
    if metadata is None:
        return None
    out = {}
    for key, value in metadata.items():
        if hasattr(value, "indices") and hasattr(value, "values"):
            value = ("sparse", tuple(int(i) for i in value.indices), tuple(float(np.float32(v)) for v in value.values))
        elif isinstance(value, dict) and "indices" in value:
            value = (
                "sparse",
                tuple(int(i) for i in value["indices"]),
                tuple(float(np.float32(v)) for v in value["values"]),
            )
        out[key] = value
    return out


def expected_metadata(record: Record, keys: Sequence[str] | None) -> Any:
    """The metadata a search returns: all of it (`keys` None) or only the selected keys
    (None when the record has none of them)."""
    full = record.metadata
    if record.sparse is not None:
        full = {**(full or {}), SPARSE_KEY: ("sparse", tuple(record.sparse[0]), tuple(record.sparse[1]))}
    if keys is None:
        return full
    chosen = {k: v for k, v in (full or {}).items() if k in keys}
    return chosen or None


def select_order(keys: Iterable[str]) -> list[str]:
    """The documented order of a result's `select`: the fixed keys, then fields sorted."""
    keys = set(keys)
    return [k for k in FIXED_SELECT if k in keys] + sorted(k for k in keys if k not in FIXED_SELECT)


def min_gap(scores: Sequence[float]) -> float:
    """The smallest distance between two of the scores (inf for fewer than two)."""
    ordered = sorted(scores)
    return min((b - a for a, b in itertools.pairwise(ordered)), default=math.inf)
