"""A DuckLake with its catalog in PostgreSQL and its data in S3, opened by plain DuckDB.

The extensions come only from the pinned registry packages (never `INSTALL`, never the
network). Also a script, for the tests' second processes:
`python shared_lake.py count|insert POSTGRES_URL DATA_PATH [...]`, printing JSON.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import duckdb

T = TypeVar("T")


def packaged_extension(package: str, file_name: str) -> Path:
    """An extension binary shipped by a `duckdb-extension-*` package, for this DuckDB version."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / file_name
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def renamed_extension(source: Path, name: str) -> Path:
    """A copy of `source` named `<name>.duckdb_extension`: DuckDB derives the entry point from the file name."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vecduck" / "extensions"
    target = cache / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent)
        os.close(fd)
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return target


def extension_files() -> list[Path]:
    """ducklake, httpfs (for s3://) and postgres (loadable only as `postgres_scanner`)."""
    postgres = packaged_extension("duckdb_extension_postgres", "postgres.duckdb_extension")
    return [
        packaged_extension("duckdb_extension_ducklake", "ducklake.duckdb_extension"),
        packaged_extension("duckdb_extension_httpfs", "httpfs.duckdb_extension"),
        renamed_extension(postgres, "postgres_scanner"),
    ]


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def libpq_dsn(url: str) -> str:
    """`postgresql://user:pass@host:port/db` as libpq's `key=value` form, which DuckLake's ATTACH takes."""
    parts = urlsplit(url)
    fields = {
        "dbname": unquote(parts.path.lstrip("/")),
        "host": parts.hostname or "",
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }

    def value(text: str) -> str:
        if text and not any(c in text for c in " '\\"):
            return text
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={value(text)}" for key, text in fields.items() if text)


def s3_secret_sql(env: Mapping[str, str]) -> str:
    """CREATE SECRET of TYPE s3 from the standard AWS variables (endpoint as host:port, path style)."""
    endpoint = urlsplit(env["AWS_ENDPOINT_URL"])
    return (
        "CREATE OR REPLACE SECRET lake_s3 (TYPE s3"
        f", KEY_ID {sql_text(env['AWS_ACCESS_KEY_ID'])}"
        f", SECRET {sql_text(env['AWS_SECRET_ACCESS_KEY'])}"
        f", REGION {sql_text(env.get('AWS_REGION', 'us-east-1'))}"
        f", ENDPOINT {sql_text(endpoint.netloc)}"
        ", URL_STYLE 'path'"
        f", USE_SSL {'true' if endpoint.scheme == 'https' else 'false'})"
    )


def attach_sql(postgres_url: str, data_path: str, alias: str = "lake", **options: object) -> str:
    """ATTACH of a DuckLake whose catalog is the PostgreSQL database at `postgres_url`."""
    extra = "".join(f", {key.upper()} {value}" for key, value in options.items())
    return f"ATTACH {sql_text('ducklake:postgres:' + libpq_dsn(postgres_url))} AS {alias} " \
           f"(DATA_PATH {sql_text(data_path)}{extra})"


def open_lake(postgres_url: str, data_path: str, env: Mapping[str, str] | None = None,
              **options: object) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that downloads nothing, with the shared lake attached as `lake`."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for path in extension_files():
        con.execute(f"LOAD {sql_text(str(path))}")
    con.execute(s3_secret_sql(os.environ if env is None else env))
    con.execute(attach_sql(postgres_url, data_path, **options))
    return con


def is_conflict(exc: duckdb.Error) -> bool:
    """DuckLake's commit conflicts: `TransactionException`, "Transaction conflict - ..."."""
    return isinstance(exc, duckdb.TransactionException) or "conflict" in str(exc).lower()


def retry_conflicts(con: duckdb.DuckDBPyConnection, action: Callable[[], T], attempts: int = 100) -> tuple[T, int]:
    """Run `action` in a transaction again after a commit conflict; returns (result, retries)."""
    for attempt in range(attempts):
        try:
            con.execute("BEGIN")
            result = action()
            con.execute("COMMIT")
            return result, attempt
        except duckdb.Error as exc:
            # a failed COMMIT has already ended the transaction; otherwise end it here
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            if attempt + 1 == attempts or not is_conflict(exc):
                raise
            time.sleep(min(0.005 * 2**attempt, 0.25))
    raise AssertionError("unreachable")


def _main(argv: list[str]) -> None:
    command, postgres_url, data_path, *rest = argv
    con = open_lake(postgres_url, data_path)
    if command == "count":
        table = rest[0]
        count, total = con.execute(f"SELECT count(*), coalesce(sum(id), 0) FROM lake.{table}").fetchone()
        print(json.dumps({"count": count, "sum": int(total)}))
    elif command == "insert":
        # insert TABLE WORKER BATCHES ROWS GATE: wait for the GATE file, then one transaction per batch
        table, worker, batches, rows, gate = rest[0], int(rest[1]), int(rest[2]), int(rest[3]), Path(rest[4])
        while not gate.exists():
            time.sleep(0.01)
        retries = 0
        for batch in range(batches):
            first = (worker * batches + batch) * rows
            sql = f"INSERT INTO lake.{table} SELECT i, {worker} FROM range({first}, {first + rows}) r(i)"
            _, tries = retry_conflicts(con, lambda sql=sql: con.execute(sql))
            retries += tries
        print(json.dumps({"worker": worker, "retries": retries}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    _main(sys.argv[1:])
