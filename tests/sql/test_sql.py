"""client.sql: every collection as a view, read-only and sandboxed; history and compaction."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

import vecduck
from vecduck.cli import main as cli_main
from vecduck.sql import SQLAccessError


@pytest.fixture
def client(tmp_path: Path):
    c = vecduck.PersistentClient(path=tmp_path / "db")
    yield c
    c.close()


def _make_docs(client):
    col = client.create_collection("docs", embedding_function=None)
    n = 30
    vectors = np.eye(n, 4, dtype=np.float32) + 0.1
    col.add_df(
        pl.DataFrame(
            {
                "id": [f"d{i}" for i in range(n)],
                "embedding": vectors,
                "document": [f"text {i}" for i in range(n)],
                "style": [f"s{i % 3}" for i in range(n)],
                "year": [2000 + i for i in range(n)],
            }
        )
    )
    return col


@pytest.fixture
def docs(client):
    return _make_docs(client)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One folder for the refusal tests, which change nothing."""
    c = vecduck.PersistentClient(path=tmp_path_factory.mktemp("shared") / "db")
    _make_docs(c)
    yield c
    c.close()


def test_sql_sees_buffered_writes_with_typed_columns(client, docs):
    # 30 rows sit in the write buffer (< 5,000); client.sql still sees them
    rel = client.sql("SELECT style, count(*) AS n, max(year) AS last FROM docs GROUP BY 1 ORDER BY 1")
    assert rel.fetchall() == [("s0", 10, 2027), ("s1", 10, 2028), ("s2", 10, 2029)]
    assert rel.pl()["n"].to_list() == [10, 10, 10] and list(rel.df()["style"]) == ["s0", "s1", "s2"]
    assert rel.arrow().read_all().num_rows == 3  # .arrow(): Arrow record batches
    docs.add(ids=["late"], embeddings=[[0.0, 0.0, 0.0, 1.0]], metadatas=[{"style": "s9"}])
    assert client.sql("SELECT count(*) FROM docs WHERE style = ?", ["s9"]).fetchone() == (1,)


def test_vectors_usable_with_list_functions(client, docs):
    top = client.sql(
        "SELECT id, list_cosine_similarity(embedding, [1.1, 0.1, 0.1, 0.1]::FLOAT[]) AS sim"
        " FROM docs ORDER BY sim DESC LIMIT 1"
    ).fetchone()
    assert top[0] == "d0" and top[1] == pytest.approx(1.0, abs=1e-6)
    assert client.sql("SELECT array_length(embedding) FROM docs LIMIT 1").fetchone() == (4,)


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO docs (id) VALUES ('x')",
        "UPDATE docs SET style = 'x'",
        "DELETE FROM docs",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT 1",
        "DROP VIEW docs",
        "ATTACH '/tmp/vecduck-evil.db' AS evil",
        "COPY (SELECT * FROM docs) TO '/tmp/vecduck-evil.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "CALL ducklake_expire_snapshots('lake', versions => [1])",
        "SELECT 1; SELECT 2",
    ],
)
def test_writes_and_side_effects_refused(shared, query):
    with pytest.raises(SQLAccessError, match=r"read-only|exactly one statement"):
        shared.sql(query)
    assert shared.sql("SELECT count(*) FROM docs").fetchone() == (30,)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_parquet('/tmp/*.parquet')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_json('/etc/hostname')",
    ],
)
def test_file_system_unreachable(shared, query):
    with pytest.raises(SQLAccessError, match="file system"):
        shared.sql(query)


def _extension_file() -> str:
    found = sorted(Path(duckdb.__file__).parent.parent.rglob("*.duckdb_extension"))
    return str(found[0]) if found else "/tmp/vecduck-evil.duckdb_extension"


@pytest.mark.parametrize(
    "query",
    [
        f"LOAD '{_extension_file()}'",  # an extension by path
        "FORCE INSTALL httpfs",
        "INSTALL httpfs FROM 'http://127.0.0.1:9/'",
        "COPY docs FROM '/etc/passwd'",
        "COPY docs TO '/tmp/vecduck-evil.parquet' (FORMAT parquet)",
        "EXPORT DATABASE '/tmp/vecduck-evil-export'",
        "IMPORT DATABASE '/tmp'",
        "ATTACH ':memory:' AS m",
        "ATTACH 'ducklake:sqlite:/tmp/vecduck-evil.sqlite' AS evil",
        "DETACH lake",
        "USE memory",
        "SET lock_configuration = false",
        "RESET enable_external_access",
        "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
        "CHECKPOINT",
        "VACUUM",
        "PRAGMA enable_external_access",
        "SELECT * FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        "SELECT * FROM parquet_metadata('/etc/passwd')",
        "SELECT * FROM read_text('{folder}/vecduck.sqlite')",  # the registry, beside the lake
        "SELECT * FROM read_blob('{folder}/data/../vecduck.sqlite')",  # `..` out of data/
        "SELECT * FROM read_blob('{folder}/data/main/../../index/x.usearch')",
        "SELECT * FROM read_text('{folder}/data/../../../../../../etc/passwd')",
        "SELECT getenv('HOME')",
        "SELECT * FROM iceberg_scan('/tmp')",
    ],
)
def test_no_file_access_copy_attach_or_extensions(shared, query):
    """Every way out of the collections is refused, whether by vecduck's statement check,
    the sandbox (SQLAccessError), or DuckDB itself (file access off, extensions not loaded)."""
    before = set(Path("/tmp").iterdir())
    with pytest.raises((SQLAccessError, duckdb.PermissionException, duckdb.CatalogException, duckdb.ParserException)):
        shared.sql(query.format(folder=shared.path)).fetchall()
    assert set(Path("/tmp").iterdir()) - before == set()
    assert shared.sql("SELECT count(*) FROM docs").fetchone() == (30,)


def test_only_the_lake_is_readable(shared):
    """What the sandbox can read: the lake's Parquet files and its catalog (whose tables
    `versions()` shows anyway); nothing else under the folder or beyond."""
    folder = Path(shared.path)
    allowed = shared.sql("SELECT current_setting('allowed_directories')").fetchone()[0]
    assert str(folder / "data") + os.sep in allowed
    assert all(not str(folder).startswith(d) or d.startswith(str(folder / "data")) for d in allowed)
    files = shared.sql("SELECT count(*) FROM glob(?)", [str(folder / "data") + "/**/*.parquet"]).fetchone()[0]
    assert files >= 1


def test_no_replacement_scans_of_files_or_python_objects(shared):
    secret = pl.DataFrame({"x": [1]})  # noqa: F841 - a replacement scan would find it by name
    for query in ["SELECT * FROM '/etc/passwd'", "SELECT * FROM secret"]:
        with pytest.raises(duckdb.CatalogException, match="does not exist"):
            shared.sql(query)


def test_sqlite_files_unreachable(shared):
    client = shared
    registry = str(Path(client.path) / "vecduck.sqlite")
    for query in [
        f"SELECT * FROM sqlite_scan('{registry}', 'collections')",
        f"SELECT * FROM system.main.sqlite_scan('{registry}', 'collections')",
        f"SELECT * FROM query('SELECT * FROM sqlite_scan(''{registry}'', ''collections'')')",
        "SELECT * FROM sqlite_query('__ducklake_metadata_lake', 'SELECT 1')",
    ]:
        with pytest.raises(SQLAccessError):
            client.sql(query)
    with pytest.raises(SQLAccessError):
        client.sql(f"CALL sqlite_attach('{registry}')")


def test_time_travel_and_versions(client, docs):
    client.flush()
    first = docs.versions()
    assert first[0].rows_inserted == 30 and first[0].rows_deleted == 0
    before = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    docs.upsert(ids=["d0"], embeddings=[[1.0, 0.0, 0.0, 0.0]], metadatas=[{"style": "changed"}])
    docs.delete(ids=["d1"])
    history = docs.versions()
    assert len(history) == len(first) + 1
    assert history[-1].rows_deleted == 2 and history[-1].rows_inserted == 1  # d0 replaced, d1 gone
    old = first[-1].snapshot_id
    assert client.sql("SELECT count(*) FROM docs", as_of=old).fetchone() == (30,)
    assert client.sql("SELECT count(*) FROM docs").fetchone() == (29,)
    assert client.sql("SELECT style FROM docs WHERE id = 'd0'", as_of=before).fetchone() == ("s0",)
    got = docs.get(ids=["d0", "d1"], as_of=old, include=["metadatas", "embeddings"])
    assert got["ids"] == ["d0", "d1"] and got["metadatas"][0] == {"style": "s0", "year": 2000}
    np.testing.assert_allclose(got["embeddings"][0], [1.1, 0.1, 0.1, 0.1], rtol=1e-6)
    assert docs.get(ids=["d0", "d1"])["metadatas"] == [{"style": "changed", "year": 2000}]
    assert docs.to_polars(as_of=old, where={"style": "s0"}).height == 10


def test_compact_merges_files_and_expires(client, tmp_path):
    col = client.create_collection("many", embedding_function=None)
    for batch in range(4):
        n = 5_000
        col.add(ids=[f"{batch}-{i}" for i in range(n)], embeddings=np.random.default_rng(batch).random((n, 4)))
    col.upsert(ids=[f"0-{i}" for i in range(2_000)], embeddings=np.zeros((2_000, 4)) + 1)
    report = col.compact(retention=0)
    assert report.files_after < report.files_before
    assert len(col.versions()) == 1
    assert col.count() == 20_000
    assert client.sql("SELECT count(*), sum(embedding[1]) FROM many WHERE id LIKE '0-%'").fetchone()[0] == 5_000
    client.close()
    assert cli_main(["compact", str(tmp_path / "db"), "--retention-days", "0"]) == 0
    again = vecduck.PersistentClient(path=tmp_path / "db")
    assert again.get_collection("many").count() == 20_000
    again.close()
