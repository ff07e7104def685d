"""Parquet files written by another engine (Spark, Ray, polars, DuckDB) become a
collection's rows inside DuckDB: one streaming `INSERT ... SELECT` from `read_parquet`
into the collection's lake table, never through Python objects.

The files need an id column and an embedding column (a list or array of floats); other
columns become metadata (typed columns, as `add` would make them), with optional
document and uri columns. DuckLake's `ducklake_add_data_files` would register the files
as they are, but a collection's table carries row keys, write numbers and the metadata
as JSON beside the typed columns, which foreign files lack: so the rows are copied once,
by DuckDB, from file to lake. The read model then loads them from the lake and indexes
their vectors.

`add` semantics: ids already in the collection are left as they are; duplicate ids
within the files, missing ids or vectors, vectors of another dimension, non-finite
numbers and column types no metadata can hold are refused before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from vecduck.engine.columns import RESERVED_NAMES, SQL_TYPES, ColumnMap, assign_column
from vecduck.engine.lake import quote, retry_conflicts
from vecduck.errors import InvalidArgumentError

if TYPE_CHECKING:
    from vecduck.engine.store import Store

# DuckDB types of Parquet columns -> metadata kinds
_SCALAR_KINDS = {
    "VARCHAR": "str",
    "BOOLEAN": "bool",
    "TINYINT": "int",
    "SMALLINT": "int",
    "INTEGER": "int",
    "BIGINT": "int",
    "UTINYINT": "int",
    "USMALLINT": "int",
    "UINTEGER": "int",
    "FLOAT": "float",
    "DOUBLE": "float",
}
_FLOAT_TYPES = ("FLOAT", "DOUBLE")


def _kind(duckdb_type: str) -> str | None:
    """The metadata kind a column of this DuckDB type becomes (None: none can hold it)."""
    if duckdb_type.startswith("DECIMAL"):
        return "float"
    if duckdb_type in _SCALAR_KINDS:
        return _SCALAR_KINDS[duckdb_type]
    match = re.fullmatch(r"(.+)\[\d*\]", duckdb_type)
    if match and match.group(1) in _SCALAR_KINDS:
        return _SCALAR_KINDS[match.group(1)] + "[]"
    return None


def _vector_type(duckdb_type: str) -> bool:
    match = re.fullmatch(r"(.+)\[\d*\]", duckdb_type)
    return bool(match) and (match.group(1) in _FLOAT_TYPES or match.group(1).startswith("DECIMAL"))


def import_parquet(
    store: Store,
    collection_id: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    id_column: str = "id",
    embedding_column: str = "embedding",
    document_column: str | None = None,
    uri_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
) -> int:
    """Add the rows of Parquet `paths` to a collection in one lake transaction; returns how
    many were added (ids already present are skipped). See the module docstring."""
    files = [os.fspath(p) for p in paths]
    if not files:
        raise InvalidArgumentError("import_parquet needs at least one Parquet file")
    with store._lock, store.registry.writer_lock():
        state = store._state(collection_id)
        if store.registry.pending_count(collection_id):
            store._commit_to_lake(collection_id, [])  # the buffered ids must be in the lake to be seen
        record = store.get_collection_by_id(collection_id)
        con = store.lake.con
        source = "read_parquet(?)"
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {source}", [files]).fetchall()
        except Exception as exc:
            raise InvalidArgumentError(f"Cannot read the Parquet files: {str(exc).splitlines()[0]}") from None
        types = {row[0]: str(row[1]) for row in described}
        for needed, what in ((id_column, "id"), (embedding_column, "embedding")):
            if needed not in types:
                raise InvalidArgumentError(
                    f"The Parquet files have no {what} column {needed!r} (columns: {list(types)})"
                )
        if types[id_column] != "VARCHAR":
            raise InvalidArgumentError(f"The id column {id_column!r} must hold strings, it is {types[id_column]}")
        if not _vector_type(types[embedding_column]):
            raise InvalidArgumentError(
                f"The embedding column {embedding_column!r} must be a list or array of floats, it is"
                f" {types[embedding_column]}"
            )
        for optional in (document_column, uri_column):
            if optional is not None and types.get(optional) != "VARCHAR":
                raise InvalidArgumentError(f"Column {optional!r} must exist and hold strings")
        special = {id_column, embedding_column, document_column, uri_column}
        chosen = [name for name in types if name not in special] if metadata_columns is None else list(metadata_columns)
        kinds: dict[str, str] = {}
        for name in chosen:
            if name not in types:
                raise InvalidArgumentError(f"The Parquet files have no column {name!r}")
            kind = _kind(types[name])
            if kind is None:
                raise InvalidArgumentError(
                    f"Column {name!r} of type {types[name]} cannot be metadata (strings, integers, floats,"
                    " booleans and lists of one of them can): cast it, or leave it out with metadata_columns"
                )
            kinds[name] = kind

        ident, vec = quote(id_column), quote(embedding_column)
        checks = [
            f"count(*) FILTER (WHERE {ident} IS NULL)",
            f"count(*) FILTER (WHERE {vec} IS NULL)",
            f"count(*) - count(DISTINCT {ident})",
            f"min(len({vec}))",
            f"max(len({vec}))",
            f"count(*) FILTER (WHERE list_bool_or(list_transform({vec}, x -> x IS NULL OR NOT isfinite(x))))",
            "count(*)",
        ]
        for name, kind in kinds.items():
            column = quote(name)
            if kind == "float":
                checks.append(f"count(*) FILTER (WHERE NOT isfinite({column}::DOUBLE))")
            elif kind.endswith("[]"):
                element = "NOT isfinite(x::DOUBLE)" if kind == "float[]" else "false"
                checks.append(
                    f"count(*) FILTER (WHERE len({column}) = 0 OR list_bool_or(list_transform({column},"
                    f" x -> x IS NULL OR {element})))"
                )
            else:
                checks.append("0")
        found = con.execute(f"SELECT {', '.join(checks)} FROM {source}", [files]).fetchone()
        null_ids, null_vectors, duplicates, shortest, longest, bad_vectors, total = found[:7]
        if null_ids or null_vectors:
            raise InvalidArgumentError(f"{null_ids} rows lack an id and {null_vectors} rows lack an embedding")
        if duplicates:
            raise InvalidArgumentError(f"The Parquet files hold {duplicates} duplicate ids")
        if total == 0:
            return 0
        if shortest != longest or shortest == 0:
            raise InvalidArgumentError(f"The embeddings have different lengths ({shortest} to {longest})")
        if record.dimension is not None and shortest != record.dimension:
            raise InvalidArgumentError(
                f"Collection expecting embedding with dimension of {record.dimension}, got {shortest}"
            )
        if bad_vectors:
            raise InvalidArgumentError(f"{bad_vectors} embeddings hold a NaN, an infinity or a null")
        for (name, kind), bad in zip(kinds.items(), found[7:], strict=True):
            if bad:
                problem = "non-finite numbers" if kind.startswith("float") else "empty lists or nulls in lists"
                raise InvalidArgumentError(f"Metadata column {name!r} holds {problem} in {bad} rows")

        # which rows are new: ids not yet in the collection (add keeps existing records)
        exists = store.lake.has_table(collection_id) and record.lake_seq > 0
        fresh = f"SELECT * FROM {source}" + (
            f" WHERE {ident} NOT IN (SELECT id FROM {store.lake.ref(collection_id)})" if exists else ""
        )
        new_rows = con.execute(f"SELECT count(*) FROM ({fresh})", [files]).fetchone()[0]
        if new_rows == 0:
            return 0

        columns: ColumnMap = dict(record.columns)
        added: ColumnMap = {}
        for name, kind in kinds.items():
            if (name, kind) not in columns:
                taken = [*columns.values(), *RESERVED_NAMES]
                columns[(name, kind)] = added[(name, kind)] = assign_column(name, kind, taken)
        with store.registry.transaction() as db:
            first_key, seq, _version = store.registry.reserve(db, collection_id, new_rows, shortest, new_rows)
            if added:
                store.registry.add_columns(db, collection_id, added)
            store.registry.mark_lake_intent(db, collection_id, seq)
        record.columns.update(added)

        metadata_json = "NULL"
        if kinds:
            fields = ", ".join(f"{quote(name)} := {quote(name)}" for name in kinds)
            metadata_json = f"NULLIF(json_merge_patch('{{}}', to_json(struct_pack({fields})))::VARCHAR, '{{}}')"
        typed = [(columns[(name, kind)], f"{quote(name)}::{SQL_TYPES[kind]}") for name, kind in kinds.items()]
        targets = ["id", "_key", "_seq", "document", "uri", "metadata", "embedding", *[c for c, _ in typed]]
        values = [
            ident,
            "? + row_number() OVER () - 1",
            "?",
            quote(document_column) if document_column else "NULL",
            quote(uri_column) if uri_column else "NULL",
            metadata_json,
            f"{vec}::FLOAT[]",
            *[expression for _, expression in typed],
        ]
        insert = (
            f"INSERT INTO {store.lake.ref(collection_id)} ({', '.join(quote(t) for t in targets)})"
            f" SELECT {', '.join(values)} FROM ({fresh})"
        )

        def commit() -> None:
            con.execute("BEGIN TRANSACTION")
            try:
                store.lake.ensure_table(collection_id, record.columns)
                if record.lake_intent > record.lake_seq:  # a crashed commit's rows
                    con.execute(f"DELETE FROM {store.lake.ref(collection_id)} WHERE _seq > ?", [record.lake_seq])
                con.execute(insert, [first_key, seq, files])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

        retry_conflicts(commit)
        if record.lake_seq == 0:
            store._sync_view(record)
        with store.registry.transaction() as db:
            nothing = pa.table(
                {"id": pa.array([], pa.string()), "_key": pa.array([], pa.int64()), "_seq": pa.array([], pa.int64())}
            )
            store.registry.mark_flushed(db, collection_id, seq, nothing, record.lake_seq)
        del state
        store._forget(collection_id)  # the next call loads the rows and indexes their vectors
        return int(new_rows)


__all__ = ["import_parquet"]
