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
from itertools import chain

import numpy as np
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
    if type(value).__name__ == "SparseVector" or (type(value) is dict and value.get("#type") == "sparse_vector"):
        return "sparse"  # an object, or its stored form (metadata read back from the table's JSON)
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
        indices, values, labels = _sparse_fields(value)
        return {"indices": indices, "values": values, "labels": labels}
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
            column[row] = column_value(value, kind) if kind == "float[]" else value  # sparse: sparse_array reads it
    return {
        column_map[pair]: sparse_array(column) if pair[1] == "sparse" else pa.array(column, type=ARROW_TYPES[pair[1]])
        for pair, column in values.items()
    }


def _sparse_fields(value: object) -> tuple[list[int], list[float], list[str] | None]:
    if type(value) is dict:  # the stored form: chromadb's transport dict
        return value["indices"], value["values"], value.get("tokens")
    return value.indices, value.values, value.labels  # type: ignore[attr-defined]


def sparse_array(vectors: list[object]) -> pa.StructArray:
    """The sparse column of a batch (SparseVector objects, their stored dicts, or None),
    built from the vectors' concatenated lists rather than one Arrow struct per row."""
    fields = [None if vector is None else _sparse_fields(vector) for vector in vectors]
    present = [f for f in fields if f is not None]
    lengths = np.fromiter((len(f[0]) if f is not None else 0 for f in fields), dtype=np.int32, count=len(fields))
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)]), pa.int32())
    indices = pa.array(list(chain.from_iterable(f[0] for f in present)), pa.uint32())
    weights = pa.array(list(chain.from_iterable(f[1] for f in present)), pa.float32())
    labels = pa.array([None if f is None else f[2] for f in fields], pa.list_(pa.string()))
    mask = pa.array([f is None for f in fields])
    return pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(offsets, indices), pa.ListArray.from_arrays(offsets, weights), labels],
        fields=list(ARROW_TYPES["sparse"]),
        mask=mask,
    )
