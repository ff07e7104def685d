"""The registry of a shared lake, in PostgreSQL (the database that holds DuckLake's catalog).

The same tables as a folder's SQLite registry (`engine/registry.py`, whose SQL this
class reuses), in a `vecduck` schema: collections, column maps, counters and the write
buffer. What SQLite gave through the file system comes from PostgreSQL here:

- the writer lock is a session advisory lock, so writers on every machine take turns;
- "did anyone else commit?" is a commit counter that every write transaction bumps
  (one short round trip per read call: a write acknowledged anywhere is seen at the next
  call everywhere);
- a broken connection (the server restarted, the network failed) is reopened at the next
  call; the call that met it fails with `ServiceUnavailableError` (HTTP 503), and a writer
  that lost its lock with the connection gives up its write.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

from vecduck.engine.location import scrub
from vecduck.engine.registry import (
    DEFAULT_DATABASE,
    DEFAULT_DATABASE_ID,
    DEFAULT_TENANT,
    LAYOUT,
    SCHEMA,
    Registry,
)
from vecduck.errors import ServiceUnavailableError

SCHEMA_NAME = "vecduck"
# The advisory lock keys (any two fixed 64-bit numbers): writers, and the one-time setup.
WRITER_LOCK = 0x7665636475636B01
SETUP_LOCK = 0x7665636475636B02
COMMITS = "SELECT value FROM counters WHERE name = 'commits'"


class _Connection:
    """A psycopg connection that speaks the registry's SQL (`?` parameters), reopened after
    a failure; every failure to reach the server is a ServiceUnavailableError."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None
        self.generation = 0  # bumped at every reconnect (a session lock does not survive one)
        self.round_trip: float | None = None  # seconds of the last `ping`
        self.pinned = 0  # open transactions and held session locks: no silent reconnect then

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.conninfo, autocommit=True, connect_timeout=5, options=f"-c search_path={SCHEMA_NAME}"
                )
            except psycopg.OperationalError as exc:
                raise ServiceUnavailableError(
                    f"The shared lake's catalog database is unreachable: {scrub(str(exc))}"
                ) from None
            self.generation += 1
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """Run one statement. A connection found dead by a statement that stands alone (no
        transaction open, no session lock held: `pinned` is 0) is replaced and the
        statement sent once more, so a process idle while the server restarted does not fail
        its next call; inside a transaction or a lock, the failure is the caller's."""
        for attempt in (0, 1):
            conn = self._live()
            try:
                return conn.execute(sql.replace("?", "%s"), params)
            except psycopg.OperationalError as exc:
                self._broken()
                if attempt or self.pinned:
                    raise ServiceUnavailableError(
                        f"The shared lake's catalog database failed: {scrub(str(exc))}"
                    ) from None
        raise AssertionError("unreachable")

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements sent without waiting for each answer (psycopg's pipeline mode): the
        server still runs them in order, each on a snapshot taken after the one before, and
        the client waits once, at the first result it reads or at the end. A one-record
        write's eight statements cost four round trips instead of eight (the lock with the
        counter, BEGIN with the key reservation, the buffer insert with the counter bump and
        COMMIT, the unlock). Only for a pinned connection
        (a lock held or a transaction open): its failures are the caller's, never resent."""
        assert self.pinned, "pipelines are for pinned connections"
        try:
            with self._live().pipeline():
                yield
        except psycopg.OperationalError as exc:
            self._broken()
            raise ServiceUnavailableError(f"The shared lake's catalog database failed: {scrub(str(exc))}") from None

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._live()
        try:
            with conn.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)
        except psycopg.OperationalError as exc:
            self._broken()
            raise ServiceUnavailableError(f"The shared lake's catalog database failed: {scrub(str(exc))}") from None

    def ping(self) -> float:
        """One round trip to the server, in seconds."""
        start = time.perf_counter()
        self.execute("SELECT 1").fetchone()
        self.round_trip = time.perf_counter() - start
        return self.round_trip

    def send(self, sql: str) -> bool:
        """Send one parameterless statement and return without waiting for its answer
        (`receive_value` reads it), so that the caller works while the server answers.
        False when it cannot go now: no idle connection, or it is pinned."""
        conn = self._conn
        if conn is None or conn.closed or self.pinned:
            return False
        pgconn = conn.pgconn
        if pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return False
        try:
            pgconn.send_query(sql.encode())
        except psycopg.Error:
            self._broken()
            return False
        return True

    def receive_value(self) -> str | None:
        """The first value of the answer to `send`'s statement; None when the connection
        failed meanwhile (it is then closed, and the next statement opens a new one)."""
        conn = self._conn
        assert conn is not None
        pgconn = conn.pgconn
        try:
            while True:  # wait for the whole answer on the socket, the GIL released
                pgconn.consume_input()
                if not pgconn.is_busy():
                    break
                select.select([pgconn.socket], [], [])
            result, value = pgconn.get_result(), None
            if result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK and result.ntuples:
                raw = result.get_value(0, 0)
                value = None if raw is None else bytes(raw).decode()
            while pgconn.get_result() is not None:  # the end of the answer
                pass
        except psycopg.Error:
            self._broken()
            return None
        if value is None:
            self._broken()
        return value

    def _broken(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        self._broken()


class SharedRegistry(Registry):
    """The registry of a shared lake (see the module docstring)."""

    WRITE_BEGIN = "BEGIN"
    SNAPSHOT_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, conninfo: str) -> None:
        self.path = conninfo
        self._conn = _Connection(conninfo)  # type: ignore[assignment]
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_generation = -1
        self._commits = -1
        self._setup()

    def _setup(self) -> None:
        """Create the schema and tables once (several processes may start together: the
        setup lock makes the later ones find it done)."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (SETUP_LOCK,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME}")
            for statement in SCHEMA.replace("BLOB", "BYTEA").replace("INTEGER", "BIGINT").split(";"):
                if statement.strip():
                    conn.execute(
                        statement.replace("CREATE TABLE IF NOT EXISTS ", f"CREATE TABLE IF NOT EXISTS {SCHEMA_NAME}.")
                    )
            conn.execute(f"INSERT INTO {SCHEMA_NAME}.tenants VALUES (?, 0) ON CONFLICT DO NOTHING", (DEFAULT_TENANT,))
            conn.execute(
                f"INSERT INTO {SCHEMA_NAME}.databases VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING",
                (DEFAULT_DATABASE_ID, DEFAULT_TENANT, DEFAULT_DATABASE),
            )
            conn.execute(f"INSERT INTO {SCHEMA_NAME}.counters VALUES ('layout', ?) ON CONFLICT DO NOTHING", (LAYOUT,))
            conn.execute(f"INSERT INTO {SCHEMA_NAME}.counters VALUES ('commits', 0) ON CONFLICT DO NOTHING")
        except BaseException:
            with suppress(ServiceUnavailableError):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def set_durability(self, durability: str) -> None:
        """PostgreSQL's commit is durable at the server ("fsync" and "process" alike);
        "none" lets the server acknowledge before its WAL reaches the disk."""
        if durability not in ("fsync", "process", "none"):
            raise ValueError(f"durability must be one of fsync, process, none, got {durability!r}")
        self._durability = durability

    def close(self) -> None:
        self._conn.close()  # type: ignore[attr-defined]

    @property
    def connection(self) -> _Connection:
        return self._conn  # type: ignore[return-value]

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Serialise writers of the lake across threads, processes and machines."""
        with self._thread_lock:
            if self._lock_depth == 0:
                commits = self._take_lock()
                self._lock_generation = self.connection.generation
                self._commits_at_lock = commits
                self.connection.pinned += 1
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    self._commits_at_lock = None
                    self.connection.pinned -= 1
                    if self.connection.generation == self._lock_generation:
                        with suppress(ServiceUnavailableError):
                            self._conn.execute("SELECT pg_advisory_unlock(?)", (WRITER_LOCK,))

    def _take_lock(self) -> int:
        """Take the writer lock and read the commit counter, in one round trip. A connection
        found dead is replaced once (its session, and any lock of it, ended with it)."""
        for attempt in (0, 1):
            self.connection.pinned += 1
            try:
                with self.connection.pipeline():
                    self._conn.execute("SELECT pg_advisory_lock(?)", (WRITER_LOCK,))
                    # read in the same round trip, on a snapshot taken once the lock is held
                    return int(self._conn.execute(COMMITS).fetchone()[0])
            except ServiceUnavailableError:
                if attempt:
                    raise
            finally:
                self.connection.pinned -= 1
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One atomic transaction; a writer whose connection (and so its lock) was lost
        meanwhile commits nothing."""
        with self._thread_lock:
            if self._lock_depth and self.connection.generation != self._lock_generation:
                raise ServiceUnavailableError("The catalog connection was lost during the write; nothing was written")
            self.connection.pinned += 1
            try:
                # pipelined: BEGIN goes with the first statement, the counter and COMMIT with the last
                with self.connection.pipeline():
                    self._conn.execute(self.WRITE_BEGIN)
                    yield self._conn
                    bumped = self._conn.execute(
                        "UPDATE counters SET value = value + 1 WHERE name = 'commits' RETURNING value"
                    )
                    self._conn.execute("COMMIT")  # pinned: a COMMIT is never resent on a new connection
                    commits = bumped.fetchone()[0]
            except BaseException:
                with suppress(ServiceUnavailableError, psycopg.Error):
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self.connection.pinned -= 1
            self._commits_at_lock = None  # our own commit moved the counter on
            if commits == self._commits + 1 and self.connection.generation == self._generation_seen:
                # nobody else committed since our last look: our own commit is no news
                # (the caller's read model already holds it), so the next call skips a catch-up
                self._commits = commits

    def changed_elsewhere(self) -> bool:
        """True when any process committed since the last call (one round trip)."""
        with self._thread_lock:
            generation = self.connection.generation
            if self._lock_depth and self._commits_at_lock is not None and generation == self._lock_generation:
                # read as the writer lock was taken: nobody else can have committed since
                commits, self._commits_at_lock = self._commits_at_lock, None
            else:
                commits = self._conn.execute(COMMITS).fetchone()[0]
            changed = commits != self._commits or generation != self._generation_seen
            self._commits = commits
            self._generation_seen = generation
        return changed

    def start_change_check(self) -> int | None:
        """Send `changed_elsewhere`'s round trip without waiting for its answer, so that a
        search on the read model runs while the catalog answers; `finish_change_check`
        must follow. The connection's generation to pass to it, or None when the check
        cannot be sent now (call `changed_elsewhere` instead)."""
        self._thread_lock.acquire()  # held until finish_change_check: the answer is awaited
        if self._lock_depth or not self.connection.send(COMMITS):
            self._thread_lock.release()
            return None
        return self.connection.generation

    def finish_change_check(self, generation: int) -> bool | None:
        """`changed_elsewhere`'s answer to the check `start_change_check` sent; None when
        it was lost (call `changed_elsewhere`, which reconnects)."""
        try:
            value = self.connection.receive_value()
            if value is None:
                return None
            commits = int(value)
            changed = commits != self._commits or generation != self._generation_seen
            self._commits = commits
            self._generation_seen = generation
            return changed
        finally:
            self._thread_lock.release()

    _generation_seen = -1
    _commits_at_lock: int | None = None  # the commit counter read as the writer lock was taken

    def ping(self) -> float:
        """The catalog's round-trip time in seconds (for /healthcheck and /metrics)."""
        with self._thread_lock:
            return self.connection.ping()

    @property
    def last_round_trip(self) -> float | None:
        return self.connection.round_trip
