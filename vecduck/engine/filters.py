"""`where` and `where_document` as parameterised SQL over a collection's typed columns.

Values only ever travel as bind parameters and column names only as quoted
identifiers, so no filter can change the statement. Semantics follow chromadb 1.5:
ints and floats compare across kinds, except that an int field meets a float operand
truncated toward zero (`{"n": 2.5}` matches n=2, as chromadb does), bool is its own
kind, strings never equal numbers, array fields are reached only by `$contains`, and the negations
(`$ne`, `$nin`, `$not_contains`, ...) match records that lack the key. Every
predicate built here is TRUE or FALSE, never NULL, so NOT is always safe.
"""

from __future__ import annotations

import math
from typing import Any

from vecduck.engine.columns import ColumnMap, scalar_kind
from vecduck.engine.lake import quote
from vecduck.errors import InvalidArgumentError

Params = list[Any]

COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
WHERE_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$contains", "$not_contains", *COMPARISONS}
DOCUMENT_OPERATORS = {"$contains", "$not_contains", "$regex", "$not_regex"}
DOCUMENT_KEY = "#document"
ID_KEY = "#id"  # the record's id, in the Search API's filters
ID_OPERATORS = {"$eq", "$ne", "$in", "$nin"}

TRUE, FALSE = "TRUE", "FALSE"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# `$in` lists up to this long become `IN (?, ...)`; longer ones travel as one list parameter.
IN_LIST_MAX = 64


def _bad_where(where: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"Invalid where clause: {where!r}")


def _bad_document(where_document: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"Invalid where document clause: {where_document!r}")


def _columns_of(column_map: ColumnMap, key: str, kinds: tuple[str, ...]) -> list[str]:
    return [quote(column_map[(key, kind)]) for kind in kinds if (key, kind) in column_map]


def _numeric_columns(column_map: ColumnMap, key: str) -> list[tuple[str, bool]]:
    """The key's int and float columns, each with whether it holds ints."""
    return [(quote(column_map[(key, kind)]), kind == "int") for kind in ("int", "float") if (key, kind) in column_map]


def _as_operand(value: Any, int_column: bool) -> Any:
    """chromadb compares an int field with a float operand cast to an integer: truncated
    toward zero, saturating at the int64 range."""
    if int_column and isinstance(value, float):
        return max(INT64_MIN, min(INT64_MAX, math.trunc(value)))
    return value


def _never_null(expressions: list[str]) -> str:
    if not expressions:
        return FALSE
    return "COALESCE(" + " OR ".join(f"({e})" for e in expressions) + ", FALSE)"


def _operand_kind(value: object, where: object) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise _bad_where(where)
    try:
        return scalar_kind(value)
    except InvalidArgumentError as exc:
        raise _bad_where(where) from exc


def _equals(column_map: ColumnMap, key: str, value: object, params: Params, where: object) -> str:
    kind = _operand_kind(value, where)
    if kind in ("int", "float"):
        return _compare(column_map, key, "=", value, params)
    columns = _columns_of(column_map, key, (kind,))
    params.extend([value] * len(columns))
    return _never_null([f"{column} = ?" for column in columns])


def _compare(column_map: ColumnMap, key: str, operator: str, value: Any, params: Params) -> str:
    """A number against the key's int and float columns."""
    columns = _numeric_columns(column_map, key)
    params.extend(_as_operand(value, holds_ints) for _, holds_ints in columns)
    return _never_null([f"{column} {operator} ?" for column, _ in columns])


def _in_list(column_map: ColumnMap, key: str, values: object, params: Params, where: object) -> str:
    if not isinstance(values, list) or not values:
        raise _bad_where(where)
    kinds = {_operand_kind(v, where) for v in values}
    if kinds <= {"int", "float"}:
        return _never_null(
            [
                _membership(column, [_as_operand(v, holds_ints) for v in values], params, numeric=True)
                for column, holds_ints in _numeric_columns(column_map, key)
            ]
        )
    if len(kinds) != 1:
        raise _bad_where(where)
    kind = kinds.pop()
    list_type = "VARCHAR[]" if kind == "str" else "BOOLEAN[]"
    columns = _columns_of(column_map, key, (kind,))
    return _never_null([_membership(column, list(values), params, list_type=list_type) for column in columns])


def _membership(column: str, values: list[Any], params: Params, numeric: bool = False, list_type: str = "") -> str:
    """`column` is one of `values`. A short list is `column IN (?, ...)`, compared in the
    column's own type (2-3x faster in DuckDB); a long one travels as one list parameter."""
    if len(values) <= IN_LIST_MAX:
        params.extend(values)
        return f"{column} IN ({', '.join('?' * len(values))})"
    if numeric:
        params.append([float(v) for v in values])
        return f"list_contains(?::DOUBLE[], {column}::DOUBLE)"
    params.append(values)
    return f"list_contains(?::{list_type}, {column})"


def _contains(column_map: ColumnMap, key: str, value: object, params: Params, where: object) -> str:
    kind = _operand_kind(value, where)
    columns = _columns_of(column_map, key, (f"{kind}[]",))
    params.extend([value] * len(columns))
    return _never_null([f"list_contains({column}, ?)" for column in columns])


# Perl classes as chromadb's Rust regex reads them (Unicode), in RE2's terms (ASCII there):
# outside a bracket, then inside one (None: left as RE2 reads it)
_WORD = r"\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}"
_SPACE = r"\s\v\x{85}\p{Z}"
_UNICODE_CLASSES = {
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "w": (f"[{_WORD}]", _WORD),
    "W": (f"[^{_WORD}]", None),
    "s": (f"[{_SPACE}]", _SPACE),
    "S": (f"[^{_SPACE}]", None),
}


def unicode_classes(pattern: str) -> str:
    r"""A `$regex` pattern for DuckDB's RE2 with `\d \w \s` (and negations) matching what
    they match in chromadb's Rust regex: Unicode digits, word characters and spaces.
    Everything else passes as written (`\Q...\E` quotes untouched)."""
    if "\\" not in pattern:
        return pattern
    out: list[str] = []
    i, in_class, n = 0, False, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            following = pattern[i + 1]
            if following == "Q":
                end = pattern.find("\\E", i + 2)
                stop = n if end < 0 else end + 2
                out.append(pattern[i:stop])
                i = stop
                continue
            replacement = _UNICODE_CLASSES.get(following)
            chosen = None if replacement is None else replacement[1 if in_class else 0]
            out.append(chosen if chosen is not None else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "[" and pattern.startswith("[:", i):  # a POSIX class such as [:alpha:]
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    out.append(pattern[i : end + 2])
                    i = end + 2
                    continue
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            out.append(char)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a ']' first in a bracket is itself
                out.append("]")
                i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _document_predicate(operator: str, operand: object, params: Params, clause: object) -> str:
    if operator not in DOCUMENT_OPERATORS or not isinstance(operand, str):
        raise _bad_document(clause)
    params.append(operand if operator.endswith("contains") else unicode_classes(operand))
    if operator in ("$contains", "$not_contains"):
        test = "COALESCE(contains(document, ?), FALSE)"
    else:
        test = "COALESCE(regexp_matches(document, ?), FALSE)"
    return f"NOT {test}" if operator.startswith("$not_") else test


def _id_predicate(operator: str, operand: object, params: Params, where: object) -> str:
    """`#id` compared with one id or a list of ids (Search API filters)."""
    if operator not in ID_OPERATORS:
        raise InvalidArgumentError(f"Invalid where clause: {operator} is not supported on {ID_KEY}")
    ids = operand if operator in ("$in", "$nin") else [operand]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _bad_where(where)
    test = _membership("id", list(ids), params, list_type="VARCHAR[]")
    return f"NOT {test}" if operator in ("$ne", "$nin") else test


def _field(
    column_map: ColumnMap, key: str, condition: object, params: Params, where: object, ids: bool = False
) -> str:
    if isinstance(condition, dict):
        if len(condition) != 1:
            raise _bad_where(where)
        operator, operand = next(iter(condition.items()))
    else:
        operator, operand = "$eq", condition
    if ids and key == ID_KEY:
        return _id_predicate(operator, operand, params, where)
    if key == DOCUMENT_KEY:
        if operator not in DOCUMENT_OPERATORS:
            raise InvalidArgumentError(f"Invalid where clause: {operator} is not supported on {DOCUMENT_KEY}")
        return _document_predicate(operator, operand, params, where)
    if operator in ("$eq", "$ne"):
        test = _equals(column_map, key, operand, params, where)
    elif operator in ("$in", "$nin"):
        test = _in_list(column_map, key, operand, params, where)
    elif operator in ("$contains", "$not_contains"):
        test = _contains(column_map, key, operand, params, where)
    elif operator in COMPARISONS:
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise _bad_where(where)
        _operand_kind(operand, where)
        test = _compare(column_map, key, COMPARISONS[operator], operand, params)
    else:
        raise _bad_where(where)
    return f"NOT {test}" if operator in ("$ne", "$nin", "$not_contains") else test


def where_sql(where: object, column_map: ColumnMap, params: Params, ids: bool = False) -> str:
    """SQL predicate for a chromadb `where` filter; appends its values to `params`.
    `ids`: also `#id` conditions (the Search API's filters)."""
    if not isinstance(where, dict) or len(where) != 1:
        raise _bad_where(where)
    key, value = next(iter(where.items()))
    if not isinstance(key, str):
        raise _bad_where(where)
    if key in ("$and", "$or"):
        if not isinstance(value, list):
            raise _bad_where(where)
        parts = [where_sql(item, column_map, params, ids) for item in value]
        if not parts:
            return TRUE if key == "$and" else FALSE
        return "(" + (" AND " if key == "$and" else " OR ").join(parts) + ")"
    if key.startswith("$"):
        raise _bad_where(where)
    return _field(column_map, key, value, params, where, ids)


def where_document_sql(where_document: object, params: Params) -> str:
    """SQL predicate for a chromadb `where_document` filter."""
    if not isinstance(where_document, dict) or len(where_document) != 1:
        raise _bad_document(where_document)
    operator, operand = next(iter(where_document.items()))
    if operator in ("$and", "$or"):
        if not isinstance(operand, list):
            raise _bad_document(where_document)
        parts = [where_document_sql(item, params) for item in operand]
        if not parts:
            return TRUE if operator == "$and" else FALSE
        return "(" + (" AND " if operator == "$and" else " OR ").join(parts) + ")"
    return _document_predicate(operator, operand, params, where_document)


def regexes_in(where: object, where_document: object) -> list[str]:
    """Every regex pattern a filter uses, so they can be checked before a query runs."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for operator, operand in node.items():
                if operator in ("$regex", "$not_regex") and isinstance(operand, str):
                    found.append(unicode_classes(operand))  # as the query will run it
                else:
                    walk(operand)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(where)
    walk(where_document)
    return found


def filter_sql(where: object | None, where_document: object | None, column_map: ColumnMap, params: Params) -> str:
    """One predicate for `where` AND `where_document` (TRUE when both are absent)."""
    parts = []
    if where is not None:
        parts.append(where_sql(where, column_map, params))
    if where_document is not None:
        parts.append(where_document_sql(where_document, params))
    return " AND ".join(parts) if parts else TRUE
