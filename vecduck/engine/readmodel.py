"""A process's read model of each open collection, kept in step with the durable state.

For every open collection a process keeps its rows without vectors (`RowStore`), an
in-memory DuckDB mirror of them for filters (built at the first filter), the usearch
index, and the sparse-vector indexes (built at a key's first sparse search). They are
opened from their saved sidecars when current, else derived from the lake and the
registry's write buffer, then caught up: this process's writes are applied directly,
other processes' writes are noticed by one cheap SQLite check per call.

`ReadModel` is the half of `Store` that does this; `store.py` holds the write path and
the calls that answer users.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecduck.engine import sidecar
from vecduck.engine.arrays import int_column, numpy_column, unique_keys
from vecduck.engine.columns import BASE_COLUMNS, SQL_TYPES
from vecduck.engine.filters import filter_sql, regexes_in, where_sql
from vecduck.engine.index import IndexSettings, VectorIndex, prefetch_digest
from vecduck.engine.lake import Lake, quote
from vecduck.engine.location import Location
from vecduck.engine.registry import CollectionRecord, Registry
from vecduck.engine.rows import (
    RESOLVED_SCHEMA,
    embeddings_matrix,
    latest_per_id,
    load_metadata,
    tombstones,
    with_typed_columns,
)
from vecduck.engine.rowstore import RowStore
from vecduck.engine.sparse import SparseIndex
from vecduck.errors import InvalidArgumentError, NotFoundError

# Filters whose matching keys each open collection remembers (until its next write).
FILTER_CACHE = 32


class OpenCollection:
    """A process's read model of one collection: mirror table and vector index."""

    def __init__(self, record: CollectionRecord) -> None:
        self.record = record
        # Every live row without its vector, by key: answers get, count and the rows
        # behind a search's hits.
        self.rows = RowStore()
        # The same rows as an in-memory DuckDB table for filters, built at the first
        # filter (a process that only searches never pays for it).
        self.mirror = "m_" + record.id.replace("-", "")
        self.mirror_columns: set[str] = set()
        self.mirror_loaded = False
        self.index: VectorIndex | None = None
        self.version = -1
        self.applied_seq = 0
        self.pending_rows = 0
        self.rows_saved_seq = 0
        # Filter -> matching keys, valid until the next write reaches the rows.
        self.filter_cache: dict[str, np.ndarray] = {}
        self.stale = False
        # Writes applied to the index but not yet to the mirror table.
        self.unapplied: list[pa.Table] = []
        self.unapplied_rows: dict[str, tuple[int, Any, Any, Any] | None] = {}
        # A write's rows and their table shape, when the lake commit already built it.
        self.typed: tuple[pa.Table, pa.Table] | None = None
        # Which ids may be stored: sorted hashes (built at the first write) plus recent ids.
        self.id_hashes: np.ndarray | None = None
        self.recent_ids: set[str] = set()
        # Sparse-vector indexes by metadata key, built at a key's first sparse search.
        self.sparse: dict[str, SparseIndex] = {}
        # When /metrics first saw this read model behind the committed writes (None: it is not).
        self.behind_since: float | None = None


class ReadModel:
    """The read models of a folder's open collections (the half of `Store` that reads)."""

    location: Location
    index_folder: str  # the location's local folder of derived files
    durability: str
    registry: Registry
    _lock: threading.RLock
    _open: dict[str, OpenCollection]
    con: duckdb.DuckDBPyConnection  # the read model's in-memory DuckDB (a lazy property of Store)
    lake: Lake  # the folder's DuckLake (a lazy property of Store)

    def _forget(self, collection_id: str) -> None:
        state = self._open.pop(collection_id, None)
        if state is not None and state.mirror_loaded:
            self.con.execute(f"DROP TABLE IF EXISTS {quote(state.mirror)}")

    def _index_path(self, collection_id: str) -> str:
        return os.path.join(self.index_folder, f"{collection_id}.usearch")

    def _rows_path(self, collection_id: str) -> str:
        return os.path.join(self.index_folder, f"{collection_id}.rows.arrow")

    def _sparse_path(self, collection_id: str, key: str) -> str:
        digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return os.path.join(self.index_folder, f"{collection_id}.{digest}.sparse.arrow")

    def _save_read_model(self, state: OpenCollection) -> None:
        """Save the index (rebuilt first if removals have worn its graph) and the rows
        snapshot, both as of every applied write."""
        self._materialize(state)
        if state.index is not None:
            if state.index.needs_rebuild():
                state.index.rebuild()
            state.index.seq = state.applied_seq
            state.index.save()
        state.rows.save(self._rows_path(state.record.id), state.applied_seq)
        state.rows_saved_seq = state.applied_seq
        self._save_sparse_indexes(state)
        if self.location.shared:  # the rows snapshot last: a reader takes it as the sign
            if state.index is not None:
                self.location.publish(self._index_path(state.record.id))
            self.location.publish(self._rows_path(state.record.id))

    def _save_sparse_indexes(self, state: OpenCollection) -> None:
        """Save the sparse indexes whose file is older than the read model (one built at a
        search after the last write included), so a new process need not rebuild them."""
        for key, sparse in state.sparse.items():
            if sparse.saved_seq != state.applied_seq:
                sparse.seq = state.applied_seq
                sparse.save(self._sparse_path(state.record.id, key))
                if self.location.shared:
                    self.location.publish(self._sparse_path(state.record.id, key))

    def _read_model_unsaved(self, state: OpenCollection) -> bool:
        """Whether some of the collection's derived files lag its applied writes."""
        return state.applied_seq > state.rows_saved_seq or any(
            sparse.saved_seq != state.applied_seq for sparse in state.sparse.values()
        )

    def _state(self, collection_id: str, changed: bool | None = None) -> OpenCollection:
        """The collection's read model, caught up with every committed write. `changed`:
        whether another process committed, when the caller has just asked the registry."""
        if self.registry.changed_elsewhere() if changed is None else changed:
            for state in self._open.values():
                state.stale = True
        state = self._open.get(collection_id)
        if state is None:
            return self._load(collection_id)
        if state.stale:
            state.stale = False
            snapshot = self.registry.changes(collection_id, state.applied_seq)
            if snapshot is None:
                self._forget(collection_id)
                raise NotFoundError(f"Collection [{collection_id}] does not exist")
            record, pending = snapshot
            if record.version != state.version:
                if record.lake_seq > state.applied_seq and not self._catch_up_from_lake(state, record):
                    return self._load(collection_id)
                state.record = record
                for _seq, rows in pending:
                    self._apply(state, rows)
                state.version = record.version
        return state

    def _catch_up_from_lake(self, state: OpenCollection, record: CollectionRecord) -> bool:
        """Apply the lake commits another process made since this read model's write number:
        the rows they wrote (read by write number: DuckLake skips every older file by its
        statistics) and the records they deleted (from the registry's lake log). False when
        the log does not reach back that far (the caller then reloads the collection)."""
        with self.registry.writer_lock():  # no lake commit runs while the lake is read
            return self._apply_lake_log(state, record)

    def _apply_lake_log(self, state: OpenCollection, record: CollectionRecord) -> bool:
        log = self.registry.lake_log(record.id, state.applied_seq)
        if not log or log[0][0] > state.applied_seq or log[-1][1] < record.lake_seq:
            return False
        if any(later[0] != earlier[1] for earlier, later in itertools.pairwise(log)):
            return False
        state.record = record
        parts = []
        if self.lake.columns(record.id):
            written = self.lake.read(
                f"SELECT id, _key, _seq, embedding, document, uri, metadata, false AS _deleted"
                f" FROM {self.lake.ref(record.id)} WHERE _seq > {int(state.applied_seq)}"
                f" AND _seq <= {int(record.lake_seq)}",
                record.id,
            )
            parts.append(written.cast(RESOLVED_SCHEMA))
        removed = pa.concat_tables([entry[2] for entry in log])
        removed = removed.filter(pc.greater(removed.column("_seq"), state.applied_seq))
        if removed.num_rows:
            parts.append(
                tombstones(removed.column("id").to_pylist(), int_column(removed, "_key"), 0).set_column(
                    2, "_seq", removed.column("_seq").cast(pa.int64())
                )
            )
        changes = pa.concat_tables(parts).sort_by("_seq") if parts else None
        if changes is not None and changes.num_rows:
            self._apply(state, changes)
        state.applied_seq = max(state.applied_seq, record.lake_seq)
        return True

    def _load(self, collection_id: str) -> OpenCollection:
        """Build the read model from the rows snapshot (or the lake) and the write buffer."""
        with self.registry.writer_lock():
            self._forget(collection_id)
            snapshot = self.registry.changes(collection_id, 0)
            if snapshot is None:
                raise NotFoundError(f"Collection [{collection_id}] does not exist")
            record, pending = snapshot
            if record.lake_intent > record.lake_seq:
                self._drop_orphans(record)
            state = OpenCollection(record)
            if self.location.shared:
                self._fetch_published(record)
            # the index file's checksum runs meanwhile: the largest read of an open
            digest = prefetch_digest(self._index_path(collection_id)) if record.dimension is not None else None
            saved = RowStore.load(self._rows_path(collection_id))
            if saved is not None and saved[1] >= record.lake_seq:
                self.location.check_data_files(collection_id)  # the lake is not read: check it is whole
                state.rows, state.applied_seq = saved
                state.rows_saved_seq = saved[1]
            else:
                # Before a collection's first move to the lake it has no table there.
                if record.lake_seq > 0 and self.lake.columns(collection_id):
                    sql = f"SELECT * EXCLUDE (embedding) FROM {self.lake.ref(collection_id)}"
                    rows = self.lake.read(sql, collection_id)
                    state.rows.apply(rows, np.empty(0, np.int64))
                state.applied_seq = record.lake_seq
            later = [(seq, rows) for seq, rows in pending if seq > state.applied_seq]
            if record.dimension is not None:
                self._open_index(state, [rows for seq, rows in pending if seq <= state.applied_seq], digest)
            for _seq, rows in later:
                self._apply(state, rows)
            self._materialize(state)
            state.version = record.version
            state.pending_rows = sum(rows.num_rows for _seq, rows in pending)
            self._open[collection_id] = state
            return state

    def _fetch_published(self, record: CollectionRecord) -> None:
        """A shared lake: when the local rows snapshot lags the lake, take the published
        rows snapshot and index if they reflect more writes (a new server starts from them
        and catches up, instead of reading the whole table and rebuilding the graph)."""
        rows_path = self._rows_path(record.id)
        local = sidecar.saved_seq(rows_path)
        if local is not None and local >= record.lake_seq:
            return
        if self.location.fetch(rows_path, -1 if local is None else local) and record.dimension is not None:
            self.location.fetch(self._index_path(record.id), -1)

    def _drop_orphans(self, record: CollectionRecord) -> None:
        """Drop the lake rows of a commit that a crash kept from reaching the registry
        (written after lake_seq), so that nothing reads them; the writer lock is held."""
        if self.lake.columns(record.id):
            self.lake.replace_rows(record.id, record.columns, pa.table({}), np.empty(0, np.int64), record.lake_seq)
        with self.registry.transaction() as db:
            self.registry.mark_lake_intent(db, record.id, record.lake_seq)
        record.lake_intent = record.lake_seq

    def _open_index(
        self,
        state: OpenCollection,
        buffered: list[pa.Table],
        digest: Future[tuple[tuple[int, ...], str]] | None = None,
    ) -> None:
        """Load the saved index and catch it up with the rows already in the read model.

        Their vectors come from `buffered` (write-buffer rows the rows snapshot already
        holds, which may not have reached the lake) or else from the lake; later writes
        are applied after this."""
        record = state.record
        index = VectorIndex(hnsw_settings(record), self._index_path(record.id), sync=self.durability == "fsync")
        index.load(digest)
        state.index = index
        live_keys = state.rows.keys()
        indexed = np.sort(index.keys())  # usually in key order already: a cheap sort
        if np.array_equal(indexed, live_keys):
            missing = np.empty(0, np.int64)
        else:
            index.remove(np.setdiff1d(indexed, live_keys, assume_unique=True))
            missing = np.setdiff1d(live_keys, indexed, assume_unique=True)
        changed = state.rows.keys_written_after(index.seq)
        need = unique_keys(np.concatenate([missing, changed]))
        if len(need) and buffered:
            latest = latest_per_id(buffered)
            latest = latest.filter(pc.invert(latest.column("_deleted")))
            keys = int_column(latest, "_key")
            take = np.isin(keys, need) & state.rows.contains(keys)
            if take.any():
                found = latest.filter(pa.array(take))
                index.add(keys[take], embeddings_matrix(found.column("embedding"), index.settings.dimension))
                need = np.setdiff1d(need, keys[take], assume_unique=True)
        if len(need) and record.lake_seq > 0:
            lake = self.lake.con
            lake.register("_vecduck_need", pa.table({"k": need}))
            try:
                table = self.lake.read(
                    f"SELECT _key, embedding FROM {self.lake.ref(record.id)}"
                    " WHERE _key IN (SELECT k FROM _vecduck_need)",
                    record.id,
                )
            finally:
                lake.unregister("_vecduck_need")
            keys = int_column(table, "_key")
            index.add(keys, embeddings_matrix(table.column("embedding"), index.settings.dimension))

    def _column_keys(self, state: OpenCollection, sql: str, params: list[Any] | None = None) -> np.ndarray:
        result = self.con.execute(sql.format(mirror=self._mirror(state)), params or []).fetchnumpy()
        return np.sort(np.asarray(result["_key"], dtype=np.int64))

    def _candidates(self, state: OpenCollection, sql: str, params: list[Any]) -> np.ndarray:
        """Keys matching a filter, remembered until the next write: a notebook or a service
        tends to ask many queries under the same filter."""
        self._materialize(state)
        signature = sql + "\x00" + repr(params)
        found = state.filter_cache.get(signature)
        if found is None:
            found = self._column_keys(state, f"SELECT _key FROM {{mirror}} WHERE {sql}", params)
            if len(state.filter_cache) >= FILTER_CACHE:
                state.filter_cache.pop(next(iter(state.filter_cache)))
            state.filter_cache[signature] = found
        return found

    def _mirror(self, state: OpenCollection) -> str:
        """The mirror table's quoted name, built from the rows at first use and up to date."""
        self._materialize(state)
        if not state.mirror_loaded:
            self._ensure_mirror(state)
            if state.rows.live:
                self._insert_mirror(state, state.rows.table())
            state.mirror_loaded = True
        return quote(state.mirror)

    def _insert_mirror(self, state: OpenCollection, rows: pa.Table) -> None:
        self.con.register("_vecduck_live", rows)
        try:
            self.con.execute(f"INSERT INTO {quote(state.mirror)} BY NAME SELECT * FROM _vecduck_live")
        finally:
            self.con.unregister("_vecduck_live")

    def _ensure_mirror(self, state: OpenCollection) -> None:
        """Create the mirror table, and add a column for every new metadata (key, kind)."""
        if not state.mirror_columns:
            base = ", ".join(f"{quote(name)} {kind}" for name, kind in BASE_COLUMNS.items())
            self.con.execute(f"CREATE OR REPLACE TABLE {quote(state.mirror)} ({base})")
            state.mirror_columns = set(BASE_COLUMNS)
        for (_key, kind), column in state.record.columns.items():
            if column not in state.mirror_columns:
                self.con.execute(f"ALTER TABLE {quote(state.mirror)} ADD COLUMN {quote(column)} {SQL_TYPES[kind]}")
                state.mirror_columns.add(column)

    def _apply(self, state: OpenCollection, rows: pa.Table, vectors: np.ndarray | None = None) -> None:
        """Apply resolved rows: to the index at once, to the mirror at the next read.

        Deferring the mirror keeps a loop of single-row writes free of DuckDB
        statements; `state.unapplied` answers for those rows until then. `vectors`, when
        the writer has them, are the (all live) rows' vectors, not read back from Arrow.
        """
        if rows.num_rows == 0:
            return
        if state.index is None and state.record.dimension is not None:
            state.index = VectorIndex(
                hnsw_settings(state.record), self._index_path(state.record.id), sync=self.durability == "fsync"
            )
        deleted = numpy_column(rows, "_deleted", np.bool_)
        if state.index is not None:
            state.index.remove(int_column(rows, "_key")[deleted])
            alive = rows.filter(pa.array(~deleted, pa.bool_())) if deleted.any() else rows
            if alive.num_rows:
                if vectors is None or alive is not rows:
                    vectors = embeddings_matrix(alive.column("embedding"), state.index.settings.dimension)
                state.index.add(int_column(alive, "_key"), vectors)
        state.unapplied.append(rows)
        if rows.num_rows > 1_000 or len(state.unapplied) > 1_000:
            self._materialize(state)
        else:
            for record_id, key, document, uri, metadata, is_deleted in zip(
                rows.column("id").to_pylist(),
                rows.column("_key").to_pylist(),
                rows.column("document").to_pylist(),
                rows.column("uri").to_pylist(),
                rows.column("metadata").to_pylist(),
                deleted.tolist(),
                strict=True,
            ):
                state.unapplied_rows[record_id] = None if is_deleted else (key, document, uri, load_metadata(metadata))
                state.recent_ids.add(record_id)
        state.applied_seq = max(state.applied_seq, int(int_column(rows, "_seq").max()))

    def _materialize(self, state: OpenCollection) -> None:
        """Bring the rows (and the mirror, once built) up to date with every applied write."""
        if not state.unapplied:
            return
        # A deleted key never comes back (a re-added id gets a new key), so every
        # tombstone's key goes, even where a later write of the same id follows it.
        deleted = np.concatenate(
            [int_column(t, "_key")[numpy_column(t, "_deleted", np.bool_)] for t in state.unapplied]
        )
        state.filter_cache.clear()
        typed = state.typed
        if len(state.unapplied) == 1 and typed is not None and typed[0] is state.unapplied[0]:
            rows, live = typed[0], typed[1].drop_columns(["embedding"])  # typed by the lake commit
            state.typed = None
        else:
            rows = latest_per_id(state.unapplied)
            live = with_typed_columns(rows, state.record.columns, keep_embedding=False)
        state.unapplied = []
        state.unapplied_rows = {}
        state.rows.apply(live, deleted)
        for key, sparse in state.sparse.items():
            sparse.remove(deleted)
            column = state.record.columns.get((key, "sparse"))
            sparse.replace(int_column(live, "_key"), live.column(column) if column in live.column_names else None)
        if state.mirror_loaded:
            self._ensure_mirror(state)
            mirror = quote(state.mirror)
            touched = rows.column("id").combine_chunks()
            if len(touched) <= 1_000:
                self.con.execute(
                    f"DELETE FROM {mirror} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [touched.to_pylist()]
                )
            else:
                self.con.register("_vecduck_touched", pa.table({"id": touched}))
                try:
                    self.con.execute(f"DELETE FROM {mirror} WHERE id IN (SELECT id FROM _vecduck_touched)")
                finally:
                    self.con.unregister("_vecduck_touched")
            if live.num_rows:
                self._insert_mirror(state, live)
        if state.id_hashes is not None:
            self._remember_ids(state, live.column("id").to_pylist())

    def _remember_ids(self, state: OpenCollection, ids: list[str]) -> None:
        """Note ids known to be in the mirror (a superset is fine: it only costs a lookup)."""
        if len(ids) > 10_000 or len(state.recent_ids) > 100_000:
            self._rebuild_id_hashes(state)
        else:
            state.recent_ids.update(ids)

    def _rebuild_id_hashes(self, state: OpenCollection) -> None:
        self._materialize(state)
        ids = state.rows.all_ids()
        state.id_hashes = unique_keys(np.fromiter((hash(x) for x in ids), np.int64, len(ids)))
        state.recent_ids = set()

    def _maybe_present(self, state: OpenCollection, record_id: str) -> bool:
        if record_id in state.recent_ids:
            return True
        if state.id_hashes is None:
            self._rebuild_id_hashes(state)
        hashes = state.id_hashes
        assert hashes is not None
        if len(hashes) == 0:
            return False
        h = hash(record_id)
        at = int(np.searchsorted(hashes, h))
        return at < len(hashes) and int(hashes[at]) == h

    def _sparse_index(self, state: OpenCollection, key: str) -> SparseIndex:
        """The sparse index of metadata `key`, as of every applied write: kept in memory
        once built, else loaded from its saved file and caught up, else built from the rows."""
        self._materialize(state)
        found = state.sparse.get(key)
        if found is not None:
            return found
        column = state.record.columns.get((key, "sparse"))
        if column and self.location.shared:
            path = self._sparse_path(state.record.id, key)
            local = sidecar.saved_seq(path)
            self.location.fetch(path, -1 if local is None else local)
        index = SparseIndex.load(self._sparse_path(state.record.id, key)) if column else None
        if index is not None and index.seq <= state.applied_seq:
            alive = index.slot_keys[: index.slots_used][index.alive[: index.slots_used]]
            index.remove(alive[~state.rows.contains(alive)])
            changed = state.rows.keys_written_after(index.seq)
        else:
            index = SparseIndex()
            changed = state.rows.keys() if column and state.rows.live else np.empty(0, np.int64)
        if len(changed):
            index.replace(changed, state.rows.take(changed, [column]).column(column))
        index.seq = state.applied_seq
        state.sparse[key] = index
        return index

    def _search_candidates(self, state: OpenCollection, where: dict[str, Any] | None) -> np.ndarray | None:
        """Sorted keys of the records a Search filter matches (None: no filter)."""
        if where is None:
            return None
        self._check_regexes(where, None)
        params: list[Any] = []
        sql = where_sql(where, state.record.columns, params, ids=True)
        return self._candidates(state, sql, params)

    def _check_regexes(self, where: dict[str, Any] | None, where_document: dict[str, Any] | None) -> None:
        """A filter's regex patterns compile, or the filter is refused before it runs."""
        for pattern in regexes_in(where, where_document):
            try:
                self.con.execute("SELECT regexp_matches('', ?)", [pattern])
            except duckdb.Error as exc:
                raise InvalidArgumentError(f"Regex syntax error: {exc}") from None

    def _where(
        self,
        state: OpenCollection,
        ids: Sequence[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        params: list[Any],
    ) -> str:
        self._check_regexes(where, where_document)
        sql = filter_sql(where, where_document, state.record.columns, params)
        if ids is not None:
            sql += " AND id IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(ids))
        return sql


def hnsw_settings(record: CollectionRecord) -> IndexSettings:
    hnsw = record.configuration.get("hnsw") or {}
    assert record.dimension is not None
    return IndexSettings(
        dimension=record.dimension,
        space=hnsw.get("space", "l2"),
        max_neighbors=int(hnsw.get("max_neighbors", 16)),
        ef_construction=int(hnsw.get("ef_construction", 100)),
        ef_search=int(hnsw.get("ef_search", 100)),
    )
