"""chromadb's Search API expressions (``chromadb.execution.expression``), without chromadb.

Filters (`Key("a") == 1`, `&`, `|`), rank expressions (`Knn`, `Val`, arithmetic, `Rrf`),
grouping (`GroupBy`, `MinK`, `MaxK`), paging (`Limit`), key selection (`Select`) and the
`Search` payload that holds them. Every class has chromadb 1.5.9's name, fields, builder
methods and operators, and `to_dict()` gives the same dict, so code written for chromadb's
Search runs unchanged and a search travels over HTTP as the same JSON. `from_dict` accepts
the same inputs and refuses bad ones with the same exception types and messages.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vecduck.api.types import (
    SPARSE_VECTOR_TYPE_VALUE,
    TYPE_KEY,
    SparseVector,
    as_sparse_vector,
    is_sparse_vector,
)
from vecduck.api.validation import normalize_embeddings, validate_embedding_arrays

__all__ = [
    "Abs",
    "Aggregate",
    "And",
    "Contains",
    "Div",
    "Eq",
    "Exp",
    "GroupBy",
    "Gt",
    "Gte",
    "In",
    "K",
    "Key",
    "Knn",
    "Limit",
    "Log",
    "Lt",
    "Lte",
    "Max",
    "MaxK",
    "Min",
    "MinK",
    "Mul",
    "Ne",
    "Nin",
    "NotContains",
    "NotRegex",
    "Or",
    "Rank",
    "Regex",
    "Rrf",
    "Search",
    "SearchWhere",
    "Select",
    "Sub",
    "Sum",
    "Val",
    "Where",
]

Number = int | float


def _type_name(value: object) -> str:
    return type(value).__name__


# -- where filters -----------------------------------------------------------------------
@dataclass
class Where:
    """A filter condition; `a & b` and `a | b` combine conditions into flat `And` / `Or` lists."""

    def to_dict(self) -> dict[str, Any]:
        """The filter in chromadb's where-dict form (`{"key": {"$op": value}}`, `$and`, `$or`)."""
        raise NotImplementedError("Subclasses must implement to_dict()")

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Where:
        """A filter from a where dict: `{"k": v}` (equality), `{"k": {"$op": v}}`, `$and` / `$or` lists."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected dict for Where, got {_type_name(data)}")
        if not data:
            raise ValueError("Where dict cannot be empty")
        for logical, combine in (("$and", operator.and_), ("$or", operator.or_)):
            if logical in data:
                return _logical_from_dict(data, logical, combine)
        if len(data) != 1:
            raise ValueError(f"Where dict must contain exactly one field, got {len(data)}")
        ((name, condition),) = data.items()
        if not isinstance(name, str):
            raise TypeError(f"Field name must be a string, got {_type_name(name)}")
        if not isinstance(condition, dict):
            return Eq(name, condition)  # a bare value is shorthand for $eq
        if not condition:
            raise ValueError(f"Operator dict for field '{name}' cannot be empty")
        if len(condition) != 1:
            raise ValueError(f"Operator dict for field '{name}' must contain exactly one operator")
        ((op, value),) = condition.items()
        return _condition_from_dict(Key(name), op, value)

    def __and__(self, other: Where) -> And:
        """`a & b`: both hold; an `And` on either side is spliced in, not nested."""
        return And(_spliced(And, "conditions", self, other))

    def __or__(self, other: Where) -> Or:
        """`a | b`: either holds; an `Or` on either side is spliced in, not nested."""
        return Or(_spliced(Or, "conditions", self, other))


def _spliced(kind: type, attribute: str, left: Any, right: Any) -> list[Any]:
    """The operands of `left <op> right` as one flat list: an operand that is already a
    `kind` contributes its items (so `a & b & c` is one And of three, as chromadb builds it)."""
    items = getattr(left, attribute) if isinstance(left, kind) else [left]
    more = getattr(right, attribute) if isinstance(right, kind) else [right]
    return [*items, *more]


def _logical_from_dict(data: dict[str, Any], logical: str, combine: Callable[[Any, Any], Where]) -> Where:
    items = data[logical]
    if not isinstance(items, list):
        raise TypeError(f"{logical} must be a list, got {_type_name(items)}")
    if not items:
        raise ValueError(f"{logical} requires at least one condition")
    if len(data) > 1:
        raise ValueError(f"{logical} cannot be combined with other fields in the same dict")
    return functools.reduce(combine, [Where.from_dict(item) for item in items])


def _condition_from_dict(key: Key, op: Any, value: Any) -> Where:
    """One `{"$op": value}` on `key`, with chromadb's checks of the value's type."""
    if op in _COMPARISONS:
        return _COMPARISONS[op](key.name, value)
    if op in ("$in", "$nin"):
        if not isinstance(value, list):
            raise TypeError(f"{op} requires a list, got {_type_name(value)}")
        return key.is_in(value) if op == "$in" else key.not_in(value)
    if op in ("$contains", "$not_contains"):
        if not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"{op} requires a str, int, float, or bool, got {_type_name(value)}")
        return key.contains(value) if op == "$contains" else key.not_contains(value)
    if op in ("$regex", "$not_regex"):
        if not isinstance(value, str):
            raise TypeError(f"{op} requires a string pattern, got {_type_name(value)}")
        return key.regex(value) if op == "$regex" else key.not_regex(value)
    raise ValueError(f"Unknown operator: {op}")


@dataclass
class And(Where):
    """All of `conditions` hold."""

    conditions: list[Where]

    def to_dict(self) -> dict[str, Any]:
        return {"$and": [condition.to_dict() for condition in self.conditions]}


@dataclass
class Or(Where):
    """At least one of `conditions` holds."""

    conditions: list[Where]

    def to_dict(self) -> dict[str, Any]:
        return {"$or": [condition.to_dict() for condition in self.conditions]}


@dataclass
class _Compare(Where):
    """`key <op> value`; subclasses name the operator."""

    key: str
    value: Any
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self.key: {self._op: self.value}}


@dataclass
class Eq(_Compare):
    """key == value"""

    _op: ClassVar[str] = "$eq"


@dataclass
class Ne(_Compare):
    """key != value"""

    _op: ClassVar[str] = "$ne"


@dataclass
class Gt(_Compare):
    """key > value"""

    _op: ClassVar[str] = "$gt"


@dataclass
class Gte(_Compare):
    """key >= value"""

    _op: ClassVar[str] = "$gte"


@dataclass
class Lt(_Compare):
    """key < value"""

    _op: ClassVar[str] = "$lt"


@dataclass
class Lte(_Compare):
    """key <= value"""

    _op: ClassVar[str] = "$lte"


@dataclass
class Contains(_Compare):
    """The document has the substring `value`, or a metadata array has the element `value`."""

    _op: ClassVar[str] = "$contains"


@dataclass
class NotContains(_Compare):
    """The negation of `Contains`."""

    _op: ClassVar[str] = "$not_contains"


@dataclass
class _Membership(Where):
    """`key` compared with a list of `values`."""

    key: str
    values: list[Any]
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self.key: {self._op: self.values}}


@dataclass
class In(_Membership):
    """key is one of values"""

    _op: ClassVar[str] = "$in"


@dataclass
class Nin(_Membership):
    """key is none of values"""

    _op: ClassVar[str] = "$nin"


@dataclass
class _Pattern(Where):
    """`key` matched against a regular expression."""

    key: str
    pattern: str
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self.key: {self._op: self.pattern}}


@dataclass
class Regex(_Pattern):
    """key matches pattern"""

    _op: ClassVar[str] = "$regex"


@dataclass
class NotRegex(_Pattern):
    """key does not match pattern"""

    _op: ClassVar[str] = "$not_regex"


_COMPARISONS: dict[str, type[_Compare]] = {"$eq": Eq, "$ne": Ne, "$gt": Gt, "$gte": Gte, "$lt": Lt, "$lte": Lte}


# -- keys ----------------------------------------------------------------------------------
class Key:
    """A field to filter, rank, group or select on: a metadata key, or a `#`-prefixed
    record field (`Key.ID`, `Key.DOCUMENT`, `Key.EMBEDDING`, `Key.METADATA`, `Key.SCORE`).

    Comparison operators build filters rather than compare keys: `K("year") >= 2020` is a
    `Gte`, as in chromadb. `K` is an alias.
    """

    ID: ClassVar[Key]
    DOCUMENT: ClassVar[Key]
    EMBEDDING: ClassVar[Key]
    METADATA: ClassVar[Key]
    SCORE: ClassVar[Key]

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"

    def __hash__(self) -> int:
        """The name's hash, so keys can go in a `Select`'s set."""
        return hash(self.name)

    def __eq__(self, value: Any) -> Eq:  # type: ignore[override]
        return Eq(self.name, value)

    def __ne__(self, value: Any) -> Ne:  # type: ignore[override]
        return Ne(self.name, value)

    def __gt__(self, value: Any) -> Gt:
        return Gt(self.name, value)

    def __ge__(self, value: Any) -> Gte:
        return Gte(self.name, value)

    def __lt__(self, value: Any) -> Lt:
        return Lt(self.name, value)

    def __le__(self, value: Any) -> Lte:
        return Lte(self.name, value)

    def is_in(self, values: list[Any]) -> In:
        return In(self.name, values)

    def not_in(self, values: list[Any]) -> Nin:
        return Nin(self.name, values)

    def regex(self, pattern: str) -> Regex:
        return Regex(self.name, pattern)

    def not_regex(self, pattern: str) -> NotRegex:
        return NotRegex(self.name, pattern)

    def contains(self, value: str | int | float | bool) -> Contains:
        """Substring of the document (`Key.DOCUMENT`, strings only) or element of a metadata array."""
        if self.name == "#document" and not isinstance(value, str):
            raise TypeError("$contains on #document requires a string pattern")
        return Contains(self.name, value)

    def not_contains(self, value: str | int | float | bool) -> NotContains:
        """The negation of `contains`, with the same rule for `Key.DOCUMENT`."""
        if self.name == "#document" and not isinstance(value, str):
            raise TypeError("$not_contains on #document requires a string pattern")
        return NotContains(self.name, value)


Key.ID = Key("#id")
Key.DOCUMENT = Key("#document")
Key.EMBEDDING = Key("#embedding")
Key.METADATA = Key("#metadata")
Key.SCORE = Key("#score")
K = Key

_RECORD_KEYS = {key.name: key for key in (Key.ID, Key.DOCUMENT, Key.EMBEDDING, Key.METADATA, Key.SCORE)}

SearchWhere = Where


# -- paging and selection --------------------------------------------------------------------
@dataclass
class Limit:
    """Skip `offset` results, then return at most `limit` (None: all)."""

    offset: int = 0
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"offset": self.offset}
        if self.limit is not None:
            result["limit"] = self.limit
        return result

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Limit:
        """From `{"offset": n, "limit": m}` (both optional); offset >= 0, limit > 0."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected dict for Limit, got {_type_name(data)}")
        offset = data.get("offset", 0)
        if not isinstance(offset, int):
            raise TypeError(f"Limit offset must be an integer, got {_type_name(offset)}")
        if offset < 0:
            raise ValueError(f"Limit offset must be non-negative, got {offset}")
        limit = data.get("limit")
        if limit is not None:
            if not isinstance(limit, int):
                raise TypeError(f"Limit limit must be an integer, got {_type_name(limit)}")
            if limit <= 0:
                raise ValueError(f"Limit limit must be positive, got {limit}")
        unexpected = set(data) - {"offset", "limit"}
        if unexpected:
            raise ValueError(f"Unexpected keys in Limit dict: {unexpected}")
        return Limit(offset=offset, limit=limit)


@dataclass
class Select:
    """The fields each result carries: record fields (`Key.DOCUMENT`, `Key.SCORE`, ...) and metadata keys."""

    keys: set[Key | str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """`{"keys": [names]}`, each name once (a set's order, so arbitrary, as in chromadb)."""
        names = (key.name if isinstance(key, Key) else key for key in self.keys)
        return {"keys": list(dict.fromkeys(names))}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Select:
        """From `{"keys": [names]}`; every name must be a string."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected dict for Select, got {_type_name(data)}")
        names = data.get("keys", [])
        if not isinstance(names, (list, tuple, set)):
            raise TypeError(f"Select keys must be a list/tuple/set, got {_type_name(names)}")
        keys: list[Key] = []
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"Select key must be a string, got {_type_name(name)}")
            keys.append(_RECORD_KEYS[name] if name in _RECORD_KEYS else Key(name))
        unexpected = set(data) - {"keys"}
        if unexpected:
            raise ValueError(f"Unexpected keys in Select dict: {unexpected}")
        return Select(keys=set(keys))


# -- rank expressions ------------------------------------------------------------------------
def _as_rank(value: Rank | Number) -> Rank:
    """A number operand becomes `Val(number)`; anything else is taken as a rank."""
    return Val(value) if isinstance(value, (int, float)) else value


@dataclass
class Rank:
    """A score per record (lower is better): `Knn`, `Val`, and their arithmetic.

    `+ - * /` (either side may be a number), unary `-`, `abs()` and the builders `.abs()`,
    `.exp()`, `.log()`, `.max(x)`, `.min(x)` build expression trees; sums, products,
    maxima and minima are kept flat as chromadb keeps them.
    """

    def to_dict(self) -> dict[str, Any]:
        """The expression in chromadb's rank-dict form (`{"$knn": ...}`, `{"$sum": [...]}`, ...)."""
        raise NotImplementedError("Subclasses must implement to_dict()")

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Rank:
        """An expression from a rank dict holding exactly one operator."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected dict for Rank, got {_type_name(data)}")
        if not data:
            raise ValueError("Rank dict cannot be empty")
        if len(data) != 1:
            raise ValueError(f"Rank dict must contain exactly one operator, got {len(data)}")
        ((op, argument),) = data.items()
        if op == "$val":
            if not isinstance(argument, (int, float)):
                raise TypeError(f"$val requires a number, got {_type_name(argument)}")
            return Val(argument)
        if op == "$knn":
            return _knn_from_dict(argument)
        if op in _FOLDS:
            if not isinstance(argument, (list, tuple)):
                raise TypeError(f"{op} requires a list, got {_type_name(argument)}")
            if len(argument) < 2:
                raise ValueError(f"{op} requires at least 2 ranks, got {len(argument)}")
            return functools.reduce(_FOLDS[op], [Rank.from_dict(item) for item in argument])
        if op in ("$sub", "$div"):
            if not isinstance(argument, dict):
                raise TypeError(f"{op} requires a dict with 'left' and 'right', got {_type_name(argument)}")
            if "left" not in argument or "right" not in argument:
                raise ValueError(f"{op} requires 'left' and 'right' fields")
            left, right = Rank.from_dict(argument["left"]), Rank.from_dict(argument["right"])
            return Sub(left, right) if op == "$sub" else Div(left, right)
        if op in _UNARY:
            if not isinstance(argument, dict):
                raise TypeError(f"{op} requires a rank dict, got {_type_name(argument)}")
            return _UNARY[op](Rank.from_dict(argument))
        raise ValueError(f"Unknown rank operator: {op}")

    def __add__(self, other: Rank | Number) -> Sum:
        return Sum(_spliced(Sum, "ranks", self, _as_rank(other)))

    def __radd__(self, other: Number) -> Sum:
        return Val(other) + self

    def __sub__(self, other: Rank | Number) -> Sub:
        return Sub(self, _as_rank(other))

    def __rsub__(self, other: Number) -> Sub:
        return Sub(Val(other), self)

    def __mul__(self, other: Rank | Number) -> Mul:
        return Mul(_spliced(Mul, "ranks", self, _as_rank(other)))

    def __rmul__(self, other: Number) -> Mul:
        return Val(other) * self

    def __truediv__(self, other: Rank | Number) -> Div:
        return Div(self, _as_rank(other))

    def __rtruediv__(self, other: Number) -> Div:
        return Div(Val(other), self)

    def __neg__(self) -> Mul:
        """`-rank` is `Val(-1) * rank`."""
        return Mul([Val(-1), self])

    def __abs__(self) -> Abs:
        return Abs(self)

    def abs(self) -> Abs:
        return Abs(self)

    def exp(self) -> Exp:
        return Exp(self)

    def log(self) -> Log:
        return Log(self)

    def max(self, other: Rank | Number) -> Max:
        return Max(_spliced(Max, "ranks", self, _as_rank(other)))

    def min(self, other: Rank | Number) -> Min:
        return Min(_spliced(Min, "ranks", self, _as_rank(other)))


@dataclass
class _Unary(Rank):
    """A function of one rank."""

    rank: Rank
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self._op: self.rank.to_dict()}


@dataclass
class Abs(_Unary):
    """|rank|"""

    _op: ClassVar[str] = "$abs"


@dataclass
class Exp(_Unary):
    """e ** rank"""

    _op: ClassVar[str] = "$exp"


@dataclass
class Log(_Unary):
    """The natural logarithm of rank."""

    _op: ClassVar[str] = "$log"


@dataclass
class _Binary(Rank):
    """`left <op> right` for the operators that are not associative."""

    left: Rank
    right: Rank
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self._op: {"left": self.left.to_dict(), "right": self.right.to_dict()}}


@dataclass
class Sub(_Binary):
    """left - right"""

    _op: ClassVar[str] = "$sub"


@dataclass
class Div(_Binary):
    """left / right"""

    _op: ClassVar[str] = "$div"


@dataclass
class _Variadic(Rank):
    """An associative operator over a list of ranks."""

    ranks: list[Rank]
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self._op: [rank.to_dict() for rank in self.ranks]}


@dataclass
class Sum(_Variadic):
    """The sum of ranks."""

    _op: ClassVar[str] = "$sum"


@dataclass
class Mul(_Variadic):
    """The product of ranks."""

    _op: ClassVar[str] = "$mul"


@dataclass
class Max(_Variadic):
    """The largest of ranks."""

    _op: ClassVar[str] = "$max"


@dataclass
class Min(_Variadic):
    """The smallest of ranks."""

    _op: ClassVar[str] = "$min"


@dataclass
class Val(Rank):
    """A constant score."""

    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"$val": self.value}


@dataclass
class Knn(Rank):
    """The distance to `query` among the `limit` nearest records on `key`.

    `query` is a dense vector (list or numpy array), a `SparseVector` (vecduck's or
    chromadb's), or a string the collection's embedding function turns into one. `key` is
    `#embedding` or a metadata key holding vectors. Records outside the nearest `limit`
    score `default` (None: they drop out). `return_rank` scores by position (0, 1, ...)
    instead of distance, as `Rrf` wants.
    """

    query: str | list[float] | SparseVector | np.ndarray
    key: Key | str = Key.EMBEDDING
    limit: int = 16
    default: float | None = None
    return_rank: bool = False

    def to_dict(self) -> dict[str, Any]:
        """`{"$knn": {query, key, limit[, default][, return_rank]}}`; defaults left out as chromadb does."""
        query = self.query
        if isinstance(query, SparseVector) or is_sparse_vector(query):
            query = as_sparse_vector(query).to_dict()
        elif isinstance(query, np.ndarray):
            query = query.tolist()
        body: dict[str, Any] = {
            "query": query,
            "key": self.key.name if isinstance(self.key, Key) else self.key,
            "limit": self.limit,
        }
        if self.default is not None:
            body["default"] = self.default
        if self.return_rank:
            body["return_rank"] = self.return_rank
        return {"$knn": body}


def _knn_from_dict(data: Any) -> Knn:
    """`Knn` from the body of `{"$knn": {...}}`: a tagged sparse-vector dict or one dense vector as query."""
    if not isinstance(data, dict):
        raise TypeError(f"$knn requires a dict, got {_type_name(data)}")
    if "query" not in data:
        raise ValueError("$knn requires 'query' field")
    query = data["query"]
    if isinstance(query, dict):
        if query.get(TYPE_KEY) != SPARSE_VECTOR_TYPE_VALUE:
            raise ValueError(f"Expected dict with {TYPE_KEY}='{SPARSE_VECTOR_TYPE_VALUE}', got {query}")
        query = SparseVector.from_dict(query)
    elif isinstance(query, (list, tuple, np.ndarray)):
        vectors = normalize_embeddings(query)
        if not vectors or len(vectors) > 1:
            raise ValueError("$knn requires exactly one query embedding")
        validate_embedding_arrays(vectors)
        query = vectors[0]
        # chromadb leaves NaN and infinity to its server; they have no nearest neighbours.
        if not np.isfinite(query).all():
            raise ValueError("$knn query embedding must contain only finite values")
    else:
        raise TypeError(f"$knn query must be a list, numpy array, or SparseVector dict, got {_type_name(query)}")
    key = data.get("key", "#embedding")
    if not isinstance(key, str):
        raise TypeError(f"$knn key must be a string, got {_type_name(key)}")
    limit = data.get("limit", 16)
    if not isinstance(limit, int):
        raise TypeError(f"$knn limit must be an integer, got {_type_name(limit)}")
    if limit <= 0:
        raise ValueError(f"$knn limit must be positive, got {limit}")
    return_rank = data.get("return_rank", False)
    if not isinstance(return_rank, bool):
        raise TypeError(f"$knn return_rank must be a boolean, got {_type_name(return_rank)}")
    return Knn(query=query, key=key, limit=limit, default=data.get("default"), return_rank=return_rank)


@dataclass
class Rrf(Rank):
    """Reciprocal rank fusion: `-sum(weight_i / (k + rank_i))` over `ranks`.

    The ranks are usually `Knn(..., return_rank=True)`. `weights` default to 1 each;
    `normalize` scales them to sum to 1. The sum is negated because lower scores rank
    first. There is no `$rrf` operator on the wire: `to_dict` sends the arithmetic.
    """

    ranks: list[Rank]
    k: int = 60
    weights: list[float] | None = None
    normalize: bool = False

    def expand(self) -> Rank:
        """The fusion as a plain arithmetic expression (ValueError for bad parameters)."""
        if not self.ranks:
            raise ValueError("RRF requires at least one rank")
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.weights is not None:
            if len(self.weights) != len(self.ranks):
                raise ValueError(
                    f"Number of weights ({len(self.weights)}) must match number of ranks ({len(self.ranks)})"
                )
            if any(weight < 0.0 for weight in self.weights):
                raise ValueError("All weights must be non-negative")
        weights = self.weights or [1.0] * len(self.ranks)
        if self.normalize:
            total = sum(weights)
            if total == 0:
                raise ValueError("Sum of weights must be positive when normalize=True")
            weights = [weight / total for weight in weights]
        # The operators build each term as chromadb does: Div(Val(w), Sum([Val(k), rank])).
        terms = [weight / (self.k + rank) for weight, rank in zip(weights, self.ranks, strict=True)]
        return -functools.reduce(operator.add, terms)

    def to_dict(self) -> dict[str, Any]:
        return self.expand().to_dict()


_FOLDS: dict[str, Callable[[Rank, Rank], Rank]] = {
    "$sum": operator.add,
    "$mul": operator.mul,
    "$max": Rank.max,
    "$min": Rank.min,
}
_UNARY: dict[str, Callable[[Rank], Rank]] = {"$abs": Abs, "$exp": Exp, "$log": Log}


# -- grouping ----------------------------------------------------------------------------------
def _key_names(keys: Any) -> list[Any]:
    """One key or a list of keys (Key or str) as a list of names; a non-list is one key."""
    items = keys if isinstance(keys, list) else [keys]
    return [key.name if isinstance(key, Key) else key for key in items]


def _names_to_keys(names: list[Any] | tuple[Any, ...]) -> list[Key | Any]:
    return [Key(name) if isinstance(name, str) else name for name in names]


@dataclass
class Aggregate:
    """Which records each group keeps: `MinK` (the k smallest) or `MaxK` (the k largest)."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError("Subclasses must implement to_dict()")

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Aggregate:
        """From `{"$min_k": {"keys": [...], "k": n}}` or the same with `$max_k`."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected dict for Aggregate, got {_type_name(data)}")
        if not data:
            raise ValueError("Aggregate dict cannot be empty")
        if len(data) != 1:
            raise ValueError(f"Aggregate dict must contain exactly one operator, got {len(data)}")
        ((op, body),) = data.items()
        kinds: dict[str, type[_TopK]] = {"$min_k": MinK, "$max_k": MaxK}
        if op not in kinds:
            raise ValueError(f"Unknown aggregate operator: {op}")
        if not isinstance(body, dict):
            raise TypeError(f"{op} requires a dict, got {_type_name(body)}")
        for required in ("keys", "k"):
            if required not in body:
                raise ValueError(f"{op} requires '{required}' field")
        keys, k = body["keys"], body["k"]
        if not isinstance(keys, (list, tuple)):
            raise TypeError(f"{op} keys must be a list, got {_type_name(keys)}")
        if not keys:
            raise ValueError(f"{op} keys cannot be empty")
        if not isinstance(k, int):
            raise TypeError(f"{op} k must be an integer, got {_type_name(k)}")
        if k <= 0:
            raise ValueError(f"{op} k must be positive, got {k}")
        return kinds[op](keys=_names_to_keys(keys), k=k)


@dataclass
class _TopK(Aggregate):
    """Keep `k` records per group, ordered by `keys` (one key or a list; later keys break ties)."""

    keys: Key | str | list[Key | str]
    k: int
    _op: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {self._op: {"keys": _key_names(self.keys), "k": self.k}}


@dataclass
class MinK(_TopK):
    """Keep the k records with the smallest key values per group."""

    _op: ClassVar[str] = "$min_k"


@dataclass
class MaxK(_TopK):
    """Keep the k records with the largest key values per group."""

    _op: ClassVar[str] = "$max_k"


@dataclass
class GroupBy:
    """Group results by metadata `keys`, keep `aggregate`'s picks from each group.

    Without keys or without an aggregate there is no grouping (`to_dict()` is `{}`).
    """

    keys: Key | str | list[Key | str] = field(default_factory=list)
    aggregate: Aggregate | None = None

    def to_dict(self) -> dict[str, Any]:
        if not self.keys or self.aggregate is None:
            return {}
        return {"keys": _key_names(self.keys), "aggregate": self.aggregate.to_dict()}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> GroupBy:
        """From `{}` (no grouping) or `{"keys": [...], "aggregate": {...}}`."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected dict for GroupBy, got {_type_name(data)}")
        if not data:
            return GroupBy()
        for required in ("keys", "aggregate"):
            if required not in data:
                raise ValueError(f"GroupBy requires '{required}' field")
        keys, aggregate = data["keys"], data["aggregate"]
        if not isinstance(keys, (list, tuple)):
            raise TypeError(f"GroupBy keys must be a list, got {_type_name(keys)}")
        if not keys:
            raise ValueError("GroupBy keys cannot be empty")
        if not isinstance(aggregate, dict):
            raise TypeError(f"GroupBy aggregate must be a dict, got {_type_name(aggregate)}")
        return GroupBy(keys=_names_to_keys(keys), aggregate=Aggregate.from_dict(aggregate))


# -- the search payload ------------------------------------------------------------------------
class Search:
    """One search: filter (`where`), score (`rank`), `group_by`, `limit` and `select`.

    Each part is an expression object or its dict form (`limit` may be an int, `select`
    a list or set of key names). The builder methods return a new Search and leave this
    one unchanged: `Search().where(K("a") == 1).rank(Knn(query=v)).limit(10)`.
    """

    def __init__(
        self,
        where: Where | dict[str, Any] | None = None,
        rank: Rank | dict[str, Any] | None = None,
        group_by: GroupBy | dict[str, Any] | None = None,
        limit: Limit | dict[str, Any] | int | None = None,
        select: Select | dict[str, Any] | list[str] | set[str] | None = None,
    ) -> None:
        self._where: Where | None
        if where is None or isinstance(where, Where):
            self._where = where
        elif isinstance(where, dict):
            self._where = Where.from_dict(where)
        else:
            raise TypeError(f"where must be a Where object, dict, or None, got {_type_name(where)}")

        self._rank: Rank | None
        if rank is None or isinstance(rank, Rank):
            self._rank = rank
        elif isinstance(rank, dict):
            self._rank = Rank.from_dict(rank)
        else:
            raise TypeError(f"rank must be a Rank object, dict, or None, got {_type_name(rank)}")

        if group_by is None:
            self._group_by = GroupBy()
        elif isinstance(group_by, GroupBy):
            self._group_by = group_by
        elif isinstance(group_by, dict):
            self._group_by = GroupBy.from_dict(group_by)
        else:
            raise TypeError(f"group_by must be a GroupBy object, dict, or None, got {_type_name(group_by)}")

        if limit is None:
            self._limit = Limit()
        elif isinstance(limit, Limit):
            self._limit = limit
        elif isinstance(limit, int):
            self._limit = Limit.from_dict({"limit": limit, "offset": 0})
        elif isinstance(limit, dict):
            self._limit = Limit.from_dict(limit)
        else:
            raise TypeError(f"limit must be a Limit object, dict, int, or None, got {_type_name(limit)}")

        if select is None:
            self._select = Select()
        elif isinstance(select, Select):
            self._select = select
        elif isinstance(select, dict):
            self._select = Select.from_dict(select)
        elif isinstance(select, (list, set)):
            self._select = Select.from_dict({"keys": list(select)})
        else:
            raise TypeError(f"select must be a Select object, dict, list, set, or None, got {_type_name(select)}")

    def __repr__(self) -> str:
        return (
            f"Search(where={self._where!r}, rank={self._rank!r}, group_by={self._group_by!r}, "
            f"limit={self._limit!r}, select={self._select!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON body chromadb sends: filter, rank, group_by, limit, select."""
        return {
            "filter": None if self._where is None else self._where.to_dict(),
            "rank": None if self._rank is None else self._rank.to_dict(),
            "group_by": self._group_by.to_dict(),
            "limit": self._limit.to_dict(),
            "select": self._select.to_dict(),
        }

    def _replace(self, **changes: Any) -> Search:
        parts = {
            "where": self._where,
            "rank": self._rank,
            "group_by": self._group_by,
            "limit": self._limit,
            "select": self._select,
        }
        return Search(**(parts | changes))

    def where(self, where: Where | dict[str, Any] | None) -> Search:
        """A copy filtering by `where` (an expression, a where dict, or None for no filter)."""
        return self._replace(where=where)

    def rank(self, rank_expr: Rank | dict[str, Any] | None) -> Search:
        """A copy scored by `rank_expr` (an expression, a rank dict, or None)."""
        return self._replace(rank=rank_expr)

    def group_by(self, group_by: GroupBy | dict[str, Any] | None) -> Search:
        """A copy grouped by `group_by` (a GroupBy, its dict, or None)."""
        return self._replace(group_by=group_by)

    def limit(self, limit: int, offset: int = 0) -> Search:
        """A copy returning at most `limit` results after skipping `offset`."""
        return self._replace(limit=Limit(offset=offset, limit=limit))

    def select(self, *keys: Key | str) -> Search:
        """A copy returning the given fields (replacing any earlier selection)."""
        return self._replace(select=Select(keys=set(keys)))

    def select_all(self) -> Search:
        """A copy returning document, embedding, metadata and score."""
        return self._replace(select=Select(keys={Key.DOCUMENT, Key.EMBEDDING, Key.METADATA, Key.SCORE}))
