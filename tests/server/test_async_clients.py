"""The async clients against `vecduck run`: `vecduck.AsyncHttpClient` and chromadb's own
`chromadb.AsyncHttpClient`, the same scenario on each, answers checked against NumPy.

pytest-asyncio is not used: each test runs its coroutine with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import chromadb
import chromadb.errors
import numpy as np
import pytest
from conftest import HOST, Server, free_port

import vecduck
import vecduck.errors


@dataclass(frozen=True)
class Flavour:
    """One async client and the classes that go with it."""

    name: str
    connect: Callable[..., Awaitable[Any]]
    not_found: type[BaseException]
    unique: type[BaseException]
    search: Any  # the Search, Knn and K classes of the client's library
    knn: Any
    key: Any


async def connect_vecduck(port: int, **scope: str) -> Any:
    return await vecduck.AsyncHttpClient(host=HOST, port=port, **scope)


async def connect_chromadb(port: int, **scope: str) -> Any:
    settings = chromadb.Settings(anonymized_telemetry=False)
    return await chromadb.AsyncHttpClient(host=HOST, port=port, settings=settings, **scope)


FLAVOURS = {
    "vecduck": Flavour(
        "vecduck",
        connect_vecduck,
        vecduck.errors.NotFoundError,
        vecduck.errors.ChromaError,  # vecduck.errors.UniqueConstraintError is one of these
        vecduck.Search,
        vecduck.Knn,
        vecduck.K,
    ),
    "chromadb": Flavour(
        "chromadb",
        connect_chromadb,
        chromadb.errors.NotFoundError,
        chromadb.errors.ChromaError,
        chromadb.Search,
        chromadb.Knn,
        chromadb.K,
    ),
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("async") / "data").start()
    yield server
    assert server.stop() == 0, server.log()


async def close(client: Any) -> None:
    """vecduck's async client has close(); chromadb's closes its pool when collected."""
    closer = getattr(client, "close", None)
    if closer is not None:
        result = closer()
        if asyncio.iscoroutine(result):
            await result


class Model:
    """What the collection should hold, kept with NumPy: ids in write order, vectors, metadata."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[np.ndarray, dict[str, Any], str]] = {}

    def write(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]], documents: list[str]) -> None:
        for i, record_id in enumerate(ids):
            self.records[record_id] = (vectors[i].astype(np.float32), metadatas[i], documents[i])

    def delete(self, ids: list[str]) -> None:
        for record_id in ids:
            self.records.pop(record_id, None)

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[str]:
        return [record_id for record_id, (_, meta, _) in self.records.items() if predicate(meta)]

    def nearest(
        self, queries: np.ndarray, k: int, only: list[str] | None = None
    ) -> tuple[list[list[str]], list[list[float]]]:
        ids = list(self.records) if only is None else only
        vectors = np.stack([self.records[i][0] for i in ids]).astype(np.float64)
        distances = ((queries[:, None, :].astype(np.float64) - vectors[None, :, :]) ** 2).sum(axis=2)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return [[ids[j] for j in row] for row in order], np.take_along_axis(distances, order, axis=1).tolist()


def check_query(answer: Any, expected: tuple[list[list[str]], list[list[float]]]) -> None:
    assert answer["ids"] == expected[0]
    np.testing.assert_allclose(np.asarray(answer["distances"], dtype=np.float64), expected[1], rtol=1e-4, atol=1e-5)


async def scenario(flavour: Flavour, port: int, admin: Any) -> None:
    client = await flavour.connect(port)
    prefix = f"async-{flavour.name}"
    rng = np.random.default_rng(11 if flavour.name == "vecduck" else 12)
    dim = 6
    model = Model()
    ops = 0  # record operations written, for the indexing status
    try:
        assert await client.heartbeat() > 0
        assert await client.get_max_batch_size() == 64 * 1024 * 1024 // 2048
        before = await client.count_collections()

        col = await client.create_collection(f"{prefix}-main", metadata={"topic": "async"}, embedding_function=None)
        assert col.name == f"{prefix}-main" and col.metadata == {"topic": "async"}
        with pytest.raises(flavour.unique, match="already exists"):
            await client.create_collection(f"{prefix}-main", embedding_function=None)
        with pytest.raises(flavour.not_found):
            await client.get_collection(f"{prefix}-none", embedding_function=None)
        same = await client.get_or_create_collection(f"{prefix}-main", embedding_function=None)
        assert same.id == col.id

        # add, in two writes
        ids = [f"id{i:02d}" for i in range(60)]
        vectors = rng.standard_normal((60, dim)).astype(np.float32)
        metadatas = [{"group": i % 3, "score": round(float(i) / 10, 1)} for i in range(60)]
        documents = [f"document number {i}" for i in range(60)]
        for part in (slice(0, 25), slice(25, 60)):
            await col.add(ids=ids[part], embeddings=vectors[part], metadatas=metadatas[part], documents=documents[part])
            model.write(ids[part], vectors[part], metadatas[part], documents[part])
        ops += 60
        assert await col.count() == 60

        # get with where, where_document, include
        got = await col.get(where={"group": 1}, include=["metadatas", "documents", "embeddings"])
        assert got["ids"] == model.matching(lambda m: m["group"] == 1)
        assert got["documents"] == [model.records[i][2] for i in got["ids"]]
        np.testing.assert_array_equal(
            np.asarray(got["embeddings"]), np.stack([model.records[i][0] for i in got["ids"]])
        )
        both = await col.get(where={"$and": [{"group": {"$ne": 0}}, {"score": {"$gte": 4.0}}]}, include=[])
        assert both["ids"] == model.matching(lambda m: m["group"] != 0 and m["score"] >= 4.0)
        assert (await col.get(where_document={"$contains": "number 42"}))["ids"] == ["id42"]
        assert (await col.get(limit=5, offset=10))["ids"] == ids[10:15]

        # query, plain and filtered, against NumPy
        queries = rng.standard_normal((4, dim)).astype(np.float32)
        check_query(await col.query(query_embeddings=queries, n_results=5), model.nearest(queries, 5))
        group2 = model.matching(lambda m: m["group"] == 2)
        answer = await col.query(query_embeddings=queries, n_results=4, where={"group": 2}, include=["distances"])
        check_query(answer, model.nearest(queries, 4, group2))

        # update: new vectors and metadata for some records
        changed = ["id03", "id07", "id11"]
        new_vectors = rng.standard_normal((3, dim)).astype(np.float32)
        new_metadatas = [{"group": 9, "score": -1.0}] * 3
        await col.update(ids=changed, embeddings=new_vectors, metadatas=new_metadatas, documents=["u3", "u7", "u11"])
        model.write(changed, new_vectors, new_metadatas, ["u3", "u7", "u11"])
        ops += 3
        assert (await col.get(where={"group": 9}))["ids"] == changed
        # upsert: two existing records, two new ones
        upserted = ["id05", "id50", "new-a", "new-b"]
        up_vectors = rng.standard_normal((4, dim)).astype(np.float32)
        up_metadatas = [{"group": 7, "score": float(i)} for i in range(4)]
        up_documents = ["up5", "up50", "up-a", "up-b"]
        await col.upsert(ids=upserted, embeddings=up_vectors, metadatas=up_metadatas, documents=up_documents)
        model.write(upserted, up_vectors, up_metadatas, up_documents)
        ops += 4
        got = await col.get(ids=upserted, include=["documents", "metadatas"])
        assert sorted(zip(got["ids"], got["documents"], strict=True)) == sorted(
            zip(upserted, up_documents, strict=True)
        )
        # delete by ids and by where
        await col.delete(ids=["id00", "id01", "no-such-id"])
        model.delete(["id00", "id01"])
        deleted = model.matching(lambda m: m["group"] == 0 and m["score"] > 5.0)
        await col.delete(where={"$and": [{"group": 0}, {"score": {"$gt": 5.0}}]})
        model.delete(deleted)
        ops += 2 + len(deleted)
        assert await col.count() == len(model.records) == 62 - 2 - len(deleted)
        everything = await col.get(include=["embeddings", "metadatas", "documents"])
        assert sorted(everything["ids"]) == sorted(model.records)
        for i, record_id in enumerate(everything["ids"]):
            vector, meta, document = model.records[record_id]
            np.testing.assert_array_equal(np.asarray(everything["embeddings"][i]), vector)
            assert everything["metadatas"][i] == meta and everything["documents"][i] == document
        check_query(await col.query(query_embeddings=queries, n_results=6), model.nearest(queries, 6))

        # peek: the first records in storage order
        peeked = await col.peek(limit=5)
        assert peeked["ids"] == everything["ids"][:5]
        assert np.asarray(peeked["embeddings"]).shape == (5, dim)

        # search with a Knn, plain and filtered
        search, knn, key = flavour.search, flavour.knn, flavour.key
        plan = search().rank(knn(query=queries[0].tolist())).limit(7).select(key.SCORE, key.DOCUMENT)
        found = await col.search(plan)
        expected_ids, expected_scores = model.nearest(queries[:1], 7)
        assert found["ids"] == expected_ids
        np.testing.assert_allclose(found["scores"][0], expected_scores[0], rtol=1e-4, atol=1e-5)
        assert found["documents"][0] == [model.records[i][2] for i in expected_ids[0]]
        plan = search().where(key("group") == 7).rank(knn(query=queries[1].tolist())).limit(10).select(key.SCORE)
        found = await col.search(plan)
        assert found["ids"] == model.nearest(queries[1:2], 10, model.matching(lambda m: m["group"] == 7))[0]

        # modify
        await col.modify(name=f"{prefix}-renamed", metadata={"topic": "async", "v": 2})
        assert col.name == f"{prefix}-renamed"
        renamed = await client.get_collection(f"{prefix}-renamed", embedding_function=None)
        assert renamed.id == col.id and renamed.metadata == {"topic": "async", "v": 2}
        with pytest.raises(flavour.not_found):
            await client.get_collection(f"{prefix}-main", embedding_function=None)

        # indexing status: every record operation counted; after a read the index has them all
        status = await col.get_indexing_status()
        assert status.total_ops == ops
        assert status.num_indexed_ops + status.num_unindexed_ops == ops
        await col.query(query_embeddings=queries[:1], n_results=1)
        status = await col.get_indexing_status()
        assert (status.num_indexed_ops, status.num_unindexed_ops, status.op_indexing_progress) == (ops, 0, 1.0)

        # fork: same records, then independent
        assert await col.fork_count() == 0
        fork = await col.fork(f"{prefix}-fork")
        assert fork.name == f"{prefix}-fork" and fork.id != col.id
        assert await fork.count() == len(model.records)
        forked = await fork.get(include=["embeddings", "metadatas", "documents"])
        assert forked["ids"] == everything["ids"] and forked["metadatas"] == everything["metadatas"]
        np.testing.assert_array_equal(np.asarray(forked["embeddings"]), np.asarray(everything["embeddings"]))
        check_query(await fork.query(query_embeddings=queries, n_results=6), model.nearest(queries, 6))
        await fork.add(ids=["fork-only"], embeddings=rng.standard_normal((1, dim)).astype(np.float32))
        await col.delete(ids=["id02"])
        assert (await col.get(ids=["fork-only"]))["ids"] == []
        assert (await fork.get(ids=["id02"]))["ids"] == ["id02"]
        assert await col.fork_count() == await fork.fork_count() == 1
        model.delete(["id02"])

        # list, count, delete collections
        names = [c.name for c in await client.list_collections()]
        assert {f"{prefix}-renamed", f"{prefix}-fork"} <= set(names)
        assert await client.count_collections() == before + 2
        page = await client.list_collections(limit=1, offset=1)
        assert [c.name for c in page] == names[1:2]
        await client.delete_collection(f"{prefix}-renamed")
        with pytest.raises(flavour.not_found):
            await col.count()
        assert await fork.count() == len(model.records) + 2  # the fork kept id02 and has fork-only
        await client.delete_collection(f"{prefix}-fork")
        assert await client.count_collections() == before

        # tenants and databases: set_tenant / set_database onto existing ones
        tenant, database = f"{prefix}-tenant", f"{prefix}-db"
        admin.create_tenant(tenant)
        admin.create_database(database, tenant=tenant)
        await client.create_collection(f"{prefix}-home", embedding_function=None)
        await client.set_tenant(tenant, database)
        assert (client.tenant, client.database) == (tenant, database)
        assert await client.count_collections() == 0
        away = await client.create_collection(f"{prefix}-home", embedding_function=None)  # same name, other db
        await away.add(ids=["t1"], embeddings=[[1.0, 2.0]])
        assert await away.count() == 1
        with pytest.raises((flavour.not_found, ValueError)):
            await client.set_tenant("nobody-tenant", database)
        with pytest.raises((flavour.not_found, ValueError)):
            await client.set_database("no-such-db")
        assert (client.tenant, client.database) == (tenant, database)  # unchanged after a refusal
        await client.set_tenant("default_tenant", "default_database")
        home = await client.get_collection(f"{prefix}-home", embedding_function=None)
        assert home.id != away.id and await home.count() == 0
        await client.delete_collection(f"{prefix}-home")
        # a client made on the other tenant and database sees its collection
        scoped = await flavour.connect(port, tenant=tenant, database=database)
        try:
            assert [c.name for c in await scoped.list_collections()] == [f"{prefix}-home"]
        finally:
            await close(scoped)
        admin.delete_database(database, tenant=tenant)
    finally:
        await close(client)


def admin_client(server: Server) -> Any:
    return chromadb.AdminClient(
        chromadb.Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=HOST,
            chroma_server_http_port=server.port,
            anonymized_telemetry=False,
        )
    )


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_async_scenario(running: Server, flavour: str) -> None:
    asyncio.run(scenario(FLAVOURS[flavour], running.port, admin_client(running)))


async def concurrent(flavour: Flavour, port: int) -> None:
    workers, batches, size, dim = 8, 5, 20, 8
    client = await flavour.connect(port)
    name = f"async-{flavour.name}-parallel"
    try:
        # the same get_or_create from many coroutines at once: one collection
        made = await asyncio.gather(*(client.get_or_create_collection(name, embedding_function=None) for _ in range(6)))
        assert len({c.id for c in made}) == 1
        collection = made[0]

        async def work(worker: int) -> list[str]:
            own = await flavour.connect(port) if worker % 2 else client  # shared and own clients
            try:
                mine = await own.get_collection(name, embedding_function=None)
                written: list[str] = []
                for batch in range(batches):
                    ids = [f"w{worker}-b{batch}-{i}" for i in range(size)]
                    vectors = np.random.default_rng(worker * 100 + batch).random((size, dim), dtype=np.float32)
                    await mine.add(ids=ids, embeddings=vectors, metadatas=[{"w": worker, "b": batch}] * size)
                    written += ids
                    seen = await mine.get(where={"w": worker}, include=[])
                    assert sorted(seen["ids"]) == sorted(written)
                    answer = await mine.query(query_embeddings=vectors[:2], n_results=1, where={"w": worker})
                    assert answer["ids"] == [[ids[0]], [ids[1]]]
                    await mine.count()
                # and an update and a delete of its own records
                await mine.update(ids=written[:3], metadatas=[{"w": worker, "b": -1}] * 3)
                await mine.delete(ids=written[-2:])
                return written[:-2]
            finally:
                if own is not client:
                    await close(own)

        kept = await asyncio.gather(*(work(w) for w in range(workers)))
        expected = sorted(record_id for ids in kept for record_id in ids)
        assert await collection.count() == len(expected) == workers * (batches * size - 2)
        got = await collection.get(include=["metadatas"])
        assert sorted(got["ids"]) == expected
        updated = await collection.get(where={"b": -1}, include=[])
        assert len(updated["ids"]) == workers * 3
        status = await collection.get_indexing_status()
        assert status.total_ops == workers * (batches * size + 3 + 2)

        # many collections created, written and dropped at once
        async def lifecycle(n: int) -> int:
            other = await client.create_collection(f"{name}-{n}", embedding_function=None)
            await other.add(ids=[str(uuid.uuid4()) for _ in range(n + 1)], embeddings=np.ones((n + 1, 3)))
            count = await other.count()
            await client.delete_collection(f"{name}-{n}")
            return count

        assert await asyncio.gather(*(lifecycle(n) for n in range(6))) == [n + 1 for n in range(6)]
        await client.delete_collection(name)
    finally:
        with contextlib.suppress(Exception):
            await client.delete_collection(name)
        await close(client)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_async_concurrent_writes(running: Server, flavour: str) -> None:
    asyncio.run(concurrent(FLAVOURS[flavour], running.port))


def test_vecduck_async_client_add_without_ids(running: Server) -> None:
    async def main() -> None:
        client = await vecduck.AsyncHttpClient(host=HOST, port=running.port)
        async with client:
            collection = await client.create_collection("async-no-ids", embedding_function=None)
            await collection.add(embeddings=[[1, 0], [0, 1], [1, 1]], documents=["a", "b", "c"])
            got = await collection.get(include=["documents"])
            assert len(set(got["ids"])) == 3 and all(uuid.UUID(i).version == 4 for i in got["ids"])
            by_document = dict(zip(got["documents"], got["ids"], strict=True))
            assert (await collection.get(ids=[by_document["b"]], include=["documents"]))["documents"] == ["b"]
            with pytest.raises(ValueError, match="in upsert"):
                await collection.upsert(ids=None, embeddings=[[1, 2]])
            await client.delete_collection("async-no-ids")
        with pytest.raises(vecduck.errors.InvalidArgumentError, match="closed"):
            await client.count_collections()

    asyncio.run(main())


def test_async_clients_refuse_missing_scope(running: Server) -> None:
    async def main() -> None:
        with pytest.raises(vecduck.errors.NotFoundError):
            await vecduck.AsyncHttpClient(host=HOST, port=running.port, tenant="nobody-tenant")
        with pytest.raises(vecduck.errors.NotFoundError):
            await vecduck.AsyncHttpClient(host=HOST, port=running.port, database="no-such-db")
        with pytest.raises((chromadb.errors.NotFoundError, ValueError)):
            await connect_chromadb(running.port, database="no-such-db")
        # nothing listens on this port
        with pytest.raises(ValueError, match="Could not connect"):
            await vecduck.AsyncHttpClient(host=HOST, port=free_port())

    asyncio.run(main())
