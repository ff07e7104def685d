"""Deleting a database: its collections go in one commit, a crash cannot leave half of them,
and their files are freed at the next compaction; other databases are untouched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import vecduck
from vecduck.sql import compact


def parquet_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in (folder / "data").rglob("*.parquet")}


def make(folder: Path) -> None:
    admin = vecduck.AdminClient(vecduck.Settings(is_persistent=True, persist_directory=str(folder)))
    admin.create_tenant("acme")
    admin.create_database("doomed", tenant="acme")
    admin.create_database("kept", tenant="acme")
    rng = np.random.default_rng(0)
    for database in ("doomed", "kept"):
        client = vecduck.PersistentClient(folder, tenant="acme", database=database)
        for name in ("one", "two"):
            collection = client.create_collection(name, embedding_function=None)
            collection.add(ids=[f"{name}{i}" for i in range(6_000)], embeddings=rng.random((6_000, 4)))
        client.close()
    admin.close()


CRASH = textwrap.dedent(
    """
    import os, sys, vecduck
    from vecduck.engine.lake import Lake
    admin = vecduck.AdminClient(vecduck.Settings(is_persistent=True, persist_directory=sys.argv[1]))
    Lake.drop = lambda *args, **kwargs: os._exit(9)  # die after the registry's commit, before the lake's drops
    admin.delete_database("doomed", tenant="acme")
    """
)


def test_delete_database_survives_a_crash_and_frees_files_at_compaction(tmp_path: Path) -> None:
    make(tmp_path)
    before = parquet_files(tmp_path)
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr

    admin = vecduck.AdminClient(vecduck.Settings(is_persistent=True, persist_directory=str(tmp_path)))
    assert [d["name"] for d in admin.list_databases(tenant="acme")] == ["kept"]  # the commit happened, whole
    kept = vecduck.PersistentClient(tmp_path, tenant="acme", database="kept")
    assert sorted(c.name for c in kept.list_collections()) == ["one", "two"]
    assert [kept.get_collection(n, embedding_function=None).count() for n in ("one", "two")] == [6_000, 6_000]
    kept.sql("SELECT 1").fetchall()  # attaches the lake: the deleted database's tables are dropped
    compact(kept._store_for_use(), 0)
    after = parquet_files(tmp_path)
    assert after < before and len(after) == len(before) // 2, (before, after)
    assert kept.get_collection("one", embedding_function=None).count() == 6_000
    kept.close()
    admin.close()


def test_a_recreated_database_starts_empty(tmp_path: Path) -> None:
    make(tmp_path)
    admin = vecduck.AdminClient(vecduck.Settings(is_persistent=True, persist_directory=str(tmp_path)))
    admin.delete_database("doomed", tenant="acme")
    admin.create_database("doomed", tenant="acme")
    client = vecduck.PersistentClient(tmp_path, tenant="acme", database="doomed")
    assert client.list_collections() == [] and client.count_collections() == 0
    assert client.create_collection("one", embedding_function=None).count() == 0
    client.close()
    admin.close()
