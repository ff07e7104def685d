"""The DuckLake catalog: one table of Parquet files per collection, with snapshots.

In a local folder the catalog is a SQLite file (DuckLake's SQLite catalog admits
several processes) and the data are Parquet files under `data/`; a shared lake's
catalog is in PostgreSQL (see `engine/location.py`). The DuckDB extensions
come from registry packages pinned with duckdb, so the lake opens offline; DuckDB's
own installed extensions are the fallback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vecduck.engine.columns import BASE_COLUMNS, EMBEDDING_COLUMN, SQL_TYPES, ColumnMap
from vecduck.errors import CorruptedDataError, ServiceUnavailableError

if TYPE_CHECKING:
    from vecduck.engine.location import Location

LAKE = "lake"
T = TypeVar("T")


def quote(identifier: str) -> str:
    """A SQL identifier, quoted so that no name can change the statement."""
    return '"' + identifier.replace('"', '""') + '"'


def table_name(collection_id: str) -> str:
    return "c_" + collection_id.replace("-", "")


def _packaged_extension(package: str, file_name: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}"
    path = root / file_name
    return path if path.exists() else None


def _renamed_extension(package: str, file_name: str, load_name: str) -> Path | None:
    """A packaged extension copied under the name DuckDB loads it by (`sqlite_scanner`,
    `postgres_scanner`): loaded by path, an extension must carry its internal name."""
    source = _packaged_extension(package, file_name)
    if source is None:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vecduck" / "extensions"
    target = cache / f"v{duckdb.__version__}" / f"{load_name}.duckdb_extension"
    try:
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent)
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
    except OSError:
        return None
    return target


def load_extensions(con: duckdb.DuckDBPyConnection, shared: bool = False) -> None:
    """Load ducklake and sqlite (and for a shared lake postgres and httpfs) from the pinned
    packages, else from DuckDB's own install."""
    ducklake = _packaged_extension("duckdb_extension_ducklake", "ducklake.duckdb_extension")
    con.execute(f"LOAD '{ducklake}'" if ducklake else "LOAD ducklake")
    sqlite = _renamed_extension("duckdb_extension_sqlite", "sqlite.duckdb_extension", "sqlite_scanner")
    con.execute(f"LOAD '{sqlite}'" if sqlite else "LOAD sqlite")
    if shared:
        postgres = _renamed_extension("duckdb_extension_postgres", "postgres.duckdb_extension", "postgres_scanner")
        con.execute(f"LOAD '{postgres}'" if postgres else "LOAD postgres")
        httpfs = _packaged_extension("duckdb_extension_httpfs", "httpfs.duckdb_extension")
        con.execute(f"LOAD '{httpfs}'" if httpfs else "LOAD httpfs")


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never downloads anything."""
    return duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})


def retry_conflicts(action: Callable[[], T], attempts: int = 50) -> T:
    """Run a lake transaction again when another process committed first."""
    for attempt in range(attempts):
        try:
            return action()
        except duckdb.Error as exc:
            text = str(exc).lower()
            if attempt + 1 == attempts or not ("conflict" in text or "locked" in text or "busy" in text):
                raise
            time.sleep(min(0.005 * 2**attempt, 0.5))
    raise AssertionError("unreachable")


def open_readonly(
    path: str | os.PathLike[str], data_path: str | os.PathLike[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection with a store's lake attached read-only as `lake`: a
    vecduck folder, or a shared lake (`path` its PostgreSQL catalog, `data_path` its data).

    Each collection of the default database is a view `lake.<name>` (its records,
    metadata keys as columns). It shows what has reached the lake; `Client.flush()` or
    `close()` moves buffered writes there.
    """
    from vecduck.engine.location import LocalFolder, location_for

    location = location_for(path, data_path)
    if isinstance(location, LocalFolder) and not os.path.exists(os.path.join(location.folder, "lake.sqlite")):
        raise FileNotFoundError(f"No vecduck data folder at {os.fspath(path)!r}")
    con = connect()
    location.attach(con, "READ_ONLY")
    con.execute(f"USE {LAKE}")
    return con


def use_wal(catalog: str) -> None:
    """Put the SQLite catalog in WAL mode (a setting the file keeps), so that readers
    attached from other processes, a DuckDB CLI session say, never block our commits."""
    db = sqlite3.connect(catalog, timeout=60)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def attach(con: duckdb.DuckDBPyConnection, folder: str | os.PathLike[str], options: str = "") -> None:
    """Attach a folder's lake as `lake` on `con` (extensions loaded offline).

    Paths are absolute, and the data path given wins over the one the catalog recorded,
    so a folder opens from any working directory and after it was moved.
    """
    folder = os.path.abspath(os.fspath(folder))
    catalog = os.path.join(folder, "lake.sqlite")
    data = os.path.join(folder, "data") + os.sep
    load_extensions(con)
    extra = f", {options}" if options else ""
    con.execute(
        f"ATTACH 'ducklake:sqlite:{escape(catalog)}' AS {LAKE}"
        f" (DATA_PATH '{escape(data)}', OVERRIDE_DATA_PATH true{extra})"
    )


@dataclass
class RowsChange:
    """One collection's part of a lake commit (`Lake.replace_rows`)."""

    collection_id: str
    column_map: ColumnMap
    rows: pa.Table
    touched_keys: np.ndarray
    orphans_after: int | None = None
    view: str | None = None  # the view to (re)name after the collection, on its first commit


class Lake:
    """A DuckLake attached to one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, location: Location) -> None:
        self.con = con
        self.location = location
        location.attach(con)

    def ref(self, collection_id: str) -> str:
        return f"{LAKE}.{quote(table_name(collection_id))}"

    def read(self, sql: str, collection_id: str) -> pa.Table:
        """Rows of a collection's table; a missing or damaged data file is a CorruptedDataError
        (DuckDB's own errors for it range from IOException to a bare Thrift message)."""
        try:
            return self.con.execute(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise self._damaged(exc, collection_id) from exc

    def _damaged(self, exc: duckdb.Error, collection_id: str) -> Exception:
        """The error to raise for a failed statement on a collection's table."""
        text = str(exc).split("\n")[0]
        if any(word in text.lower() for word in ("conflict", "locked", "busy", "interrupt")):
            return exc
        if self.location.shared and unreachable(exc):
            from vecduck.engine.location import scrub

            return ServiceUnavailableError(f"The shared lake cannot be reached: {scrub(text)}")
        return damaged_error(self.location.data_directories()[0], collection_id, f"{type(exc).__name__}: {text}")

    def tables(self) -> set[str]:
        rows = self.con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE]).fetchall()
        return {row[0] for row in rows}

    def views(self) -> set[str]:
        rows = self.con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal", [LAKE]
        ).fetchall()
        return {row[0] for row in rows}

    def columns(self, collection_id: str) -> set[str]:
        rows = self.con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ?",
            [LAKE, table_name(collection_id)],
        ).fetchall()
        return {row[0] for row in rows}

    def has_table(self, collection_id: str) -> bool:
        return table_name(collection_id) in self.tables()

    def drop_table(self, name: str) -> None:
        retry_conflicts(lambda: self.con.execute(f"DROP TABLE IF EXISTS {LAKE}.{quote(name)}"))

    def create_view(self, view: str, collection_id: str) -> None:
        """A view named after the collection: its records without vecduck's internal columns."""
        retry_conflicts(
            lambda: self.con.execute(
                f"CREATE OR REPLACE VIEW {LAKE}.{quote(view)} AS"
                f" SELECT * EXCLUDE (_key, _seq) FROM {LAKE}.{quote(table_name(collection_id))}"
            )
        )

    def drop_view(self, view: str) -> None:
        retry_conflicts(lambda: self.con.execute(f"DROP VIEW IF EXISTS {LAKE}.{quote(view)}"))

    def ensure_table(self, collection_id: str, column_map: ColumnMap) -> None:
        """Create the collection's table and any metadata columns it lacks (inside a transaction)."""
        existing = self.columns(collection_id)
        if not existing:
            base = ", ".join(f"{quote(name)} {kind}" for name, kind in BASE_COLUMNS.items())
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {self.ref(collection_id)} ({base}, {quote(EMBEDDING_COLUMN)} FLOAT[])"
            )
            existing = self.columns(collection_id)
        for (_key, kind), column in sorted(column_map.items(), key=lambda item: item[1]):
            if column not in existing:
                self.con.execute(f"ALTER TABLE {self.ref(collection_id)} ADD COLUMN {quote(column)} {SQL_TYPES[kind]}")

    def replace_rows(
        self,
        collection_id: str,
        column_map: ColumnMap,
        rows: pa.Table,
        touched_keys: np.ndarray,
        orphans_after: int | None = None,
        view: str | None = None,
    ) -> None:
        """In one lake transaction: drop the rows of `touched_keys` (sorted), and with
        `orphans_after` every row written after that sequence; then insert `rows` (and,
        with `view`, name the collection's view).

        The key range lets DuckLake skip every file outside it by its column statistics:
        a batch of new records touches no existing file at all."""
        self.replace_many([RowsChange(collection_id, column_map, rows, touched_keys, orphans_after, view)])

    def replace_many(self, changes: Sequence[RowsChange]) -> None:
        """Several collections' `replace_rows` in one lake transaction: one commit, whose
        cost grows with the catalog, instead of one each (a flush of many collections)."""

        def commit() -> None:
            self.con.execute("BEGIN TRANSACTION")
            try:
                for change in changes:
                    self._change_rows(change)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise

        try:
            retry_conflicts(commit)
        except duckdb.Error as exc:
            if len(changes) == 1:
                raise self._damaged(exc, changes[0].collection_id) from exc
            raise  # the caller commits them one by one, which names the damaged one

    def _change_rows(self, change: RowsChange) -> None:
        """One collection's part of a lake transaction (see replace_rows)."""
        ref, keys = self.ref(change.collection_id), change.touched_keys
        self.ensure_table(change.collection_id, change.column_map)
        try:
            if change.orphans_after is not None:
                self.con.execute(f"DELETE FROM {ref} WHERE _seq > ?", [change.orphans_after])
            if len(keys):
                self.con.register("_vecduck_gone", pa.table({"k": keys}))
                self.con.execute(
                    f"DELETE FROM {ref} WHERE _key BETWEEN ? AND ? AND _key IN (SELECT k FROM _vecduck_gone)",
                    [int(keys[0]), int(keys[-1])],
                )
            if change.rows.num_rows:
                self.con.register("_vecduck_rows", change.rows)
                names = ", ".join(quote(name) for name in change.rows.column_names)
                self.con.execute(f"INSERT INTO {ref} ({names}) SELECT {names} FROM _vecduck_rows")
        finally:
            self.con.unregister("_vecduck_gone")
            self.con.unregister("_vecduck_rows")
        if change.view is not None:
            self.con.execute(
                f"CREATE OR REPLACE VIEW {LAKE}.{quote(change.view)} AS SELECT * EXCLUDE (_key, _seq) FROM {ref}"
            )

    def fork_table(self, parent_id: str, fork_id: str, column_map: ColumnMap) -> None:
        """The fork's table: the parent's current rows, sharing its Parquet files.

        In one lake transaction: a table of the same columns, each of the parent's data
        files hard-linked into it (`ducklake_add_data_files`; DuckLake then owns the link,
        so compacting or dropping either table never removes the other's files), the rows
        the parent has deleted since deleted again, and rows the parent keeps in the
        catalog rather than in files (DuckLake's inlined data) copied."""
        parent, fork = self.ref(parent_id), self.ref(fork_id)
        files = [
            row[0]
            for row in self.con.execute(
                "SELECT data_file FROM ducklake_list_files(?, ?)", [LAKE, table_name(parent_id)]
            ).fetchall()
        ]
        folder = self.location.link_folder(table_name(fork_id))
        links: list[str] = []

        def commit() -> None:
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.ensure_table(fork_id, column_map)
                for source in files if folder is not None else []:
                    os.makedirs(folder, exist_ok=True)
                    link = os.path.join(folder, f"fork-{uuid.uuid4().hex}.parquet")
                    os.link(source, link)  # the same blocks on disk: a fork costs no space
                    links.append(link)
                    # allow_missing: a file written before a metadata column was added lacks it
                    self.con.execute(
                        "CALL ducklake_add_data_files(?, ?, ?, allow_missing => true)",
                        [LAKE, table_name(fork_id), link],
                    )
                # a row is the same row when its key and write number are (an update keeps the key)
                self.con.execute(f"DELETE FROM {fork} WHERE (_key, _seq) NOT IN (SELECT _key, _seq FROM {parent})")
                names = ", ".join(quote(name) for name in self.columns(parent_id))
                self.con.execute(
                    f"INSERT INTO {fork} ({names}) SELECT {names} FROM {parent}"
                    f" WHERE (_key, _seq) NOT IN (SELECT _key, _seq FROM {fork})"
                )
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                for link in links:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(link)
                links.clear()
                raise

        try:
            retry_conflicts(commit)
        except duckdb.Error as exc:
            raise self._damaged(exc, parent_id) from exc

    def drop(self, collection_id: str) -> None:
        retry_conflicts(lambda: self.con.execute(f"DROP TABLE IF EXISTS {self.ref(collection_id)}"))


# How DuckDB words a failure to reach PostgreSQL or object storage (the postgres and
# httpfs extensions raise IOException or plain Error with libpq's or curl's text).
_UNREACHABLE = (
    "connection",
    "could not connect",
    "server closed",
    "terminating",
    "timed out",
    "timeout",
    "refused",
    "http error",
    "http get error",
    "http put error",
    "unable to connect",
    "no route",
)


def unreachable(exc: BaseException) -> bool:
    """Whether a DuckDB error says the catalog database or the object store was out of reach."""
    text = str(exc).lower()
    if "404" in text or "not found" in text or "no such file" in text:
        return False  # reached, and the file is not there: damaged, not unreachable
    return isinstance(exc, duckdb.IOException | duckdb.ConnectionException | duckdb.HTTPException) or any(
        word in text for word in _UNREACHABLE
    )


def escape(text: str) -> str:
    return text.replace("'", "''")


def damaged_error(data_path: str, collection_id: str, detail: str) -> CorruptedDataError:
    return CorruptedDataError(
        f"Collection {collection_id} cannot be read: a data file under"
        f" {data_path} is missing or damaged ({detail})."
        " The index is rebuilt from the table, but the table itself must be restored from a backup."
    )


def check_data_files(folder: str, collection_id: str) -> None:
    """Check, without attaching the lake, that every live Parquet file of a collection's
    table is whole: present, of its cataloged size, with Parquet's magic at both ends and
    its cataloged footer length, and a footer that parses to the cataloged row count.
    Raises CorruptedDataError otherwise.

    A process that answers from the read-model sidecars never reads these files, so this
    is what finds a damaged table at open (a few reads per file, no data pages)."""
    catalog = os.path.join(folder, "lake.sqlite")
    if not os.path.exists(catalog):
        return
    con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30)
    try:
        files = con.execute(
            "SELECT s.path, s.path_is_relative, t.path, t.path_is_relative, f.path, f.path_is_relative,"
            " f.file_size_bytes, f.footer_size, f.record_count"
            " FROM ducklake_data_file f JOIN ducklake_table t USING (table_id)"
            " JOIN ducklake_schema s ON s.schema_id = t.schema_id"
            " WHERE t.table_name = ? AND t.end_snapshot IS NULL AND f.end_snapshot IS NULL",
            (table_name(collection_id),),
        ).fetchall()
    except sqlite3.Error:
        return  # an older or foreign catalog layout: the lake read checks instead
    finally:
        con.close()
    for schema_path, schema_rel, table_path, table_rel, path, path_rel, size, footer, records in files:
        full = os.path.join(folder, "data")
        for part, relative in ((schema_path, schema_rel), (table_path, table_rel), (path, path_rel)):
            full = os.path.join(full, part) if relative else part
        try:
            with open(full, "rb") as f:
                head = f.read(4)
                actual = os.fstat(f.fileno()).st_size
                f.seek(max(0, actual - 8))
                tail = f.read(8)
        except OSError as exc:
            raise damaged_error(
                os.path.join(folder, "data"), collection_id, f"{os.path.basename(full)}: {exc.strerror}"
            ) from None
        whole = (
            actual == size
            and head == b"PAR1"
            and tail[4:] == b"PAR1"
            and (footer is None or int.from_bytes(tail[:4], "little") == footer)
        )
        if whole:
            try:  # the footer itself: Thrift that parses, with the cataloged row count
                whole = records is None or pq.read_metadata(full).num_rows == records
            except (OSError, pa.ArrowException):
                whole = False
        if not whole:
            raise damaged_error(
                os.path.join(folder, "data"),
                collection_id,
                f"{os.path.basename(full)} is not the file the catalog records",
            )
