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
    chunks = [
        np.frombuffer(chunk.buffers()[1], np.int64, len(chunk), chunk.offset * 8)
        if chunk.null_count == 0 and chunk.type == pa.int64()
        else chunk.to_numpy(zero_copy_only=False)
        for chunk in table.column(name).chunks
    ]
    return np.concatenate(chunks) if chunks else np.empty(0, np.int64)


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
    """Sorted distinct int64 keys (np.unique without its first-call import)."""
    ordered = np.sort(np.asarray(keys, np.int64))
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]
