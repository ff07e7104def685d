"""HttpClient: the embedded client's API, served by a vecduck (or Chroma) server.

The collection class is the embedded `Collection` with its five server calls
(`_write`, `_get`, `_query`, `_delete`, `_modify`, plus `count`) sent over HTTP, so the
client-side checks, the " in add." messages and the embedding of documents with the
collection's embedding function are the very same code. Errors come back as
`vecduck.errors` classes, chosen by the `error` name in the server's answer.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from collections.abc import Sequence
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
    as_sparse_vector,
    empty_embeddings,
    is_sparse_vector,
)
from vecduck.engine.registry import CollectionRecord
from vecduck.engine.rows import revive_sparse

# (status, error name) whose class differs from the name: so HTTP raises what the embedded client raises.
_SPECIAL_ERRORS: dict[tuple[int, str], type[errors.ChromaError]] = {
    (409, "ChromaError"): errors.UniqueConstraintError,
    (403, "ChromaError"): errors.AuthorizationError,
    (422, "ChromaError"): errors.InvalidArgumentError,
}


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


def _scope(tenant: str, database: str) -> str:
    quote = urllib.parse.quote
    return f"/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"


def _metadatas(values: list[Any] | None) -> list[Any] | None:
    """Metadatas from the wire, tagged sparse-vector dicts turned back into SparseVector."""
    return None if values is None else [revive_sparse(m) if isinstance(m, dict) else m for m in values]


def _base64(vector: Any) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


class HttpCollection(Collection):
    """A collection of a remote server; same methods and results as the embedded one."""

    _client: HttpClient

    def _path(self, action: str = "") -> str:
        return self._client._scope_path(f"/collections/{self._record.id}{action}")

    @property
    def dimension(self) -> int | None:
        return self._client._request("GET", self._client._scope_path(f"/collections/by-id/{self._record.id}"))[
            "dimension"
        ]

    def _write(
        self,
        mode: str,
        ids: list[str],
        embeddings: Sequence[Any] | None,
        metadatas: list[Any] | None,
        documents: list[Any] | None,
        uris: list[Any] | None,
    ) -> None:
        limit = self._client.get_max_batch_size()
        if len(ids) > limit:
            raise ValueError(f"Batch size {len(ids)} exceeds maximum batch size {limit}")
        if embeddings is not None:
            encoded: list[Any] | None = (
                [_base64(e) for e in embeddings]
                if self._client._supports_base64()
                else [np.asarray(e, dtype=np.float32).tolist() for e in embeddings]
            )
        else:
            encoded = None
        body = {"ids": ids, "embeddings": encoded, "metadatas": metadatas, "documents": documents, "uris": uris}
        self._client._request("POST", self._path(f"/{mode}"), body)

    def _delete(self, ids: list[str] | None, where: Any, where_document: Any, limit: int | None) -> int:
        body: dict[str, Any] = {"ids": ids, "where": where, "where_document": where_document}
        if limit is not None:
            body["limit"] = limit
        return int(self._client._request("POST", self._path("/delete"), body)["deleted"])

    def count(self) -> int:
        """Number of records."""
        return int(self._client._request("GET", self._path("/count")))

    def _get(
        self,
        ids: list[str] | None,
        where: Any,
        limit: Any,
        offset: Any,
        where_document: Any,
        include: Sequence[str],
    ) -> GetResult:
        sent = [item for item in include if item != "data"]
        body = {
            "ids": ids,
            "where": where,
            "limit": limit,
            "offset": offset,
            "where_document": where_document,
            "include": sent,
        }
        answer = self._client._request("POST", self._path("/get"), body)
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

    def _query(
        self,
        embeddings: Sequence[Any],
        n_results: int,
        ids: list[str] | None,
        where: Any,
        where_document: Any,
        include: Sequence[str],
    ) -> QueryResult:
        body = {
            "ids": ids,
            "query_embeddings": [np.asarray(e, dtype=np.float32).tolist() for e in embeddings],
            "n_results": n_results,
            "where": where,
            "where_document": where_document,
            "include": [item for item in include if item != "data"],
        }
        answer = self._client._request("POST", self._path("/query"), body)
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

    def _fork(self, new_name: str) -> CollectionRecord:
        return self._client._record(self._client._request("POST", self._path("/fork"), {"new_name": new_name}))

    def fork_count(self) -> int:
        """How many forks the tree this collection belongs to has seen (deleted ones too)."""
        return int(self._client._request("GET", self._path("/fork_count"))["count"])

    def get_indexing_status(self) -> IndexingStatus:
        """Record operations written and how many of them the server's vector index holds yet."""
        return IndexingStatus(**self._client._request("GET", self._path("/indexing_status")))

    def _search(self, payloads: list[dict[str, Any]], read_level: Any = "index_and_wal") -> SearchResult:
        level = getattr(read_level, "value", read_level)
        answer = self._client._request("POST", self._path("/search"), {"searches": payloads, "read_level": level})
        answer["metadatas"] = [_metadatas(block) for block in answer.get("metadatas") or []]
        return SearchResult(answer)

    def _modify(self, name: Any, metadata: Any, configuration: Any) -> None:
        body = {"new_name": name, "new_metadata": metadata, "new_configuration": configuration}
        self._client._request("PUT", self._path(), body)
        self._record = self._client._record(
            self._client._request("GET", self._client._scope_path(f"/collections/by-id/{self._record.id}"))
        )


class HttpClient(ClientBase):
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
    ) -> None:
        self._settings = settings or Settings()
        self.tenant = tenant
        self.database = database
        scheme = "https" if ssl else "http"
        self._base = f"{scheme}://{host}:{port}/api/v2"
        sent = {"Content-Type": "application/json", "User-Agent": "vecduck HttpClient"}
        sent.update(headers or {})
        token = self._settings.extra.get("chroma_client_auth_credentials")
        if token:
            header = self._settings.extra.get("chroma_auth_token_transport_header") or "Authorization"
            sent[header] = f"Bearer {token}" if header.lower() == "authorization" else str(token)
        self._http: httpx.Client | None = httpx.Client(headers=sent, timeout=timeout)
        self._pre_flight: dict[str, Any] | None = None
        try:
            self._request("GET", self._scope_path(""))  # the tenant and database exist
        except httpx.TransportError:
            self.close()
            raise ValueError("Could not connect to a Chroma server. Are you sure it is running?") from None
        except BaseException:
            self.close()
            raise

    def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        """Use another tenant (and database) from now on; both must exist on the server."""
        self._request("GET", _scope(tenant, database))
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        """Use another database of the current tenant from now on; it must exist on the server."""
        self._request("GET", _scope(self.tenant, database))
        self.database = database

    # -- transport ----------------------------------------------------------------------
    def _scope_path(self, rest: str) -> str:
        return _scope(self.tenant, self.database) + rest

    def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            raise errors.InvalidArgumentError("This client is closed")
        content = None if body is None else json.dumps(body, default=_to_json, allow_nan=False)
        url = self._base + urllib.parse.quote(path, safe="/")
        response = self._http.request(method, url, content=content, params=params)
        if response.status_code >= 400:
            raise _error_from(response)
        if not response.content:
            return {}
        return response.json()

    def _pre_flight_checks(self) -> dict[str, Any]:
        if self._pre_flight is None:
            self._pre_flight = self._request("GET", "/pre-flight-checks")
        return self._pre_flight

    def _supports_base64(self) -> bool:
        return bool(self._pre_flight_checks().get("supports_base64_encoding", False))

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

    def get_max_batch_size(self) -> int:
        return int(self._pre_flight_checks()["max_batch_size"])

    # -- server ---------------------------------------------------------------------------
    def heartbeat(self) -> int:
        """The server's clock, in nanoseconds since the epoch."""
        return int(self._request("GET", "/heartbeat")["nanosecond heartbeat"])

    def get_version(self) -> str:
        return str(self._request("GET", "/version"))

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
        data = self._request("POST", self._scope_path("/collections"), body)
        return self._collection(data, embedding_function, data_loader)

    def get_collection(self, name: str, embedding_function: Any = UNSET, data_loader: Any = None) -> HttpCollection:
        """The collection named `name`; NotFoundError when there is none."""
        data = self._request("GET", self._scope_path(f"/collections/{name}"))
        return self._collection(data, embedding_function, data_loader)

    def get_collection_by_id(self, id: Any, embedding_function: Any = UNSET, data_loader: Any = None) -> HttpCollection:
        data = self._request("GET", self._scope_path(f"/collections/by-id/{id}"))
        return self._collection(data, embedding_function, data_loader)

    def list_collections(self, limit: int | None = None, offset: int | None = None) -> list[HttpCollection]:
        """Collections in creation order."""
        limit = v.check_limit(limit)
        offset = v.check_limit(offset, "offset")
        params = {key: val for key, val in (("limit", limit), ("offset", offset)) if val is not None}
        items = self._request("GET", self._scope_path("/collections"), params=params)
        return [self._collection(item, UNSET, None) for item in items]

    def count_collections(self) -> int:
        return int(self._request("GET", self._scope_path("/collections_count")))

    def delete_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""
        self._request("DELETE", self._scope_path(f"/collections/{name}"))

    def __repr__(self) -> str:
        return f"vecduck.HttpClient({self._base!r})"


__all__ = ["HttpClient", "HttpCollection"]


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
        )

    def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._client._request(method, path, body, params)

    def create_tenant(self, name: str) -> None:
        self._request("POST", "/tenants", {"name": name})

    def get_tenant(self, name: str) -> dict[str, Any]:
        return {"name": self._request("GET", f"/tenants/{urllib.parse.quote(name, safe='')}")["name"]}

    def create_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._request("POST", f"/tenants/{urllib.parse.quote(tenant, safe='')}/databases", {"name": name})

    def get_database(self, name: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        return _database(self._request("GET", _scope(tenant, name)))

    def list_databases(
        self, limit: int | None = None, offset: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> list[dict[str, Any]]:
        params = {key: val for key, val in (("limit", limit), ("offset", offset)) if val is not None}
        path = f"/tenants/{urllib.parse.quote(tenant, safe='')}/databases"
        return [_database(found) for found in self._request("GET", path, params=params)]

    def delete_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._request("DELETE", _scope(tenant, name))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpAdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _database(found: dict[str, Any]) -> dict[str, Any]:
    return {"id": uuid.UUID(str(found["id"])), "name": found["name"], "tenant": found["tenant"]}
