"""AsyncHttpClient: chromadb's `AsyncHttpClient` API for asyncio apps, against `vecduck run`.

`client = await vecduck.AsyncHttpClient(host, port)`; then every client and collection
method is awaited. The requests are the very ones `HttpClient` sends (each server call is
written once in `vecduck.http_client`, as a generator of requests), run here on
`httpx.AsyncClient`; the client-side checks and embedding are the embedded `Collection`'s.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx

from vecduck import errors
from vecduck.api import search as searching
from vecduck.api import validation as v
from vecduck.api.client import DEFAULT_DATABASE, DEFAULT_TENANT, Settings
from vecduck.api.client_base import UNSET
from vecduck.api.collection import _prepare_delete, _prepare_get, _prepare_modify
from vecduck.api.embedding import resolve_embedding_function
from vecduck.api.types import (
    GET_INCLUDE_DEFAULT,
    QUERY_INCLUDE_DEFAULT,
    GetResult,
    IndexingStatus,
    QueryResult,
    SearchResult,
    UserIdentity,
)
from vecduck.http_client import Call, HttpCollection, _answer, _connection, _encode, _HttpCalls


class AsyncHttpCollection(HttpCollection):
    """A collection of a remote server, every method awaited (chromadb's `AsyncCollection`)."""

    _client: AsyncClient  # type: ignore[assignment]

    async def _call(self, call: Call) -> Any:
        return await self._client._arun(call)

    async def add(  # type: ignore[override]
        self,
        ids: Any = None,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Add records (without ids, each gets a new uuid4 id)."""
        with v.in_method("add"):
            prepared = self._prepare_write("add", ids, embeddings, metadatas, documents, images, uris)
        await self._call(self._write_call("add", *prepared))

    async def upsert(  # type: ignore[override]
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Insert new ids, update existing ones."""
        with v.in_method("upsert"):
            prepared = self._prepare_write("upsert", ids, embeddings, metadatas, documents, images, uris)
        await self._call(self._write_call("upsert", *prepared))

    async def update(  # type: ignore[override]
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Change existing records; unknown ids are ignored."""
        with v.in_method("update"):
            prepared = self._prepare_write("update", ids, embeddings, metadatas, documents, images, uris)
        await self._call(self._write_call("update", *prepared))

    async def delete(  # type: ignore[override]
        self, ids: Any = None, where: Any = None, where_document: Any = None, limit: int | None = None
    ) -> dict[str, int]:
        """Delete records by id and/or filter; returns {"deleted": n}."""
        with v.in_method("delete"):
            id_list = _prepare_delete(ids, where, where_document, limit)
        return {"deleted": await self._call(self._delete_call(id_list, where, where_document, limit))}

    async def count(self) -> int:  # type: ignore[override]
        """Number of records."""
        return await self._call(self._count_call())

    async def get(  # type: ignore[override]
        self,
        ids: Any = None,
        where: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        where_document: Any = None,
        include: Any = None,
    ) -> GetResult:
        """Records by id and/or filter, in storage order."""
        include = list(GET_INCLUDE_DEFAULT) if include is None else include
        with v.in_method("get"):
            id_list = _prepare_get(ids, where, where_document, include)
        return await self._call(self._get_call(id_list, where, limit, offset, where_document, include))

    async def peek(self, limit: int = 10) -> GetResult:  # type: ignore[override]
        """The first `limit` records, with their embeddings."""
        return await self._call(self._get_call(None, None, limit, None, None, ["metadatas", "documents", "embeddings"]))

    async def query(  # type: ignore[override]
        self,
        query_embeddings: Any = None,
        query_texts: Any = None,
        query_images: Any = None,
        query_uris: Any = None,
        ids: Any = None,
        n_results: int = 10,
        where: Any = None,
        where_document: Any = None,
        include: Any = None,
    ) -> QueryResult:
        """The `n_results` nearest records to each query, among those matching the filters."""
        include = list(QUERY_INCLUDE_DEFAULT) if include is None else include
        with v.in_method("query"):
            vectors, id_list = self._prepare_query(
                query_embeddings, query_texts, query_images, query_uris, ids, n_results, where, where_document, include
            )
        return await self._call(self._query_call(vectors, n_results, id_list, where, where_document, include))

    async def search(self, searches: Any, read_level: Any = "index_and_wal") -> SearchResult:  # type: ignore[override]
        """Chroma's Search API (see `Collection.search`)."""
        with v.in_method("search"):
            payloads = searching.search_payloads(searches)
        dense = None if self._embedding_function is None else (lambda text: self._embed([text], is_query=True)[0])
        payloads = [searching.embed_text_queries(p, dense, self._sparse_query) for p in payloads]
        return await self._call(self._search_call(payloads, read_level))

    async def modify(  # type: ignore[override]
        self, name: str | None = None, metadata: Any = None, configuration: Any = None
    ) -> None:
        """Rename, replace the metadata, or change mutable HNSW settings."""
        with v.in_method("modify"):
            _prepare_modify(metadata)
        await self._call(self._modify_call(name, metadata, configuration))

    async def fork(self, new_name: str) -> AsyncHttpCollection:  # type: ignore[override]
        """A copy of this collection named `new_name` (see `Collection.fork`)."""
        v.check_collection_name(new_name)
        record = await self._call(self._fork_call(new_name))
        return AsyncHttpCollection(self._client, record, self._embedding_function, self._data_loader)  # type: ignore[arg-type]

    async def fork_count(self) -> int:  # type: ignore[override]
        return await self._call(self._fork_count_call())

    async def get_indexing_status(self) -> IndexingStatus:  # type: ignore[override]
        return await self._call(self._indexing_status_call())


class AsyncClient(_HttpCalls):
    """The client `await vecduck.AsyncHttpClient(...)` gives: `vecduck.HttpClient`'s methods, awaited."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8000,
        ssl: bool = False,
        headers: dict[str, str] | None = None,
        settings: Settings | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
    ) -> None:
        self._settings = settings or Settings()
        self.tenant = tenant
        self.database = database
        self._base, sent = _connection(host, port, ssl, headers, self._settings)
        self._http: httpx.AsyncClient | None = httpx.AsyncClient(headers=sent, timeout=None)
        self._pre_flight: dict[str, Any] | None = None

    # -- transport ----------------------------------------------------------------------
    async def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            raise errors.InvalidArgumentError("This client is closed")
        if path == "/pre-flight-checks" and self._pre_flight is not None:
            return self._pre_flight
        url = self._base + urllib.parse.quote(path, safe="/")
        answer = _answer(await self._http.request(method, url, content=_encode(body), params=params))
        if path == "/pre-flight-checks":
            self._pre_flight = answer
        return answer

    async def _arun(self, call: Call) -> Any:
        """Drive a server call: send each request it yields, hand it the answer."""
        try:
            request = next(call)
            while True:
                request = call.send(await self._request(*request))
        except StopIteration as done:
            return done.value

    def _collection(self, data: dict[str, Any], embedding_function: Any, data_loader: Any) -> AsyncHttpCollection:
        record = self._record(data)
        ef = resolve_embedding_function(record.configuration.get("embedding_function"), embedding_function, UNSET)
        return AsyncHttpCollection(self, record, ef, data_loader)  # type: ignore[arg-type]

    # -- lifecycle ------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if self._http is not None:
            await self._http.aclose()
        self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def get_settings(self) -> Settings:
        return self._settings

    async def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        await self._arun(self._scope_call(tenant, database))
        self.tenant, self.database = tenant, database

    async def set_database(self, database: str) -> None:
        await self._arun(self._scope_call(self.tenant, database))
        self.database = database

    async def get_max_batch_size(self) -> int:
        return int((await self._request("GET", "/pre-flight-checks"))["max_batch_size"])

    # -- server ---------------------------------------------------------------------------
    async def heartbeat(self) -> int:
        return int((await self._request("GET", "/heartbeat"))["nanosecond heartbeat"])

    async def get_version(self) -> str:
        return str(await self._request("GET", "/version"))

    async def get_user_identity(self) -> UserIdentity:
        return UserIdentity(**(await self._request("GET", "/auth/identity")))

    async def reset(self) -> bool:
        return bool(await self._request("POST", "/reset"))

    # -- collections ------------------------------------------------------------------------
    async def create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = UNSET,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> AsyncHttpCollection:
        data, ef = await self._arun(
            self._create_collection_call(name, schema, configuration, metadata, embedding_function, get_or_create)
        )
        return self._collection(data, ef, data_loader)

    async def get_or_create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = UNSET,
        data_loader: Any = None,
    ) -> AsyncHttpCollection:
        return await self.create_collection(
            name, schema, configuration, metadata, embedding_function, data_loader, get_or_create=True
        )

    async def get_collection(
        self, name: str, embedding_function: Any = UNSET, data_loader: Any = None
    ) -> AsyncHttpCollection:
        data = await self._request("GET", self._scope_path(f"/collections/{name}"))
        return self._collection(data, embedding_function, data_loader)

    async def list_collections(self, limit: int | None = None, offset: int | None = None) -> list[AsyncHttpCollection]:
        items = await self._arun(self._list_collections_call(limit, offset))
        return [self._collection(item, UNSET, None) for item in items]

    async def count_collections(self) -> int:
        return int(await self._request("GET", self._scope_path("/collections_count")))

    async def delete_collection(self, name: str) -> None:
        await self._request("DELETE", self._scope_path(f"/collections/{name}"))

    def __repr__(self) -> str:
        return f"vecduck.AsyncHttpClient({self._base!r})"


async def AsyncHttpClient(  # noqa: N802 - chromadb's factory name
    host: str = "localhost",
    port: int = 8000,
    ssl: bool = False,
    headers: dict[str, str] | None = None,
    settings: Settings | None = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
) -> AsyncClient:
    """An async client of a vecduck (or Chroma) server, for asyncio and FastAPI apps:
    `client = await vecduck.AsyncHttpClient(host="localhost", port=8000)`. The tenant and
    database must exist on the server."""
    client = AsyncClient(host, int(port), bool(ssl), headers, settings, str(tenant), str(database))
    try:
        await client._arun(client._scope_call(client.tenant, client.database))
    except httpx.TransportError:
        await client.close()
        raise ValueError("Could not connect to a Chroma server. Are you sure it is running?") from None
    except BaseException:
        await client.close()
        raise
    return client


__all__ = ["AsyncClient", "AsyncHttpClient", "AsyncHttpCollection"]
