"""One store (a data folder or a shared lake): the registry, the lake, the write path, and the reads.

Durable state is the lake (Parquet through DuckLake) plus the registry's write
buffer. Writes are resolved into full rows and committed there; reads (get, count,
query, search) answer from each process's read model of the collection
(`engine/readmodel.py`: rows by key, a DuckDB mirror for filters, the vector index,
sparse indexes), kept in step with the durable state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
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
    ColumnMap,
    assign_column,
    kinds_in,
)
from vecduck.engine.index import IndexSettings, VectorIndex
from vecduck.engine.lake import Lake, RowsChange, connect, table_name
from vecduck.engine.location import LocalFolder, Location
from vecduck.engine.readmodel import OpenCollection, ReadModel, hnsw_settings
from vecduck.engine.registry import DEFAULT_DATABASE, DEFAULT_TENANT, CollectionRecord
from vecduck.engine.rows import (
    RESOLVED_SCHEMA,
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


class Store(ReadModel):
    """Storage and search for every collection in one folder (its read models: `ReadModel`)."""

    def __init__(self, location: Location | str, *, durability: str = "process") -> None:
        self.location = LocalFolder(location) if isinstance(location, str) else location
        self.index_folder = self.location.index_folder
        self.registry = self.location.open_registry(durability)
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
    def folder(self) -> str | None:
        """The data folder (None for a shared lake)."""
        return getattr(self.location, "folder", None)

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
                    lake = Lake(connect(), self.location)
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
        """Move buffered writes into the lake and save the indexes of open collections
        (on a shared lake, published once the writer lock is released)."""
        with self._lock:
            with self.registry.writer_lock():
                ids = [collection_id] if collection_id else self.registry.all_ids()
                self._commit_many_to_lake([cid for cid in ids if self.registry.pending_count(cid)])
                for cid in ids:
                    state = self._open.get(cid)
                    if state is not None and state.applied_seq > state.rows_saved_seq:
                        self._save_read_model(state)
                    elif state is not None and self._read_model_unsaved(state):
                        self._save_sparse_indexes(state)
            self.location.settle()

    def _reconcile(self, lake: Lake) -> None:
        """Make the lake's tables and views match the registry after a crash mid-DDL:
        drop those of deleted collections, create missing views."""
        with self._lock, self.registry.writer_lock():
            known = {table_name(cid) for cid in self.registry.all_ids()}
            tables = lake.tables()
            for table in tables - known:
                if table.startswith("c_"):
                    lake.drop_table(table)
            records = self.registry.list(DEFAULT_TENANT, DEFAULT_DATABASE)
            views = lake.views()
            for view in views - {r.name for r in records}:
                lake.drop_view(view)
            for record in records:
                if record.name not in views and table_name(record.id) in tables:
                    lake.create_view(record.name, record.id)
            self._remove_stray_sidecars()

    def _remove_stray_sidecars(self) -> None:
        """Sidecars of collections the registry does not know (a crash mid-fork or
        mid-delete); files still being written (`.tmp`) are left alone."""
        known = set(self.registry.all_ids())
        for path in glob.glob(os.path.join(self.index_folder, "*")):
            name = os.path.basename(path)
            if not name.endswith(".tmp") and name.split(".", 1)[0] not in known:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.remove(path)

    # -- observability ------------------------------------------------------------------
    def health(self) -> dict[str, str | None]:
        """What cannot be reached: {"catalog": None or why, "object_store": None or why}."""
        try:
            self.registry.ping()
            catalog = None
        except Exception as exc:  # any failure to reach it is the answer, not an error
            catalog = f"{type(exc).__name__}: {exc}"
        try:
            storage = self.location.reachable()
        except Exception as exc:
            storage = f"{type(exc).__name__}: {exc}"
        return {"catalog": catalog, "object_store": storage}

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics: the catalog's round trip (s), buffered writes, and how far
        this process's open read models lag the committed writes (writes, and seconds since
        the lag was first seen here; a read model catches up at its collection's next call)."""
        now = time.monotonic()
        round_trip = self.registry.ping()
        buffered = self.registry.buffered_writes()
        latest = self.registry.latest_seqs()
        lag_writes, lag_seconds = 0, 0.0
        with self._lock:
            for collection_id, state in list(self._open.items()):
                behind = max(0, latest.get(collection_id, state.applied_seq) - state.applied_seq)
                if behind:
                    state.behind_since = state.behind_since or now
                    lag_seconds = max(lag_seconds, now - state.behind_since)
                else:
                    state.behind_since = None
                lag_writes += behind
        return {
            "catalog_round_trip_seconds": round_trip,
            "write_buffer_writes": buffered,
            "index_lag_writes": lag_writes,
            "index_lag_seconds": lag_seconds,
        }

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
            if self.registry.get_database(tenant, database) is None:
                raise InvalidArgumentError(f"Database [{database}] does not exist")  # chromadb's class and words
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
            if has_view(record):
                self.lake.drop_view(record.name)
            self.lake.drop(record.id)
        VectorIndex(IndexSettings(1), self._index_path(record.id)).discard_files()
        RowStore.discard(self._rows_path(record.id))
        for path in glob.glob(os.path.join(self.index_folder, f"{record.id}.*.sparse.arrow")):
            SparseIndex.discard(path)
        self.location.unpublish(record.id)

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
                if metadata is not None:  # {}: no metadata any more
                    self.registry.set_metadata(db, collection_id, metadata or None)
                if configuration is not None:
                    self.registry.set_configuration(db, collection_id, configuration)
            record = self.get_collection_by_id(collection_id)
            if record.name != old_name and record.lake_seq > 0 and has_view(record):
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
            with self.registry.transaction() as db:
                self.registry.reset(db)  # back to the default tenant and database only

    # -- forks --------------------------------------------------------------------------------
    def fork_collection(self, collection_id: str, new_name: str) -> CollectionRecord:
        """A new collection in the same database with the same records, sharing the
        parent's Parquet files and derived sidecars (hard links), then independent.

        The parent's buffered writes are moved to the lake first and its sidecars saved,
        so the fork opens warm. The lake commit comes first and the registry's makes the
        fork exist: a crash in between leaves a table no collection names, dropped at
        the next open, and files nothing references."""
        with self._lock, self.registry.writer_lock():
            parent = self.get_collection_by_id(collection_id)
            if self.registry.get_by_name(new_name, parent.tenant, parent.database):
                raise UniqueConstraintError(f"Collection [{new_name}] already exists")
            state = self._state(collection_id)
            if self.registry.pending_count(collection_id):
                self._commit_to_lake(collection_id, [])
            if state.applied_seq > state.rows_saved_seq:  # saved files are shared, not rewritten
                self._save_read_model(state)
            elif self._read_model_unsaved(state):
                self._save_sparse_indexes(state)
            parent = self.get_collection_by_id(collection_id)
            fork = dataclasses.replace(
                parent,
                id=str(uuid.uuid4()),
                name=new_name,
                version=0,
                lake_intent=parent.lake_seq,
                columns=dict(parent.columns),
                lineage=parent.lineage or parent.id,
            )
            if parent.lake_seq > 0:
                self.lake.fork_table(parent.id, fork.id, parent.columns)
            self._link_sidecars(parent.id, fork.id)
            with self.registry.transaction() as db:
                self.registry.insert(db, fork)
                self.registry.copy_ops(db, parent.id, fork.id)
                self.registry.add_fork_edge(db, fork.lineage)
            if parent.lake_seq > 0:
                self._sync_view(fork)
            return self.get_collection_by_id(fork.id)

    def indexing_status(self, collection_id: str) -> tuple[int, int]:
        """(record operations in all, those whose vectors the index does not hold yet)."""
        with self._lock:
            state = self._state(collection_id)
            total = self.registry.ops(collection_id)
            waiting = state.index.waiting() if state.index is not None else 0
            return total, min(waiting, total)

    def fork_count(self, collection_id: str) -> int:
        record = self.get_collection_by_id(collection_id)
        return self.registry.fork_edges(record.lineage or record.id)

    def _link_sidecars(self, parent_id: str, fork_id: str) -> None:
        """The parent's index, rows snapshot and sparse indexes as the fork's (hard links:
        sidecars are replaced by rename, never rewritten in place, so sharing is safe)."""
        index = self.index_folder
        for path in glob.glob(os.path.join(index, f"{parent_id}.*")):
            if path.endswith(".tmp"):
                continue
            target = os.path.join(index, fork_id + os.path.basename(path)[len(parent_id) :])
            with contextlib.suppress(FileNotFoundError, FileExistsError):
                if path.endswith(".json"):  # markers are tiny: copied, so no marker is shared
                    shutil.copyfile(path, target)
                else:
                    os.link(path, target)

    # -- tenants and databases ------------------------------------------------------------
    def create_tenant(self, name: str) -> None:
        with self._lock, self.registry.writer_lock():
            if self.registry.tenant_exists(name):
                raise UniqueConstraintError(f"Tenant [{name}] already exists")
            with self.registry.transaction() as db:
                self.registry.insert_tenant(db, name)

    def check_tenant(self, name: str) -> None:
        if not self.registry.tenant_exists(name):
            raise NotFoundError(f"Tenant [{name}] not found")

    def create_database(self, name: str, tenant: str) -> dict[str, str]:
        with self._lock, self.registry.writer_lock():
            self.check_tenant(tenant)
            if self.registry.get_database(tenant, name) is not None:
                raise UniqueConstraintError(f"Database [{name}] already exists")
            database_id = str(uuid.uuid4())
            with self.registry.transaction() as db:
                self.registry.insert_database(db, database_id, tenant, name)
            return {"id": database_id, "name": name, "tenant": tenant}

    def get_database(self, name: str, tenant: str) -> dict[str, str]:
        found = self.registry.get_database(tenant, name)
        if found is None:
            raise NotFoundError(f"Database [{name}] not found. Are you sure it exists?")
        return {"id": found[0], "name": found[1], "tenant": found[2]}

    def list_databases(self, tenant: str, limit: int | None, offset: int | None) -> list[dict[str, str]]:
        return [
            {"id": row[0], "name": row[1], "tenant": row[2]}
            for row in self.registry.list_databases(tenant, limit, offset)
        ]

    def delete_database(self, name: str, tenant: str) -> None:
        """Delete a database and its collections in one registry transaction (the commit
        point); their lake tables are dropped after, or at the next open after a crash,
        and their files freed at the next compaction."""
        with self._lock, self.registry.writer_lock():
            if self.registry.get_database(tenant, name) is None:
                raise NotFoundError(f"Database [{name}] not found")
            records = self.registry.list(tenant, name)
            with self.registry.transaction() as db:
                self.registry.delete_database(db, tenant, name)
            for record in records:
                self._forget(record.id)
                self._drop_lake_table(record)

    def _sync_view(self, record: CollectionRecord) -> None:
        """A lake view named after the collection, for plain-DuckDB users."""
        if has_view(record):
            self.lake.create_view(record.name, record.id)

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
                if dimension is not None and record.dimension is None:
                    # chromadb: a successful write that carries vectors fixes the dimension,
                    # even when it changes no record (an update of unknown ids)
                    with self.registry.transaction() as db:
                        state.version = self.registry.fix_dimension(db, collection_id, dimension)
                    record.dimension = dimension
                return
            new_columns = self._new_columns(record, out_meta)
            with self.registry.transaction() as db:
                first_key, seq, version = self.registry.reserve(db, collection_id, new_count, dimension, len(take))
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
                self._commit_to_lake(collection_id, [rows], out_meta)
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
                _first, seq, version = self.registry.reserve(db, collection_id, 0, None, len(matched.ids))
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

    def _commit_to_lake(
        self, collection_id: str, extra: list[pa.Table], metadatas: list[dict[str, Any] | None] | None = None
    ) -> None:
        """Move the write buffer (and `extra` rows) into the lake in one lake transaction.
        `metadatas`: those of one live `extra` table, as its writer holds them."""
        change = self._lake_change(collection_id, extra, metadatas)
        if change is not None:
            self._commit_change(change)

    def _commit_change(self, change: _LakeChange) -> None:
        """One collection's lake change: the intent, the lake commit, then its record."""
        self._mark_intents([change])
        self.lake.replace_many([change.rows])
        self._finish_lake_change(change)

    def _commit_many_to_lake(self, collection_ids: list[str]) -> None:
        """The write buffers of several collections into the lake in one lake transaction
        (a flush or close): one catalog commit, whose cost grows with the catalog, instead
        of one per collection. If it fails, they are committed one by one, so that an
        error names its collection and the others still reach the lake."""
        changes = [change for cid in collection_ids if (change := self._lake_change(cid, [], None)) is not None]
        if len(changes) < 2:
            for change in changes:
                self._commit_change(change)
            return
        self._mark_intents(changes)
        try:
            self.lake.replace_many([change.rows for change in changes])
        except duckdb.Error:
            for change in changes:  # the registry marks stay: each commit below drops what a crash left
                self._commit_to_lake(change.rows.collection_id, [])
            return
        for change in changes:
            self._finish_lake_change(change)

    def _lake_change(
        self, collection_id: str, extra: list[pa.Table], metadatas: list[dict[str, Any] | None] | None
    ) -> _LakeChange | None:
        """What committing a collection's write buffer (and `extra` rows) changes in the lake."""
        pending = self.registry.pending(collection_id)
        tables = [rows for _seq, rows in pending] + extra
        if not tables:
            return None
        through = max(int(pc.max(t.column("_seq")).as_py()) for t in tables)
        latest = tables[0] if len(tables) == 1 else latest_per_id(tables)  # one write: ids are distinct
        record = self.get_collection_by_id(collection_id)
        # Every row key these writes touch: a record keeps its key from add to delete (a
        # re-added id gets a new one), so the lake rows to drop are exactly those keys.
        touched = unique_keys(np.concatenate([int_column(t, "_key") for t in tables]))
        known = metadatas if not pending and len(extra) == 1 else None
        live = with_typed_columns(latest, record.columns, keep_embedding=True, metadatas=known)
        state = self._open.get(collection_id)
        if state is not None and not pending:
            state.typed = (latest, live)
        # The registry is the commit point: a lake commit that a crash kept from it left
        # rows after lake_seq, which this commit drops.
        orphans_after = record.lake_seq if record.lake_intent > record.lake_seq else None
        view = record.name if record.lake_seq == 0 and has_view(record) else None
        rows = RowsChange(collection_id, record.columns, live, touched, orphans_after, view)
        gone = [t.filter(t.column("_deleted")).select(["id", "_key", "_seq"]) for t in tables]
        return _LakeChange(rows, record, through, gone)

    def _mark_intents(self, changes: list[_LakeChange]) -> None:
        with self.registry.transaction() as db:
            for change in changes:
                self.registry.mark_lake_intent(db, change.rows.collection_id, change.through)

    def _finish_lake_change(self, change: _LakeChange) -> None:
        """After the lake commit: the registry drops the buffered writes it holds."""
        collection_id = change.rows.collection_id
        with self.registry.transaction() as db:
            version = self.registry.mark_flushed(
                db, collection_id, change.through, pa.concat_tables(change.gone), change.record.lake_seq
            )
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
        asked = (queries, n_results, ids, where, where_document, with_vectors, fields)
        with self._lock:
            changed = None
            sent = self.registry.start_change_check()
            if sent is not None:
                # A shared catalog: search the read model while the catalog says whether
                # anyone committed since it was caught up (the answer then stands as is).
                answer, error = None, None
                try:
                    state = self._open.get(collection_id)
                    if state is not None and not state.stale:
                        answer = self._search_state(state, *asked)
                except Exception as exc:  # an answer of a stale read model: the check decides
                    error = exc
                finally:
                    changed = self.registry.finish_change_check(sent)
                if changed is False and error is not None:
                    raise error
                if changed is False and answer is not None:
                    return answer
            return self._search_state(self._state(collection_id, changed), *asked)

    def _search_state(
        self,
        state: OpenCollection,
        queries: np.ndarray,
        n_results: int,
        ids: Sequence[str] | None,
        where: dict[str, Any] | None,
        where_document: dict[str, Any] | None,
        with_vectors: bool,
        fields: Sequence[str],
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[int, int], Rows]:
        """`search` on a read model as it stands (the caller knows it is caught up)."""
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
        rows = self._hit_rows(state, all_keys, fields, with_vectors)
        position = dict(zip(all_keys.tolist(), range(len(all_keys)), strict=True))
        return hits, position, rows

    def _hit_rows(self, state: OpenCollection, keys: np.ndarray, fields: Sequence[str], with_vectors: bool) -> Rows:
        """The rows of a query's or search's hits (distinct live keys): "id" and the asked
        `fields` of HIT_FIELDS, read straight from the Arrow buffers when they are few."""
        columns = ["id", *(name for name in HIT_FIELDS if name in fields)]
        few = state.rows.strings(keys, columns) if len(keys) else None
        if few is not None:
            rows = rows_from_strings(few, keys)
        else:
            rows = rows_from(state.rows.take(keys, columns) if len(keys) else None, keys)
        if with_vectors:
            rows.vectors = self._vectors_of(state, rows.keys)
        return rows

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
                answers.append((hits, self._hit_rows(state, hits.keys, fields, with_vectors)))
            return answers

    def _check_search_dimensions(self, state: OpenCollection, plans: Sequence[searching.SearchPlan]) -> None:
        dimension = state.record.dimension
        for plan in plans:
            for knn in plan.knns:
                if knn.dense is not None and dimension is not None and len(knn.dense) != dimension:
                    raise InvalidArgumentError(
                        f"Collection expecting embedding with dimension of {dimension}, got {len(knn.dense)}"
                    )


@dataclass
class _LakeChange:
    """A collection's write buffer on its way into the lake: the rows change, the record
    it was read from, the last write it covers and the ids it deletes."""

    rows: RowsChange
    record: CollectionRecord
    through: int
    gone: list[pa.Table]


def has_view(record: CollectionRecord) -> bool:
    """Collections of the default database have a lake view named after them (names are
    unique per database, so only one database can own the plain names in the lake)."""
    return record.tenant == DEFAULT_TENANT and record.database == DEFAULT_DATABASE


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
    """chromadb's update rule: given keys overwrite, a None value deletes its key; a record
    left without keys has no metadata (None)."""
    if given is None:
        return old
    merged = dict(old or {})
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged or None  # no key left: no metadata, as chromadb reads it back


__all__ = ["FLUSH_ROWS", "MIRROR_COLUMNS", "RESOLVED_SCHEMA", "Rows", "Store"]
