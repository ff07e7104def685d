"""SQL over a folder's lake: sandboxed read-only queries, history (time travel) and maintenance.

`run_sql` answers `client.sql(...)`: every collection is a view named after it (metadata
keys as typed columns, `embedding` as FLOAT[]), on a DuckDB instance of its own that has
the lake attached READ_ONLY and then gives up file access (`enable_external_access =
false`, only the lake's own data folder allowed) and locks its configuration. Writes,
ATTACH, COPY, INSTALL/LOAD and file-reading table functions are refused by DuckDB itself;
on top of that only SELECT-like statements are accepted (so no temporary objects either)
and a plan that would scan a SQLite file (the sqlite extension, loaded for the lake's
catalog, opens files outside DuckDB's file system) is refused.

Small writes wait in the registry's write buffer, so each call first flushes it: SQL
sees every committed write. `as_of` reads an earlier DuckLake snapshot instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from vecduck.engine.lake import LAKE, connect, escape, quote, table_name
from vecduck.engine.registry import DEFAULT_DATABASE, DEFAULT_TENANT
from vecduck.errors import InvalidArgumentError

if TYPE_CHECKING:
    from vecduck.api.client import Client
    from vecduck.api.collection import Collection
    from vecduck.engine.location import Location
    from vecduck.engine.store import Store

AsOf = int | str | dt.datetime | None

#: Statement types `client.sql` runs; everything else is refused before DuckDB sees it.
_ALLOWED = {"StatementType.SELECT", "StatementType.EXPLAIN"}


class SQLAccessError(InvalidArgumentError, PermissionError):
    """`client.sql` was asked to write, or to reach beyond the collections (files, extensions)."""


# -- the sandbox -------------------------------------------------------------------------


def _snapshot_option(as_of: AsOf) -> str:
    if as_of is None:
        return ""
    if isinstance(as_of, bool):
        raise InvalidArgumentError("as_of must be a snapshot id (int) or a timestamp")
    if isinstance(as_of, int):
        return f", SNAPSHOT_VERSION {int(as_of)}"
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is None:
            as_of = as_of.astimezone()
        return f", SNAPSHOT_TIME '{as_of.isoformat()}'"
    if isinstance(as_of, str):
        dt.datetime.fromisoformat(as_of)  # reject anything that is not a timestamp
        return f", SNAPSHOT_TIME '{escape(as_of)}'"
    raise InvalidArgumentError("as_of must be a snapshot id (int) or a timestamp")


MEMORY = "memory"  # the catalog of an in-memory DuckDB instance


def catalog_for(views: dict[str, str] | None) -> str:
    """Where plain names resolve: the instance's own views when it has them, else the lake."""
    return LAKE if views is None else MEMORY


def sandbox(location: Location, as_of: AsOf = None, views: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh DuckDB instance with the folder's lake attached read-only as `lake`, then locked.

    After this, the instance can read the lake (catalog and `data/`) and nothing else on
    disk, and no setting can be changed back. `views` (name -> lake table) become
    temporary views, for snapshots older than a collection's lake view.
    """
    con = connect()
    location.attach(con, "READ_ONLY" + _snapshot_option(as_of))
    existing = {
        r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE]).fetchall()
    }
    # The views live in the instance's own (in-memory) catalog, which plain names resolve
    # to first; without them, plain names are the lake's own views (the default database's).
    for name, table in (views or {}).items():
        if table in existing:
            con.execute(
                f"CREATE OR REPLACE VIEW {MEMORY}.main.{quote(name)} AS"
                f" SELECT * EXCLUDE (_key, _seq) FROM {LAKE}.main.{quote(table)}"
            )
    con.execute(f"USE {catalog_for(views)}")
    con.execute("SET allowed_directories = ?", [location.data_directories()])
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


class _Sandboxes:
    """One locked DuckDB instance per open store and set of views (attaching costs ~0.3 s);
    a cursor per call. The default database's collections are the lake's own views; another
    database's are temporary views made with the instance (remade when its collections change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_store: weakref.WeakKeyDictionary[Any, dict[Any, duckdb.DuckDBPyConnection]] = (
            weakref.WeakKeyDictionary()
        )

    def cursor(self, store: Store, views: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
        signature = None if views is None else tuple(sorted(views.items()))
        with self._lock:
            known = self._by_store.get(store)
            if known is None:
                known = self._by_store[store] = {}
                weakref.finalize(store, _close_all_quietly, known)
            con = known.get(signature)
            if con is None:
                for stale in [key for key in known if key is not None]:  # one other set kept at a time
                    _close_quietly(known.pop(stale))
                con = known[signature] = sandbox(store.location, views=views)
        cur = con.cursor()
        cur.execute(f"USE {catalog_for(views)}")
        return cur


def _close_all_quietly(connections: dict[Any, duckdb.DuckDBPyConnection]) -> None:
    for con in connections.values():
        _close_quietly(con)


def _close_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(Exception):
        con.close()


SANDBOXES = _Sandboxes()


def _ensure_lake(store: Store) -> None:
    """Flush the write buffer so the lake holds every committed write (and exists)."""
    store.flush()
    _ = store.lake  # creates the catalog on a folder that never reached the lake


def _check_statement(con: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.PermissionException as exc:  # IMPORT DATABASE reads its files while parsing
        reason = str(exc).split("\n\nLINE")[0]
        raise SQLAccessError(f"client.sql cannot reach the file system or load extensions: {reason}") from None
    if len(statements) != 1:
        raise SQLAccessError(f"client.sql runs exactly one statement, got {len(statements)}")
    kind = str(statements[0].type)
    if kind not in _ALLOWED:
        name = kind.removeprefix("StatementType.")
        raise SQLAccessError(f"client.sql is read-only: {name} statements are refused (only SELECT queries run)")


def _check_plan(con: duckdb.DuckDBPyConnection, query: str, params: Any) -> None:
    """Refuse plans that scan SQLite files or PostgreSQL: the sqlite and postgres extensions
    (loaded for the lake's catalog) bypass DuckDB's file sandbox."""
    rows = con.execute(f"EXPLAIN (FORMAT json) {query}", params).fetchall()

    def names(nodes: Any) -> list[str]:
        found: list[str] = []
        for node in nodes if isinstance(nodes, list) else [nodes]:
            if isinstance(node, dict):
                found.append(str(node.get("name", "")))
                found.extend(names(node.get("children", [])))
        return found

    for _kind, plan in rows:
        for name in names(json.loads(plan)):
            if name.upper().startswith("SQLITE"):
                raise SQLAccessError("client.sql cannot read SQLite files (sqlite_scan / sqlite_query are refused)")
            if name.upper().startswith("POSTGRES"):
                raise SQLAccessError("client.sql cannot query PostgreSQL (postgres_scan / postgres_query are refused)")


def run_sql(
    client: Client, query: str, params: Sequence[Any] | dict[str, Any] | None = None, *, as_of: AsOf = None
) -> duckdb.DuckDBPyRelation:
    """Run one read-only DuckDB query over the client's collections; returns a lazy relation."""
    store = client._store_for_use()
    _ensure_lake(store)
    records = store.registry.list(client.tenant, client.database)
    views = {r.name: table_name(r.id) for r in records}
    if as_of is None:
        default = (client.tenant, client.database) == (DEFAULT_TENANT, DEFAULT_DATABASE)
        con = SANDBOXES.cursor(store, None if default else views)
    else:
        try:
            con = sandbox(store.location, as_of, views)
        except duckdb.Error as exc:
            raise InvalidArgumentError(f"No lake snapshot for as_of={as_of!r}: {exc}") from None
    _check_statement(con, query)
    try:
        if str(con.extract_statements(query)[0].type) == "StatementType.SELECT":
            _check_plan(con, query, params)
        return con.sql(query, params=params)
    except duckdb.PermissionException as exc:
        reason = str(exc).split("\n\nLINE")[0]
        raise SQLAccessError(f"client.sql cannot reach the file system or load extensions: {reason}") from None
    except duckdb.InvalidInputException as exc:
        if "read-only" in str(exc) or "configuration has been locked" in str(exc):
            raise SQLAccessError(f"client.sql is read-only: {exc}") from None
        raise


# -- history -----------------------------------------------------------------------------


@dataclass
class Version:
    """One DuckLake snapshot that touched a collection's table."""

    snapshot_id: int
    time: dt.datetime
    changes: list[str] = field(default_factory=list)
    rows_inserted: int | None = None
    rows_deleted: int | None = None


def _lake_table_exists(con: duckdb.DuckDBPyConnection, collection_id: str) -> bool:
    rows = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [LAKE, table_name(collection_id)]
    ).fetchall()
    return bool(rows)


def versions(collection: Collection, rows: bool = True) -> list[Version]:
    """The lake snapshots that changed this collection's table, oldest first.

    Buffered small writes reach the lake together (at 5,000 waiting rows or a flush), so
    one snapshot may hold several writes; this call flushes first. `rows` counts inserted
    and deleted row versions per snapshot (an upsert of an existing id counts as one
    delete and one insert).
    """
    store = collection._store
    cid = collection._record.id
    _ensure_lake(store)
    con = SANDBOXES.cursor(store)
    if not _lake_table_exists(con, cid):
        return []
    meta = f"__ducklake_metadata_{LAKE}"
    table_id, begin = con.execute(
        f"SELECT table_id, begin_snapshot FROM {meta}.ducklake_table WHERE table_name = ? AND end_snapshot IS NULL",
        [table_name(cid)],
    ).fetchone()
    snapshot_rows = con.execute(
        f"SELECT s.snapshot_id, s.snapshot_time, c.changes_made FROM {meta}.ducklake_snapshot s"
        f" JOIN {meta}.ducklake_snapshot_changes c USING (snapshot_id) WHERE s.snapshot_id >= ? ORDER BY 1",
        [begin],
    ).fetchall()
    mine = (f":{table_id}", f'"{table_name(cid)}"', f":{quote(collection.name)}")
    out: list[Version] = []
    for snapshot_id, time, made in snapshot_rows:
        changes = [part for part in (made or "").split(",") if part.endswith(mine) or part.split(":", 1)[-1] in mine]
        if snapshot_id == begin or changes:
            when = time if isinstance(time, dt.datetime) else dt.datetime.fromisoformat(str(time))
            out.append(Version(int(snapshot_id), when, [c.split(":", 1)[0] for c in changes]))
    if rows and out:
        counts = con.execute(
            "SELECT snapshot_id, change_type, count(*) FROM ducklake_table_changes(?, 'main', ?, ?, ?) GROUP BY ALL",
            [LAKE, table_name(cid), out[0].snapshot_id, out[-1].snapshot_id],
        ).fetchall()
        by_id = {v.snapshot_id: v for v in out}
        for v in out:
            v.rows_inserted, v.rows_deleted = 0, 0
        for snapshot_id, change, n in counts:
            v = by_id.get(int(snapshot_id))
            if v is None:
                continue
            if change in ("insert", "update_postimage"):
                v.rows_inserted = (v.rows_inserted or 0) + int(n)
            else:
                v.rows_deleted = (v.rows_deleted or 0) + int(n)
    return out


def read_as_of(
    collection: Collection,
    as_of: AsOf,
    where: dict[str, Any] | None = None,
    where_document: dict[str, Any] | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int | None = None,
    with_embeddings: bool = True,
) -> Any:
    """The collection's rows at an earlier snapshot, as an Arrow table in storage order.

    Columns: id, _key, document, uri, metadata (JSON), the typed metadata columns that
    existed then, and embedding when asked.
    """
    from vecduck.engine.filters import filter_sql

    store = collection._store
    cid = collection._record.id
    _ensure_lake(store)
    at = _at_clause(as_of)
    con = SANDBOXES.cursor(store)
    if not _lake_table_exists(con, cid):
        raise InvalidArgumentError(f"Collection {collection.name!r} has no lake history yet")
    params: list[Any] = []
    sql = filter_sql(where, where_document, store.get_collection_by_id(cid).columns, params)
    if ids is not None:
        sql += " AND id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(ids))
    drop = "_seq" if with_embeddings else "_seq, embedding"
    page = ""
    if limit is not None:
        page += " LIMIT ?"
        params.append(int(limit))
    if offset:
        page += " OFFSET ?"
        params.append(int(offset))
    try:
        return con.execute(
            f"SELECT * EXCLUDE ({drop}) FROM {LAKE}.{quote(table_name(cid))} {at} WHERE {sql} ORDER BY _key{page}",
            params,
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise InvalidArgumentError(f"Cannot read {collection.name!r} as of {as_of!r}: {exc}") from None


def _at_clause(as_of: AsOf) -> str:
    if isinstance(as_of, bool) or as_of is None:
        raise InvalidArgumentError("as_of must be a snapshot id (int) or a timestamp")
    if isinstance(as_of, int):
        return f"AT (VERSION => {int(as_of)})"
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is None:
            as_of = as_of.astimezone()
        return f"AT (TIMESTAMP => TIMESTAMPTZ '{as_of.isoformat()}')"
    if isinstance(as_of, str):
        dt.datetime.fromisoformat(as_of)
        return f"AT (TIMESTAMP => TIMESTAMPTZ '{escape(as_of)}')"
    raise InvalidArgumentError("as_of must be a snapshot id (int) or a timestamp")


# -- maintenance ---------------------------------------------------------------------------


@dataclass
class CompactReport:
    """What `compact` did: data files and bytes under `data/` before and after."""

    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    snapshots_expired: int


def compact(
    store: Store,
    retention: dt.timedelta | float | None = None,
    collection_id: str | None = None,
    delete_threshold: float = 0.2,
) -> CompactReport:
    """Flush the buffer, fold inlined rows into Parquet, rewrite files of which more than
    `delete_threshold` of the rows are deleted (upserts delete the old row version), merge
    small files, expire snapshots older than `retention` (seconds or timedelta, default 7
    days; 0 keeps only the current one) and delete the files nothing refers to any more.

    Snapshots belong to the whole folder, so expiring them affects every collection's
    history; merging and rewriting are limited to `collection_id` when given.
    """
    if retention is None:
        retention = dt.timedelta(days=7)
    elif not isinstance(retention, dt.timedelta):
        retention = dt.timedelta(seconds=float(retention))
    files_before, bytes_before = store.location.data_usage()
    store.flush()
    lake = store.lake
    con = lake.con
    cutoff = dt.datetime.now(dt.UTC) - retention
    with store._lock, store.registry.writer_lock():
        tables = (
            [table_name(collection_id)] if collection_id else sorted(t for t in lake.tables() if t.startswith("c_"))
        )
        for table in tables:
            if table not in lake.tables():
                continue
            con.execute(f"CALL ducklake_flush_inlined_data('{LAKE}', table_name => ?)", [table])
            con.execute(
                f"CALL ducklake_rewrite_data_files('{LAKE}', ?, delete_threshold => ?)", [table, delete_threshold]
            )
            con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}', ?)", [table])
        if retention.total_seconds() <= 0:
            current = con.execute(f"SELECT max(snapshot_id) FROM {LAKE}.snapshots()").fetchone()[0]
            expired = con.execute(
                f"SELECT snapshot_id FROM {LAKE}.snapshots() WHERE snapshot_id < ?", [current]
            ).fetchall()
            if expired:
                con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', versions => ?)", [[int(r[0]) for r in expired]])
            con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)")
        else:
            expired = con.execute(
                f"CALL ducklake_expire_snapshots('{LAKE}', older_than => ?::TIMESTAMPTZ)", [cutoff]
            ).fetchall()
            con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => ?::TIMESTAMPTZ)", [cutoff])
    files_after, bytes_after = store.location.data_usage()
    return CompactReport(files_before, files_after, bytes_before, bytes_after, len(expired))


def compact_command(path: str, retention_days: float, data_path: str | None = None) -> int:
    """`vecduck compact PATH [--data-path DATA]`: compact every collection of a persistent
    folder or of a shared lake (PATH its PostgreSQL catalog)."""
    from vecduck.api.client import PersistentClient
    from vecduck.engine.location import is_catalog_url, scrub

    if not is_catalog_url(path) and not os.path.exists(os.path.join(path, "vecduck.sqlite")):
        print(f"vecduck compact: no vecduck data folder at {path!r}")
        return 2
    client = PersistentClient(path, data_path=data_path)
    path = scrub(path)
    try:
        report = compact(client._store_for_use(), dt.timedelta(days=retention_days))
    finally:
        client.close()
    print(
        f"compacted {path}: {report.files_before} -> {report.files_after} files,"
        f" {report.bytes_before / 1e6:.1f} -> {report.bytes_after / 1e6:.1f} MB,"
        f" {report.snapshots_expired} snapshots expired"
    )
    return 0


__all__ = ["CompactReport", "SQLAccessError", "Version", "compact", "read_as_of", "run_sql", "sandbox", "versions"]
