"""Chroma's search payloads: taken from expression objects or JSON, checked, and answered.

A search arrives in Chroma's JSON shape (what `Search.to_dict()` gives, and what the
official clients send to `POST .../search`): `filter`, `rank`, `group_by`, `limit`,
`select`. This module checks it the way Chroma's server does (bad shapes and values
are `InvalidArgumentError`, HTTP 400), turns string queries into vectors with the
collection's embedding functions, hands the engine a `SearchPlan`, and shapes the
engine's hits into chromadb's column-major `SearchResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vecduck.api.types import SearchResult, is_sparse_vector
from vecduck.api.validation import check_sparse_vector, check_strings, is_number_list
from vecduck.engine.search import KnnQuery, RankNode, SearchPlan
from vecduck.errors import InvalidArgumentError

EMBEDDING_KEY = "#embedding"
DOCUMENT_KEY = "#document"
SCORE_KEY = "#score"
METADATA_KEY = "#metadata"
# The fixed select keys, in the order Chroma reports them (metadata fields follow, sorted).
FIXED_SELECT = ("#document", "#embedding", "#metadata", "#score")
READ_LEVELS = ("index_and_wal", "index_only", "index_and_bounded_wal")
MAX_DEPTH = 64  # nesting of rank and filter expressions
MAX_COUNT = 2**32 - 1  # Chroma's limits and offsets are unsigned 32-bit
DEFAULT_KNN_LIMIT = 16
UNARY = {"$abs": "abs", "$exp": "exp", "$log": "log"}
VARIADIC = {"$sum": "sum", "$mul": "mul", "$max": "max", "$min": "min"}
BINARY = {"$sub": "sub", "$div": "div"}


def bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Invalid search: {message}")


# -- from the caller's objects to JSON payloads -----------------------------------------------
def search_payloads(searches: Any) -> list[dict[str, Any]]:
    """One payload dict per search: Search objects (vecduck's or chromadb's: anything with
    `to_dict()`) or payload dicts, one or a list."""
    if searches is None:
        return []
    items = searches if isinstance(searches, (list, tuple)) else [searches]
    payloads = []
    for item in items:
        if isinstance(item, dict):
            payloads.append(_plain_numbers(item))
        elif callable(getattr(item, "to_dict", None)):
            payloads.append(_plain_numbers(item.to_dict()))
        else:
            raise TypeError(f"Expected a Search (or its dict), got {type(item).__name__}")
    return payloads


def _plain_numbers(node: Any, depth: int = 0) -> Any:
    """NumPy scalars (a limit of `np.int64(3)`, a filter value of `np.float32(0.5)`) as the
    Python numbers an HTTP client's JSON makes of them, so an embedded search takes what
    a search through a server does. Dense vectors (lists of numbers) are passed whole;
    below MAX_DEPTH nothing is converted (`_check_shape` refuses such a search anyway)."""
    if isinstance(node, np.generic):
        return node.item()
    if depth > MAX_DEPTH:
        return node
    if isinstance(node, dict):
        return {key: _plain_numbers(value, depth + 1) for key, value in node.items()}
    if isinstance(node, (list, tuple)) and not is_number_list(node):
        return [_plain_numbers(value, depth + 1) for value in node]
    return node


def read_level_value(read_level: Any) -> str:
    """The read level's value (an enum of chromadb's, or its string); all read everything here."""
    value = getattr(read_level, "value", read_level)
    if value not in READ_LEVELS:
        raise InvalidArgumentError(f"Invalid read_level {value!r}: expected one of {', '.join(READ_LEVELS)}")
    return value


def embed_text_queries(
    payload: dict[str, Any],
    dense: Callable[[str], Any] | None,
    sparse: Callable[[str, str], Any | None],
) -> dict[str, Any]:
    """The payload with every Knn whose query is text given a vector instead: `dense(text)`
    for `#embedding`, `sparse(key, text)` for a sparse key (None: no function for it)."""
    rank = payload.get("rank") if isinstance(payload, dict) else None
    if not isinstance(rank, dict):
        return payload

    def walk(node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise bad(f"rank expression nested deeper than {MAX_DEPTH}")
        if isinstance(node, list):
            if is_number_list(node):  # a dense vector: nothing to embed inside
                if node and depth + 1 > MAX_DEPTH:
                    raise bad(f"rank expression nested deeper than {MAX_DEPTH}")
                return node
            return [walk(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        knn = node.get("$knn")
        if len(node) == 1 and isinstance(knn, dict) and isinstance(knn.get("query"), str):
            key = knn.get("key", EMBEDDING_KEY)
            text = knn["query"]
            if key == EMBEDDING_KEY:
                if dense is None:
                    raise ValueError(
                        "You must provide an embedding function to compute embeddings: the collection has none"
                        " to embed the text query on #embedding"
                    )
                vector = np.asarray(dense(text), np.float32).tolist()
            else:
                found = sparse(key, text) if isinstance(key, str) else None
                if found is None:
                    raise ValueError(
                        f"Cannot embed string query for key '{key}': no sparse embedding function is configured"
                        " for this key in the collection's schema"
                    )
                vector = found.to_dict() if is_sparse_vector(found) else found
            return {"$knn": {**knn, "query": vector}}
        return {name: walk(value, depth + 1) for name, value in node.items()}

    return {**payload, "rank": walk(rank, 0)}


# -- checking -----------------------------------------------------------------------------------
def _count(value: Any, what: str, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{what} must be an integer, got {value!r}")
    if value < (1 if positive else 0) or value > MAX_COUNT:
        raise bad(f"{what} must be {'positive' if positive else 'non-negative'} and below 2**32, got {value}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise bad(f"{what} must be a finite number, got {value!r}")
    return number


def _check_shape(payload: Any) -> None:
    """Refuse expressions nested deeper than MAX_DEPTH (before any recursion elsewhere)
    and strings that are not valid Unicode, in one walk; lists of numbers (dense
    vectors) are skipped whole."""
    strings: list[str] = []
    stack = [(payload, 0)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise bad(f"expression nested deeper than {MAX_DEPTH}")
        if isinstance(item, str):
            strings.append(item)
        elif isinstance(item, dict):
            strings.extend(key for key in item if isinstance(key, str))
            stack.extend((value, level + 1) for value in item.values())
        elif isinstance(item, list):
            if not is_number_list(item):
                stack.extend((value, level + 1) for value in item)
            elif item and level + 1 > MAX_DEPTH:
                raise bad(f"expression nested deeper than {MAX_DEPTH}")
    check_strings(strings, "search")


class _RankParser:
    """A rank expression's JSON into the engine's tuples, collecting its Knn queries in
    depth-first order (the order the engine evaluates them in)."""

    def __init__(self) -> None:
        self.knns: list[KnnQuery] = []

    def parse(self, node: Any) -> RankNode:
        if not isinstance(node, dict) or len(node) != 1:
            raise bad(f"a rank expression must be an object with one operator, got {node!r}"[:200])
        operator, operand = next(iter(node.items()))
        if operator == "$val":
            return ("val", _number(operand, "$val"))
        if operator == "$knn":
            return self._knn(operand)
        if operator in UNARY:
            return (UNARY[operator], self.parse(operand))
        if operator in VARIADIC:
            if not isinstance(operand, list) or not operand:
                raise bad(f"{operator} requires a non-empty list of rank expressions")
            return (VARIADIC[operator], [self.parse(item) for item in operand])
        if operator in BINARY:
            if not isinstance(operand, dict) or set(operand) != {"left", "right"}:
                raise bad(f"{operator} requires an object with 'left' and 'right'")
            return (BINARY[operator], self.parse(operand["left"]), self.parse(operand["right"]))
        raise bad(f"unknown rank operator {str(operator)[:80]!r}")

    def _knn(self, knn: Any) -> RankNode:
        if not isinstance(knn, dict) or "query" not in knn:
            raise bad("$knn requires an object with a 'query'")
        key = knn.get("key", EMBEDDING_KEY)
        if not isinstance(key, str) or not key:
            raise bad(f"$knn key must be a non-empty string, got {key!r}")
        limit = _count(knn.get("limit", DEFAULT_KNN_LIMIT), "$knn limit", positive=True)
        default = knn.get("default")
        default = None if default is None else _number(default, "$knn default")
        return_rank = knn.get("return_rank", False)
        if not isinstance(return_rank, bool):
            raise bad(f"$knn return_rank must be a boolean, got {return_rank!r}")
        query = knn["query"]
        if key == EMBEDDING_KEY:
            self.knns.append(KnnQuery(key, limit, dense=_dense(query)))
        elif key.startswith("#"):
            raise bad(f"$knn can search {EMBEDDING_KEY} or a metadata key holding sparse vectors, not {key!r}")
        else:
            if isinstance(query, str):
                raise bad(f"$knn on {key!r} got text: no sparse embedding function is known for this key")
            if not (isinstance(query, dict) or is_sparse_vector(query)):
                raise bad(f"$knn on the sparse key {key!r} requires a sparse vector query")
            if isinstance(query, dict) and "#type" not in query:
                query = {**query, "#type": "sparse_vector"}  # the JS client sends {indices, values} untagged
            vector = check_sparse_vector(query, "$knn query")
            self.knns.append(
                KnnQuery(
                    key,
                    limit,
                    terms=np.asarray(vector.indices, np.uint32),
                    weights=np.asarray(vector.values, np.float64),
                )
            )
        return ("knn", len(self.knns) - 1, default, return_rank)


def _dense(query: Any) -> np.ndarray:
    if isinstance(query, str):
        raise bad("a text query must be embedded before it reaches the server")
    if isinstance(query, dict) or is_sparse_vector(query):
        raise bad(f"$knn on {EMBEDDING_KEY} requires a dense vector, got a sparse one")
    if not isinstance(query, (list, tuple, np.ndarray)) or len(query) == 0:
        raise bad(f"$knn on {EMBEDDING_KEY} requires a non-empty list of numbers")
    if isinstance(query, np.ndarray):
        numbers = query
    else:
        if not is_number_list(query):
            for number in query:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise bad(f"$knn query must hold numbers, got {number!r}"[:120])
        numbers = query
    with np.errstate(over="ignore"):
        vector = np.asarray(numbers, dtype=np.float64).astype(np.float32)
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise bad("$knn query must be one vector of finite numbers")
    return vector


def _group_by(value: Any) -> tuple[list[str], tuple[str, list[str], int] | None]:
    if value is None or value == {}:
        return [], None
    if not isinstance(value, dict) or set(value) != {"keys", "aggregate"}:
        raise bad("group_by requires 'keys' and 'aggregate'")
    keys = value["keys"]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise bad("group_by keys must be a non-empty list of strings")
    for key in keys:
        if key in FIXED_SELECT:
            raise bad(f"group_by keys must be metadata fields, got {key!r}")
    aggregate = value["aggregate"]
    if not isinstance(aggregate, dict) or len(aggregate) != 1:
        raise bad("group_by aggregate must be {'$min_k': ...} or {'$max_k': ...}")
    operator, spec = next(iter(aggregate.items()))
    if operator not in ("$min_k", "$max_k"):
        raise bad(f"unknown aggregate {str(operator)[:80]!r}")
    if not isinstance(spec, dict) or "keys" not in spec or "k" not in spec:
        raise bad(f"{operator} requires 'keys' and 'k'")
    sort_keys = spec["keys"]
    if not isinstance(sort_keys, list) or not sort_keys or not all(isinstance(k, str) for k in sort_keys):
        raise bad(f"{operator} keys must be a non-empty list of strings")
    for key in sort_keys:
        if key in FIXED_SELECT and key != SCORE_KEY:
            raise bad(f"{operator} keys must be metadata fields or {SCORE_KEY}, got {key!r}")
    return keys, ("min" if operator == "$min_k" else "max", sort_keys, _count(spec["k"], f"{operator} k", True))


def _limit(value: Any) -> tuple[int, int | None]:
    if value is None:
        return 0, None
    if isinstance(value, int) and not isinstance(value, bool):
        return 0, _count(value, "limit")
    if not isinstance(value, dict) or not set(value) <= {"offset", "limit"}:
        raise bad("limit must be an object with 'offset' and 'limit'")
    offset = _count(value.get("offset", 0), "offset")
    limit = value.get("limit")
    return offset, None if limit is None else _count(limit, "limit")


def _select(value: Any) -> list[str]:
    if value is None:
        return []
    keys = value.get("keys", []) if isinstance(value, dict) else value
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise bad("select keys must be a list of strings")
    fixed = [k for k in FIXED_SELECT if k in keys]
    return fixed + sorted({k for k in keys if k not in FIXED_SELECT})


def parse_payload(payload: Any) -> tuple[SearchPlan, list[str]]:
    """A search payload checked as Chroma's server checks it: its plan and select keys."""
    if not isinstance(payload, dict):
        raise bad(f"each search must be an object, got {type(payload).__name__}")
    _check_shape(payload)
    where = payload.get("filter")
    if where == {}:
        where = None
    if where is not None and not isinstance(where, dict):
        raise bad("filter must be an object")
    parser = _RankParser()
    rank = payload.get("rank")
    plan = SearchPlan(where=where, rank=None if rank is None else parser.parse(rank), knns=parser.knns)
    plan.group_keys, plan.aggregate = _group_by(payload.get("group_by"))
    if plan.aggregate is not None and plan.rank is None:
        raise bad("group_by requires a rank expression: it keeps each group's best-scored records")
    plan.offset, plan.limit = _limit(payload.get("limit"))
    return plan, _select(payload.get("select"))


# -- answering ----------------------------------------------------------------------------------
def _score(value: float) -> float | None:
    return value if math.isfinite(value) else None


def shape_result(answers: Sequence[tuple[Any, Any]], selects: Sequence[list[str]]) -> SearchResult:
    """chromadb's column-major SearchResult from the engine's (hits, rows) per search."""
    result: dict[str, list[Any]] = {
        "ids": [],
        "documents": [],
        "embeddings": [],
        "metadatas": [],
        "scores": [],
        "select": [],
    }
    for (hits, rows), select in zip(answers, selects, strict=True):
        fields = [k for k in select if k not in FIXED_SELECT]  # "#id" too: Chroma reads it as a metadata field
        result["ids"].append(list(rows.ids))
        result["select"].append(list(select))
        result["documents"].append(list(rows.documents) if DOCUMENT_KEY in select else None)
        if EMBEDDING_KEY in select:
            vectors = rows.vectors if rows.vectors is not None else np.empty((0, 0), np.float32)
            result["embeddings"].append([v.tolist() for v in np.asarray(vectors, np.float32)])
        else:
            result["embeddings"].append(None)
        if METADATA_KEY in select:
            result["metadatas"].append([m or None for m in rows.metadatas])
        elif fields:
            chosen = [{k: v for k, v in (m or {}).items() if k in fields} for m in rows.metadatas]
            result["metadatas"].append([m or None for m in chosen])
        else:
            result["metadatas"].append(None)
        if SCORE_KEY in select:
            result["scores"].append([_score(float(s)) for s in np.asarray(hits.scores, np.float32)])
        else:
            result["scores"].append(None)
    return SearchResult(result)


def row_fields(selects: Sequence[list[str]]) -> tuple[list[str], bool]:
    """Which stored fields the selects need (of document, metadata) and whether vectors."""
    fields = []
    if any(DOCUMENT_KEY in s for s in selects):
        fields.append("document")
    if any(METADATA_KEY in s or any(k not in FIXED_SELECT for k in s) for s in selects):
        fields.append("metadata")
    return fields, any(EMBEDDING_KEY in s for s in selects)


__all__ = [
    "embed_text_queries",
    "parse_payload",
    "read_level_value",
    "row_fields",
    "search_payloads",
    "shape_result",
]
