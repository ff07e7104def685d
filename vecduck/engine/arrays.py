"""Small NumPy/Arrow conversions on hot and cold-start paths.

Each avoids a library routine that costs more than the work here: pyarrow's
`to_numpy` and `pa.array` import pandas (~0.4 s) the first time, and NumPy's `unique`
imports `numpy.ma` (~25 ms) the first time, which a new process pays on its first query.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def int_column(table: pa.Table, name: str) -> np.ndarray:
    """An int64 column as NumPy, zero-copy (pyarrow's to_numpy imports pandas, ~0.4 s)."""
    return numpy_column(table, name, np.int64)


def numpy_column(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    """A primitive column without nulls as NumPy of `dtype`, zero-copy where the Arrow
    type matches (pyarrow's to_numpy and np.asarray import pandas the first time)."""
    return as_numpy(table.column(name), dtype)


def as_numpy(column: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """A primitive (or boolean) array without nulls as NumPy of `dtype`, read from its
    buffers: zero-copy where the Arrow type matches, bits unpacked for booleans."""
    wanted = np.dtype(dtype)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return np.concatenate([_chunk_numpy(chunk, wanted) for chunk in chunks]) if chunks else np.empty(0, wanted)


def _chunk_numpy(chunk: pa.Array, wanted: np.dtype) -> np.ndarray:
    if chunk.null_count:
        return chunk.to_numpy(zero_copy_only=False).astype(wanted)
    if chunk.type == pa.bool_():
        bits = np.frombuffer(chunk.buffers()[1], np.uint8) if len(chunk) else np.empty(0, np.uint8)
        unpacked = np.unpackbits(bits, bitorder="little")[chunk.offset : chunk.offset + len(chunk)]
        return unpacked.astype(wanted)
    stored = _NUMPY_OF.get(chunk.type)
    if stored is not None:
        values = np.frombuffer(chunk.buffers()[1], stored, len(chunk), chunk.offset * stored.itemsize)
        return values if stored == wanted else values.astype(wanted)
    return chunk.to_numpy(zero_copy_only=False).astype(wanted)


_NUMPY_OF = {
    pa.from_numpy_dtype(np.dtype(name)): np.dtype(name)
    for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")
}


ARROW_TYPES = {np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64(), np.dtype(np.float32): pa.float32()}


def numeric_array(values: np.ndarray) -> pa.Array:
    """A 1-D int32, int64 or float32 NumPy array as an Arrow array, zero-copy: pa.array
    imports pandas the first time (~0.4 s) and costs more per call than the copy here."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(ARROW_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def positions_array(positions: np.ndarray) -> pa.Array:
    """Row positions as an Arrow int64 array, zero-copy."""
    return numeric_array(np.asarray(positions, np.int64))


def unique_keys(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct int64 keys (np.unique without its first-call import). Non-negative
    keys below a few times their count (row keys) are marked in a bitmap, not sorted."""
    keys = np.asarray(keys, np.int64)
    if len(keys) and keys.min() >= 0 and keys.max() < 4 * len(keys) + 1024:
        present = np.zeros(int(keys.max()) + 1, bool)
        present[keys] = True
        return np.flatnonzero(present)
    ordered = np.sort(np.asarray(keys, np.int64))
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]
