"""DataFrames in and out of collections: pandas, polars and Arrow through one Arrow path.

In: `write_frame` converts a frame to Arrow one chunk at a time (zero-copy where the
library allows), turns the embedding column into a float32 (n, d) matrix with one
flatten + reshape, metadata columns into the per-row dicts the engine's checked write
(`Collection._write`) takes, and writes each chunk as one atomic write.

Out: `collection_to_arrow` reads the per-process read model (every committed write,
without touching the lake) with metadata keys as typed columns; `result_to_arrow` turns
a get/query result into a table (a query gives one row per hit).

Nulls in metadata mean "no value": `add` leaves the key out; `upsert` / `update` leave the
stored value alone unless `nulls="delete"` asks for chromadb's rule (None deletes the key).
NaN in a float metadata column counts as null.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecduck.api import validation as v
from vecduck.engine.columns import ARROW_TYPES, column_value
from vecduck.errors import InvalidArgumentError
from vecduck.progress import progress

if TYPE_CHECKING:
    import pandas
    import polars

    from vecduck.api.collection import Collection

DEFAULT_CHUNK_ROWS = 50_000
Nulls = Literal["ignore", "delete"]


# -- frames -> Arrow chunks ----------------------------------------------------------------


def _kind(data: Any) -> str:
    module = type(data).__module__.split(".")[0]
    if isinstance(data, pa.Table | pa.RecordBatch):
        return "arrow"
    if module == "pandas":
        return "pandas"
    if module == "polars":
        return "polars"
    return "other"


def frame_rows(data: Any) -> int:
    """Number of rows of a pandas / polars / Arrow frame."""
    kind = _kind(data)
    if kind == "arrow":
        return data.num_rows
    if kind in ("pandas", "polars"):
        return len(data)
    raise TypeError(f"Expected a pandas or polars DataFrame or a pyarrow Table, got {type(data).__name__}")


def frame_columns(data: Any) -> list[str]:
    kind = _kind(data)
    if kind == "arrow":
        return list(data.schema.names)
    return [str(c) for c in data.columns]


def arrow_chunks(data: Any, chunk_rows: int) -> Iterator[pa.Table]:
    """The frame as Arrow tables of at most `chunk_rows` rows, converted one at a time."""
    kind = _kind(data)
    n = frame_rows(data)
    for start in range(0, n, chunk_rows):
        if kind == "arrow":
            chunk = data.slice(start, chunk_rows)
            yield chunk if isinstance(chunk, pa.Table) else pa.Table.from_batches([chunk])
        elif kind == "pandas":
            yield pa.Table.from_pandas(data.iloc[start : start + chunk_rows], preserve_index=False)
        else:
            yield data.slice(start, chunk_rows).to_arrow()


def as_arrow(data: Any) -> pa.Table:
    """A pandas / polars / Arrow frame (or anything with the Arrow C stream) as one Arrow table."""
    kind = _kind(data)
    if kind == "arrow":
        return data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    if kind == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if kind == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise TypeError(f"Expected a pandas or polars DataFrame or a pyarrow Table, got {type(data).__name__}")


# -- column conversions ----------------------------------------------------------------------


def embedding_matrix(column: pa.Array | pa.ChunkedArray, name: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
    """A list / fixed-size-list column as a float32 (n, d) matrix plus a mask of null rows.

    Null rows are zero-filled in the matrix; no Python loop runs over the rows.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    t = array.type
    if not (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        raise InvalidArgumentError(f"Column {name!r} must hold lists of numbers (one vector per row), got {t}")
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        array = array.cast(pa.large_list(t.value_type))
    n = len(array)
    missing = array.is_null().to_numpy(zero_copy_only=False)
    present = array if not missing.any() else array.filter(pa.array(~missing))
    if len(present) == 0:
        return np.zeros((n, 0), np.float32), missing
    lengths = pc.list_value_length(present)
    low, high = pc.min_max(lengths).values()
    if low.as_py() != high.as_py():
        raise InvalidArgumentError(f"Vectors in column {name!r} have different lengths ({low} to {high})")
    d = int(low.as_py())
    if d == 0:
        raise InvalidArgumentError(f"Vectors in column {name!r} are empty")
    values = present.flatten()
    if values.null_count:
        raise InvalidArgumentError(f"Vectors in column {name!r} contain nulls")
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(present), d)
    if not missing.any():
        return flat, missing
    matrix = np.zeros((n, d), np.float32)
    matrix[~missing] = flat
    return matrix, missing


def _scalar_target(t: pa.DataType) -> pa.DataType | None:
    """The stored type for an Arrow scalar type, or None if metadata cannot hold it."""
    if pa.types.is_dictionary(t):
        return _scalar_target(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_temporal(t):
        return pa.string()
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    return None


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t)
    )


def _metadata_array(array: pa.Array, name: str) -> pa.Array | None:
    """A metadata column in a kind the engine stores: str, int64, float64, bool or lists of those.

    Returns None for an all-null column. Dates and times become ISO strings.
    """
    t = array.type
    if pa.types.is_null(t) or array.null_count == len(array):
        return None
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = array.type
    target = _scalar_target(t)
    if target is None and _is_list(t):
        inner = _scalar_target(t.value_type)
        if inner is not None:
            return array.cast(pa.list_(inner))
    if target is None:
        raise InvalidArgumentError(
            f"Metadata column {name!r} has type {t}; metadata values are str, int, float, bool or lists of those"
        )
    array = array.cast(target)
    if pa.types.is_float64(target):
        nan = pc.is_nan(array)
        if pc.any(nan).as_py():
            array = pc.if_else(nan, pa.scalar(None, pa.float64()), array)
    return array


def metadata_dicts(table: pa.Table, names: Sequence[str], keep_nulls: bool) -> list[dict[str, Any] | None] | None:
    """Per-row metadata dicts from typed columns; a null value is left out unless `keep_nulls`."""
    if not names:
        return None
    keys: list[str] = []
    columns: list[list[Any]] = []
    for name in names:
        array = _metadata_array(table.column(name).combine_chunks(), name)
        if array is None and not keep_nulls:
            continue
        keys.append(name)
        columns.append(array.to_pylist() if array is not None else [None] * table.num_rows)
    if not keys:
        return [None] * table.num_rows
    if keep_nulls:
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    return [
        {k: x for k, x in zip(keys, row, strict=True) if x is not None} or None for row in zip(*columns, strict=True)
    ]


def _strings(table: pa.Table, name: str, what: str, nullable: bool = True) -> list[str | None]:
    array = table.column(name).combine_chunks()
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = array.type
    if what == "ids" and pa.types.is_integer(t):
        array = array.cast(pa.string())
    elif not (
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t)
    ):
        raise InvalidArgumentError(f"Column {name!r} ({what}) must hold strings, got {t}")
    if not nullable and array.null_count:
        raise InvalidArgumentError(f"Column {name!r} ({what}) has {array.null_count} null values")
    return array.cast(pa.string()).to_pylist()


# -- writes --------------------------------------------------------------------------------------


def write_frame(
    collection: Collection,
    mode: str,
    data: Any,
    *,
    id: str = "id",
    embedding: str | np.ndarray | None = "embedding",
    document: str | None = "document",
    uri: str | None = "uri",
    metadata: Sequence[str] | None = None,
    nulls: Nulls = "ignore",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    show_progress: bool | None = None,
) -> int:
    """Add / upsert / update the rows of a frame, one atomic write per chunk; returns rows written.

    Columns named by `id`, `embedding`, `document`, `uri` (those absent from the frame
    are skipped, except `id`); `metadata` lists the metadata columns, default every other
    column. `embedding` may be a 2-D array with one row per frame row instead of a
    column name. Rows without a vector are embedded from their document with the
    collection's embedding function.
    """
    if mode not in ("add", "upsert", "update"):
        raise ValueError(f"mode must be add, upsert or update, got {mode!r}")
    if nulls not in ("ignore", "delete"):
        raise ValueError("nulls must be 'ignore' or 'delete'")
    if chunk_rows <= 0:
        raise ValueError("chunk_rows must be positive")
    names = frame_columns(data)
    total = frame_rows(data)
    if id not in names:
        raise InvalidArgumentError(f"No id column {id!r} in the frame (columns: {names})")
    matrix_given: np.ndarray | None = None
    embedding_column: str | None = None
    if isinstance(embedding, np.ndarray):
        if embedding.ndim != 2 or embedding.shape[0] != total:
            raise InvalidArgumentError(f"embedding array must have shape ({total}, d), got {embedding.shape}")
        matrix_given = embedding
    elif embedding is not None and embedding in names:
        embedding_column = embedding
    document_column = document if document is not None and document in names else None
    uri_column = uri if uri is not None and uri in names else None
    taken = {id, embedding_column, document_column, uri_column}
    if metadata is None:
        metadata_columns = [n for n in names if n not in taken]
    else:
        metadata_columns = list(metadata)
        unknown = [n for n in metadata_columns if n not in names]
        if unknown:
            raise InvalidArgumentError(f"Metadata columns not in the frame: {unknown}")
    if matrix_given is None and embedding_column is None and document_column is None and mode != "update":
        raise InvalidArgumentError(
            f"The frame needs an embedding column ({embedding!r}) or a document column ({document!r}) to embed"
        )
    keep_nulls = nulls == "delete" and mode != "add"
    written = 0
    bar = progress(
        total=total, desc=f"{mode} {collection.name}", unit="rows", enabled=show_progress, min_total=chunk_rows
    )
    try:
        for start, chunk in zip(range(0, total, chunk_rows), arrow_chunks(data, chunk_rows), strict=True):
            n = chunk.num_rows
            ids = _strings(chunk, id, "ids", nullable=False)
            v.validate_ids(ids)
            documents = _strings(chunk, document_column, "documents") if document_column else None
            uris = _strings(chunk, uri_column, "uris") if uri_column else None
            if matrix_given is not None:
                matrix: np.ndarray | None = np.ascontiguousarray(matrix_given[start : start + n], dtype=np.float32)
                missing = np.zeros(n, bool)
            elif embedding_column is not None:
                matrix, missing = embedding_matrix(chunk.column(embedding_column), embedding_column)
            else:
                matrix, missing = None, np.ones(n, bool)
            if mode != "update" and missing.any():
                matrix = _embed_missing(collection, matrix, missing, documents)
            elif mode == "update" and matrix is not None and missing.any():
                raise InvalidArgumentError("update_df needs a vector in every row of the embedding column")
            if matrix is not None and not np.isfinite(matrix).all():
                raise InvalidArgumentError("Embeddings must not contain NaN or infinite values")
            metadatas = metadata_dicts(chunk, metadata_columns, keep_nulls)
            collection._write(mode, ids, matrix, metadatas, documents, uris)
            written += n
            bar.update(n)
    finally:
        bar.close()
    return written


def _embed_missing(
    collection: Collection, matrix: np.ndarray | None, missing: np.ndarray, documents: list[str | None] | None
) -> np.ndarray:
    """Fill the rows without a vector from their documents with the collection's embedding function."""
    if documents is None:
        raise InvalidArgumentError("Rows without an embedding need a document column to embed")
    at = np.flatnonzero(missing)
    texts = [documents[i] for i in at]
    if any(t is None for t in texts):
        raise InvalidArgumentError("Rows without an embedding need a document to embed, found a null document")
    vectors = np.asarray(collection._embed(texts), dtype=np.float32)  # type: ignore[arg-type]
    if matrix is None or matrix.shape[1] == 0:
        matrix = np.zeros((len(missing), vectors.shape[1]), np.float32)
    elif vectors.shape[1] != matrix.shape[1]:
        raise InvalidArgumentError(
            f"Computed embeddings have dimension {vectors.shape[1]}, the given ones {matrix.shape[1]}"
        )
    matrix[at] = vectors
    return matrix


# -- reads -----------------------------------------------------------------------------------------


def vectors_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """An (n, d) float32 matrix as a fixed-size-list column, without copying."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    d = matrix.shape[1] if matrix.ndim == 2 else 0
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), d)


def collection_to_arrow(
    collection: Collection,
    where: dict[str, Any] | None = None,
    where_document: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    include_embeddings: bool = False,
    limit: int | None = None,
    offset: int | None = None,
    as_of: Any = None,
) -> pa.Table:
    """The collection's records as an Arrow table in storage order.

    Columns: id, document, uri (only when some record has one), embedding (when asked),
    then one typed column per metadata key (named as in SQL: `year`, `year__str`, ...).
    `columns` picks and orders a subset. `as_of` reads an earlier lake snapshot.
    """
    v.validate_filters(where, where_document)
    if as_of is not None:
        from vecduck.sql import read_as_of

        table = read_as_of(collection, as_of, where, where_document, None, limit, offset, include_embeddings)
        table = table.drop_columns([c for c in ("_key", "metadata") if c in table.column_names])
        if include_embeddings and "embedding" in table.column_names:
            matrix, _ = embedding_matrix(table.column("embedding"))
            index = table.column_names.index("embedding")
            table = table.set_column(index, "embedding", vectors_array(matrix))
        return _finish(table, columns, include_embeddings)
    store = collection._store
    with store._lock:
        state = store._state(collection._record.id)
        mirror = store._mirror(state)
        params: list[Any] = []
        sql = store._where(state, None, where, where_document, params)
        typed = [c for c in state.record.columns.values() if c in state.mirror_columns]
        select = ", ".join(f'"{c}"' for c in ["id", "_key", "document", "uri", *typed])
        page = ""
        if limit is not None:
            page += " LIMIT ?"
            params.append(v.check_limit(limit))
        if offset:
            page += " OFFSET ?"
            params.append(v.check_limit(offset, "offset"))
        table = store.con.execute(f"SELECT {select} FROM {mirror} WHERE {sql} ORDER BY _key{page}", params)
        table = table.to_arrow_table()
        if include_embeddings:
            dimension = state.record.dimension or 0
            keys = table.column("_key").to_numpy()
            matrix = store._vectors_of(state, keys) if len(keys) else np.empty((0, dimension), np.float32)
            table = table.add_column(3, "embedding", vectors_array(matrix))
    return _finish(table.drop_columns(["_key"]), columns, include_embeddings)


def get_as_of(
    collection: Collection,
    as_of: Any,
    ids: list[str] | None,
    where: dict[str, Any] | None,
    limit: int | None,
    offset: int | None,
    where_document: dict[str, Any] | None,
    include: Sequence[str],
) -> Any:
    """`collection.get(..., as_of=...)`: a GetResult read from an earlier lake snapshot."""
    from vecduck.api.types import GetResult, empty_embeddings
    from vecduck.sql import read_as_of

    want_vectors = "embeddings" in include
    table = read_as_of(collection, as_of, where, where_document, ids, limit, offset, want_vectors)
    embeddings = None
    if want_vectors:
        dimension = collection.dimension
        embeddings = embedding_matrix(table.column("embedding"))[0] if table.num_rows else empty_embeddings(dimension)
    metadatas = [None if m is None else json.loads(m) for m in table.column("metadata").to_pylist()]
    return GetResult(
        ids=table.column("id").to_pylist(),
        embeddings=embeddings,
        documents=table.column("document").to_pylist() if "documents" in include else None,
        uris=table.column("uri").to_pylist() if "uris" in include else None,
        included=list(include),
        data=None,
        metadatas=metadatas if "metadatas" in include else None,
    )


def _finish(table: pa.Table, columns: Sequence[str] | None, include_embeddings: bool) -> pa.Table:
    if columns is None and "uri" in table.column_names and table.column("uri").null_count == table.num_rows:
        table = table.drop_columns(["uri"])
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InvalidArgumentError(f"Unknown columns {missing}; available: {table.column_names}")
        table = table.select(list(columns))
    return table


def _metadata_columns(metadatas: list[dict[str, Any] | None]) -> dict[str, pa.Array]:
    """Typed columns from metadata dicts (small results: get/query); mixed kinds fall back to JSON text."""
    keys: dict[str, None] = {}
    for m in metadatas:
        if m:
            keys.update(dict.fromkeys(m))
    out: dict[str, pa.Array] = {}
    for key in keys:
        values = [None if m is None else m.get(key) for m in metadatas]
        if any(type(x).__name__ == "SparseVector" for x in values):
            try:
                sparse = [None if x is None else column_value(x, "sparse") for x in values]
                out[key] = pa.array(sparse, ARROW_TYPES["sparse"])
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, AttributeError):
                values = [x.to_dict() if type(x).__name__ == "SparseVector" else x for x in values]
        try:
            out[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            out[key] = pa.array([None if x is None else json.dumps(x) for x in values], pa.string())
    return out


def result_to_arrow(result: dict[str, Any]) -> pa.Table:
    """A get or query result as an Arrow table; a query gives one row per hit.

    Query columns: query (index of the query), rank (0 = nearest), id, distance, document,
    uri, embedding (those included), then one column per metadata key.
    """
    is_query = "distances" in result
    columns: dict[str, Any] = {}
    if is_query:
        per_query = [len(ids) for ids in result["ids"]]
        columns["query"] = pa.array(np.repeat(np.arange(len(per_query), dtype=np.int64), per_query))
        columns["rank"] = pa.array(
            np.concatenate([np.arange(k, dtype=np.int64) for k in per_query] or [[]]).astype(np.int64)
        )

        def flat(field: str) -> list[Any] | None:
            value = result.get(field)
            return None if value is None else [x for part in value for x in part]

        columns["id"] = pa.array(flat("ids") or [], pa.string())
        if result.get("distances") is not None:
            columns["distance"] = pa.array(flat("distances"), pa.float64())
        embeddings = result.get("embeddings")
        matrices = [np.asarray(e, np.float32) for e in embeddings] if embeddings is not None else None
        matrix = np.concatenate(matrices) if matrices else None
    else:
        columns["id"] = pa.array(result["ids"], pa.string())

        def flat(field: str) -> list[Any] | None:
            return result.get(field)

        embeddings = result.get("embeddings")
        matrix = np.asarray(embeddings, np.float32) if embeddings is not None else None
    if flat("documents") is not None:
        columns["document"] = pa.array(flat("documents"), pa.string())
    if flat("uris") is not None:
        columns["uri"] = pa.array(flat("uris"), pa.string())
    if matrix is not None:
        if matrix.ndim != 2:
            matrix = matrix.reshape(len(columns["id"]), -1)
        columns["embedding"] = vectors_array(matrix)
    metadatas = flat("metadatas")
    if metadatas is not None:
        for key, array in _metadata_columns(metadatas).items():
            columns[key if key not in columns else f"{key}__metadata"] = array
    return pa.table(columns)


def search_result_to_arrow(result: dict[str, Any]) -> pa.Table:
    """A search result as an Arrow table: one row per hit, with `search` (the index of the
    search in the call) and `rank` (0 = first), then id, score, document, embedding (those
    selected) and one column per selected metadata key."""
    ids = result.get("ids") or []
    counts = [len(part) for part in ids]
    columns: dict[str, Any] = {
        "search": pa.array(np.repeat(np.arange(len(counts), dtype=np.int64), counts)),
        "rank": pa.array(np.concatenate([np.arange(n, dtype=np.int64) for n in counts] or [[]]).astype(np.int64)),
        "id": pa.array([x for part in ids for x in part], pa.string()),
    }

    def flat(field: str) -> list[Any] | None:
        parts = result.get(field)
        if parts is None or all(part is None for part in parts):
            return None
        return [x for part, n in zip(parts, counts, strict=True) for x in (part if part is not None else [None] * n)]

    if (scores := flat("scores")) is not None:
        columns["score"] = pa.array(scores, pa.float64())
    if (documents := flat("documents")) is not None:
        columns["document"] = pa.array(documents, pa.string())
    if (embeddings := flat("embeddings")) is not None:
        columns["embedding"] = pa.array(
            [None if e is None else np.asarray(e, np.float32) for e in embeddings], pa.list_(pa.float32())
        )
    if (metadatas := flat("metadatas")) is not None:
        for key, array in _metadata_columns(metadatas).items():
            columns[key if key not in columns else f"{key}__metadata"] = array
    return pa.table(columns)


def to_pandas(table: pa.Table) -> pandas.DataFrame:
    """An Arrow table as pandas (vectors as NumPy arrays in an object column)."""
    return table.to_pandas()


def to_polars(table: pa.Table) -> polars.DataFrame:
    """An Arrow table as polars (fixed-size vectors become an Array column), zero-copy where possible."""
    import polars as pl

    return pl.from_arrow(table)  # type: ignore[return-value]


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "arrow_chunks",
    "as_arrow",
    "collection_to_arrow",
    "embedding_matrix",
    "get_as_of",
    "metadata_dicts",
    "result_to_arrow",
    "to_pandas",
    "to_polars",
    "vectors_array",
    "write_frame",
]
