"""vecduck.api.expressions against chromadb.execution.expression: the same expressions built
the same way with both give the same dicts, and bad input raises the same errors.

Every expected value comes from chromadb: each test builds an expression once per library
(through a `Side`, which names that library's classes) and compares the two outcomes.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb.execution.expression as chroma_expression
import numpy as np
import pytest
from chromadb.base_types import SparseVector as ChromaSparseVector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecduck.api.expressions as vecduck_expression
from vecduck.api.types import SparseVector

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis folder in the working directory
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Side:
    """One library's expression classes, plus the SparseVector class that goes with them."""

    def __init__(self, module: Any, sparse_vector: type) -> None:
        self.module = module
        self.SparseVector = sparse_vector

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


THEIRS = Side(chroma_expression, ChromaSparseVector)
OURS = Side(vecduck_expression, SparseVector)


def outcome(build: Callable[[Side], Any], side: Side) -> tuple[Any, ...]:
    """("ok", value) or ("raised", exception type, message)."""
    try:
        return ("ok", build(side))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def assert_same(build: Callable[[Side], Any]) -> tuple[Any, ...]:
    """Run `build` with chromadb's classes and with ours; the outcomes must be equal."""
    theirs = outcome(build, THEIRS)
    ours = outcome(build, OURS)
    assert ours == theirs
    return theirs


def sorted_select(result: dict[str, Any]) -> dict[str, Any]:
    """A Search dict with its select keys sorted (a set's order is arbitrary in chromadb too)."""
    return {**result, "select": {"keys": sorted(result["select"]["keys"])}}


# -- building the same expression with either library ---------------------------------------
COMPARISONS = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt}
COMPARISONS["<="] = operator.le
ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
RECORD_KEYS = ("ID", "DOCUMENT", "EMBEDDING", "METADATA", "SCORE")


def make_key(spec: tuple[str, str], side: Side) -> Any:
    kind, value = spec
    if kind == "const":
        return getattr(side.K, value)
    if kind == "Key":
        return side.Key(value)
    return value  # a plain string


def build_where(tree: tuple[Any, ...], side: Side) -> Any:
    tag = tree[0]
    if tag == "cmp":
        _, op, key, value = tree
        return COMPARISONS[op](make_key(key, side), value)
    if tag == "&":
        return build_where(tree[1], side) & build_where(tree[2], side)
    if tag == "|":
        return build_where(tree[1], side) | build_where(tree[2], side)
    if tag in ("And", "Or"):
        return getattr(side, tag)([build_where(child, side) for child in tree[1]])
    if tag == "direct":
        _, name, key, value = tree
        return getattr(side, name)(key, value)
    _, key, value = tree  # a Key method: is_in, not_in, regex, not_regex, contains, not_contains
    return getattr(make_key(key, side), tag)(value)


def make_query(spec: tuple[Any, ...], side: Side) -> Any:
    kind = spec[0]
    if kind == "list":
        return list(spec[1])
    if kind == "array":
        return np.array(spec[1], dtype=spec[2])
    if kind in ("sparse", "chroma_sparse"):
        pairs = sorted(spec[1].items())
        labels = [f"t{index}" for index, _ in pairs] if spec[2] else None
        kind_class = side.SparseVector if kind == "sparse" else ChromaSparseVector
        return kind_class([index for index, _ in pairs], [value for _, value in pairs], labels)
    return spec[1]  # text


def build_rank(tree: Any, side: Side) -> Any:
    tag = tree[0]
    if tag == "num":
        return tree[1]
    if tag == "val":
        return side.Val(tree[1])
    if tag == "knn":
        _, query, options = tree
        options = dict(options)
        if "key" in options:
            options["key"] = make_key(options["key"], side)
        return side.Knn(query=make_query(query, side), **options)
    if tag == "op":
        _, op, left, right = tree
        return ARITHMETIC[op](build_rank(left, side), build_rank(right, side))
    if tag == "neg":
        return -build_rank(tree[1], side)
    if tag == "abs()":
        return abs(build_rank(tree[1], side))
    if tag in ("abs", "exp", "log"):
        return getattr(build_rank(tree[1], side), tag)()
    if tag in ("max", "min"):
        return getattr(build_rank(tree[1], side), tag)(build_rank(tree[2], side))
    if tag == "rrf":
        _, ranks, options = tree
        return side.Rrf([build_rank(rank, side) for rank in ranks], **options)
    if tag in ("Sum", "Mul", "Max", "Min"):
        return getattr(side, tag)([build_rank(rank, side) for rank in tree[1]])
    if tag in ("Sub", "Div"):
        return getattr(side, tag)(build_rank(tree[1], side), build_rank(tree[2], side))
    if tag in ("Abs", "Exp", "Log"):
        return getattr(side, tag)(build_rank(tree[1], side))
    raise AssertionError(tag)


def build_group_by(spec: Any, side: Side) -> Any:
    if spec is None:
        return side.GroupBy()
    keys, aggregate = spec

    def keys_of(value: Any) -> Any:
        return [make_key(k, side) for k in value] if isinstance(value, list) else make_key(value, side)

    if aggregate is None:
        return side.GroupBy(keys=keys_of(keys))
    kind, aggregate_keys, k = aggregate
    return side.GroupBy(keys=keys_of(keys), aggregate=getattr(side, kind)(keys=keys_of(aggregate_keys), k=k))


def build_select(spec: list[tuple[str, str]], side: Side) -> Any:
    keys: set[Any] = set()
    for key in spec:  # the same insertion order on both sides
        keys.add(make_key(key, side))
    return side.Select(keys=keys)


# -- strategies ------------------------------------------------------------------------------
names = st.one_of(
    st.sampled_from(["a", "year", "tag", "#id", "#document", "#metadata", "#embedding", "#score"]),
    st.text(alphabet="abcxyz_", min_size=1, max_size=5),
)
keys = st.one_of(
    st.tuples(st.just("const"), st.sampled_from(RECORD_KEYS)),
    st.tuples(st.just("Key"), names),
)
scalars = st.one_of(
    st.text(max_size=6),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.booleans(),
)
where_leaves = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(sorted(COMPARISONS)), keys, scalars),
    st.tuples(st.sampled_from(["is_in", "not_in"]), keys, st.lists(scalars, max_size=4)),
    st.tuples(st.sampled_from(["regex", "not_regex"]), keys, st.text(max_size=6)),
    # non-strings on #document raise TypeError in both
    st.tuples(st.sampled_from(["contains", "not_contains"]), keys, scalars),
)
operator_wheres = st.recursive(
    where_leaves, lambda kids: st.tuples(st.sampled_from(["&", "|"]), kids, kids), max_leaves=10
)
direct_leaves = st.tuples(
    st.just("direct"),
    st.sampled_from(["Eq", "Ne", "Gt", "Gte", "Lt", "Lte", "Contains", "NotContains", "Regex", "NotRegex"]),
    names,
    scalars,
) | st.tuples(st.just("direct"), st.sampled_from(["In", "Nin"]), names, st.lists(scalars, max_size=3))
any_wheres = st.recursive(
    where_leaves | direct_leaves,
    lambda kids: st.one_of(
        st.tuples(st.sampled_from(["&", "|"]), kids, kids),
        st.tuples(st.sampled_from(["And", "Or"]), st.lists(kids, min_size=1, max_size=3)),
    ),
    max_leaves=10,
)

numbers = st.one_of(st.integers(-100, 100), st.floats(-1e6, 1e6, allow_nan=False), st.booleans())
dense = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=4)
sparse = st.dictionaries(st.integers(0, 1000), st.floats(-5, 5, width=32), max_size=4)
queries = st.one_of(
    st.tuples(st.just("list"), dense),
    st.tuples(st.just("array"), dense, st.sampled_from(["float32", "float64", "float16", "int32"])),
    st.tuples(st.sampled_from(["sparse", "chroma_sparse"]), sparse, st.booleans()),
    st.tuples(st.just("text"), st.text(max_size=8)),
)
knn_options = st.fixed_dictionaries(
    {},
    optional={
        "key": st.one_of(
            st.just(("const", "EMBEDDING")), st.tuples(st.just("str"), st.sampled_from(["#embedding", "sparse"]))
        ),
        "limit": st.integers(1, 50),
        "default": st.none() | st.floats(-10, 10),
        "return_rank": st.booleans(),
    },
)
rank_leaves = st.one_of(st.tuples(st.just("val"), numbers), st.tuples(st.just("knn"), queries, knn_options))
rrf_options = st.fixed_dictionaries(
    {},
    optional={
        "k": st.integers(-1, 100),
        "weights": st.none() | st.lists(st.integers(-1, 3) | st.floats(-0.5, 5), max_size=4),
        "normalize": st.booleans(),
    },
)


def extend_ranks(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    number_or_rank = kids | st.tuples(st.just("num"), numbers)
    return st.one_of(
        st.tuples(st.just("op"), st.sampled_from(sorted(ARITHMETIC)), kids, number_or_rank),
        # number <op> rank: the reflected operators
        st.tuples(st.just("op"), st.sampled_from(sorted(ARITHMETIC)), st.tuples(st.just("num"), numbers), kids),
        st.tuples(st.sampled_from(["neg", "abs()", "abs", "exp", "log"]), kids),
        st.tuples(st.sampled_from(["max", "min"]), kids, number_or_rank),
        st.tuples(st.just("rrf"), st.lists(kids, max_size=3), rrf_options),
        st.tuples(st.sampled_from(["Sum", "Mul", "Max", "Min"]), st.lists(kids, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["Sub", "Div"]), kids, kids),
        st.tuples(st.sampled_from(["Abs", "Exp", "Log"]), kids),
    )


ranks = st.recursive(rank_leaves, extend_ranks, max_leaves=8)

key_lists = st.one_of(keys, st.lists(keys, max_size=3))
group_bys = st.none() | st.tuples(
    key_lists, st.none() | st.tuples(st.sampled_from(["MinK", "MaxK"]), key_lists, st.integers(1, 10))
)
selects = st.lists(keys, max_size=5)


# -- the module's surface ---------------------------------------------------------------------
def test_public_names_match_chromadb() -> None:
    assert sorted(vecduck_expression.__all__) == sorted(chroma_expression.__all__)
    assert OURS.SearchWhere is OURS.Where
    assert OURS.K is OURS.Key


@pytest.mark.parametrize("name", [n for n in chroma_expression.__all__ if dataclasses.is_dataclass(getattr(THEIRS, n))])
def test_dataclass_fields_and_defaults_match(name: str) -> None:
    def describe(cls: type) -> list[tuple[str, Any, Any]]:
        return [
            (f.name, f.default, f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            for f in dataclasses.fields(cls)
        ]

    ours_class, theirs_class = getattr(OURS, name), getattr(THEIRS, name)
    assert dataclasses.is_dataclass(ours_class)
    ours, theirs = describe(ours_class), describe(theirs_class)
    if name == "Knn":  # the default key is each library's Key.EMBEDDING
        ours = [(n, d.name if isinstance(d, OURS.Key) else d, f) for n, d, f in ours]
        theirs = [(n, d.name if isinstance(d, THEIRS.Key) else d, f) for n, d, f in theirs]
    assert ours == theirs


def test_key_constants_and_hash() -> None:
    for constant in RECORD_KEYS:
        assert getattr(OURS.Key, constant).name == getattr(THEIRS.Key, constant).name
    assert OURS.Key.ID.name == "#id"
    assert hash(OURS.Key("year")) == hash(THEIRS.Key("year"))
    assert len({OURS.Key("a"), OURS.Key("a"), OURS.Key("b")}) == len(
        {THEIRS.Key("a"), THEIRS.Key("a"), THEIRS.Key("b")}
    )


def test_subclass_relations_match() -> None:
    for name in chroma_expression.__all__:
        theirs_class = getattr(THEIRS, name)
        for base in ("Where", "Rank", "Aggregate"):
            assert issubclass(getattr(OURS, name), getattr(OURS, base)) == issubclass(
                theirs_class, getattr(THEIRS, base)
            ), (name, base)


# -- where --------------------------------------------------------------------------------------
HAND_WRITTEN_WHERES: list[Callable[[Side], Any]] = [
    lambda s: s.K("status") == "active",
    lambda s: (s.K("a") > 1) & (s.K("b") <= 2.5) & (s.K("c") != True),  # noqa: E712
    lambda s: ((s.K("a") >= 0) | (s.K("b") < 0)) & ((s.K("c") == 1) | s.K.ID.is_in(["x", "y"])),
    lambda s: (s.K("a") == 1) & ((s.K("b") == 2) & (s.K("c") == 3)),
    lambda s: ((s.K("a") == 1) | (s.K("b") == 2)) | ((s.K("c") == 3) | (s.K("d") == 4)),
    lambda s: s.K.DOCUMENT.contains("needle") & s.K.DOCUMENT.not_contains("hay"),
    lambda s: s.K.DOCUMENT.regex("^a.*") | s.K.DOCUMENT.not_regex("b$"),
    lambda s: s.K("tags").contains(3) & s.K("tags").not_contains(True),
    lambda s: s.K.ID.not_in(["1", "2"]),
    lambda s: s.K.DOCUMENT.contains(3),
    lambda s: s.K.DOCUMENT.not_contains(None),
    lambda s: s.And([s.Eq("a", 1), s.Or([s.In("b", [1, 2]), s.Nin("c", [])])]),
    lambda s: s.And([s.Eq("a", 1)]) & s.And([s.Regex("b", "x"), s.NotRegex("c", "y")]),
    lambda s: s.Contains("#document", "x") | s.NotContains("tags", 1.5),
]


@pytest.mark.parametrize("build", HAND_WRITTEN_WHERES)
def test_hand_written_where_to_dict(build: Callable[[Side], Any]) -> None:
    assert_same(lambda s: build(s).to_dict())
    assert_same(lambda s: s.Where.from_dict(build(THEIRS).to_dict()).to_dict())


@SETTINGS
@given(operator_wheres)
def test_where_operators_match(tree: tuple[Any, ...]) -> None:
    result = assert_same(lambda s: build_where(tree, s).to_dict())
    if result[0] == "ok":
        # a tree built with the operators is already flat: the dict reads back unchanged
        assert OURS.Where.from_dict(result[1]).to_dict() == result[1]
        assert_same(lambda s: s.Where.from_dict(result[1]).to_dict())


@SETTINGS
@given(any_wheres)
def test_where_classes_match(tree: tuple[Any, ...]) -> None:
    result = assert_same(lambda s: build_where(tree, s).to_dict())
    if result[0] == "ok":
        assert_same(lambda s: s.Where.from_dict(result[1]).to_dict())


def test_where_objects_compare_like_chromadb() -> None:
    assert (OURS.K("a") == 1) == OURS.Eq("a", 1)
    assert ((OURS.K("a") == 1) & (OURS.K("b") == 2)) == OURS.And([OURS.Eq("a", 1), OURS.Eq("b", 2)])
    assert OURS.Eq("a", 1) != OURS.Ne("a", 1)


BAD_WHERES: list[Any] = [
    {},
    [],
    "a",
    {"a": 1, "b": 2},
    {1: 2},
    {"a": {}},
    {"a": {"$eq": 1, "$ne": 2}},
    {"a": {"$foo": 1}},
    {"$and": {"a": 1}},
    {"$and": []},
    {"$and": [{"a": 1}], "b": 2},
    {"$and": [{"a": 1}, {}]},
    {"$or": "x"},
    {"$or": []},
    {"$or": [{"a": 1}], "$and": [{"b": 1}]},
    {"a": {"$in": 1}},
    {"a": {"$in": (1, 2)}},
    {"a": {"$nin": "ab"}},
    {"a": {"$contains": [1]}},
    {"a": {"$not_contains": None}},
    {"#document": {"$contains": 1}},
    {"#document": {"$not_contains": 1.5}},
    {"a": {"$regex": 1}},
    {"a": {"$not_regex": None}},
]


@pytest.mark.parametrize("data", BAD_WHERES, ids=repr)
def test_bad_where_dicts_raise_like_chromadb(data: Any) -> None:
    result = assert_same(lambda s: s.Where.from_dict(data))
    assert result[0] == "raised"


GOOD_WHERES: list[dict[str, Any]] = [
    {"a": 1},
    {"a": [1, 2]},  # a list value is an $eq, as in chromadb
    {"a": {"$in": [1, "x", True]}},
    {"$and": [{"a": 1}]},
    {"$or": [{"a": {"$gt": 1}}, {"b": {"$lte": 2}}, {"$and": [{"c": 1}, {"d": {"$ne": 2}}]}]},
    {"$and": [{"$and": [{"a": 1}, {"b": 2}]}, {"c": 3}]},
    {"#document": {"$contains": "x"}},
    {"tags": {"$contains": 3}},
    {"$contains": {"$regex": "x"}},
]


@pytest.mark.parametrize("data", GOOD_WHERES, ids=repr)
def test_where_from_dict_matches(data: dict[str, Any]) -> None:
    result = assert_same(lambda s: s.Where.from_dict(data).to_dict())
    assert result[0] == "ok"


# -- rank ---------------------------------------------------------------------------------------
def _knn(s: Side, **options: Any) -> Any:
    return s.Knn(query=[0.1, 0.2, 0.3], **options)


HAND_WRITTEN_RANKS: list[Callable[[Side], Any]] = [
    lambda s: _knn(s),
    lambda s: s.Knn(query=np.array([1.5, 2.5], dtype=np.float32), key=s.K.EMBEDDING, limit=3),
    lambda s: s.Knn(query=np.array([1, 2], dtype=np.int64), default=10.0, return_rank=True),
    lambda s: s.Knn(query=s.SparseVector([1, 5], [0.5, 0.25]), key="sparse"),
    lambda s: s.Knn(query=s.SparseVector([1, 5], [0.5, 0.25], ["a", "b"]), key="sparse", limit=100),
    lambda s: s.Knn(query=ChromaSparseVector([0], [1.0]), key="sparse"),
    lambda s: s.Knn(query="hello world", key="sparse", return_rank=False, default=None),
    lambda s: _knn(s) * 0.8 + s.Val(0.5) * 0.2,
    lambda s: 1 + _knn(s) + 2 + (3 + _knn(s, limit=2)),
    lambda s: 2 * _knn(s) * 3 * (_knn(s) * 4),
    lambda s: 1 - _knn(s) - 2,
    lambda s: 1 / _knn(s) / 2,
    lambda s: -_knn(s),
    lambda s: -(_knn(s) * 2),
    lambda s: abs(_knn(s)) + _knn(s).abs(),
    lambda s: _knn(s).exp().log(),
    lambda s: _knn(s).max(0).max(_knn(s).max(1)).min(5).min(s.Val(2).min(3)),
    lambda s: _knn(s) + True,
    lambda s: s.Rrf([_knn(s, return_rank=True), s.Knn(query="q", key="sparse", return_rank=True)]),
    lambda s: s.Rrf([_knn(s, return_rank=True)], k=10),
    lambda s: s.Rrf([_knn(s), _knn(s) + 1], weights=[2.0, 1.0]),
    lambda s: s.Rrf([_knn(s), _knn(s)], weights=[3, 1], normalize=True, k=100),
    lambda s: s.Rrf([_knn(s), _knn(s)], normalize=True),
    lambda s: s.Rrf([s.Rrf([_knn(s)]), _knn(s)]) * 0.5,
    lambda s: s.Sum([s.Val(1)]) + s.Mul([]),
    lambda s: s.Sub(s.Val(1), s.Div(s.Val(2), s.Val(3))),
    lambda s: s.Abs(s.Exp(s.Log(s.Val(1)))),
    lambda s: s.Max([s.Val(1), s.Min([s.Val(2), s.Val(3)])]),
]

BAD_RRFS: list[Callable[[Side], Any]] = [
    lambda s: s.Rrf([]),
    lambda s: s.Rrf([_knn(s)], k=0),
    lambda s: s.Rrf([_knn(s)], k=-5),
    lambda s: s.Rrf([_knn(s), _knn(s)], weights=[1.0]),
    lambda s: s.Rrf([_knn(s)], weights=[1.0, 2.0]),
    lambda s: s.Rrf([_knn(s)], weights=[]),
    lambda s: s.Rrf([_knn(s), _knn(s)], weights=[1.0, -0.5]),
    lambda s: s.Rrf([_knn(s), _knn(s)], weights=[0.0, 0], normalize=True),
    lambda s: _knn(s) + s.Rrf([_knn(s)], k=0),
]


@pytest.mark.parametrize("build", HAND_WRITTEN_RANKS)
def test_hand_written_rank_to_dict(build: Callable[[Side], Any]) -> None:
    result = assert_same(lambda s: build(s).to_dict())
    assert result[0] == "ok"
    assert_same(lambda s: s.Rank.from_dict(result[1]).to_dict())


@pytest.mark.parametrize("build", BAD_RRFS)
def test_bad_rrf_raises_like_chromadb(build: Callable[[Side], Any]) -> None:
    result = assert_same(lambda s: build(s).to_dict())
    assert result[0] == "raised"
    assert result[1] is ValueError


@SETTINGS
@given(ranks)
def test_rank_expressions_match(tree: Any) -> None:
    result = assert_same(lambda s: build_rank(tree, s).to_dict())
    if result[0] == "ok":
        assert_same(lambda s: s.Rank.from_dict(result[1]).to_dict())


def test_rank_round_trips_unchanged() -> None:
    built = OURS.Rrf([OURS.Knn(query=[0.5, 0.25], return_rank=True), OURS.Knn(query=[1.0], key="s")], k=5) + (
        OURS.Val(1) - OURS.Val(2).exp().max(3)
    ) / OURS.Val(4).abs().log().min(OURS.Val(5))
    data = built.to_dict()
    assert OURS.Rank.from_dict(data).to_dict() == data
    assert THEIRS.Rank.from_dict(data).to_dict() == data


def test_sparse_query_reads_back_as_vecduck_sparse_vector() -> None:
    data = {"$knn": {"query": {"#type": "sparse_vector", "indices": [1, 4], "values": [0.5, 1.0]}, "key": "s"}}
    knn = OURS.Rank.from_dict(data)
    assert isinstance(knn, OURS.Knn)
    assert isinstance(knn.query, SparseVector)
    assert knn.query == SparseVector([1, 4], [0.5, 1.0])
    assert_same(lambda s: s.Rank.from_dict(data).to_dict())


def test_dense_query_reads_back_as_one_float32_vector() -> None:
    for query in ([1, 2, 3], [[1.0, 2.0]], np.array([[1.0, 2.0]]), np.array([1, 2], dtype=np.int32)):
        ours = OURS.Rank.from_dict({"$knn": {"query": query}})
        theirs = THEIRS.Rank.from_dict({"$knn": {"query": query}})
        assert isinstance(ours.query, np.ndarray)
        assert ours.query.dtype == theirs.query.dtype
        assert ours.query.tolist() == theirs.query.tolist()


def test_non_finite_dense_query_is_refused() -> None:
    """A deliberate difference: chromadb's client lets NaN/infinity through to its server."""
    for value in (math.nan, math.inf, -math.inf):
        THEIRS.Rank.from_dict({"$knn": {"query": [1.0, value]}})
        with pytest.raises(ValueError, match="finite"):
            OURS.Rank.from_dict({"$knn": {"query": [1.0, value]}})


BAD_RANKS: list[Any] = [
    {},
    [],
    {"$val": 1, "$knn": {}},
    {"$foo": 1},
    {"$val": "1"},
    {"$val": None},
    {"$knn": []},
    {"$knn": {}},
    {"$knn": {"limit": 3}},
    {"$knn": {"query": [1.0], "limit": 0}},
    {"$knn": {"query": [1.0], "limit": -1}},
    {"$knn": {"query": [1.0], "limit": 1.5}},
    {"$knn": {"query": [1.0], "key": 1}},
    {"$knn": {"query": [1.0], "return_rank": 1}},
    {"$knn": {"query": "text"}},
    {"$knn": {"query": None}},
    {"$knn": {"query": {"indices": [1]}}},
    {"$knn": {"query": {"#type": "dense"}}},
    {"$knn": {"query": {"#type": "sparse_vector", "values": [1.0]}}},
    {"$knn": {"query": {"#type": "sparse_vector", "indices": [2, 1], "values": [1.0, 2.0]}}},
    {"$knn": {"query": {"#type": "sparse_vector", "indices": [1], "values": [1.0, 2.0]}}},
    {"$knn": {"query": []}},
    {"$knn": {"query": [[1.0], [2.0]]}},
    {"$knn": {"query": np.array([[1.0], [2.0]])}},
    {"$knn": {"query": np.zeros((1, 0))}},
    {"$knn": {"query": (1.0,)}},
    {"$knn": {"query": [True]}},
    {"$knn": {"query": ["a"]}},
    {"$knn": {"query": np.array([1, 2], dtype=np.int8)}},
    {"$sum": [{"$val": 1}]},
    {"$sum": {"$val": 1}},
    {"$sum": [{"$val": 1}, {"$bad": 2}]},
    {"$mul": []},
    {"$mul": "ab"},
    {"$max": [{"$val": 1}]},
    {"$min": "x"},
    {"$sub": [1, 2]},
    {"$sub": {"left": {"$val": 1}}},
    {"$div": {"right": {"$val": 1}}},
    {"$div": {"left": {"$val": 1}, "right": 2}},
    {"$abs": 1},
    {"$exp": []},
    {"$log": "x"},
]


@pytest.mark.parametrize("data", BAD_RANKS, ids=repr)
def test_bad_rank_dicts_raise_like_chromadb(data: Any) -> None:
    result = assert_same(lambda s: s.Rank.from_dict(data))
    assert result[0] == "raised"


# -- limit, select, group by ------------------------------------------------------------------
@SETTINGS
@given(st.integers(-3, 100), st.none() | st.integers(-3, 100))
def test_limit_matches(offset: int, limit: int | None) -> None:
    result = assert_same(lambda s: s.Limit(offset=offset, limit=limit).to_dict())
    assert_same(lambda s: s.Limit.from_dict(result[1]).to_dict())


BAD_LIMITS: list[Any] = [
    [],
    None,
    {"offset": "1"},
    {"offset": 1.0},
    {"offset": None},
    {"offset": -1},
    {"limit": 0},
    {"limit": -3},
    {"limit": 2.5},
    {"limit": "10"},
    {"offset": 0, "limit": 5, "x": 1},
    {"extra": 1, "more": 2},
]


@pytest.mark.parametrize("data", BAD_LIMITS, ids=repr)
def test_bad_limit_dicts_raise_like_chromadb(data: Any) -> None:
    result = assert_same(lambda s: s.Limit.from_dict(data))
    assert result[0] == "raised"


@SETTINGS
@given(selects)
def test_select_matches(spec: list[tuple[str, str]]) -> None:
    def build(s: Side) -> list[str]:
        return sorted(build_select(spec, s).to_dict()["keys"])

    keys = assert_same(build)[1]
    assert_same(lambda s: sorted(s.Select.from_dict({"keys": keys}).to_dict()["keys"]))


def test_select_reads_record_keys_as_the_constants() -> None:
    select = OURS.Select.from_dict({"keys": ["#document", "#score", "title"]})
    assert OURS.Key.DOCUMENT in select.keys
    assert {key.name for key in select.keys} == {"#document", "#score", "title"}


BAD_SELECTS: list[Any] = [[], "abc", {"keys": "abc"}, {"keys": [1]}, {"keys": ["a", None]}, {"keys": ["a"], "x": 1}]


@pytest.mark.parametrize("data", BAD_SELECTS, ids=repr)
def test_bad_select_dicts_raise_like_chromadb(data: Any) -> None:
    result = assert_same(lambda s: s.Select.from_dict(data))
    assert result[0] == "raised"


@SETTINGS
@given(group_bys)
def test_group_by_matches(spec: Any) -> None:
    result = assert_same(lambda s: build_group_by(spec, s).to_dict())
    assert_same(lambda s: s.GroupBy.from_dict(result[1]).to_dict())


def test_group_by_hand_written() -> None:
    cases: list[Callable[[Side], Any]] = [
        lambda s: s.GroupBy(keys=s.K("category"), aggregate=s.MinK(keys=s.K.SCORE, k=3)),
        lambda s: s.GroupBy(keys=[s.K("year"), "category"], aggregate=s.MaxK(keys=[s.K("priority"), s.K.SCORE], k=2)),
        lambda s: s.GroupBy(keys="category", aggregate=s.MinK(keys="#score", k=1)),
        lambda s: s.GroupBy(keys=[], aggregate=s.MinK(keys="#score", k=1)),
        lambda s: s.GroupBy(keys=["a"]),
        lambda s: s.GroupBy(),
    ]
    for build in cases:
        result = assert_same(lambda s, build=build: build(s).to_dict())
        assert result[0] == "ok"
        assert_same(lambda s, data=result[1]: s.GroupBy.from_dict(data).to_dict())
    assert_same(lambda s: s.Aggregate.from_dict({"$max_k": {"keys": ("a", "#score"), "k": 4}}).to_dict())


BAD_AGGREGATES: list[Any] = [
    [],
    {},
    {"$min_k": {"keys": ["a"], "k": 1}, "$max_k": {"keys": ["a"], "k": 1}},
    {"$top_k": {}},
    {"$min_k": []},
    {"$min_k": {"k": 1}},
    {"$min_k": {"keys": ["a"]}},
    {"$min_k": {"keys": "a", "k": 1}},
    {"$min_k": {"keys": [], "k": 1}},
    {"$max_k": {"keys": ["a"], "k": 1.0}},
    {"$max_k": {"keys": ["a"], "k": 0}},
]
BAD_GROUP_BYS: list[Any] = [
    [],
    {"keys": ["a"]},
    {"aggregate": {}},
    {"keys": "a", "aggregate": {}},
    {"keys": [], "aggregate": {}},
    {"keys": ["a"], "aggregate": []},
    {"keys": ["a"], "aggregate": {}},
    {"keys": ["a"], "aggregate": {"$min_k": {"keys": ["#score"], "k": -1}}},
]


@pytest.mark.parametrize("data", BAD_AGGREGATES, ids=repr)
def test_bad_aggregate_dicts_raise_like_chromadb(data: Any) -> None:
    result = assert_same(lambda s: s.Aggregate.from_dict(data))
    assert result[0] == "raised"


@pytest.mark.parametrize("data", BAD_GROUP_BYS, ids=repr)
def test_bad_group_by_dicts_raise_like_chromadb(data: Any) -> None:
    result = assert_same(lambda s: s.GroupBy.from_dict(data))
    assert result[0] == "raised"


# -- search -------------------------------------------------------------------------------------
def _part(kind: str, spec: Any, side: Side) -> Any:
    """A Search argument from its spec: ("obj", tree) builds the object, ("dict", tree) its
    chromadb dict, ("raw", value) passes value as is."""
    form, value = spec
    if form == "raw":
        return value
    build = {"where": build_where, "rank": build_rank, "group_by": build_group_by, "select": build_select}[kind]
    if form == "obj":
        return build(value, side)
    return build(value, THEIRS).to_dict()


limits = st.one_of(
    st.tuples(st.just("raw"), st.none() | st.integers(-1, 50)),
    st.tuples(st.just("limit"), st.integers(0, 5), st.none() | st.integers(1, 50)),
    st.tuples(
        st.just("dict"), st.fixed_dictionaries({}, optional={"offset": st.integers(0, 5), "limit": st.integers(1, 9)})
    ),
)
search_args = st.fixed_dictionaries(
    {},
    optional={
        "where": st.tuples(st.sampled_from(["obj", "dict"]), operator_wheres),
        "rank": st.tuples(st.sampled_from(["obj", "dict"]), ranks),
        "group_by": st.tuples(st.sampled_from(["obj", "dict"]), group_bys),
        "limit": limits,
        "select": st.one_of(
            st.tuples(st.sampled_from(["obj", "dict"]), selects),
            st.tuples(st.just("raw"), st.lists(names, max_size=4)),
            st.tuples(st.just("raw"), st.sets(names, max_size=4)),
        ),
    },
)


def build_search_args(spec: dict[str, Any], side: Side) -> dict[str, Any]:
    arguments = {}
    for kind, value in spec.items():
        if kind == "limit":
            if value[0] == "raw":
                arguments[kind] = value[1]
            elif value[0] == "limit":
                arguments[kind] = side.Limit(offset=value[1], limit=value[2])
            else:
                arguments[kind] = dict(value[1])
        else:
            arguments[kind] = _part(kind, value, side)
    return arguments


@SETTINGS
@given(search_args)
def test_search_constructor_matches(spec: dict[str, Any]) -> None:
    assert_same(lambda s: sorted_select(s.Search(**build_search_args(spec, s)).to_dict()))


steps = st.lists(
    st.one_of(
        st.tuples(st.just("where"), st.none() | st.tuples(st.sampled_from(["obj", "dict"]), operator_wheres)),
        st.tuples(st.just("rank"), st.none() | st.tuples(st.sampled_from(["obj", "dict"]), ranks)),
        st.tuples(st.just("group_by"), st.none() | st.tuples(st.sampled_from(["obj", "dict"]), group_bys)),
        st.tuples(st.just("limit"), st.integers(1, 50), st.none() | st.integers(0, 10)),
        st.tuples(st.just("select"), selects),
        st.just(("select_all",)),
    ),
    max_size=6,
)


def apply_step(search: Any, step: tuple[Any, ...], side: Side) -> Any:
    name = step[0]
    if name == "select_all":
        return search.select_all()
    if name == "select":
        return search.select(*[make_key(key, side) for key in step[1]])
    if name == "limit":
        return search.limit(step[1]) if step[2] is None else search.limit(step[1], offset=step[2])
    return getattr(search, name)(None if step[1] is None else _part(name, step[1], side))


@SETTINGS
@given(steps)
def test_search_builder_chains_match(chain: list[tuple[Any, ...]]) -> None:
    def build(s: Side) -> list[dict[str, Any]]:
        search = s.Search()
        seen = [sorted_select(search.to_dict())]
        for step in chain:
            before = sorted_select(search.to_dict())
            following = apply_step(search, step, s)
            assert following is not search
            assert sorted_select(search.to_dict()) == before  # the original is unchanged
            search = following
            seen.append(sorted_select(search.to_dict()))
        return seen

    assert_same(build)


def test_search_hand_written() -> None:
    cases: list[Callable[[Side], Any]] = [
        lambda s: s.Search(),
        lambda s: s.Search(
            where=s.K("status") == "active",
            rank=s.Knn(query=[0.1, 0.2]),
            limit=s.Limit(limit=10),
            select=s.Select(keys={s.K.DOCUMENT}),
        ),
        lambda s: s.Search(
            where={"status": "active"}, rank={"$knn": {"query": [0.1, 0.2]}}, limit=10, select=["#document", "#score"]
        ),
        lambda s: s.Search(limit={"offset": 5}, select={"#id", "title"}, group_by={}),
        lambda s: s.Search(
            group_by={"keys": ["category"], "aggregate": {"$min_k": {"keys": ["#score"], "k": 3}}},
            select={"keys": ["a"]},
        ),
        lambda s: (
            s.Search()
            .where((s.K("status") == "active") & (s.K("score") > 0.5))
            .rank(s.Knn(query=[0.1, 0.2]) * 0.8 + s.Val(0.5) * 0.2)
            .group_by(s.GroupBy(keys=[s.K("category")], aggregate=s.MaxK(keys=[s.K.SCORE], k=2)))
            .limit(20, offset=10)
            .select(s.K.DOCUMENT, s.K.SCORE, "title")
        ),
        lambda s: s.Search().select_all().where({"a": 1}).rank({"$val": 1}).where(None).rank(None),
        lambda s: s.Search(limit=True),
        lambda s: s.Search().limit(0, offset=-1),
    ]
    for build in cases:
        result = assert_same(lambda s, build=build: sorted_select(build(s).to_dict()))
        assert result[0] == "ok"


BAD_SEARCH_ARGUMENTS: list[dict[str, Any]] = [
    {"where": 5},
    {"where": "a"},
    {"where": [{"a": 1}]},
    {"rank": 1.0},
    {"rank": [{"$val": 1}]},
    {"group_by": "x"},
    {"group_by": []},
    {"limit": 1.5},
    {"limit": "10"},
    {"limit": [1]},
    {"select": "abc"},
    {"select": ("a",)},
    {"select": 5},
    {"select": frozenset({"a"})},
    {"limit": 0},
    {"limit": -1},
    {"select": [1]},
    {"where": {}},
    {"rank": {}},
]


@pytest.mark.parametrize("arguments", BAD_SEARCH_ARGUMENTS, ids=repr)
def test_bad_search_arguments_raise_like_chromadb(arguments: dict[str, Any]) -> None:
    result = assert_same(lambda s: s.Search(**arguments))
    assert result[0] == "raised"


def test_builder_methods_return_new_searches() -> None:
    original = OURS.Search(where=OURS.K("a") == 1, limit=3, select=["#id"])
    before = original.to_dict()
    changed = [
        original.where(OURS.K("b") == 2),
        original.where(None),
        original.rank(OURS.Val(1)),
        original.group_by(OURS.GroupBy(keys="a", aggregate=OURS.MinK(keys="#score", k=1))),
        original.limit(5, offset=2),
        original.select("x"),
        original.select_all(),
    ]
    assert all(isinstance(search, OURS.Search) and search is not original for search in changed)
    assert all(search.to_dict() != before for search in changed)
    assert original.to_dict() == before


def test_imports_and_builds_without_chromadb() -> None:
    code = """
        import sys
        sys.modules["chromadb"] = None  # any `import chromadb...` now fails
        from vecduck.api.expressions import GroupBy, K, Knn, MinK, Rrf, Search
        from vecduck.api.types import SparseVector

        search = (
            Search()
            .where((K("a") == 1) & K.DOCUMENT.contains("x"))
            .rank(Rrf([Knn(query=[1.0, 2.0], return_rank=True), Knn(query=SparseVector([1], [0.5]), key="s")]))
            .group_by(GroupBy(keys=K("a"), aggregate=MinK(keys=K.SCORE, k=2)))
            .limit(5)
            .select(K.ID)
        )
        data = search.to_dict()
        assert data["limit"] == {"offset": 0, "limit": 5}, data
        assert data["select"] == {"keys": ["#id"]}, data
        loaded = [name for name, module in sys.modules.items() if name.split(".")[0] == "chromadb" and module]
        assert not loaded, loaded
        print("ok")
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
