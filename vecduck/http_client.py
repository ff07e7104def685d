"""HttpClient and AsyncHttpClient: the embedded client's API, served by a vecduck (or Chroma) server.

The collection class is the embedded `Collection` with its server calls (`_write`,
`_get`, `_query`, `_delete`, `_modify`, `_search`, `_fork`, ...) sent over HTTP, so the
client-side checks, the " in add." messages and the embedding of documents with the
collection's embedding function are the very same code. Errors come back as
`vecduck.errors` classes, chosen by the `error` name in the server's answer.

Each server call is written once, without I/O, as a generator: it yields the requests
it needs (method, path, body, query) and receives their decoded answers. `HttpClient`
runs those generators on `httpx.Client`, `AsyncHttpClient` on `httpx.AsyncClient`, so
the sync and async clients send the same requests and read the same answers.

A write larger than one request can carry (the server's `max_batch_size` and body limit,
from `/pre-flight-checks`) is split into requests that fit, with a progress bar: each
request is atomic, the whole call is not.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from collections.abc import Generator, Sequence
from typing import Any

import httpx
import numpy as np

from vecduck import errors
from vecduck.api import validation as v
from vecduck.api.client import DEFAULT_DATABASE, DEFAULT_TENANT, Settings
from vecduck.api.client_base import UNSET, ClientBase
from vecduck.api.collection import Collection
from vecduck.api.embedding import (
    default_embedding_function,
    embedding_function_config,
    resolve_embedding_function,
)
from vecduck.api.types import (
    GetResult,
    IndexingStatus,
    QueryResult,
    SearchResult,
    UserIdentity,
    as_sparse_vector,
    empty_embeddings,
    is_sparse_vector,
)
from vecduck.engine.registry import CollectionRecord
from vecduck.engine.rows import revive_sparse
from vecduck.progress import progress

# (status, error name) whose class differs from the name: so HTTP raises what the embedded client raises.
_SPECIAL_ERRORS: dict[tuple[int, str], type[errors.ChromaError]] = {
    (409, "ChromaError"): errors.UniqueConstraintError,
    (403, "ChromaError"): errors.AuthorizationError,
    (422, "ChromaError"): errors.InvalidArgumentError,
}
# What a request body may take beyond its records (JSON punctuation, field names).
BODY_OVERHEAD = 4_096

Request = tuple[str, str, Any, dict[str, Any] | None]  # method, path, JSON body, query parameters
Call = Generator[Request, Any, Any]  # a server call: yields requests, receives answers, returns a result


def _error_from(response: httpx.Response) -> errors.ChromaError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        name, message = body["error"], str(body.get("message", ""))
    else:
        name, message = "", response.text or response.reason_phrase
    cls = _SPECIAL_ERRORS.get((response.status_code, name)) or errors.ERROR_TYPES.get(name)
    if cls is None:
        cls = errors.NotFoundError if response.status_code == 404 else errors.ChromaError
    return cls(message)


def _to_json(value: Any) -> Any:
    if is_sparse_vector(value):
        return as_sparse_vector(value).to_dict()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(body: Any) -> str | None:
    return None if body is None else json.dumps(body, default=_to_json, allow_nan=False)


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise _error_from(response)
    return response.json() if response.content else {}


def _scope(tenant: str, database: str) -> str:
    """The path of a tenant's database (quoted once, with the rest of the path, when sent)."""
    return f"/tenants/{tenant}/databases/{database}"


def _metadatas(values: list[Any] | None) -> list[Any] | None:
    """Metadatas from the wire, tagged sparse-vector dicts turned back into SparseVector."""
    return None if values is None else [revive_sparse(m) if isinstance(m, dict) else m for m in values]


def _base64(vector: Any) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _database(found: dict[str, Any]) -> dict[str, Any]:
    return {"id": uuid.UUID(str(found["id"])), "name": found["name"], "tenant": found["tenant"]}


def split_records(sizes: Sequence[int], max_records: int, max_bytes: int) -> list[tuple[int, int]]:
    """[start, end) ranges of consecutive records, each at most `max_records` records and
    `max_bytes` bytes of encoded records (a record larger than that goes alone)."""
    ranges = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_records or used + size > max_bytes):
            ranges.append((start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


class HttpCollection(Collection):
    """A collection of a remote server; same methods and results as the embedded one."""

    _client: HttpClient

    def _own_path(self, rest: str) -> str:
        """A path in the collection's own tenant and database (not the client's current ones)."""
        return _scope(self._record.tenant, self._record.database) + rest

    def _path(self, action: str = "") -> str:
        return self._own_path(f"/collections/{self._record.id}{action}")

    @property
    def dimension(self) -> int | None:
        return self._client._run(self._dimension_call())

    def add_parquet(self, *args: Any, **kwargs: Any) -> int:
        """Not over HTTP: the files must be readable by the process that owns the lake. Use
        `PersistentClient` on the folder or shared lake, or `add_df` here."""
        raise NotImplementedError(
            "add_parquet runs where the lake is: open it with vecduck.PersistentClient, or send rows with add_df"
        )

    # -- server calls, written once (see the module docstring) -------------------------------
    def _dimension_call(self) -> Call:
        return (yield ("GET", self._own_path(f"/collections/by-id/{self._record.id}"), None, None))[
            "dimension"
        ]

    def _write_call(
        self,
        mode: str,
        ids: list[str],
        embeddings: Sequence[Any] | None,
        metadatas: list[Any] | None,
        documents: list[Any] | None,
        uris: list[Any] | None,
    ) -> Call:
        limits = yield ("GET", "/pre-flight-checks", None, None)
        if embeddings is not None:
            encoded: list[Any] | None = (
                [_base64(e) for e in embeddings]
                if limits.get("supports_base64_encoding")
                else [np.asarray(e, dtype=np.float32).tolist() for e in embeddings]
            )
        else:
            encoded = None
        fields = {"ids": ids, "embeddings": encoded, "metadatas": metadatas, "documents": documents, "uris": uris}
        max_records = int(limits.get("max_batch_size") or len(ids) or 1)
        max_bytes = int(limits.get("max_body_bytes") or 0) - BODY_OVERHEAD
        if max_bytes <= 0:  # a server that does not say its body limit (Chroma's): by count only
            ranges = split_records([1] * len(ids), max_records, len(ids) or 1)
        else:
            sizes = [
                sum(len(_encode(values[i]) or "") + 2 for values in fields.values() if values is not None)
                for i in range(len(ids))
            ]
            ranges = split_records(sizes, max_records, max_bytes)
        with progress(total=len(ids), desc=f"Sending {mode}", unit="records", enabled=len(ranges) > 1 or None) as bar:
            for start, end in ranges:
                body = {name: None if values is None else values[start:end] for name, values in fields.items()}
                yield ("POST", self._path(f"/{mode}"), body, None)
                bar.update(end - start)

    def _delete_call(self, ids: list[str] | None, where: Any, where_document: Any, limit: int | None) -> Call:
        body: dict[str, Any] = {"ids": ids, "where": where, "where_document": where_document}
        if limit is not None:
            body["limit"] = limit
        return int((yield ("POST", self._path("/delete"), body, None))["deleted"])

    def _count_call(self) -> Call:
        return int((yield ("GET", self._path("/count"), None, None)))

    def _get_call(
        self, ids: list[str] | None, where: Any, limit: Any, offset: Any, where_document: Any, include: Sequence[str]
    ) -> Call:
        body = {
            "ids": ids,
            "where": where,
            "limit": limit,
            "offset": offset,
            "where_document": where_document,
            "include": [item for item in include if item != "data"],
        }
        answer = yield ("POST", self._path("/get"), body, None)
        embeddings = None
        if "embeddings" in include:
            rows = answer.get("embeddings") or []
            embeddings = np.asarray(rows, dtype=np.float32) if rows else empty_embeddings(self._record.dimension)
        return GetResult(
            ids=answer["ids"],
            embeddings=embeddings,
            documents=answer.get("documents") if "documents" in include else None,
            uris=answer.get("uris") if "uris" in include else None,
            included=list(include),
            data=None,
            metadatas=_metadatas(answer.get("metadatas")) if "metadatas" in include else None,
        )

    def _query_call(
        self,
        embeddings: Sequence[Any],
        n_results: int,
        ids: list[str] | None,
        where: Any,
        where_document: Any,
        include: Sequence[str],
    ) -> Call:
        body = {
            "ids": ids,
            "query_embeddings": [np.asarray(e, dtype=np.float32).tolist() for e in embeddings],
            "n_results": n_results,
            "where": where,
            "where_document": where_document,
            "include": [item for item in include if item != "data"],
        }
        answer = yield ("POST", self._path("/query"), body, None)
        blocks = answer.get("embeddings")
        return QueryResult(
            {
                "ids": answer["ids"],
                "embeddings": (
                    [
                        np.asarray(b, dtype=np.float32) if b else empty_embeddings(self._record.dimension)
                        for b in blocks or []
                    ]
                    if "embeddings" in include
                    else None
                ),
                "documents": answer.get("documents") if "documents" in include else None,
                "uris": answer.get("uris") if "uris" in include else None,
                "included": list(include),
                "data": None,
                "metadatas": (
                    [_metadatas(block) for block in answer.get("metadatas") or []] if "metadatas" in include else None
                ),
                "distances": answer.get("distances") if "distances" in include else None,
            }
        )

    def _search_call(self, payloads: list[dict[str, Any]], read_level: Any) -> Call:
        level = getattr(read_level, "value", read_level)
        answer = yield ("POST", self._path("/search"), {"searches": payloads, "read_level": level}, None)
        answer["metadatas"] = [_metadatas(block) for block in answer.get("metadatas") or []]
        return SearchResult(answer)

    def _modify_call(self, name: Any, metadata: Any, configuration: Any) -> Call:
        body = {"new_name": name, "new_metadata": metadata, "new_configuration": configuration}
        yield ("PUT", self._path(), body, None)
        found = yield ("GET", self._own_path(f"/collections/by-id/{self._record.id}"), None, None)
        self._record = self._client._record(found)

    def _fork_call(self, new_name: str) -> Call:
        return self._client._record((yield ("POST", self._path("/fork"), {"new_name": new_name}, None)))

    def _fork_count_call(self) -> Call:
        return int((yield ("GET", self._path("/fork_count"), None, None))["count"])

    def _indexing_status_call(self) -> Call:
        return IndexingStatus(**(yield ("GET", self._path("/indexing_status"), None, None)))

    # -- the embedded Collection's server calls, carried over HTTP -------------------------
    def _write(self, mode: str, *prepared: Any) -> None:
        self._client._run(self._write_call(mode, *prepared))

    def _delete(self, ids: list[str] | None, where: Any, where_document: Any, limit: int | None) -> int:
        return self._client._run(self._delete_call(ids, where, where_document, limit))

    def count(self) -> int:
        """Number of records."""
        return self._client._run(self._count_call())

    def _get(self, *args: Any) -> GetResult:
        return self._client._run(self._get_call(*args))

    def _query(self, *args: Any) -> QueryResult:
        return self._client._run(self._query_call(*args))

    def _search(
        self, payloads: list[dict[str, Any]], read_level: Any = "index_and_wal", embedded: bool = False
    ) -> SearchResult:
        """The search sent to the server (text queries on sparse keys are embedded there)."""
        return self._client._run(self._search_call(payloads, read_level))

    def _modify(self, name: Any, metadata: Any, configuration: Any) -> None:
        self._client._run(self._modify_call(name, metadata, configuration))

    def _fork(self, new_name: str) -> CollectionRecord:
        return self._client._run(self._fork_call(new_name))

    def fork_count(self) -> int:
        """How many forks the tree this collection belongs to has seen (deleted ones too)."""
        return self._client._run(self._fork_count_call())

    def get_indexing_status(self) -> IndexingStatus:
        """Record operations written and how many of them the server's vector index holds yet."""
        return self._client._run(self._indexing_status_call())


class _HttpCalls:
    """The client-level server calls, written once for HttpClient and AsyncHttpClient."""

    tenant: str
    database: str

    def _scope_path(self, rest: str) -> str:
        return _scope(self.tenant, self.database) + rest

    def _record(self, data: dict[str, Any]) -> CollectionRecord:
        return CollectionRecord(
            id=data["id"],
            name=data["name"],
            metadata=data.get("metadata"),
            configuration=data.get("configuration_json") or {},
            dimension=data.get("dimension"),
            tenant=data.get("tenant", self.tenant),
            database=data.get("database", self.database),
            next_key=0,
            next_seq=0,
            lake_seq=0,
            version=data.get("version") or 0,
            schema=data.get("schema") if isinstance(data.get("schema"), dict) else None,
        )

    def _create_collection_call(
        self,
        name: str,
        schema: Any,
        configuration: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        embedding_function: Any,
        get_or_create: bool,
    ) -> Call:
        from vecduck.api.schema import schema_json

        if metadata:  # chromadb leaves `{}` to the server (400 "Metadata cannot be empty")
            v.validate_metadata(metadata)
        ef = default_embedding_function() if embedding_function is UNSET else embedding_function
        config = dict(configuration or {})
        given_ef = config.get("embedding_function")
        if given_ef is not None and not isinstance(given_ef, dict):
            config["embedding_function"] = embedding_function_config(given_ef)
            if embedding_function is UNSET:
                embedding_function = given_ef
        elif "embedding_function" not in config:
            config["embedding_function"] = embedding_function_config(ef)
        body = {
            "name": name,
            "metadata": metadata,
            "configuration": config,
            "schema": None if schema is None else schema_json(schema),
            "get_or_create": get_or_create,
        }
        return (yield ("POST", self._scope_path("/collections"), body, None)), embedding_function

    def _list_collections_call(self, limit: int | None, offset: int | None) -> Call:
        limit = v.check_limit(limit)
        offset = v.check_limit(offset, "offset")
        params = {key: val for key, val in (("limit", limit), ("offset", offset)) if val is not None}
        return (yield ("GET", self._scope_path("/collections"), None, params))

    def _scope_call(self, tenant: str, database: str) -> Call:
        # as chromadb's client: the tenant first, then its database (NotFoundError for either)
        yield ("GET", f"/tenants/{tenant}", None, None)
        yield ("GET", _scope(tenant, database), None, None)

    def _one(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Call:
        return (yield (method, path, body, params))


class HttpClient(_HttpCalls, ClientBase):
    """A client of a vecduck server (`vecduck run`); the same methods as `vecduck.Client`.

    `headers` are sent with every request (e.g. `{"X-Chroma-Token": token}`); chromadb's
    auth settings are understood too: `Settings(chroma_client_auth_credentials=token)`
    sends `Authorization: Bearer token` (or the header named by
    `chroma_auth_token_transport_header`).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8000,
        ssl: bool = False,
        headers: dict[str, str] | None = None,
        settings: Settings | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
        *,
        timeout: float | None = None,
        _check_scope: bool = True,
    ) -> None:
        self._settings = settings or Settings()
        self.tenant = tenant
        self.database = database
        self._base, sent = _connection(host, port, ssl, headers, self._settings)
        self._http: httpx.Client | None = httpx.Client(headers=sent, timeout=timeout)
        self._pre_flight: dict[str, Any] | None = None
        try:
            if _check_scope:
                self._run(self._scope_call(tenant, database))
            else:
                self._request("GET", "/heartbeat")  # the server answers
        except httpx.TransportError:
            self.close()
            raise ValueError("Could not connect to a Chroma server. Are you sure it is running?") from None
        except BaseException:
            self.close()
            raise

    # -- transport ----------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            raise errors.InvalidArgumentError("This client is closed")
        if path == "/pre-flight-checks" and self._pre_flight is not None:
            return self._pre_flight
        url = self._base + urllib.parse.quote(path, safe="/")
        answer = _answer(self._http.request(method, url, content=_encode(body), params=params))
        if path == "/pre-flight-checks":
            self._pre_flight = answer
        return answer

    def _run(self, call: Call) -> Any:
        """Drive a server call: send each request it yields, hand it the answer."""
        try:
            request = next(call)
            while True:
                request = call.send(self._request(*request))
        except StopIteration as done:
            return done.value

    def _collection(self, data: dict[str, Any], embedding_function: Any, data_loader: Any) -> HttpCollection:
        record = self._record(data)
        ef = resolve_embedding_function(record.configuration.get("embedding_function"), embedding_function, UNSET)
        return HttpCollection(self, record, ef, data_loader)  # type: ignore[arg-type]

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if self._http is not None:
            self._http.close()
        self._http = None

    def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        """Use another tenant (and database) from now on; both must exist on the server."""
        self._run(self._scope_call(tenant, database))
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        """Use another database of the current tenant from now on; it must exist on the server."""
        self._run(self._scope_call(self.tenant, database))
        self.database = database

    def get_max_batch_size(self) -> int:
        return int(self._request("GET", "/pre-flight-checks")["max_batch_size"])

    # -- server ---------------------------------------------------------------------------
    def heartbeat(self) -> int:
        """The server's clock, in nanoseconds since the epoch."""
        return int(self._request("GET", "/heartbeat")["nanosecond heartbeat"])

    def get_version(self) -> str:
        return str(self._request("GET", "/version"))

    def get_user_identity(self) -> UserIdentity:
        """Who the server takes this client's token for (its user, tenant and databases)."""
        return UserIdentity(**self._request("GET", "/auth/identity"))

    def reset(self) -> bool:
        """Delete every collection; the server must run with `--allow-reset`."""
        return bool(self._request("POST", "/reset"))

    # -- collections ------------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = UNSET,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> HttpCollection:
        """Create a collection; an existing name raises unless `get_or_create`."""
        data, ef = self._run(
            self._create_collection_call(name, schema, configuration, metadata, embedding_function, get_or_create)
        )
        return self._collection(data, ef, data_loader)

    def get_collection(self, name: str, embedding_function: Any = UNSET, data_loader: Any = None) -> HttpCollection:
        """The collection named `name`; NotFoundError when there is none."""
        data = self._request("GET", self._scope_path(f"/collections/{name}"))
        return self._collection(data, embedding_function, data_loader)

    def get_collection_by_id(self, id: Any, embedding_function: Any = UNSET, data_loader: Any = None) -> HttpCollection:
        data = self._request("GET", self._scope_path(f"/collections/by-id/{id}"))
        return self._collection(data, embedding_function, data_loader)

    def list_collections(self, limit: int | None = None, offset: int | None = None) -> list[HttpCollection]:
        """Collections in creation order."""
        items = self._run(self._list_collections_call(limit, offset))
        return [self._collection(item, UNSET, None) for item in items]

    def count_collections(self) -> int:
        return int(self._request("GET", self._scope_path("/collections_count")))

    def delete_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""
        self._request("DELETE", self._scope_path(f"/collections/{name}"))

    def __repr__(self) -> str:
        return f"vecduck.HttpClient({self._base!r})"


def _connection(
    host: str, port: int, ssl: bool, headers: dict[str, str] | None, settings: Settings
) -> tuple[str, dict[str, str]]:
    """The API's base URL and the headers every request carries (auth from the settings)."""
    base = f"{'https' if ssl else 'http'}://{host}:{port}/api/v2"
    sent = {"Content-Type": "application/json", "User-Agent": "vecduck HttpClient"}
    sent.update(headers or {})
    token = settings.extra.get("chroma_client_auth_credentials")
    if token:
        header = settings.extra.get("chroma_auth_token_transport_header") or "Authorization"
        sent[header] = f"Bearer {token}" if header.lower() == "authorization" else str(token)
    return base, sent


class HttpAdminClient:
    """chromadb's `AdminClient` against a server: tenants and databases over REST.

    Made by `vecduck.AdminClient(Settings(chroma_server_host=..., chroma_server_http_port=...))`
    or directly with the same arguments as `HttpClient`.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        ssl: bool | None = None,
        headers: dict[str, str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        extra = (settings.extra if settings is not None else {}) or {}
        self._client = HttpClient(
            host=host or extra.get("chroma_server_host") or "localhost",
            port=int(port or extra.get("chroma_server_http_port") or 8000),
            ssl=bool(ssl if ssl is not None else extra.get("chroma_server_ssl_enabled", False)),
            headers=headers,
            settings=settings,
            _check_scope=False,  # an admin works on tenants and databases, whichever exist
        )

    def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._client._request(method, path, body, params)

    def create_tenant(self, name: str) -> None:
        self._request("POST", "/tenants", {"name": name})

    def get_tenant(self, name: str) -> dict[str, Any]:
        return {"name": self._request("GET", f"/tenants/{name}")["name"]}

    def create_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._request("POST", f"/tenants/{tenant}/databases", {"name": name})

    def get_database(self, name: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        return _database(self._request("GET", _scope(tenant, name)))

    def list_databases(
        self, limit: int | None = None, offset: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> list[dict[str, Any]]:
        params = {key: val for key, val in (("limit", limit), ("offset", offset)) if val is not None}
        path = f"/tenants/{tenant}/databases"
        return [_database(found) for found in self._request("GET", path, params=params)]

    def delete_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._request("DELETE", _scope(tenant, name))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpAdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["HttpAdminClient", "HttpClient", "HttpCollection", "split_records"]
