"""The read model's rows: every live record of a collection (without its vector) as Arrow.

Rows are addressed by their int64 row key, so the rows behind a search's hits or a
filter's keys come back with one Arrow `take`, without a SQL statement. Writes append
chunks (a rewritten record's key points at its new row; a deleted key at none), and the
table is merged and compacted as it grows, so every operation stays proportional to
what it touches.

A snapshot file (Arrow IPC, memory-mapped on open, with the write sequence it reflects
and a checksum) lets a new process answer at once instead of reading the lake; like
the index, it is derived data: when missing, torn or behind the lake it is ignored and
the rows are read from the lake.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from vecduck.engine import sidecar
from vecduck.engine.arrays import as_numpy, int_column, positions_array

# The tail of recent chunks is merged into the base once it holds this share of it.
MERGE_SHARE = 8
MERGE_MIN = 2_048


# Up to this many keys, `strings` reads values straight from the Arrow buffers.
FEW_KEYS = 256


class StringViews:
    """Zero-copy views of a table's string columns, for reading a few values by position.

    An Arrow `take` of 10 rows costs ~40-90 us whatever it takes (kernel dispatch, a new
    table, then `to_pylist`); slicing the documented buffers (offsets, data, validity)
    costs ~1 us a value. That difference is a tenth of a query's time."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._columns: dict[str, tuple[np.ndarray, memoryview, np.ndarray | None]] = {}

    def column(self, name: str) -> tuple[np.ndarray, memoryview, np.ndarray | None]:
        found = self._columns.get(name)
        if found is None:
            array = self._table.column(name).combine_chunks()
            if pa.types.is_large_string(array.type):
                width = np.int64
            elif pa.types.is_string(array.type):
                width = np.int32
            else:
                raise TypeError(f"{name} is not a string column")
            _validity, offsets, data = array.buffers()
            starts = np.frombuffer(offsets, width, len(array) + 1, array.offset * np.dtype(width).itemsize)
            valid = None if array.null_count == 0 else as_numpy(array.is_valid(), np.bool_)
            found = (starts, memoryview(data) if data is not None else memoryview(b""), valid)
            self._columns[name] = found
        return found

    def values(self, name: str, positions: list[int]) -> list[bytes | None]:
        """The UTF-8 bytes at `positions` (None where null)."""
        starts, data, valid = self.column(name)
        bounds = [(int(starts[p]), int(starts[p + 1])) for p in positions]
        if valid is None:
            return [bytes(data[a:b]) for a, b in bounds]
        return [bytes(data[a:b]) if valid[p] else None for p, (a, b) in zip(positions, bounds, strict=True)]


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Tables of rows whose columns differ only by metadata columns added later."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def _select(table: pa.Table | pa.RecordBatch, columns: list[str]) -> pa.Table | pa.RecordBatch:
    """`columns` of a table; one it lacks (a metadata column added after its rows were
    written) comes back as nulls."""
    names = table.schema.names
    if all(name in names for name in columns):
        return table.select(columns)
    arrays = [table.column(name) if name in names else pa.nulls(table.num_rows) for name in columns]
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, names=columns)
    return pa.Table.from_arrays(arrays, names=columns)


class RowStore:
    """Live rows by key: a merged base table plus a tail of recent chunks."""

    def __init__(self) -> None:
        self.base: pa.Table | None = None
        self.tail: list[pa.Table] = []
        self.tail_rows = 0
        self._tail_table: pa.Table | None = None
        self._base_batch: pa.RecordBatch | pa.Table | None = None  # the base as one batch
        self._views: dict[int, StringViews] = {}  # by id() of the base / the merged tail
        self.position = np.full(0, -1, np.int64)  # key -> row position (base, then tail)
        self.live = 0

    # -- writes ---------------------------------------------------------------------------
    def apply(self, live: pa.Table, removed: np.ndarray) -> None:
        """Rows that now hold (one per key) and keys whose record was deleted."""
        removed = np.asarray(removed, np.int64)
        removed = removed[removed < len(self.position)]
        if len(removed):
            gone = self.position[removed] >= 0
            self.live -= int(gone.sum())
            self.position[removed] = -1
        if live.num_rows == 0:
            return
        keys = int_column(live, "_key")
        self._grow(int(keys.max()) + 1)
        self.live += int((self.position[keys] < 0).sum())
        start = self._rows()
        self.position[keys] = np.arange(start, start + live.num_rows)
        if self.base is None:
            self.base, self._base_batch, self._views = live.combine_chunks(), None, {}
        else:
            self.tail.append(live)
            self.tail_rows += live.num_rows
            self._tail_table = None
            self._views = {}
        if self.tail_rows >= max(MERGE_MIN, self.base.num_rows // MERGE_SHARE):
            self._merge()

    def _grow(self, size: int) -> None:
        if size > len(self.position):
            grown = np.full(max(size, 2 * len(self.position)), -1, np.int64)
            grown[: len(self.position)] = self.position
            self.position = grown

    def _rows(self) -> int:
        return (0 if self.base is None else self.base.num_rows) + self.tail_rows

    def _merge(self) -> None:
        """Fold the tail into the base; drop dead rows when they outnumber live ones."""
        keys = self.keys()
        if self._rows() > 2 * self.live + MERGE_MIN:
            table = self.take(keys)
        else:
            table = _concat([t for t in [self.base, *self.tail] if t is not None]).combine_chunks()
            keys = None
        self.base, self.tail, self.tail_rows, self._tail_table = table.combine_chunks(), [], 0, None
        self._base_batch, self._views = None, {}
        if keys is not None:
            self.position[:] = -1
            self.position[keys] = np.arange(len(keys))

    # -- reads ----------------------------------------------------------------------------
    def keys(self) -> np.ndarray:
        """Live keys in storage (key) order."""
        return np.flatnonzero(self.position >= 0)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, np.int64)
        inside = keys < len(self.position)
        found = np.zeros(len(keys), bool)
        found[inside] = self.position[keys[inside]] >= 0
        return found

    def take(self, keys: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """The rows of live `keys`, in that order (only `columns`, when given)."""
        if self.base is None:
            raise LookupError("no rows")
        positions = self.position[np.asarray(keys, np.int64)]
        if not self.tail:
            return self._take_from_base(positions, columns)
        base = self.base if columns is None else _select(self.base, columns)
        if self._tail_table is None:
            self._tail_table = _concat(self.tail).combine_chunks()
        tail = self._tail_table if columns is None else _select(self._tail_table, columns)
        cut = self.base.num_rows
        in_base = positions < cut
        if in_base.all():
            return base.take(positions_array(positions))
        if not in_base.any():
            return tail.take(positions_array(positions - cut))
        order = np.concatenate([np.flatnonzero(in_base), np.flatnonzero(~in_base)])
        both = _concat(
            [
                base.take(positions_array(positions[in_base])),
                tail.take(positions_array(positions[~in_base] - cut)),
            ]
        )
        return both.take(positions_array(np.argsort(order, kind="stable")))

    def _take_from_base(self, positions: np.ndarray, columns: list[str] | None) -> pa.Table:
        """Rows at base `positions`, taken from the base as one record batch: a batch's
        take costs half a chunked table's, which shows on every query's few hits."""
        if self._base_batch is None:
            batches = self.base.to_batches()
            self._base_batch = batches[0] if len(batches) == 1 else self.base
        view = self._base_batch if columns is None else _select(self._base_batch, columns)
        taken = view.take(positions_array(positions))
        return taken if isinstance(taken, pa.Table) else pa.Table.from_batches([taken])

    def strings(self, keys: np.ndarray, columns: list[str]) -> dict[str, list[bytes | None]] | None:
        """UTF-8 values of string `columns` at a few live `keys` (in that order), read from
        the Arrow buffers; None when the keys are too many for that to pay."""
        if self.base is None or len(keys) > FEW_KEYS:
            return None
        positions = self.position[np.asarray(keys, np.int64)].tolist()
        cut = self.base.num_rows
        if self.tail and self._tail_table is None:
            self._tail_table = _concat(self.tail).combine_chunks()
        if all(position < cut for position in positions):
            base = self._views_of(self.base)
            return {name: base.values(name, positions) for name in columns}
        places = [(self.base, p) if p < cut else (self._tail_table, p - cut) for p in positions]
        return {name: [self._views_of(table).values(name, [at])[0] for table, at in places] for name in columns}

    def _views_of(self, table: pa.Table) -> StringViews:
        views = self._views.get(id(table))
        if views is None:
            views = self._views[id(table)] = StringViews(table)
        return views

    def _parts(self):
        """(first row position, table) of the base and each tail chunk."""
        start = 0
        for table in [self.base, *self.tail]:
            if table is not None:
                yield start, table
                start += table.num_rows

    def keys_written_after(self, seq: int) -> np.ndarray:
        """Live keys whose current row was written after write number `seq`, sorted."""
        found = []
        for start, table in self._parts():
            written = np.flatnonzero(int_column(table, "_seq") > seq)
            keys = int_column(table, "_key")[written]
            found.append(keys[self.position[keys] == start + written])
        return np.sort(np.concatenate(found)) if found else np.empty(0, np.int64)

    def all_ids(self) -> list[str]:
        """Every id in the store, dead rows' included (callers want a superset)."""
        return [i for _start, table in self._parts() for i in table.column("id").to_pylist()]

    def table(self) -> pa.Table:
        """Every live row, in key order."""
        keys = self.keys()
        if self.base is None:
            raise LookupError("no rows")
        return self.take(keys)

    # -- snapshot -------------------------------------------------------------------------
    def save(self, path: str, seq: int) -> None:
        """Write the live rows and the sequence they reflect, by atomic rename."""
        if not self.live:
            sidecar.discard(path)
            return
        sidecar.save_table(path, self.table(), seq)

    @classmethod
    def load(cls, path: str) -> tuple[RowStore, int] | None:
        """A store from a whole snapshot file and the sequence it reflects, or None."""
        saved = sidecar.load_table(path)
        if saved is None:
            return None
        store = cls()
        store.apply(saved[0], np.empty(0, np.int64))
        return store, saved[1]

    @staticmethod
    def discard(path: str) -> None:
        sidecar.discard(path)
