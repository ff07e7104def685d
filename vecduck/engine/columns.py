"""Metadata keys as typed columns: each (key, value kind) pair gets one real column.

Chroma lets one key hold a string in one record and an int in another; vecduck keeps
each kind exact by giving every (key, kind) its own column. The first kind seen for a
key takes the key itself as column name (so `SELECT style FROM docs` works); later
kinds and names that clash with the built-in columns get a suffixed name. The map
from (key, kind) to column lives in the registry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pyarrow as pa

from vecduck.errors import InvalidArgumentError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Columns every collection table has; metadata columns never take these names.
BASE_COLUMNS: dict[str, str] = {
    "id": "VARCHAR",
    "_key": "BIGINT",
    "_seq": "BIGINT",
    "document": "VARCHAR",
    "uri": "VARCHAR",
    "metadata": "VARCHAR",
}
EMBEDDING_COLUMN = "embedding"
RESERVED_NAMES = {*BASE_COLUMNS, EMBEDDING_COLUMN, "_deleted"}

SQL_TYPES: dict[str, str] = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "str[]": "VARCHAR[]",
    "int[]": "BIGINT[]",
    "float[]": "DOUBLE[]",
    "bool[]": "BOOLEAN[]",
    "sparse": 'STRUCT(indices UINTEGER[], "values" FLOAT[], labels VARCHAR[])',
}
ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "str[]": pa.list_(pa.string()),
    "int[]": pa.list_(pa.int64()),
    "float[]": pa.list_(pa.float64()),
    "bool[]": pa.list_(pa.bool_()),
    # a sparse vector: its indices, values and optional labels (BM25 tokens), as chromadb stores them
    "sparse": pa.struct(
        [("indices", pa.list_(pa.uint32())), ("values", pa.list_(pa.float32())), ("labels", pa.list_(pa.string()))]
    ),
}

ColumnMap = dict[tuple[str, str], str]


def scalar_kind(value: object) -> str:
    """The kind of one scalar metadata value; rejects what no column can hold exactly."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidArgumentError(f"Metadata integer {value} is outside the 64-bit range")
        return "int"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"Metadata float {value} is not finite")
        return "float"
    if isinstance(value, str):
        return "str"
    raise InvalidArgumentError(f"Expected metadata value to be a str, int, float, bool or list, got {value!r}")


_EXACT_KINDS = {str: "str", bool: "bool", int: "int", float: "float"}


def value_kind(value: object) -> str:
    """The kind of a metadata value: a scalar kind, or `kind[]` for a homogeneous list."""
    kind = _EXACT_KINDS.get(type(value))  # the common case, without isinstance chains
    if kind == "str" or kind == "bool":
        return kind
    if kind == "int" and INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
        return kind
    if kind == "float" and math.isfinite(value):  # type: ignore[arg-type]
        return kind
    if type(value).__name__ == "SparseVector":
        return "sparse"
    if isinstance(value, list):
        if not value:
            raise InvalidArgumentError("Metadata lists cannot be empty")
        kinds = {scalar_kind(v) for v in value}
        if kinds == {"int", "float"}:
            return "float[]"
        if len(kinds) != 1:
            raise InvalidArgumentError(f"Metadata lists must hold one kind of value, got {value!r}")
        return f"{kinds.pop()}[]"
    return scalar_kind(value)


def column_value(value: object, kind: str) -> object:
    """The value as its column stores it (ints in a float list become floats, a sparse
    vector its fields)."""
    if kind == "float[]":
        return [float(v) for v in value]  # type: ignore[union-attr]
    if kind == "sparse":
        return {"indices": value.indices, "values": value.values, "labels": value.labels}  # type: ignore[attr-defined]
    return value


def assign_column(key: str, kind: str, taken: Iterable[str]) -> str:
    """A column name for (key, kind), unique among `taken` ignoring case (DuckDB's rule)."""
    lowered = {name.lower() for name in taken}
    candidates = [key] if key.lower() not in RESERVED_NAMES else []
    candidates.append(f"{key}__{kind.replace('[]', '_list')}")
    for name in candidates:
        if name.lower() not in lowered:
            return name
    n = 2
    while f"{candidates[-1]}_{n}".lower() in lowered:
        n += 1
    return f"{candidates[-1]}_{n}"


def kinds_in(metadatas: Iterable[Mapping[str, object] | None]) -> set[tuple[str, str]]:
    """Every (key, kind) pair that occurs in a batch of metadata dicts."""
    pairs: set[tuple[str, str]] = set()
    for metadata in metadatas:
        if metadata:
            for key, value in metadata.items():
                pairs.add((key, value_kind(value)))
    return pairs


def typed_columns(metadatas: list[Mapping[str, object] | None], column_map: ColumnMap) -> dict[str, pa.Array]:
    """Arrow arrays for every typed column that this batch of metadata touches."""
    values: dict[tuple[str, str], list[object]] = {}
    n = len(metadatas)
    for row, metadata in enumerate(metadatas):
        if not metadata:
            continue
        for key, value in metadata.items():
            kind = value_kind(value)
            column = values.get((key, kind))
            if column is None:
                column = values[(key, kind)] = [None] * n
            column[row] = column_value(value, kind) if kind in ("float[]", "sparse") else value
    return {column_map[pair]: pa.array(column, type=ARROW_TYPES[pair[1]]) for pair, column in values.items()}
