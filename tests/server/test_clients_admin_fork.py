"""Tenants and databases, fork, indexing status, id-less adds and large writes against
`vecduck run`, through chromadb's official clients (`chromadb.HttpClient`,
`chromadb.AdminClient`), `vecduck.HttpClient` and raw REST calls.

Every test uses its own server (or a module one with its own folder), so the suite's shared
servers never see these tenants, databases or collections.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import chromadb.errors
import httpx
import numpy as np
import pytest
from conftest import HOST, Server

import vecduck
import vecduck.errors

API = "/api/v2"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the defaults (64 MiB body limit), for this module only."""
    server = Server(tmp_path_factory.mktemp("admin-fork") / "data").start()
    yield server
    assert server.stop() == 0, server.log()


def chroma(server: Server, tenant: str = "default_tenant", database: str = "default_database") -> Any:
    return chromadb.HttpClient(
        host=HOST,
        port=server.port,
        tenant=tenant,
        database=database,
        settings=chromadb.Settings(anonymized_telemetry=False),
    )


def admin(server: Server) -> Any:
    return chromadb.AdminClient(
        chromadb.Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=HOST,
            chroma_server_http_port=server.port,
            anonymized_telemetry=False,
        )
    )


def scope(tenant: str = "default_tenant", database: str = "default_database") -> str:
    return f"{API}/tenants/{tenant}/databases/{database}"


def nearest(vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> tuple[list[list[str]], np.ndarray]:
    """The `k` nearest ids by squared L2 (Chroma's `l2`), and their distances, with NumPy."""
    distances = ((queries[:, None, :].astype(np.float64) - vectors[None, :, :]) ** 2).sum(axis=2)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order], np.take_along_axis(distances, order, axis=1)


def everything(collection: Any) -> dict[str, Any]:
    """All records of a collection, by id: (embedding, document, metadata)."""
    got = collection.get(include=["embeddings", "documents", "metadatas"])
    return {
        record_id: (np.asarray(got["embeddings"][i]).tolist(), got["documents"][i], got["metadatas"][i])
        for i, record_id in enumerate(got["ids"])
    }


# -- tenants and databases ------------------------------------------------------------------------
def test_tenants_and_databases(running: Server) -> None:
    admins = admin(running)
    admins.create_tenant("acme-corp")
    assert admins.get_tenant("acme-corp")["name"] == "acme-corp"
    with pytest.raises(chromadb.errors.ChromaError, match="already exists"):
        admins.create_tenant("acme-corp")
    with pytest.raises(chromadb.errors.NotFoundError):
        admins.get_tenant("nobody-corp")
    # the default tenant and database are there from the start
    assert admins.get_tenant("default_tenant")["name"] == "default_tenant"
    assert [d["name"] for d in admins.list_databases(tenant="default_tenant")] == ["default_database"]
    assert admins.list_databases(tenant="acme-corp") == []

    names = [f"db-{n}" for n in range(5)]
    for name in names:
        admins.create_database(name, tenant="acme-corp")
    listed = admins.list_databases(tenant="acme-corp")
    assert sorted(d["name"] for d in listed) == names
    assert all(d["tenant"] == "acme-corp" for d in listed)
    ids = [str(d["id"]) for d in listed]
    assert len(set(ids)) == 5 and all(uuid.UUID(i) for i in ids)
    for entry in listed:
        got = admins.get_database(entry["name"], tenant="acme-corp")
        assert (str(got["id"]), got["name"], got["tenant"]) == (str(entry["id"]), entry["name"], "acme-corp")

    # paging: the pages put together are the whole list, in the same order
    pages = [admins.list_databases(limit=2, offset=offset, tenant="acme-corp") for offset in (0, 2, 4, 6)]
    assert [len(page) for page in pages] == [2, 2, 1, 0]
    assert [d["name"] for page in pages for d in page] == [d["name"] for d in listed]
    assert [d["name"] for d in admins.list_databases(limit=3, tenant="acme-corp")] == [d["name"] for d in listed[:3]]
    assert [d["name"] for d in admins.list_databases(offset=3, tenant="acme-corp")] == [d["name"] for d in listed[3:]]

    # refusals
    with pytest.raises(chromadb.errors.ChromaError, match="already exists"):
        admins.create_database("db-0", tenant="acme-corp")
    with pytest.raises(chromadb.errors.NotFoundError):
        admins.create_database("db-0", tenant="nobody-corp")
    with pytest.raises(chromadb.errors.NotFoundError):
        admins.get_database("db-none", tenant="acme-corp")
    with pytest.raises(chromadb.errors.NotFoundError):
        admins.get_database("db-0", tenant="default_tenant")  # names belong to their tenant
    with pytest.raises(chromadb.errors.NotFoundError):
        admins.delete_database("db-none", tenant="acme-corp")
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        admins.create_tenant("ab")  # chromadb's rule: at least 3 characters
    # a database name is unique within its tenant only
    admins.create_database("db-0", tenant="default_tenant")
    assert admins.get_database("db-0", tenant="default_tenant")["tenant"] == "default_tenant"
    assert len(admins.list_databases(tenant="acme-corp")) == 5

    # clients on missing tenants or databases are refused when made
    with pytest.raises(chromadb.errors.NotFoundError):
        chroma(running, "nobody-corp", "db-0")
    with pytest.raises(chromadb.errors.NotFoundError):
        chroma(running, "acme-corp", "db-none")
    assert chroma(running, "acme-corp", "db-4").count_collections() == 0

    for name in names:
        admins.delete_database(name, tenant="acme-corp")
    admins.delete_database("db-0", tenant="default_tenant")
    assert admins.list_databases(tenant="acme-corp") == []
    assert [d["name"] for d in admins.list_databases(tenant="default_tenant")] == ["default_database"]


def test_databases_isolate_collections(running: Server) -> None:
    admins = admin(running)
    admins.create_tenant("iso-tenant")
    admins.create_database("alpha-db", tenant="iso-tenant")
    admins.create_database("beta-db", tenant="iso-tenant")
    alpha = chroma(running, "iso-tenant", "alpha-db")
    beta = chroma(running, "iso-tenant", "beta-db")
    home = chroma(running)  # default tenant and database

    # the same name in three databases: three collections, with their own records and dimensions
    a = alpha.create_collection("shared-name", metadata={"db": "alpha"}, embedding_function=None)
    b = beta.create_collection("shared-name", metadata={"db": "beta"}, embedding_function=None)
    h = home.create_collection("shared-name", metadata={"db": "home"}, embedding_function=None)
    assert len({a.id, b.id, h.id}) == 3
    a.add(ids=["x", "y"], embeddings=[[1, 0], [0, 1]], documents=["alpha x", "alpha y"])
    b.add(ids=["x"], embeddings=[[1, 2, 3]], documents=["beta x"])
    h.add(ids=["z"], embeddings=[[1, 2, 3, 4]], documents=["home z"])
    beta.create_collection("beta-only", embedding_function=None)
    assert alpha.get_collection("shared-name", embedding_function=None).metadata == {"db": "alpha"}
    assert beta.get_collection("shared-name", embedding_function=None).metadata == {"db": "beta"}
    assert a.get(ids=["x"])["documents"] == ["alpha x"] and b.get(ids=["x"])["documents"] == ["beta x"]
    assert (a.count(), b.count(), h.count()) == (2, 1, 1)
    assert sorted(c.name for c in beta.list_collections()) == ["beta-only", "shared-name"]
    assert [c.name for c in alpha.list_collections()] == ["shared-name"]
    assert (alpha.count_collections(), beta.count_collections()) == (1, 2)
    with pytest.raises(chromadb.errors.NotFoundError):
        alpha.get_collection("beta-only", embedding_function=None)
    with pytest.raises(chromadb.errors.NotFoundError):
        home.get_collection("beta-only", embedding_function=None)

    # a collection id is not reachable through another database's path
    for path in (f"/collections/{a.id}/count", f"/collections/{a.id}/get"):
        method = "GET" if path.endswith("count") else "POST"
        answer = httpx.request(method, running.url + scope("iso-tenant", "beta-db") + path, json={})
        assert answer.status_code == 404, answer.text
        answer = httpx.request(method, running.url + scope() + path, json={})
        assert answer.status_code == 404, answer.text
    answer = httpx.post(
        running.url + scope("iso-tenant", "beta-db") + f"/collections/{a.id}/add",
        json={"ids": ["intruder"], "embeddings": [[1, 1]]},
    )
    assert answer.status_code == 404 and a.count() == 2

    # a fork lands in its source's database; names taken elsewhere do not matter
    home.create_collection("home-only", embedding_function=None)
    with pytest.raises(chromadb.errors.ChromaError, match="already exists"):
        b.fork("beta-only")
    forked = b.fork("home-only")
    assert forked.get(include=["documents"])["documents"] == ["beta x"]
    assert sorted(c.name for c in beta.list_collections()) == ["beta-only", "home-only", "shared-name"]
    assert home.get_collection("home-only", embedding_function=None).count() == 0
    assert [c.name for c in alpha.list_collections()] == ["shared-name"]
    assert b.fork_count() == 1 and a.fork_count() == 0
    home.delete_collection("home-only")

    admins.delete_database("alpha-db", tenant="iso-tenant")
    # as chromadb: listing a deleted database finds nothing, creating in it is refused
    assert alpha.list_collections() == []
    with pytest.raises(chromadb.errors.NotFoundError):
        alpha.get_collection("shared-name", embedding_function=None)
    with pytest.raises(chromadb.errors.InvalidArgumentError, match="does not exist"):
        alpha.create_collection("shared-name-2", embedding_function=None)
    with pytest.raises(chromadb.errors.NotFoundError):
        a.count()
    with pytest.raises(chromadb.errors.NotFoundError):
        a.add(ids=["w"], embeddings=[[1, 1]])
    with pytest.raises(chromadb.errors.NotFoundError):
        chroma(running, "iso-tenant", "alpha-db")
    assert b.get(ids=["x"], include=["documents"])["documents"] == ["beta x"]
    assert h.query(query_embeddings=[[1, 2, 3, 4]], n_results=1)["ids"] == [["z"]]
    assert beta.count_collections() == 3 and home.get_collection("shared-name", embedding_function=None).count() == 1
    assert [d["name"] for d in admins.list_databases(tenant="iso-tenant")] == ["beta-db"]

    # made again, the database starts empty: nothing of the old one comes back
    admins.create_database("alpha-db", tenant="iso-tenant")
    again = chroma(running, "iso-tenant", "alpha-db")
    assert again.list_collections() == [] and again.count_collections() == 0
    fresh = again.create_collection("shared-name", embedding_function=None)
    assert fresh.id != a.id and fresh.count() == 0
    fresh.add(ids=["x"], embeddings=[[5, 5, 5, 5, 5]])  # a new dimension: nothing kept from before
    assert fresh.count() == 1

    admins.delete_database("alpha-db", tenant="iso-tenant")
    admins.delete_database("beta-db", tenant="iso-tenant")
    home.delete_collection("shared-name")


# -- fork -----------------------------------------------------------------------------------------
def test_fork(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    try:
        client = chroma(server)
        rng = np.random.default_rng(7)
        n, dim = 400, 8
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        ids = [f"r{i:03d}" for i in range(n)]
        parent = client.create_collection(
            "fork-src",
            metadata={"owner": "fork-test"},
            configuration={"hnsw": {"space": "l2"}},
            embedding_function=None,
        )
        parent.add(
            ids=ids[:390],
            embeddings=vectors[:390],
            documents=[f"document {i}" for i in range(390)],
            metadatas=[{"i": i, "even": i % 2 == 0, "tags": [f"t{i % 3}"]} for i in range(390)],
        )
        parent.query(query_embeddings=vectors[:1], n_results=1)  # the index holds these
        # a few more, written just before the fork (still buffered on the server)
        parent.add(
            ids=ids[390:],
            embeddings=vectors[390:],
            documents=[f"document {i}" for i in range(390, n)],
            metadatas=[{"i": i, "even": i % 2 == 0, "tags": [f"t{i % 3}"]} for i in range(390, n)],
        )
        parent.delete(ids=["r000"])  # and a deletion
        ids, vectors = ids[1:], vectors[1:]
        assert parent.fork_count() == 0

        fork = parent.fork("fork-dst")
        assert fork.name == "fork-dst" and fork.id != parent.id
        assert fork.metadata == {"owner": "fork-test"}
        assert fork.configuration_json["hnsw"]["space"] == "l2"
        assert client.get_collection("fork-dst", embedding_function=None).id == fork.id
        assert sorted(c.name for c in client.list_collections()) == ["fork-dst", "fork-src"]
        before = everything(parent)
        assert len(before) == n - 1 and everything(fork) == before
        assert fork.count() == parent.count() == n - 1
        assert before["r007"] == (vectors[6].tolist(), "document 7", {"i": 7, "even": False, "tags": ["t1"]})
        assert parent.fork_count() == fork.fork_count() == 1

        # right after the fork, both answer queries alike, and as NumPy does
        queries = rng.standard_normal((6, dim)).astype(np.float32)
        expected_ids, expected_distances = nearest(vectors, ids, queries, 5)
        for side in (parent, fork):
            answer = side.query(query_embeddings=queries, n_results=5, include=["distances", "documents"])
            assert answer["ids"] == expected_ids
            np.testing.assert_allclose(answer["distances"], expected_distances, rtol=1e-4, atol=1e-4)
            filtered = side.query(query_embeddings=queries, n_results=3, where={"even": True}, include=[])
            keep = [i for i, record_id in enumerate(ids) if int(record_id[1:]) % 2 == 0]
            assert filtered["ids"] == nearest(vectors[keep], [ids[i] for i in keep], queries, 3)[0]
        fork_answer = fork.query(query_embeddings=queries, n_results=5, include=["distances", "documents"])
        parent_answer = parent.query(query_embeddings=queries, n_results=5, include=["distances", "documents"])
        assert fork_answer["ids"] == parent_answer["ids"]
        assert fork_answer["documents"] == parent_answer["documents"]
        assert fork_answer["distances"] == parent_answer["distances"]

        # a fork of the fork, after writes of the fork's own: the fork's records then; one tree, two edges
        fork.add(ids=["f-early"], embeddings=[[0.25] * dim], documents=["before the grandchild"], metadatas=[{"i": -1}])
        fork.update(ids=["r010"], embeddings=vectors[9:10], metadatas=[{"i": -10}])
        at_second_fork = everything(fork)
        grandchild = fork.fork("fork-dst-2")
        assert everything(grandchild) == at_second_fork and len(at_second_fork) == n
        assert at_second_fork["r010"][2]["i"] == -10 and before["r010"][2]["i"] == 10
        assert parent.get(ids=["f-early"])["ids"] == [] and everything(parent) == before
        assert parent.fork_count() == fork.fork_count() == grandchild.fork_count() == 2

        # independent both ways: add, upsert, update, delete on one side are invisible on the other
        near = (queries[0] + 1e-3).reshape(1, dim)
        parent.add(ids=["p-new"], embeddings=near, documents=["parent only"])
        fork.add(ids=["f-new"], embeddings=near, documents=["fork only"])
        assert parent.get(ids=["f-new"])["ids"] == [] and fork.get(ids=["p-new"])["ids"] == []
        assert parent.query(query_embeddings=queries[:1], n_results=1)["ids"] == [["p-new"]]
        assert fork.query(query_embeddings=queries[:1], n_results=1)["ids"] == [["f-new"]]
        parent.update(
            ids=["r001"],
            embeddings=vectors[:1],
            metadatas=[{"i": None, "side": "parent"}],
            documents=["changed in parent"],
        )
        fork.update(ids=["r002"], embeddings=[[9.0] * dim], documents=["changed in fork"])
        parent.upsert(ids=["r003", "p-up"], embeddings=[[3.0] * dim, [4.0] * dim], metadatas=[{"up": 1}, {"up": 2}])
        fork.upsert(ids=["r004"], embeddings=[[5.0] * dim], metadatas=[{"up": 3}])
        parent.delete(ids=["r005"])
        fork.delete(where={"i": 6})
        p, f = everything(parent), everything(fork)
        assert p["r001"] == (before["r001"][0], "changed in parent", {"even": False, "tags": ["t1"], "side": "parent"})
        assert f["r001"] == before["r001"]
        assert f["r002"] == ([9.0] * dim, "changed in fork", before["r002"][2]) and p["r002"] == before["r002"]
        assert p["r003"][0] == [3.0] * dim and p["r003"][2]["up"] == 1 and f["r003"] == before["r003"]
        assert "p-up" in p and "p-up" not in f
        assert f["r004"][0] == [5.0] * dim and f["r004"][2]["up"] == 3 and p["r004"] == before["r004"]
        assert "r005" not in p and f["r005"] == before["r005"]
        assert "r006" not in f and p["r006"] == before["r006"]
        assert parent.count() == n - 1 + 2 - 1 and fork.count() == n - 1 + 1 + 1 - 1
        # the fork's own query sees its update, the parent's its own
        assert fork.query(query_embeddings=[[9.0] * dim], n_results=1)["ids"] == [["r002"]]
        assert parent.query(query_embeddings=[[9.0] * dim], n_results=1)["ids"] != [["r002"]]

        # the grandchild saw none of this
        assert everything(grandchild) == at_second_fork
        grandchild.add(ids=["g-new"], embeddings=[[0.5] * dim])
        assert fork.get(ids=["g-new"])["ids"] == [] and parent.get(ids=["g-new"])["ids"] == []
        # another collection's tree is separate
        lonely = client.create_collection("not-forked", embedding_function=None)
        assert lonely.fork_count() == 0

        # a name already taken is refused, and nothing changes
        for taken in ("fork-dst", "not-forked", "fork-src"):
            with pytest.raises(chromadb.errors.ChromaError, match="already exists"):
                parent.fork(taken)
        with pytest.raises(chromadb.errors.InvalidArgumentError):
            parent.fork("x")
        assert parent.fork_count() == 2 and client.count_collections() == 4
        assert everything(fork) == f

        # deleting the parent leaves the forks readable and queryable; the edges stay counted
        client.delete_collection("fork-src")
        with pytest.raises(chromadb.errors.NotFoundError):
            parent.count()
        assert everything(fork) == f and fork.count() == len(f)
        forked_ids = sorted(f)
        forked_vectors = np.array([f[i][0] for i in forked_ids], dtype=np.float32)
        expected_ids, expected_distances = nearest(forked_vectors, forked_ids, queries, 5)
        answer = fork.query(query_embeddings=queries, n_results=5)
        assert answer["ids"] == expected_ids
        np.testing.assert_allclose(answer["distances"], expected_distances, rtol=1e-4, atol=1e-4)
        assert fork.fork_count() == grandchild.fork_count() == 2
        fork.add(ids=["after-delete"], embeddings=[[7.0] * dim])
        assert fork.get(ids=["after-delete"])["ids"] == ["after-delete"]
        # and deleting the middle one leaves the grandchild whole
        grandchild_records = everything(grandchild)
        client.delete_collection("fork-dst")
        assert everything(grandchild) == grandchild_records
        assert grandchild.query(query_embeddings=[[0.5] * dim], n_results=1)["ids"] == [["g-new"]]
        assert grandchild.fork_count() == 2

        # after `vecduck compact` (the deleted collections' files go) and a restart, what is left is there
        assert server.stop() == 0, server.log()
        command = [sys.executable, "-m", "vecduck.cli", "compact", str(server.path), "--retention-days", "0"]
        compacted = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert compacted.returncode == 0, compacted.stdout + compacted.stderr
        server.start()
        client = chroma(server)
        assert sorted(c.name for c in client.list_collections()) == ["fork-dst-2", "not-forked"]
        reopened = client.get_collection("fork-dst-2", embedding_function=None)
        assert everything(reopened) == grandchild_records
        assert reopened.query(query_embeddings=[[0.5] * dim], n_results=1)["ids"] == [["g-new"]]
        assert reopened.fork_count() == 2
    finally:
        assert server.stop() == 0, server.log()


def test_fork_after_a_metadata_key_appears(running: Server) -> None:
    """A collection whose stored records predate a metadata key can still be forked."""
    client = chroma(running)
    source = client.create_collection("late-key-src", embedding_function=None)
    source.add(ids=[f"r{i}" for i in range(20)], embeddings=np.ones((20, 2)), metadatas=[{"i": i} for i in range(20)])
    first = source.fork("late-key-dst")  # the source's records are now in its table's files
    source.upsert(ids=["r0"], embeddings=[[5.0, 5.0]], metadatas=[{"late": 3}])  # a key those files lack
    first.upsert(ids=["r1"], embeddings=[[6.0, 6.0]], metadatas=[{"later": 4}])
    try:
        second = source.fork("late-key-dst-2")
        assert second.get(ids=["r0"])["metadatas"] == [{"i": 0, "late": 3}]
        assert second.count() == 20
        third = first.fork("late-key-dst-3")  # a fork of a fork
        assert third.get(ids=["r1"])["metadatas"] == [{"i": 1, "later": 4}]
        assert third.get(ids=["r0"])["metadatas"] == [{"i": 0}]
        assert source.fork_count() == 3
    finally:
        for name in ("late-key-src", "late-key-dst", "late-key-dst-2", "late-key-dst-3"):
            with contextlib.suppress(chromadb.errors.NotFoundError):
                client.delete_collection(name)


def test_fork_of_an_empty_collection(running: Server) -> None:
    client = chroma(running)
    empty = client.create_collection("empty-src", embedding_function=None)
    fork = empty.fork("empty-dst")
    assert fork.count() == 0 and empty.fork_count() == fork.fork_count() == 1
    # each side fixes its own dimension
    fork.add(ids=["a"], embeddings=[[1, 2, 3]])
    empty.add(ids=["b"], embeddings=[[1, 2, 3, 4, 5]])
    assert fork.get(include=["embeddings"])["embeddings"].shape == (1, 3)
    assert empty.get(include=["embeddings"])["embeddings"].shape == (1, 5)
    assert fork.get()["ids"] == ["a"] and empty.get()["ids"] == ["b"]
    with pytest.raises(chromadb.errors.InvalidArgumentError, match="dimension"):
        fork.add(ids=["c"], embeddings=[[1, 2, 3, 4, 5]])
    client.delete_collection("empty-src")
    client.delete_collection("empty-dst")


def test_fork_over_rest(running: Server) -> None:
    client = chroma(running)
    source = client.create_collection("rest-fork-src", embedding_function=None)
    source.add(ids=["a", "b"], embeddings=[[1, 0], [0, 1]], documents=["A", "B"])
    base = running.url + scope() + f"/collections/{source.id}"
    answer = httpx.post(base + "/fork", json={"new_name": "rest-fork-dst"})
    assert answer.status_code == 200, answer.text
    made = answer.json()
    assert made["name"] == "rest-fork-dst" and made["id"] != str(source.id)
    assert httpx.get(base + "/fork_count").json() == {"count": 1}
    answer = httpx.post(running.url + scope() + f"/collections/{made['id']}/get", json={"include": ["documents"]})
    assert answer.json()["ids"] == ["a", "b"] and answer.json()["documents"] == ["A", "B"]
    assert httpx.post(base + "/fork", json={"new_name": "rest-fork-dst"}).status_code == 409
    assert httpx.post(base + "/fork", json={}).status_code in (400, 422)
    assert httpx.post(base + "/fork", json={"new_name": 5}).status_code in (400, 422)
    missing = running.url + scope() + f"/collections/{uuid.uuid4()}"
    assert httpx.post(missing + "/fork", json={"new_name": "rest-fork-x"}).status_code == 404
    assert httpx.get(missing + "/fork_count").status_code == 404
    assert httpx.get(base + "/fork_count").json() == {"count": 1}
    client.delete_collection("rest-fork-src")
    client.delete_collection("rest-fork-dst")


# -- indexing status ------------------------------------------------------------------------------
def test_indexing_status(running: Server) -> None:
    client = chroma(running)
    collection = client.create_collection("indexing", embedding_function=None)

    def status() -> Any:
        found = collection.get_indexing_status()
        assert found.num_indexed_ops + found.num_unindexed_ops == found.total_ops
        assert 0 <= found.num_unindexed_ops <= found.total_ops
        expected = 1.0 if found.total_ops == 0 else found.num_indexed_ops / found.total_ops
        assert found.op_indexing_progress == pytest.approx(expected)
        return found

    empty = status()
    assert (empty.total_ops, empty.num_unindexed_ops, empty.op_indexing_progress) == (0, 0, 1.0)
    collection.add(ids=[f"id{i}" for i in range(5)], embeddings=np.eye(5, 4, dtype=np.float32))
    assert status().total_ops == 5
    collection.upsert(ids=["id0", "id1", "id9"], embeddings=[[1, 1, 1, 1]] * 3)  # two updated, one new
    assert status().total_ops == 8
    collection.update(ids=["id2", "id3"], metadatas=[{"k": 1}, {"k": 2}])
    assert status().total_ops == 10
    collection.delete(ids=["id4"])
    assert status().total_ops == 11
    collection.delete(where={"k": 2})
    assert status().total_ops == 12

    collection.query(query_embeddings=[[1, 0, 0, 0]], n_results=2)  # a read: the index takes everything
    done = status()
    assert (done.total_ops, done.num_indexed_ops, done.num_unindexed_ops) == (12, 12, 0)
    assert done.op_indexing_progress == 1.0

    collection.add(ids=["single"], embeddings=[[0, 0, 0, 2]])  # a single add may wait for the next read
    assert status().total_ops == 13
    assert collection.query(query_embeddings=[[0, 0, 0, 2]], n_results=1)["ids"] == [["single"]]
    assert status().op_indexing_progress == 1.0 and status().num_indexed_ops == 13

    # the REST route answers chromadb's field names
    answer = httpx.get(running.url + scope() + f"/collections/{collection.id}/indexing_status")
    assert answer.status_code == 200 and answer.json() == {
        "num_indexed_ops": 13,
        "num_unindexed_ops": 0,
        "total_ops": 13,
        "op_indexing_progress": 1.0,
    }
    client.delete_collection("indexing")
    with pytest.raises(chromadb.errors.NotFoundError):
        collection.get_indexing_status()


# -- add without ids --------------------------------------------------------------------------------
def assert_uuid4(values: list[str]) -> None:
    assert len(set(values)) == len(values)
    for value in values:
        assert isinstance(value, str)
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and str(parsed) == value


def test_add_without_ids_over_rest(running: Server) -> None:
    made = httpx.post(running.url + scope() + "/collections", json={"name": "rest-no-ids"})
    assert made.status_code == 200, made.text
    base = running.url + scope() + f"/collections/{made.json()['id']}"
    answer = httpx.post(
        base + "/add",
        json={"embeddings": [[1, 0], [0, 1], [1, 1]], "documents": ["one", "two", "three"], "metadatas": None},
    )
    assert answer.status_code in (200, 201), answer.text
    answer = httpx.post(base + "/add", json={"ids": None, "embeddings": [[2, 2]], "metadatas": [{"k": 4}]})
    assert answer.status_code in (200, 201), answer.text
    got = httpx.post(base + "/get", json={"include": ["documents", "embeddings", "metadatas"]}).json()
    assert len(got["ids"]) == 4
    assert_uuid4(got["ids"])
    by_document = dict(zip(got["documents"], got["ids"], strict=True))
    assert set(by_document) == {"one", "two", "three", None}
    one = httpx.post(base + "/get", json={"ids": [by_document["two"]], "include": ["documents", "embeddings"]}).json()
    assert one["documents"] == ["two"] and one["embeddings"] == [[0.0, 1.0]]
    assert httpx.get(base + "/count").json() == 4
    # upsert and update still need ids; an add still needs embeddings
    for mode in ("upsert", "update"):
        refused = httpx.post(base + f"/{mode}", json={"embeddings": [[1, 2]]})
        assert refused.status_code in (400, 422), (mode, refused.text)
    refused = httpx.post(base + "/add", json={"documents": ["no vector"]})
    assert refused.status_code in (400, 422), refused.text
    assert httpx.get(base + "/count").json() == 4
    httpx.delete(running.url + scope() + "/collections/rest-no-ids").raise_for_status()


def test_add_without_ids_through_clients(running: Server) -> None:
    client = vecduck.HttpClient(host=HOST, port=running.port)
    try:
        collection = client.create_collection("client-no-ids", embedding_function=None)
        collection.add(embeddings=[[1, 0], [0, 1]], documents=["left", "right"], metadatas=[{"s": 1}, {"s": 2}])
        collection.add(embeddings=np.ones((50, 2), dtype=np.float32))
        got = collection.get(include=["documents", "metadatas"])
        assert len(got["ids"]) == 52
        assert_uuid4(got["ids"])
        left = collection.get(where={"s": 1}, include=["documents", "embeddings"])
        assert left["documents"] == ["left"] and left["embeddings"].tolist() == [[1.0, 0.0]]
        assert collection.get(ids=left["ids"])["documents"] == ["left"]
        with pytest.raises(ValueError, match="in upsert"):
            collection.upsert(ids=None, embeddings=[[1, 2]])
        with pytest.raises(ValueError, match="in update"):
            collection.update(ids=None, embeddings=[[1, 2]])
        # chromadb's own client still refuses an add without ids, before any request
        official = chroma(running).get_collection("client-no-ids", embedding_function=None)
        with pytest.raises(TypeError):
            official.add(embeddings=[[1, 2]])
        assert official.count() == 52
        # and reads the generated ids like any others
        assert official.get(ids=left["ids"])["documents"] == ["left"]
        client.delete_collection("client-no-ids")
    finally:
        client.close()


# -- large writes -----------------------------------------------------------------------------------
def big_batch(n: int, dim: int = 4, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    vectors = np.random.default_rng(seed).random((n, dim), dtype=np.float32)
    return [f"row-{i}" for i in range(n)], vectors, [{"i": i, "half": i % 2} for i in range(n)]


def test_large_write_split_by_vecduck_client(tmp_path: Path) -> None:
    limit = 128 * 1024
    server = Server(tmp_path / "data", "--max-body-bytes", "128K").start()
    try:
        checks = httpx.get(server.url + API + "/pre-flight-checks").json()
        assert checks["max_body_bytes"] == limit
        assert checks["max_batch_size"] == 5461  # never below chromadb's, even when the body limit is this small
        ids, vectors, metadatas = big_batch(20_000)

        client = vecduck.HttpClient(host=HOST, port=server.port)
        try:
            collection = client.create_collection("big-split", embedding_function=None)
            # one request with all of it is too large for this server ...
            whole = {
                "ids": ids,
                "embeddings": vectors.tolist(),
                "metadatas": metadatas,
                "documents": None,
                "uris": None,
            }
            refused = httpx.post(server.url + scope() + f"/collections/{collection.id}/add", json=whole)
            assert refused.status_code == 413, refused.text[:200]
            assert collection.count() == 0
            # ... so vecduck's client splits it into requests that fit, and all of it arrives
            collection.add(ids=ids, embeddings=vectors, metadatas=metadatas)
            assert collection.count() == 20_000
            got = collection.get(include=["embeddings", "metadatas"])
            order = np.argsort([int(i.split("-")[1]) for i in got["ids"]])
            assert [got["ids"][j] for j in order] == ids
            np.testing.assert_array_equal(got["embeddings"][order], vectors)
            assert [got["metadatas"][j] for j in order] == metadatas
            assert collection.query(query_embeddings=vectors[12_345:12_346], n_results=1)["ids"] == [["row-12345"]]
            assert len(collection.get(where={"half": 1}, include=[])["ids"]) == 10_000

            # a single record larger than the limit is refused by the server, nothing written
            with pytest.raises(vecduck.errors.ChromaError, match="larger than the limit"):
                collection.add(ids=["huge"], embeddings=[[0, 0, 0, 0]], documents=["x" * (limit + 1)])
            assert collection.get(ids=["huge"])["ids"] == []

            # chromadb's client refuses this batch itself, by the advertised max_batch_size
            official = chroma(server)
            assert official.get_max_batch_size() == 5461
            theirs = official.get_collection("big-split", embedding_function=None)
            more_ids = [f"more-{i}" for i in range(20_000)]
            with pytest.raises(ValueError, match=r"Batch size 20000 exceeds maximum batch size 5461"):
                theirs.add(ids=more_ids, embeddings=vectors)
            assert theirs.count() == 20_000
            client.delete_collection("big-split")
        finally:
            client.close()
    finally:
        assert server.stop() == 0, server.log()


def test_chromadb_client_sends_20000_rows_to_a_default_server(running: Server) -> None:
    client = chroma(running)
    assert client.get_max_batch_size() == 64 * 1024 * 1024 // 2048
    ids, vectors, metadatas = big_batch(20_000, seed=1)
    collection = client.create_collection("big-official", embedding_function=None)
    collection.add(ids=ids, embeddings=vectors, metadatas=metadatas)  # one request
    assert collection.count() == 20_000
    sample = [ids[0], ids[9_999], ids[-1]]
    got = collection.get(ids=sample, include=["embeddings", "metadatas"])
    assert sorted(got["ids"]) == sorted(sample)
    for j, record_id in enumerate(got["ids"]):
        i = int(record_id.split("-")[1])
        np.testing.assert_array_equal(got["embeddings"][j], vectors[i])
        assert got["metadatas"][j] == metadatas[i]
    client.delete_collection("big-official")
