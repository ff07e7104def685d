"""Resolved rows: the one Arrow shape every write becomes before it is stored.

A write (add, upsert, update, delete) is resolved against the current state into
full rows, one per touched id: the record as it must now be, or a tombstone. Such
rows can be applied again in order without changing the result, which is what makes
the write buffer safe to replay after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from vecduck.engine.arrays import as_numpy, numeric_array
from vecduck.engine.columns import ColumnMap, typed_columns

RESOLVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("_key", pa.int64()),
        ("_seq", pa.int64()),
        ("embedding", pa.list_(pa.float32())),
        ("document", pa.string()),
        ("uri", pa.string()),
        ("metadata", pa.string()),
        ("_deleted", pa.bool_()),
    ]
)


def embedding_array(vectors: np.ndarray | None, n: int) -> pa.Array:
    """An (n, d) float32 matrix as an Arrow list column without a Python loop."""
    if vectors is None:
        return pa.nulls(n, pa.list_(pa.float32()))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dimension = vectors.shape[1] if vectors.ndim == 2 else 0
    if n and dimension:
        offsets = np.arange(0, n * dimension + 1, dimension, dtype=np.int32)
    else:
        offsets = np.zeros(n + 1, np.int32)
    return pa.ListArray.from_arrays(numeric_array(offsets), numeric_array(vectors.reshape(-1)))


def embeddings_matrix(column: pa.ChunkedArray | pa.Array, dimension: int) -> np.ndarray:
    """An Arrow list column of equal-length vectors as an (n, d) float32 matrix."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return np.empty((0, dimension), np.float32)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(array), dimension)


def _transport(value: object) -> object:
    """JSON for what orjson does not know: a sparse vector as chromadb's tagged dict."""
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None and type(value).__name__ == "SparseVector":
        return to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dump_metadata(metadata: Mapping[str, object] | None) -> str | None:
    """Metadata as JSON text (validated before: finite numbers, 64-bit ints, str keys);
    a sparse vector is stored in chromadb's transport form, `{"#type": "sparse_vector", ...}`."""
    if metadata is None:
        return None
    try:
        return orjson.dumps(metadata, default=_transport, option=orjson.OPT_PASSTHROUGH_DATACLASS).decode()
    except TypeError:  # a value orjson does not know: the standard library's rules
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False, default=_transport, separators=(",", ":"))


SPARSE_TAG = '"#type":"sparse_vector"'


def revive_sparse(metadata: dict[str, object] | None) -> dict[str, object] | None:
    """Tagged sparse-vector dicts in decoded metadata back into SparseVector objects.
    The dicts come from the lake or a vecduck server, which checked them when written."""
    if metadata:
        from vecduck.api.types import SparseVector

        for key, value in metadata.items():
            if isinstance(value, dict) and value.get("#type") == "sparse_vector":
                metadata[key] = SparseVector._unchecked(value["indices"], value["values"], value.get("tokens"))
    return metadata


def load_metadata(text: str | bytes | None, revive: bool = True) -> dict[str, object] | None:
    """Decoded metadata JSON, sparse vectors as SparseVector objects (or, without `revive`,
    in their stored tagged-dict form)."""
    if text is None:
        return None
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits, which only json reads
        decoded = json.loads(text)
    if revive and (SPARSE_TAG if isinstance(text, str) else SPARSE_TAG.encode()) in text:
        revive_sparse(decoded)
    return decoded


# Below this many rows, decoding each metadata on its own costs less than joining them.
BULK_DECODE_MIN = 64
BULK_DECODE_CHUNK = 65_536


def load_metadata_column(
    column: pa.ChunkedArray | pa.Array, revive: bool = True
) -> list[dict[str, object] | None]:
    """Decode a column of metadata JSON texts; with `revive=False` sparse vectors stay in
    their stored (tagged dict) form, which is all that typing them into columns needs.

    Many rows are joined by Arrow into one JSON array and parsed in one orjson call: a
    third of the time of one call per row, which dominates a large `get`.
    """
    if len(column) < BULK_DECODE_MIN:
        return [load_metadata(text, revive) for text in column.to_pylist()]
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    decoded = _decode_metadata_array(array, revive)
    if revive and pc.any(pc.match_substring(array, SPARSE_TAG)).as_py():
        for metadata in decoded:
            revive_sparse(metadata)
    return decoded


def _decode_metadata_array(array: pa.Array, revive: bool) -> list[dict[str, object] | None]:
    decoded: list[dict[str, object] | None] = []
    for start in range(0, len(array), BULK_DECODE_CHUNK):
        chunk = array.slice(start, BULK_DECODE_CHUNK)
        if chunk.null_count:
            chunk = pc.fill_null(chunk, pa.scalar("null", pa.string()))  # typed: no pandas import
        one_list = pa.ListArray.from_arrays(pa.array([0, len(chunk)], pa.int32()), chunk)
        joined = pc.binary_join(one_list, pa.scalar(",", pa.string()))[0].as_buffer()
        try:
            decoded += orjson.loads(b"[" + joined.to_pybytes() + b"]")
        except orjson.JSONDecodeError:  # integers beyond 64 bits: row by row
            decoded += [load_metadata(text, revive) for text in array.slice(start, BULK_DECODE_CHUNK).to_pylist()]
    return decoded


def resolved_table(
    ids: Sequence[str],
    keys: Sequence[int] | np.ndarray,
    seq: int,
    embeddings: np.ndarray | None,
    documents: Sequence[str | None],
    uris: Sequence[str | None],
    metadatas: Sequence[Mapping[str, object] | None],
) -> pa.Table:
    """Live resolved rows of one write (built column by column: this runs once per add)."""
    n = len(ids)
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            numeric_array(np.asarray(keys, dtype=np.int64)),
            numeric_array(np.full(n, seq, dtype=np.int64)),
            embedding_array(embeddings, n),
            string_array(documents),
            string_array(uris),
            string_array([dump_metadata(m) for m in metadatas]),
            pa.repeat(pa.scalar(False, pa.bool_()), n),
        ],
        schema=RESOLVED_SCHEMA,
    )


def string_array(values: Sequence[str | None]) -> pa.Array:
    """A string column; one of nulls only is made without looking at the values."""
    if all(value is None for value in values):
        return pa.nulls(len(values), pa.string())
    return pa.array(values, pa.string())


def tombstones(ids: Sequence[str], keys: Sequence[int] | np.ndarray, seq: int) -> pa.Table:
    """Resolved rows that delete `ids` (whose row keys were `keys`)."""
    n = len(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "_key": numeric_array(np.asarray(keys, dtype=np.int64)),
            "_seq": numeric_array(np.full(n, seq, dtype=np.int64)),
            "embedding": pa.nulls(n, pa.list_(pa.float32())),
            "document": pa.nulls(n, pa.string()),
            "uri": pa.nulls(n, pa.string()),
            "metadata": pa.nulls(n, pa.string()),
            "_deleted": pa.repeat(pa.scalar(True, pa.bool_()), n),
        },
        schema=RESOLVED_SCHEMA,
    )


def latest_per_id(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate resolved rows in write order and keep the last row of each id."""
    if not tables:
        return RESOLVED_SCHEMA.empty_table()
    combined = pa.concat_tables(tables)
    if combined.num_rows <= 1:
        return combined
    # each id's last position, by NumPy over the ids' dictionary codes (Arrow's group_by
    # would load pyarrow.dataset, and with it pandas, into a process that has neither)
    codes = combined.column("id").combine_chunks().dictionary_encode()
    last = np.full(len(codes.dictionary), -1, np.int64)
    np.maximum.at(last, as_numpy(codes.indices, np.int64), np.arange(combined.num_rows, dtype=np.int64))
    return combined.take(numeric_array(np.sort(last)))  # in write order


def with_typed_columns(
    rows: pa.Table,
    column_map: ColumnMap,
    keep_embedding: bool,
    metadatas: Sequence[Mapping[str, object] | None] | None = None,
) -> pa.Table:
    """Live rows in table shape: base columns plus one typed column per metadata (key, kind).

    `metadatas`, when the writer still holds them, are the live rows' metadata in order,
    spared a decode of the JSON column."""
    live = rows.filter(pc.invert(rows.column("_deleted")))
    if metadatas is None or len(metadatas) != live.num_rows:
        metadatas = load_metadata_column(live.column("metadata"), revive=False)
    columns = {name: live.column(name) for name in ("id", "_key", "_seq", "document", "uri", "metadata")}
    if keep_embedding:
        columns["embedding"] = live.column("embedding")
    columns.update(typed_columns(list(metadatas), column_map))
    return pa.table(columns)
