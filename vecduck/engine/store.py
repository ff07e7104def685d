"""One data folder: the registry, the lake, and each open collection's read model.

Durable state is the lake (Parquet through DuckLake) plus the registry's write
buffer. Each process reads through a read model per open collection: an in-memory
DuckDB table of every live row without its vector (for filters, get, count and the
join back after a search) and the usearch index (for vectors and nearest neighbours).
Both are rebuilt from, and kept in step with, the durable state; other processes'
commits are noticed by one cheap SQLite check per call.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecduck.engine import search as searching
from vecduck.engine.arrays import int_column, unique_keys
from vecduck.engine.columns import (
    BASE_COLUMNS,
    SQL_TYPES,
    ColumnMap,
    assign_column,
    kinds_in,
)
from vecduck.engine.filters import filter_sql, regexes_in, where_sql
from vecduck.engine.index import IndexSettings, VectorIndex, prefetch_digest
from vecduck.engine.lake import Lake, check_data_files, connect, quote, table_name
from vecduck.engine.registry import CollectionRecord, Registry
from vecduck.engine.rows import (
    RESOLVED_SCHEMA,
    embeddings_matrix,
    latest_per_id,
    load_metadata,
    load_metadata_column,
    resolved_table,
    tombstones,
    with_typed_columns,
)
from vecduck.engine.rowstore import RowStore
from vecduck.engine.sparse import SparseIndex
from vecduck.errors import InvalidArgumentError, NotFoundError, UniqueConstraintError

# A write of at least this many rows goes straight to the lake; smaller ones are
# buffered in the registry and moved to the lake once this many rows are waiting.
FLUSH_ROWS = 5_000
# The columns a get or query returns.
ROW_FIELDS = ["id", "_key", "document", "uri", "metadata"]
# What a search may fetch for its hits besides the id.
HIT_FIELDS = ("document", "uri", "metadata")
# Filters whose matching keys each open collection remembers (until its next write).
FILTER_CACHE = 32

MIRROR_COLUMNS = [name for name in BASE_COLUMNS]


@dataclass
class Rows:
    """Rows read back from a collection, in storage order."""

    ids: list[str]
    keys: np.ndarray
    documents: list[str | None]
    uris: list[str | None]
    metadatas: list[dict[str, Any] | None]
    vectors: np.ndarray | None = None


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


class Store:
    """Storage and search for every collection in one folder."""

    def __init__(self, folder: str, *, durability: str = "process") -> None:
        self.folder = os.path.abspath(folder)
        os.makedirs(os.path.join(self.folder, "index"), exist_ok=True)
        self.registry = Registry(os.path.join(self.folder, "vecduck.sqlite"), os.path.join(self.folder, "write.lock"))
        self.registry.set_durability(durability)
        self.durability = durability
        # Two DuckDB connections: the read model in plain memory, and the lake. Kept
        # apart because every statement on a connection with a DuckLake attached pays
        # a catalog round trip, which the hot read path must not.
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lake: Lake | None = None
        self._lock = threading.RLock()
        self._open: dict[str, OpenCollection] = {}
        self.closed = False

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The read model's connection, opened at the first filter: an unfiltered query
        from the rows snapshot needs no SQL, and the first connection costs ~20 ms."""
        if self._con is None:
            with self._lock:
                if self._con is None:
                    con = connect()
                    # One thread: the read model's statements are small, and a second
                    # thread costs more in hand-over than it saves.
                    con.execute("SET threads = 1")
                    self._con = con
        return self._con

    @property
    def lake(self) -> Lake:
        """The DuckLake, attached at first use: many sessions never need it (small
        collections live in the write buffer until 5,000 rows wait), and attaching costs."""
        if self._lake is None:
            with self._lock:
                if self._lake is None:
                    lake = Lake(connect(), self.folder)
                    self._reconcile(lake)
                    self._lake = lake
        return self._lake

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Move buffered writes into the lake, save indexes, release files."""
        with self._lock:
            if self.closed:
                return
            try:
                self.flush()  # may fail (a damaged data file): the buffer keeps the writes
            finally:
                self.closed = True
                self._open.clear()
                if self._con is not None:
                    self._con.close()
                if self._lake is not None:
                    self._lake.con.close()
                self.registry.close()

    def flush(self, collection_id: str | None = None) -> None:
        """Move buffered writes into the lake and save the indexes of open collections."""
        with self._lock, self.registry.writer_lock():
            ids = [collection_id] if collection_id else self.registry.all_ids()
            for cid in ids:
                if self.registry.pending_count(cid):
                    self._commit_to_lake(cid, [])
                state = self._open.get(cid)
                if state is not None and state.applied_seq > state.rows_saved_seq:
                    self._save_read_model(state)

    def _reconcile(self, lake: Lake) -> None:
        """Make the lake's tables and views match the registry after a crash mid-DDL:
        drop those of deleted collections, create missing views."""
        with self._lock, self.registry.writer_lock():
            known = {table_name(cid) for cid in self.registry.all_ids()}
            tables = lake.tables()
            for table in tables - known:
                if table.startswith("c_"):
                    lake.drop_table(table)
            records = self.registry.list("default_tenant", "default_database")
            views = lake.views()
            for view in views - {r.name for r in records}:
                lake.drop_view(view)
            for record in records:
                if record.name not in views and table_name(record.id) in tables:
                    lake.create_view(record.name, record.id)

    # -- collections --------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        metadata: dict[str, Any] | None,
        configuration: dict[str, Any],
        tenant: str,
        database: str,
        get_or_create: bool = False,
        schema: dict[str, Any] | None = None,
    ) -> CollectionRecord:
        with self._lock, self.registry.writer_lock():
            existing = self.registry.get_by_name(name, tenant, database)
            if existing is not None:
                if get_or_create:
                    return existing
                raise UniqueConstraintError(f"Collection [{name}] already exists")
            record = CollectionRecord(
                id=str(uuid.uuid4()),
                name=name,
                metadata=metadata,
                configuration=configuration,
                dimension=None,
                tenant=tenant,
                database=database,
                next_key=1,
                next_seq=1,
                lake_seq=0,
                version=0,
                schema=schema,
            )
            with self.registry.transaction() as db:
                self.registry.insert(db, record)
            return record

    def get_collection(self, name: str, tenant: str, database: str) -> CollectionRecord:
        record = self.registry.get_by_name(name, tenant, database)
        if record is None:
            raise NotFoundError(f"Collection [{name}] does not exist")
        return record

    def get_collection_by_id(self, collection_id: str) -> CollectionRecord:
        record = self.registry.get_by_id(collection_id)
        if record is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist")
        return record

    def list_collections(
        self, tenant: str, database: str, limit: int | None, offset: int | None
    ) -> list[CollectionRecord]:
        return self.registry.list(tenant, database, limit, offset)

    def count_collections(self, tenant: str, database: str) -> int:
        return self.registry.count(tenant, database)

    def delete_collection(self, name: str, tenant: str, database: str) -> None:
        with self._lock, self.registry.writer_lock():
            record = self.get_collection(name, tenant, database)
            with self.registry.transaction() as db:
                self.registry.delete(db, record.id)
            self._forget(record.id)
            self._drop_lake_table(record)

    def _drop_lake_table(self, record: CollectionRecord) -> None:
        """Drop a deleted collection's view, table and index files (lake only if it has one)."""
        if record.lake_seq > 0:
            self.lake.drop_view(record.name)
            self.lake.drop(record.id)
        VectorIndex(IndexSettings(1), self._index_path(record.id)).discard_files()
        RowStore.discard(self._rows_path(record.id))
        for path in glob.glob(os.path.join(self.folder, "index", f"{record.id}.*.sparse.arrow")):
            SparseIndex.discard(path)

    def modify_collection(
        self,
        collection_id: str,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        configuration: dict[str, Any] | None = None,
    ) -> CollectionRecord:
        with self._lock, self.registry.writer_lock():
            record = self.get_collection_by_id(collection_id)
            old_name = record.name
            with self.registry.transaction() as db:
                if name is not None and name != record.name:
                    if self.registry.get_by_name(name, record.tenant, record.database):
                        raise UniqueConstraintError(f"Collection [{name}] already exists")
                    self.registry.rename(db, collection_id, name)
                if metadata is not None:
                    self.registry.set_metadata(db, collection_id, metadata)
                if configuration is not None:
                    self.registry.set_configuration(db, collection_id, configuration)
            record = self.get_collection_by_id(collection_id)
            if record.name != old_name and record.lake_seq > 0:
                self.lake.drop_view(old_name)
                self._sync_view(record)
            state = self._open.get(collection_id)
            if state is not None:
                state.record = record
                if state.index is not None:
                    state.index.set_ef_search(hnsw_settings(record).ef_search)
            return record

    def reset(self) -> None:
        with self._lock, self.registry.writer_lock():
            for cid in self.registry.all_ids():
                record = self.registry.get_by_id(cid)
                with self.registry.transaction() as db:
                    self.registry.delete(db, cid)
                self._forget(cid)
                if record is not None:
                    self._drop_lake_table(record)

    def _sync_view(self, record: CollectionRecord) -> None:
        """A lake view named after the collection, for plain-DuckDB users."""
        if record.tenant == "default_tenant" and record.database == "default_database":
            self.lake.create_view(record.name, record.id)

    def _forget(self, collection_id: str) -> None:
        state = self._open.pop(collection_id, None)
        if state is not None and state.mirror_loaded:
            self.con.execute(f"DROP TABLE IF EXISTS {quote(state.mirror)}")

    def _index_path(self, collection_id: str) -> str:
        return os.path.join(self.folder, "index", f"{collection_id}.usearch")

    def _rows_path(self, collection_id: str) -> str:
        return os.path.join(self.folder, "index", f"{collection_id}.rows.arrow")

    def _sparse_path(self, collection_id: str, key: str) -> str:
        digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return os.path.join(self.folder, "index", f"{collection_id}.{digest}.sparse.arrow")

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
        for key, sparse in state.sparse.items():
            sparse.seq = state.applied_seq
            sparse.save(self._sparse_path(state.record.id, key))
        state.rows_saved_seq = state.applied_seq

    # -- read model ---------------------------------------------------------------------
    def _state(self, collection_id: str) -> OpenCollection:
        """The collection's read model, caught up with every committed write."""
        if self.registry.changed_elsewhere():
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
                if record.lake_seq > state.applied_seq:
                    return self._load(collection_id)
                state.record = record
                for _seq, rows in pending:
                    self._apply(state, rows)
                state.version = record.version
        return state

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
            # the index file's checksum runs meanwhile: the largest read of an open
            digest = prefetch_digest(self._index_path(collection_id)) if record.dimension is not None else None
            saved = RowStore.load(self._rows_path(collection_id))
            if saved is not None and saved[1] >= record.lake_seq:
                check_data_files(self.folder, collection_id)  # the lake is not read: check it is whole
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
            keys = table.column("_key").to_numpy()
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
        deleted = rows.column("_deleted").to_numpy(zero_copy_only=False)
        if state.index is not None:
            state.index.remove(rows.column("_key").to_numpy(zero_copy_only=False)[deleted])
            alive = rows.filter(pa.array(~deleted)) if deleted.any() else rows
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
        state.applied_seq = max(state.applied_seq, int(rows.column("_seq").to_numpy().max()))

    def _materialize(self, state: OpenCollection) -> None:
        """Bring the rows (and the mirror, once built) up to date with every applied write."""
        if not state.unapplied:
            return
        # A deleted key never comes back (a re-added id gets a new key), so every
        # tombstone's key goes, even where a later write of the same id follows it.
        deleted = np.concatenate(
            [t.column("_key").to_numpy()[t.column("_deleted").to_numpy(zero_copy_only=False)] for t in state.unapplied]
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

    # -- writes ---------------------------------------------------------------------------
    def write(
        self,
        collection_id: str,
        mode: str,
        ids: Sequence[str],
        embeddings: np.ndarray | None,
        metadatas: Sequence[dict[str, Any] | None] | None,
        documents: Sequence[str | None] | None,
        uris: Sequence[str | None] | None,
        keep_embedding: np.ndarray | None = None,
    ) -> None:
        """Add, upsert or update records, atomically.

        `keep_embedding` marks rows (of an update) whose given embedding is a placeholder
        and whose stored vector stays.

        add keeps existing ids untouched; update ignores missing ids; upsert does both
        jobs. Given fields replace old ones; absent fields (None) keep them; metadata is
        merged key by key, a None value deleting its key.
        """

        with self._lock, self.registry.writer_lock():
            state = self._state(collection_id)
            record = state.record
            dimension = self._check_dimension(record, embeddings)
            current = self._current(state, ids)
            take: list[int] = []
            keys: list[int] = []
            new_count = 0
            out_meta: list[dict[str, Any] | None] = []
            out_docs: list[str | None] = []
            out_uris: list[str | None] = []
            reuse_vectors: list[int] = []
            for i, record_id in enumerate(ids):
                old = current.get(record_id)
                given_meta = metadatas[i] if metadatas is not None else None
                given_doc = documents[i] if documents is not None else None
                given_uri = uris[i] if uris is not None else None
                if old is None:
                    if mode == "update":
                        continue
                    if embeddings is None or (keep_embedding is not None and keep_embedding[i]):
                        raise InvalidArgumentError(f"Missing embedding for new record {record_id!r}")
                    take.append(i)
                    keys.append(-1)
                    new_count += 1
                    if given_meta is not None:
                        given_meta = {k: v for k, v in given_meta.items() if v is not None} or None
                    out_meta.append(given_meta)
                    out_docs.append(given_doc)
                    out_uris.append(given_uri)
                elif mode == "add":
                    continue
                else:
                    old_key, old_doc, old_uri, old_meta = old
                    take.append(i)
                    keys.append(old_key)
                    if embeddings is None or (keep_embedding is not None and keep_embedding[i]):
                        reuse_vectors.append(len(take) - 1)
                    out_meta.append(merge_metadata(old_meta, given_meta))
                    out_docs.append(given_doc if given_doc is not None else old_doc)
                    out_uris.append(given_uri if given_uri is not None else old_uri)
            if not take:
                return
            new_columns = self._new_columns(record, out_meta)
            with self.registry.transaction() as db:
                first_key, seq, version = self.registry.reserve(db, collection_id, new_count, dimension)
                if new_columns:
                    self.registry.add_columns(db, collection_id, new_columns)
                    record.columns.update(new_columns)
                next_key = first_key
                for j, key in enumerate(keys):
                    if key == -1:
                        keys[j] = next_key
                        next_key += 1
                vectors = self._vectors_for(state, embeddings, take, keys, reuse_vectors, dimension)
                rows = resolved_table([ids[i] for i in take], keys, seq, vectors, out_docs, out_uris, out_meta)
                buffered = len(take) < FLUSH_ROWS
                if buffered:
                    self.registry.append_pending(db, collection_id, seq, rows)
            if record.dimension is None:
                record.dimension = dimension
            if not buffered:
                self._commit_to_lake(collection_id, [rows])
            self._after_write(state, rows, buffered, version, vectors)

    def delete(
        self,
        collection_id: str,
        ids: Sequence[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        limit: int | None = None,
    ) -> int:
        """Delete matching records atomically; returns how many were deleted."""
        with self._lock, self.registry.writer_lock():
            state = self._state(collection_id)
            matched = self.select(collection_id, ids, where, where_document, limit, None, state=state)
            if not matched.ids:
                return 0
            with self.registry.transaction() as db:
                _first, seq, version = self.registry.reserve(db, collection_id, 0, None)
                rows = tombstones(matched.ids, matched.keys, seq)
                buffered = rows.num_rows < FLUSH_ROWS
                if buffered:
                    self.registry.append_pending(db, collection_id, seq, rows)
            if not buffered:
                self._commit_to_lake(collection_id, [rows])
            self._after_write(state, rows, buffered, version)
            return len(matched.ids)

    def _after_write(
        self, state: OpenCollection, rows: pa.Table, buffered: bool, version: int, vectors: np.ndarray | None = None
    ) -> None:
        state.version = version
        self._apply(state, rows, vectors)
        if buffered:
            state.pending_rows += rows.num_rows
            if state.pending_rows >= FLUSH_ROWS:
                self._commit_to_lake(state.record.id, [])

    def _commit_to_lake(self, collection_id: str, extra: list[pa.Table]) -> None:
        """Move the write buffer (and `extra` rows) into the lake in one lake transaction."""
        pending = self.registry.pending(collection_id)
        tables = [rows for _seq, rows in pending] + extra
        if not tables:
            return
        through = max(int(pc.max(t.column("_seq")).as_py()) for t in tables)
        latest = tables[0] if len(tables) == 1 else latest_per_id(tables)  # one write: ids are distinct
        record = self.get_collection_by_id(collection_id)
        # Every row key these writes touch: a record keeps its key from add to delete (a
        # re-added id gets a new one), so the lake rows to drop are exactly those keys.
        touched = unique_keys(np.concatenate([int_column(t, "_key") for t in tables]))
        live = with_typed_columns(latest, record.columns, keep_embedding=True)
        state = self._open.get(collection_id)
        if state is not None and not pending:
            state.typed = (latest, live)
        # The registry is the commit point: a lake commit that a crash kept from it left
        # rows after lake_seq, which this commit drops.
        orphans_after = record.lake_seq if record.lake_intent > record.lake_seq else None
        with self.registry.transaction() as db:
            self.registry.mark_lake_intent(db, collection_id, through)
        self.lake.replace_rows(collection_id, record.columns, live, touched, orphans_after)
        if record.lake_seq == 0:
            self._sync_view(record)
        with self.registry.transaction() as db:
            version = self.registry.mark_flushed(db, collection_id, through)
        state = self._open.get(collection_id)
        if state is not None:
            state.version = version
            state.pending_rows = 0
            if state.index is not None and (state.index.worth_saving() or state.index.needs_rebuild()):
                self._save_read_model(state)

    def _check_dimension(self, record: CollectionRecord, embeddings: np.ndarray | None) -> int | None:
        if embeddings is None:
            return record.dimension
        dimension = embeddings.shape[1]
        if record.dimension is not None and dimension != record.dimension:
            raise InvalidArgumentError(
                f"Collection expecting embedding with dimension of {record.dimension}, got {dimension}"
            )
        return dimension

    def _current(self, state: OpenCollection, ids: Sequence[str]) -> dict[str, tuple[int, Any, Any, Any]]:
        """Existing records among `ids`: id -> (key, document, uri, metadata).

        Ids never seen are answered without a query, so a loop of adds of new ids
        touches no table.
        """
        found: dict[str, tuple[int, Any, Any, Any]] = {}
        ask: list[str] = []
        for record_id in ids:
            if record_id in state.unapplied_rows:
                row = state.unapplied_rows[record_id]
                if row is not None:
                    found[record_id] = row
            elif self._maybe_present(state, record_id):
                ask.append(record_id)
        if ask:
            for row in self.con.execute(
                f"SELECT id, _key, document, uri, metadata FROM {self._mirror(state)}"
                " WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                [ask],
            ).fetchall():
                found[row[0]] = (row[1], row[2], row[3], load_metadata(row[4]))
        return found

    def _new_columns(self, record: CollectionRecord, metadatas: list[dict[str, Any] | None]) -> ColumnMap:
        taken = set(record.columns.values()) | set(BASE_COLUMNS) | {"embedding"}
        new: ColumnMap = {}
        for pair in sorted(kinds_in(metadatas)):
            if pair not in record.columns:
                name = assign_column(pair[0], pair[1], taken)
                taken.add(name)
                new[pair] = name
        return new

    def _vectors_for(
        self,
        state: OpenCollection,
        embeddings: np.ndarray | None,
        take: list[int],
        keys: list[int],
        reuse: list[int],
        dimension: int | None,
    ) -> np.ndarray:
        """The vector of every resolved row: given ones, or the stored one when kept."""
        if embeddings is not None and not reuse:
            return embeddings[take]
        assert dimension is not None and state.index is not None
        if embeddings is None:
            return state.index.vectors(np.asarray(keys, dtype=np.int64))
        vectors = embeddings[take].copy()
        vectors[reuse] = state.index.vectors(np.asarray([keys[j] for j in reuse], dtype=np.int64))
        return vectors

    # -- reads ----------------------------------------------------------------------------
    def count(self, collection_id: str) -> int:
        with self._lock:
            state = self._state(collection_id)
            self._materialize(state)
            return state.rows.live

    def dimension(self, collection_id: str) -> int | None:
        state = self.registry.state(collection_id)
        if state is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist")
        return state[2]

    def _where(
        self,
        state: OpenCollection,
        ids: Sequence[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        params: list[Any],
    ) -> str:
        for pattern in regexes_in(where, where_document):
            try:
                self.con.execute("SELECT regexp_matches('', ?)", [pattern])
            except duckdb.Error as exc:
                raise InvalidArgumentError(f"Regex syntax error: {exc}") from None
        sql = filter_sql(where, where_document, state.record.columns, params)
        if ids is not None:
            sql += " AND id IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(ids))
        return sql

    def select(
        self,
        collection_id: str,
        ids: Sequence[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        limit: int | None,
        offset: int | None,
        state: OpenCollection | None = None,
        with_vectors: bool = False,
    ) -> Rows:
        """Matching records in storage order, after offset, at most limit (with their vectors)."""
        with self._lock:
            state = state or self._state(collection_id)
            self._materialize(state)
            if ids is None and where is None and where_document is None:
                start = offset or 0
                keys = state.rows.keys()[start : None if limit is None else start + limit]
            else:
                params: list[Any] = []
                sql = self._where(state, ids, where, where_document, params)
                page = " OFFSET ?" if limit is None else " LIMIT ? OFFSET ?"
                params += [offset or 0] if limit is None else [limit, offset or 0]
                found = self.con.execute(
                    f"SELECT _key FROM {self._mirror(state)} WHERE {sql} ORDER BY _key{page}", params
                ).fetchnumpy()["_key"]
                keys = np.asarray(found, dtype=np.int64)
            rows = rows_from(state.rows.take(keys, ROW_FIELDS) if len(keys) else None)
            if with_vectors:
                rows.vectors = self._vectors_of(state, rows.keys)
            return rows

    def _vectors_of(self, state: OpenCollection, keys: np.ndarray) -> np.ndarray:
        if state.index is None:
            return np.empty((len(keys), state.record.dimension or 0), np.float32)
        return state.index.vectors(keys)

    def search(
        self,
        collection_id: str,
        queries: np.ndarray,
        n_results: int,
        ids: Sequence[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        with_vectors: bool = False,
        fields: Sequence[str] = HIT_FIELDS,
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[int, int], Rows]:
        """Nearest neighbours per query among matching records, and the matched rows.

        Returns per-query (keys, distances), a map key -> row position, and the rows
        (ids, the asked `fields` of HIT_FIELDS, and vectors when asked).
        """
        with self._lock:
            state = self._state(collection_id)
            record = state.record
            if record.dimension is not None and queries.shape[1] != record.dimension:
                raise InvalidArgumentError(
                    f"Collection expecting embedding with dimension of {record.dimension}, got {queries.shape[1]}"
                )
            filtered = ids is not None or where is not None or where_document is not None
            params: list[Any] = []
            sql = self._where(state, ids, where, where_document, params) if filtered else ""
            if state.index is None or len(state.index) == 0:
                empty = (np.empty(0, np.int64), np.empty(0, np.float32))
                return [empty for _ in queries], {}, rows_from(None)
            candidates = None
            if filtered:
                candidates = self._candidates(state, sql, params)
            self._materialize(state)
            hits = state.index.search(queries, n_results, candidates)
            if len(hits) == 1:  # one query's hits are distinct already
                all_keys = hits[0][0]
            else:
                all_keys = unique_keys(np.concatenate([keys for keys, _ in hits])) if hits else np.empty(0, np.int64)
            columns = ["id", *(name for name in HIT_FIELDS if name in fields)]
            few = state.rows.strings(all_keys, columns) if len(all_keys) else None
            if few is not None:
                rows = rows_from_strings(few, all_keys)
            else:
                rows = rows_from(state.rows.take(all_keys, columns) if len(all_keys) else None, all_keys)
            if with_vectors:
                rows.vectors = self._vectors_of(state, rows.keys)
            position = dict(zip(all_keys.tolist(), range(len(all_keys)), strict=True))
            return hits, position, rows

    # -- the Search API (vecduck.engine.search runs it; these give it the read model) --------
    def run_search(
        self,
        collection_id: str,
        plans: Sequence[searching.SearchPlan],
        bm25_keys: set[str],
        fields: Sequence[str] = (),
        with_vectors: bool = False,
    ) -> list[tuple[searching.SearchHits, Rows]]:
        """Run searches on one consistent state of the collection; each search's hits
        (keys and scores in result order) and their rows (the asked `fields` of
        HIT_FIELDS, vectors when asked)."""
        with self._lock:
            state = self._state(collection_id)
            self._check_search_dimensions(state, plans)
            self._materialize(state)
            answers = []
            for plan in plans:
                hits = searching.execute(self, state, plan, bm25_keys)
                columns = ["id", *(name for name in HIT_FIELDS if name in fields)]
                rows = rows_from(state.rows.take(hits.keys, columns) if len(hits.keys) else None, hits.keys)
                if with_vectors:
                    rows.vectors = self._vectors_of(state, hits.keys)
                answers.append((hits, rows))
            return answers

    def _check_search_dimensions(self, state: OpenCollection, plans: Sequence[searching.SearchPlan]) -> None:
        dimension = state.record.dimension
        for plan in plans:
            for knn in plan.knns:
                if knn.dense is not None and dimension is not None and len(knn.dense) != dimension:
                    raise InvalidArgumentError(
                        f"Collection expecting embedding with dimension of {dimension}, got {len(knn.dense)}"
                    )

    def _search_candidates(self, state: OpenCollection, where: dict[str, Any] | None) -> np.ndarray | None:
        """Sorted keys of the records a Search filter matches (None: no filter)."""
        if where is None:
            return None
        for pattern in regexes_in(where, None):
            try:
                self.con.execute("SELECT regexp_matches('', ?)", [pattern])
            except duckdb.Error as exc:
                raise InvalidArgumentError(f"Regex syntax error: {exc}") from None
        params: list[Any] = []
        sql = where_sql(where, state.record.columns, params, ids=True)
        return self._candidates(state, sql, params)

    def _sparse_index(self, state: OpenCollection, key: str) -> SparseIndex:
        """The sparse index of metadata `key`, as of every applied write: kept in memory
        once built, else loaded from its saved file and caught up, else built from the rows."""
        self._materialize(state)
        found = state.sparse.get(key)
        if found is not None:
            return found
        column = state.record.columns.get((key, "sparse"))
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


def rows_from(table: pa.Table | None, keys: np.ndarray | None = None) -> Rows:
    """Rows of a table of ROW_FIELDS; a field the table lacks comes back as an empty list,
    and `keys`, when given, are the table's keys (it then needs no `_key` column)."""
    if table is None or table.num_rows == 0:
        return Rows([], np.empty(0, np.int64), [], [], [])
    names = table.column_names
    return Rows(
        ids=table.column("id").to_pylist(),
        keys=int_column(table, "_key") if keys is None else keys,
        documents=table.column("document").to_pylist() if "document" in names else [],
        uris=table.column("uri").to_pylist() if "uri" in names else [],
        metadatas=load_metadata_column(table.column("metadata")) if "metadata" in names else [],
    )


def rows_from_strings(values: dict[str, list[bytes | None]], keys: np.ndarray) -> Rows:
    """Rows from the UTF-8 values of `RowStore.strings` (the fields asked, and "id")."""

    def texts(name: str) -> list[str | None]:
        return [None if v is None else v.decode() for v in values[name]] if name in values else []

    return Rows(
        ids=[v.decode() for v in values["id"]],  # type: ignore[union-attr]  # ids are never null
        keys=keys,
        documents=texts("document"),
        uris=texts("uri"),
        metadatas=[load_metadata(v) for v in values["metadata"]] if "metadata" in values else [],
    )


def merge_metadata(old: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """chromadb's update rule: given keys overwrite, a None value deletes its key."""
    if given is None:
        return old
    merged = dict(old or {})
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if not merged and old is None:
        return None  # nothing was there and nothing is added: still no metadata
    return merged


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


__all__ = ["FLUSH_ROWS", "MIRROR_COLUMNS", "RESOLVED_SCHEMA", "Rows", "Store"]
