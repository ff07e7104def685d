"""The shared-lake fixtures give real services, and DuckDB runs a DuckLake on them.

The catalog is in the fixture's PostgreSQL, the Parquet files in the fixture's moto bucket;
the extensions come only from the registry packages. Expectations are computed in Python
and checked through independent clients (psycopg, boto3, pyarrow), not through DuckDB alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import duckdb
import pyarrow.fs
import pyarrow.parquet as pq
import pytest
from shared_lake import open_lake, retry_conflicts

if TYPE_CHECKING:  # annotations only: several test folders have a conftest module
    from conftest import Bucket, PostgresServer

psycopg = pytest.importorskip("psycopg", reason="psycopg is in the `shared` extra (the `dev` extra installs it)")

SCRIPT = Path(__file__).with_name("shared_lake.py")
ROWS = 10_000  # far above DuckLake's inlining limit, so the insert becomes a Parquet file


def run_script(*args: str, timeout: float = 120) -> dict[str, int]:
    """Run shared_lake.py in a second process (same AWS_* environment); its JSON answer."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def catalog_query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def arrow_s3(bucket: Bucket) -> pyarrow.fs.S3FileSystem:
    host = bucket.endpoint.split("://", 1)[1]
    return pyarrow.fs.S3FileSystem(access_key=bucket.key_id, secret_key=bucket.secret, region=bucket.region,
                                   endpoint_override=host, scheme="http")


def test_postgres_is_a_real_server_with_password_login(fresh_postgres_url: str) -> None:
    with psycopg.connect(fresh_postgres_url) as con:
        user, version, port = con.execute(
            "SELECT current_user, current_setting('server_version_num')::int, inet_server_port()").fetchone()
        con.execute("CREATE TABLE t (i bigint)")
        con.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        assert con.execute("SELECT sum(i) FROM t").fetchone()[0] == sum(range(1, 1001))
    assert user == "vecduck"
    assert version >= 130000
    assert f":{port}/" in fresh_postgres_url
    wrong = fresh_postgres_url.replace(f":{urlsplit(fresh_postgres_url).password}@", ":wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_fresh_databases_are_separate(postgres_server: PostgresServer, postgres_url: str,
                                      fresh_postgres_url: str) -> None:
    assert catalog_query(postgres_url, "SELECT current_database(), current_user") == [("vecduck", "vecduck")]
    other = postgres_server.create_database()
    assert other != fresh_postgres_url
    with psycopg.connect(fresh_postgres_url) as con:
        con.execute("CREATE TABLE only_here (i int)")
    assert catalog_query(other, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'") == [(0,)]
    postgres_server.drop_database(other)


def test_postgres_restart_keeps_data_and_port(restart_postgres: PostgresServer, fresh_postgres_url: str) -> None:
    with psycopg.connect(fresh_postgres_url) as con:
        con.execute("CREATE TABLE kept AS SELECT generate_series(1, 100) AS i")
    restart_postgres.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(fresh_postgres_url, connect_timeout=5).close()
    restart_postgres.start()
    assert catalog_query(fresh_postgres_url, "SELECT sum(i) FROM kept") == [(sum(range(1, 101)),)]


def test_s3_bucket_is_real(s3_bucket: Bucket) -> None:
    import boto3

    payload = bytes(range(256)) * 1000
    boto3.client("s3").put_object(Bucket=s3_bucket.name, Key="a/b.bin", Body=payload)  # endpoint from AWS_* env
    with arrow_s3(s3_bucket).open_input_stream(f"{s3_bucket.name}/a/b.bin") as stream:
        assert stream.read() == payload
    assert s3_bucket.keys() == ["a/b.bin"]


def test_ducklake_with_postgres_catalog_and_s3_data(fresh_postgres_url: str, s3_bucket: Bucket) -> None:
    data_path = f"s3://{s3_bucket.name}/lake/"
    con = open_lake(fresh_postgres_url, data_path)
    con.execute("CREATE TABLE lake.items (id BIGINT, v BIGINT)")
    con.execute(f"INSERT INTO lake.items SELECT i, i * i % 997 FROM range({ROWS}) r(i)")
    expected_ids, expected_v = sum(range(ROWS)), sum(i * i % 997 for i in range(ROWS))
    assert con.execute("SELECT count(*), sum(id), sum(v) FROM lake.items").fetchone() == (ROWS, expected_ids,
                                                                                         expected_v)
    # the data is Parquet in the bucket (listed by boto3, read by pyarrow) ...
    files = [key for key in s3_bucket.keys("lake/") if key.endswith(".parquet")]
    assert files
    s3 = arrow_s3(s3_bucket)
    tables = [pq.read_table(f"{s3_bucket.name}/{key}", filesystem=s3) for key in files]
    assert sum(t.num_rows for t in tables) == ROWS
    assert sum(sum(t.column("v").to_pylist()) for t in tables) == expected_v
    # ... and the catalog, in PostgreSQL, names those files
    catalog = catalog_query(fresh_postgres_url, "SELECT path, record_count FROM ducklake_data_file")
    assert sorted(Path(path).name for path, _ in catalog) == sorted(Path(key).name for key in files)
    assert sum(count for _, count in catalog) == ROWS
    con.close()
    # a second process attaching the same lake sees the rows
    assert run_script("count", fresh_postgres_url, data_path, "items") == {"count": ROWS, "sum": expected_ids}


def test_small_inserts_are_inlined_into_the_catalog(postgres_server: PostgresServer, fresh_postgres_url: str,
                                                    s3_bucket: Bucket) -> None:
    con = open_lake(fresh_postgres_url, f"s3://{s3_bucket.name}/inlined/")
    con.execute("CREATE TABLE lake.small (id BIGINT)")
    con.execute("INSERT INTO lake.small SELECT i FROM range(10) r(i)")  # the default limit: 10 rows
    assert s3_bucket.keys("inlined/") == []
    [(inlined_table,)] = catalog_query(fresh_postgres_url, "SELECT table_name FROM ducklake_inlined_data_tables")
    assert catalog_query(fresh_postgres_url, f"SELECT count(*) FROM {inlined_table}") == [(10,)]
    con.execute("INSERT INTO lake.small SELECT i FROM range(10, 21) r(i)")  # 11 rows: a Parquet file
    assert len(s3_bucket.keys("inlined/")) == 1
    assert con.execute("SELECT count(*), sum(id) FROM lake.small").fetchone() == (21, sum(range(21)))
    con.close()
    # DATA_INLINING_ROW_LIMIT 0 at ATTACH: even one row goes to Parquet
    other = postgres_server.create_database()
    con = open_lake(other, f"s3://{s3_bucket.name}/direct/", data_inlining_row_limit=0)
    con.execute("CREATE TABLE lake.small (id BIGINT)")
    con.execute("INSERT INTO lake.small VALUES (1)")
    assert len(s3_bucket.keys("direct/")) == 1
    con.close()
    postgres_server.drop_database(other)


def test_commit_conflict_is_a_transaction_exception(fresh_postgres_url: str, s3_bucket: Bucket) -> None:
    data_path = f"s3://{s3_bucket.name}/conflict/"
    first = open_lake(fresh_postgres_url, data_path)
    # set_option keeps the limit in the catalog, for every process that attaches later
    first.execute("CALL lake.set_option('data_inlining_row_limit', 0)")
    assert catalog_query(fresh_postgres_url, "SELECT value FROM ducklake_metadata "
                                             "WHERE key = 'data_inlining_row_limit'") == [("0",)]
    first.execute("CREATE TABLE lake.t AS SELECT i AS id FROM range(100) r(i)")
    second = open_lake(fresh_postgres_url, data_path)
    second.execute("INSERT INTO lake.t VALUES (100)")  # one row, yet a Parquet file: the stored limit applies
    assert len(s3_bucket.keys("conflict/")) == 2
    first.execute("BEGIN")
    second.execute("BEGIN")
    first.execute("DELETE FROM lake.t WHERE id < 10")
    second.execute("DELETE FROM lake.t WHERE id < 20")
    first.execute("COMMIT")
    with pytest.raises(duckdb.TransactionException, match="Transaction conflict - attempting to delete from file"):
        second.execute("COMMIT")
    _, retries = retry_conflicts(second, lambda: second.execute("DELETE FROM lake.t WHERE id < 20"))
    assert retries == 0
    expected = (81, sum(range(20, 101)))
    assert first.execute("SELECT count(*), sum(id) FROM lake.t").fetchone() == expected
    assert first.execute("SELECT count(id), sum(id) FROM lake.t").fetchone() == expected


@pytest.mark.xfail(strict=True, reason="duckdb/ducklake#1215 and #1084: an inlined delete and a Parquet delete "
                                       "file of the same rows both commit, and reads disagree afterwards")
def test_concurrent_inlined_and_file_deletes_conflict(fresh_postgres_url: str, s3_bucket: Bucket) -> None:
    data_path = f"s3://{s3_bucket.name}/overlap/"
    first, second = open_lake(fresh_postgres_url, data_path), open_lake(fresh_postgres_url, data_path)
    first.execute("CREATE TABLE lake.t AS SELECT i AS id FROM range(100) r(i)")  # a Parquet file
    first.execute("BEGIN")
    second.execute("BEGIN")
    first.execute("DELETE FROM lake.t WHERE id < 10")  # 10 rows: under the default limit, an inlined delete
    second.execute("DELETE FROM lake.t WHERE id < 20")  # 20 rows: a delete file
    first.execute("COMMIT")
    try:
        second.execute("COMMIT")
    except duckdb.TransactionException:
        expected = (90, sum(range(10, 100)))
    else:
        expected = (80, sum(range(20, 100)))
    assert first.execute("SELECT count(*), sum(id) FROM lake.t").fetchone() == expected
    assert first.execute("SELECT count(id), sum(id) FROM lake.t").fetchone() == expected


@pytest.mark.parametrize("rows", [5, 100], ids=["inlined", "parquet"])
def test_concurrent_inserts_from_two_processes_lose_no_row(fresh_postgres_url: str, s3_bucket: Bucket,
                                                           tmp_path: Path, rows: int) -> None:
    data_path = f"s3://{s3_bucket.name}/concurrent/"
    con = open_lake(fresh_postgres_url, data_path)
    con.execute("CREATE TABLE lake.items (id BIGINT, v BIGINT)")
    batches, workers = 15, 2
    gate = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), "insert", fresh_postgres_url, data_path, "items",
                               str(w), str(batches), str(rows), str(gate)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in range(workers)]
    time.sleep(1.0)  # let both attach, so that their inserts overlap
    gate.touch()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        answers.append(json.loads(out))
    total = workers * batches * rows
    # ids are disjoint ranges covering range(total); v is the writer
    assert con.execute("SELECT count(*), count(DISTINCT id), sum(id) FROM lake.items").fetchone() == (
        total, total, sum(range(total)))
    per_worker = dict(con.execute("SELECT v, count(*) FROM lake.items GROUP BY v").fetchall())
    assert per_worker == dict.fromkeys(range(workers), batches * rows)
    print("conflict retries per worker:", [a["retries"] for a in answers])


def test_attached_lake_recovers_after_postgres_restart(restart_postgres: PostgresServer, fresh_postgres_url: str,
                                                       s3_bucket: Bucket) -> None:
    data_path = f"s3://{s3_bucket.name}/restart/"
    con = open_lake(fresh_postgres_url, data_path)
    con.execute("CREATE TABLE lake.t AS SELECT i AS id FROM range(100) r(i)")
    restart_postgres.stop()
    with pytest.raises(duckdb.IOException, match="Unable to connect to Postgres"):
        con.execute("INSERT INTO lake.t VALUES (100)")
    restart_postgres.start()
    con.execute("INSERT INTO lake.t SELECT i FROM range(100, 200) r(i)")  # the same connection, no re-ATTACH
    assert con.execute("SELECT count(*), sum(id) FROM lake.t").fetchone() == (200, sum(range(200)))
    con.close()
    assert run_script("count", fresh_postgres_url, data_path, "t") == {"count": 200, "sum": sum(range(200))}
