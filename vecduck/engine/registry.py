"""The registry: collections, their column maps and counters, and the durable write buffer.

One SQLite file (WAL mode) per data folder. SQLite gives what several processes on one
folder need: atomic multi-row commits, durability at commit (one fsync), readers that
never block, and a cheap "did anyone else commit?" check (`PRAGMA data_version`).

Small writes land here first, as resolved rows in an Arrow IPC blob; they are moved
into the lake in batches (see `engine.writes`). The writer lock (a file lock plus a
thread lock) serialises every write to the folder, across processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from vecduck.engine.columns import ColumnMap

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    metadata TEXT,
    configuration TEXT NOT NULL,
    dimension INTEGER,
    created INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    database TEXT NOT NULL,
    next_key INTEGER NOT NULL DEFAULT 1,
    next_seq INTEGER NOT NULL DEFAULT 1,
    lake_seq INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    lake_intent INTEGER NOT NULL DEFAULT 0,
    schema TEXT,
    lineage TEXT,
    ops INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, database, name)
);
CREATE TABLE IF NOT EXISTS fork_edges (root TEXT PRIMARY KEY, edges INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS databases (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS columns (
    collection_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    column_name TEXT NOT NULL,
    PRIMARY KEY (collection_id, key, kind)
);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER NOT NULL,
    collection_id TEXT NOT NULL,
    rows BLOB NOT NULL,
    PRIMARY KEY (collection_id, seq)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lake_log (
    collection_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    from_seq INTEGER NOT NULL,
    removed BLOB NOT NULL,
    PRIMARY KEY (collection_id, seq)
);
"""
# Lake commits a collection's log keeps (what another process needs to catch up without
# reading the whole table again; one further behind reads it whole).
LAKE_LOG_KEEP = 1_000
DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
DEFAULT_DATABASE_ID = "00000000-0000-0000-0000-000000000000"
# The registry's layout version (counters 'layout'): 2 added tenants and databases, and
# made collection names unique per database instead of per folder.
LAYOUT = 2
# LIMIT without a limit, in SQL both SQLite and PostgreSQL take.
NO_LIMIT = 2**62


@dataclass
class CollectionRecord:
    """A collection as the registry knows it."""

    id: str
    name: str
    metadata: dict[str, Any] | None
    configuration: dict[str, Any]
    dimension: int | None
    tenant: str
    database: str
    next_key: int
    next_seq: int
    lake_seq: int
    version: int
    # The write sequence of a lake commit that was started: above lake_seq, that commit
    # may have reached the lake without reaching the registry (a crash between the two).
    lake_intent: int = 0
    columns: ColumnMap = field(default_factory=dict)
    # The collection's index schema as given at creation (chromadb's JSON), or None.
    schema: dict[str, Any] | None = None
    # The collection its fork tree starts from (None: this one is a root).
    lineage: str | None = None


# Explicit options: without them pyarrow reads two environment variables per stream.
IPC_OPTIONS = pa.ipc.IpcWriteOptions()


def arrow_to_blob(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def blob_to_arrow(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


class Registry:
    """SQLite-backed registry of one data folder (`SharedRegistry`: PostgreSQL's, for a
    shared lake). Its SQL is what both databases take, with `?` parameters."""

    # how a write transaction starts (IMMEDIATE: take SQLite's write lock at once), and
    # a read of several statements that must see one snapshot
    WRITE_BEGIN = "BEGIN IMMEDIATE"
    SNAPSHOT_BEGIN = "BEGIN"

    def __init__(self, path: str, lock_path: str) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        known = {row[1] for row in self._conn.execute("PRAGMA table_info(collections)")}
        for column, declaration in (
            ("lake_intent", "INTEGER NOT NULL DEFAULT 0"),
            ("schema", "TEXT"),
            ("lineage", "TEXT"),
            ("ops", "INTEGER NOT NULL DEFAULT 0"),
        ):
            if column not in known:  # a folder from before this column
                with suppress(sqlite3.OperationalError):  # another process added it first
                    self._conn.execute(f"ALTER TABLE collections ADD COLUMN {column} {declaration}")
        self._upgrade_layout()
        self._thread_lock = threading.RLock()
        self._lock_file = open(lock_path, "a+b")  # noqa: SIM115 - held for the registry's life
        self._lock_depth = 0
        self._data_version = -1

    def _upgrade_layout(self) -> None:
        """Bring an older folder's registry to LAYOUT, in one transaction (another process
        may be doing the same: BEGIN IMMEDIATE serialises them, the second finds it done).

        Layout 2: the default tenant and database exist as rows (and every tenant and
        database a collection names), and a collection's name is unique in its database
        (the table is rebuilt without the old folder-wide UNIQUE(name))."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            row = self._conn.execute("SELECT value FROM counters WHERE name = 'layout'").fetchone()
            if row is None or row[0] < 2:
                table_sql = self._conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'collections'"
                ).fetchone()[0]
                if "NAME TEXT NOT NULL UNIQUE" in " ".join(table_sql.upper().split()):
                    columns = ", ".join(r[1] for r in self._conn.execute("PRAGMA table_info(collections)"))
                    self._conn.execute("ALTER TABLE collections RENAME TO collections_layout1")
                    self._conn.execute(SCHEMA.split(";")[0])  # the new collections table (execute: no commit)
                    self._conn.execute(
                        f"INSERT INTO collections ({columns}) SELECT {columns} FROM collections_layout1"
                    )
                    self._conn.execute("DROP TABLE collections_layout1")
                self._conn.execute(
                    "INSERT OR IGNORE INTO tenants SELECT DISTINCT tenant, 0 FROM collections"
                    " UNION SELECT ?, 0",
                    (DEFAULT_TENANT,),
                )
                self._conn.execute(
                    "INSERT OR IGNORE INTO databases VALUES (?, ?, ?, 0)",
                    (DEFAULT_DATABASE_ID, DEFAULT_TENANT, DEFAULT_DATABASE),
                )
                for tenant, database in self._conn.execute(
                    "SELECT DISTINCT tenant, database FROM collections"
                ).fetchall():
                    self._conn.execute(
                        "INSERT OR IGNORE INTO databases VALUES (lower(hex(randomblob(16))), ?, ?, 0)",
                        (tenant, database),
                    )
                self._conn.execute(
                    "INSERT INTO counters VALUES ('layout', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (LAYOUT,),
                )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def set_durability(self, durability: str) -> None:
        """When a commit reaches the disk.

        "process" (default): a committed write survives any crash of the process
        (SIGKILL included); the OS writes it out shortly after, so a power cut can lose
        the last moments. "fsync": every commit is fsynced before it returns. "none":
        for throw-away folders (the in-memory client).
        """
        levels = {"fsync": "FULL", "process": "NORMAL", "none": "OFF"}
        if durability not in levels:
            raise ValueError(f"durability must be one of {', '.join(levels)}, got {durability!r}")
        self._conn.execute(f"PRAGMA synchronous={levels[durability]}")

    def close(self) -> None:
        self._conn.close()
        self._lock_file.close()

    # -- locking -------------------------------------------------------------------
    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialise writers of this folder across threads and processes."""
        with self._thread_lock:
            if self._lock_depth == 0:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable SQLite transaction."""
        with self._thread_lock:
            self._conn.execute(self.WRITE_BEGIN)
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def start_change_check(self) -> int | None:
        """Begin `changed_elsewhere` without waiting for it (a shared catalog's round trip
        then overlaps a search); None: call `changed_elsewhere`, as here, where it is cheap."""
        return None

    def finish_change_check(self, generation: int) -> bool | None:
        """The answer to the check `start_change_check` began; None, "not known: call
        `changed_elsewhere`", since this registry sends none."""
        return None

    def changed_elsewhere(self) -> bool:
        """True when another connection committed since the last call (cheap)."""
        with self._thread_lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._data_version
        self._data_version = version
        return changed

    def ping(self) -> float:
        """One round trip to the registry's database, in seconds."""
        start = time.perf_counter()
        with self._thread_lock:
            self._conn.execute("SELECT 1").fetchone()
        return time.perf_counter() - start

    def buffered_writes(self) -> int:
        """Writes waiting in the write buffer, over every collection."""
        with self._thread_lock:
            return self._conn.execute("SELECT count(*) FROM pending").fetchone()[0]

    def latest_seqs(self) -> dict[str, int]:
        """Each collection's last write number."""
        with self._thread_lock:
            return {row[0]: row[1] - 1 for row in self._conn.execute("SELECT id, next_seq FROM collections")}

    # -- collections -----------------------------------------------------------------
    def _record(self, row: tuple[Any, ...]) -> CollectionRecord:
        record = CollectionRecord(
            id=row[0],
            name=row[1],
            metadata=json.loads(row[2]) if row[2] is not None else None,
            configuration=json.loads(row[3]),
            dimension=row[4],
            tenant=row[5],
            database=row[6],
            next_key=row[7],
            next_seq=row[8],
            lake_seq=row[9],
            version=row[10],
            lake_intent=row[11],
            schema=json.loads(row[12]) if row[12] is not None else None,
            lineage=row[13],
        )
        with self._thread_lock:
            for key, kind, column in self._conn.execute(
                "SELECT key, kind, column_name FROM columns WHERE collection_id = ?", (record.id,)
            ):
                record.columns[(key, kind)] = column
        return record

    _FIELDS = (
        "id, name, metadata, configuration, dimension, tenant, database, next_key, next_seq, lake_seq, version,"
        " lake_intent, schema, lineage"
    )

    def get_by_name(self, name: str, tenant: str, database: str) -> CollectionRecord | None:
        with self._thread_lock:
            row = self._conn.execute(
                f"SELECT {self._FIELDS} FROM collections WHERE name = ? AND tenant = ? AND database = ?",
                (name, tenant, database),
            ).fetchone()
        return self._record(row) if row else None

    def get_by_id(self, collection_id: str) -> CollectionRecord | None:
        with self._thread_lock:
            row = self._conn.execute(
                f"SELECT {self._FIELDS} FROM collections WHERE id = ?", (collection_id,)
            ).fetchone()
        return self._record(row) if row else None

    def list(
        self, tenant: str, database: str, limit: int | None = None, offset: int | None = None
    ) -> list[CollectionRecord]:
        with self._thread_lock:
            rows = self._conn.execute(
                f"SELECT {self._FIELDS} FROM collections WHERE tenant = ? AND database = ?"
                " ORDER BY created LIMIT ? OFFSET ?",
                (tenant, database, NO_LIMIT if limit is None else limit, offset or 0),
            ).fetchall()
        return [self._record(row) for row in rows]

    def count(self, tenant: str, database: str) -> int:
        with self._thread_lock:
            return self._conn.execute(
                "SELECT count(*) FROM collections WHERE tenant = ? AND database = ?",
                (tenant, database),
            ).fetchone()[0]

    def all_ids(self) -> list[str]:
        with self._thread_lock:
            return [row[0] for row in self._conn.execute("SELECT id FROM collections")]

    def insert(self, db: sqlite3.Connection, record: CollectionRecord) -> None:
        created = self._next_created(db)
        db.execute(
            "INSERT INTO collections (id, name, metadata, configuration, dimension, created, tenant, database, schema,"
            " next_key, next_seq, lake_seq, lake_intent, version, lineage)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.name,
                None if record.metadata is None else json.dumps(record.metadata),
                json.dumps(record.configuration),
                record.dimension,
                created,
                record.tenant,
                record.database,
                None if record.schema is None else json.dumps(record.schema),
                record.next_key,
                record.next_seq,
                record.lake_seq,
                record.lake_intent,
                record.version,
                record.lineage,
            ),
        )
        if record.columns:
            self.add_columns(db, record.id, record.columns)

    def copy_ops(self, db: sqlite3.Connection, source: str, target: str) -> None:
        """A fork's operation count starts from its parent's (its records' history)."""
        db.execute(
            "UPDATE collections SET ops = (SELECT ops FROM collections WHERE id = ?) WHERE id = ?", (source, target)
        )

    def add_fork_edge(self, db: sqlite3.Connection, root: str) -> None:
        db.execute(
            "INSERT INTO fork_edges VALUES (?, 1) ON CONFLICT(root) DO UPDATE SET edges = fork_edges.edges + 1", (root,)
        )

    def fork_edges(self, root: str) -> int:
        """Forks made in a collection's tree (deleted collections' edges still count, as in Chroma)."""
        with self._thread_lock:
            row = self._conn.execute("SELECT edges FROM fork_edges WHERE root = ?", (root,)).fetchone()
        return 0 if row is None else row[0]

    def delete(self, db: sqlite3.Connection, collection_id: str) -> None:
        for table in ("collections", "columns", "pending", "lake_log"):
            column = "id" if table == "collections" else "collection_id"
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (collection_id,))

    def rename(self, db: sqlite3.Connection, collection_id: str, name: str) -> None:
        db.execute("UPDATE collections SET name = ? WHERE id = ?", (name, collection_id))

    def set_metadata(self, db: sqlite3.Connection, collection_id: str, metadata: dict[str, Any] | None) -> None:
        db.execute(
            "UPDATE collections SET metadata = ? WHERE id = ?",
            (None if metadata is None else json.dumps(metadata), collection_id),
        )

    def set_configuration(self, db: sqlite3.Connection, collection_id: str, configuration: dict[str, Any]) -> None:
        db.execute(
            "UPDATE collections SET configuration = ? WHERE id = ?",
            (json.dumps(configuration), collection_id),
        )

    # -- write bookkeeping -------------------------------------------------------------
    def add_columns(self, db: sqlite3.Connection, collection_id: str, columns: ColumnMap) -> None:
        db.executemany(
            "INSERT INTO columns VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(collection_id, key, kind, name) for (key, kind), name in columns.items()],
        )

    def reserve(
        self, db: sqlite3.Connection, collection_id: str, keys: int, dimension: int | None, ops: int = 0
    ) -> tuple[int, int, int]:
        """Take `keys` fresh row keys and one write sequence number, and count `ops` record
        operations; returns (first key, seq, version)."""
        row = db.execute(
            "UPDATE collections SET next_key = next_key + ?, next_seq = next_seq + 1,"
            " version = version + 1, dimension = coalesce(dimension, ?), ops = ops + ?"
            " WHERE id = ? RETURNING next_key - ?, next_seq - 1, version",
            (keys, dimension, ops, collection_id, keys),
        ).fetchone()
        return row[0], row[1], row[2]

    def fix_dimension(self, db: sqlite3.Connection, collection_id: str, dimension: int) -> int:
        """Set the dimension of a collection that has none yet; returns the new version."""
        return db.execute(
            "UPDATE collections SET dimension = coalesce(dimension, ?), version = version + 1 WHERE id = ?"
            " RETURNING version",
            (dimension, collection_id),
        ).fetchone()[0]

    def append_pending(self, db: sqlite3.Connection, collection_id: str, seq: int, rows: pa.Table) -> None:
        db.execute(
            "INSERT INTO pending (seq, collection_id, rows) VALUES (?, ?, ?)",
            (seq, collection_id, arrow_to_blob(rows)),
        )

    def pending(self, collection_id: str, after_seq: int = 0) -> list[tuple[int, pa.Table]]:
        with self._thread_lock:
            rows = self._conn.execute(
                "SELECT seq, rows FROM pending WHERE collection_id = ? AND seq > ? ORDER BY seq",
                (collection_id, after_seq),
            ).fetchall()
        return [(seq, blob_to_arrow(blob)) for seq, blob in rows]

    def changes(self, collection_id: str, after_seq: int) -> tuple[CollectionRecord, list[tuple[int, pa.Table]]] | None:
        """The collection and its buffered writes after `after_seq`, read as one snapshot."""
        with self._thread_lock:
            self._conn.execute(self.SNAPSHOT_BEGIN)
            try:
                record = self.get_by_id(collection_id)
                pending = self.pending(collection_id, after_seq) if record else []
            finally:
                self._conn.execute("COMMIT")
        return (record, pending) if record else None

    def lake_log(self, collection_id: str, after_seq: int) -> list[tuple[int, int, pa.Table]]:
        """(from_seq, through_seq, removed) of the logged lake commits after `after_seq`, in order."""
        with self._thread_lock:
            rows = self._conn.execute(
                "SELECT from_seq, seq, removed FROM lake_log WHERE collection_id = ? AND seq > ? ORDER BY seq",
                (collection_id, after_seq),
            ).fetchall()
        return [(from_seq, seq, blob_to_arrow(blob)) for from_seq, seq, blob in rows]

    def pending_count(self, collection_id: str) -> int:
        with self._thread_lock:
            return self._conn.execute(
                "SELECT count(*) FROM pending WHERE collection_id = ?", (collection_id,)
            ).fetchone()[0]

    def mark_lake_intent(self, db: sqlite3.Connection, collection_id: str, through_seq: int) -> None:
        """Record, before a lake commit, the write sequence it goes up to (see lake_intent)."""
        db.execute("UPDATE collections SET lake_intent = ? WHERE id = ?", (through_seq, collection_id))

    def mark_flushed(
        self,
        db: sqlite3.Connection,
        collection_id: str,
        through_seq: int,
        removed: pa.Table | None = None,
        from_seq: int | None = None,
    ) -> int:
        """Drop buffered writes now in the lake; returns the new version.

        With `removed` (id, _key, _seq of the records the commit deleted) and `from_seq`
        (the lake's write number before it), the commit is logged, so other processes
        catch up from the rows written after their own write number plus this list."""
        db.execute("DELETE FROM pending WHERE collection_id = ? AND seq <= ?", (collection_id, through_seq))
        if removed is not None and from_seq is not None:
            db.execute(
                "INSERT INTO lake_log VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (collection_id, through_seq, from_seq, arrow_to_blob(removed)),
            )
            db.execute(
                "DELETE FROM lake_log WHERE collection_id = ? AND seq < (SELECT min(seq) FROM"
                " (SELECT seq FROM lake_log WHERE collection_id = ? ORDER BY seq DESC LIMIT ?) AS recent)",
                (collection_id, collection_id, LAKE_LOG_KEEP),
            )
        return db.execute(
            "UPDATE collections SET lake_seq = CASE WHEN lake_seq > ? THEN lake_seq ELSE ? END,"
            " version = version + 1 WHERE id = ? RETURNING version",
            (through_seq, through_seq, collection_id),
        ).fetchone()[0]

    def ops(self, collection_id: str) -> int:
        """Record operations (records added, updated, upserted or deleted) since creation."""
        with self._thread_lock:
            row = self._conn.execute("SELECT ops FROM collections WHERE id = ?", (collection_id,)).fetchone()
        return 0 if row is None else row[0]

    def state(self, collection_id: str) -> tuple[int, int, int | None] | None:
        """(version, lake_seq, dimension) of a collection, or None when it is gone."""
        with self._thread_lock:
            return self._conn.execute(
                "SELECT version, lake_seq, dimension FROM collections WHERE id = ?", (collection_id,)
            ).fetchone()

    def reset(self, db: sqlite3.Connection) -> None:
        for table in ("collections", "columns", "pending", "lake_log", "tenants", "databases"):
            db.execute(f"DELETE FROM {table}")
        db.execute("INSERT INTO tenants VALUES (?, 0)", (DEFAULT_TENANT,))
        db.execute("INSERT INTO databases VALUES (?, ?, ?, 0)", (DEFAULT_DATABASE_ID, DEFAULT_TENANT, DEFAULT_DATABASE))

    # -- tenants and databases ---------------------------------------------------------
    def _next_created(self, db: sqlite3.Connection) -> int:
        return db.execute(
            "INSERT INTO counters VALUES ('created', 1) ON CONFLICT(name) DO UPDATE SET value = counters.value + 1"
            " RETURNING value"
        ).fetchone()[0]

    def tenant_exists(self, name: str) -> bool:
        with self._thread_lock:
            return self._conn.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)).fetchone() is not None

    def insert_tenant(self, db: sqlite3.Connection, name: str) -> None:
        db.execute("INSERT INTO tenants VALUES (?, ?)", (name, self._next_created(db)))

    def get_database(self, tenant: str, name: str) -> tuple[str, str, str] | None:
        """(id, name, tenant) of a database, or None."""
        with self._thread_lock:
            return self._conn.execute(
                "SELECT id, name, tenant FROM databases WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()

    def list_databases(self, tenant: str, limit: int | None, offset: int | None) -> list[tuple[str, str, str]]:
        """(id, name, tenant) of a tenant's databases, by name (as chromadb lists them)."""
        with self._thread_lock:
            return self._conn.execute(
                "SELECT id, name, tenant FROM databases WHERE tenant = ? ORDER BY name LIMIT ? OFFSET ?",
                (tenant, NO_LIMIT if limit is None else limit, offset or 0),
            ).fetchall()

    def insert_database(self, db: sqlite3.Connection, database_id: str, tenant: str, name: str) -> None:
        db.execute("INSERT INTO databases VALUES (?, ?, ?, ?)", (database_id, tenant, name, self._next_created(db)))

    def delete_database(self, db: sqlite3.Connection, tenant: str, name: str) -> list[str]:
        """Delete a database and every collection in it; returns the collections' ids."""
        ids = [
            row[0]
            for row in db.execute("SELECT id FROM collections WHERE tenant = ? AND database = ?", (tenant, name))
        ]
        for collection_id in ids:
            self.delete(db, collection_id)
        db.execute("DELETE FROM databases WHERE tenant = ? AND name = ?", (tenant, name))
        return ids


def remove_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.remove(path)
