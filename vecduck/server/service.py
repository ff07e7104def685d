"""Chroma's REST operations over one embedded client: one method per route, no HTTP.

Every behaviour is the api layer's (`vecduck.api`): the server decodes the wire
format, then calls the same `Collection._write/_get/_query/_delete/_modify` and client
methods the embedded API calls after its client-side checks. Methods are blocking and
thread-safe (the engine serialises on its own locks); the web layer runs them in a
thread pool.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from vecduck import __version__
from vecduck.api import validation as v
from vecduck.api.client import (
    DEFAULT_DATABASE,
    DEFAULT_TENANT,
    MAX_BATCH_SIZE,
    Client,
    check_database_name,
    check_tenant_name,
)
from vecduck.api.collection import Collection, generated_ids
from vecduck.engine.filters import filter_sql
from vecduck.errors import ChromaError, InvalidArgumentError, NotFoundError
from vecduck.server import wire
from vecduck.server.access import identity_of

# The size of a typical record in a write request, for the batch size the server advertises.
RECORD_BYTES = 2_048
FOUND_KEPT = 1_024  # collections kept looked up for record calls (`Service._records`)


class HttpError(ChromaError):
    """An answer decided by the server itself: a status and Chroma's error name."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_name = name

    def code(self) -> int:
        return self.status


def not_supported(what: str) -> HttpError:
    return HttpError(501, "ChromaError", f"{what} is not supported by vecduck")


class Service:
    """The operations of Chroma's v2 API on the folder a `vecduck.Client` opened."""

    def __init__(self, client: Client, allow_reset: bool = False, max_body_bytes: int = 64 * 1024 * 1024) -> None:
        self.client = client
        self.allow_reset = allow_reset
        self.max_body_bytes = max_body_bytes
        # Collections found by (tenant, database, id), for record calls (see `_records`)
        self._found: dict[tuple[str, str, str], Collection] = {}

    # -- server ---------------------------------------------------------------------------
    def heartbeat(self) -> dict[str, int]:
        return {"nanosecond heartbeat": time.time_ns()}

    def version(self) -> str:
        return __version__

    def pre_flight(self) -> dict[str, Any]:
        """What a request may carry: as many records as the body limit holds at about
        RECORD_BYTES each (a 384-dimension vector in base64 and a short document), never
        fewer than chromadb's 5,461; and the body limit itself, by which vecduck's clients
        split larger writes."""
        batch = max(MAX_BATCH_SIZE, self.max_body_bytes // RECORD_BYTES)
        return {"max_batch_size": batch, "supports_base64_encoding": True, "max_body_bytes": self.max_body_bytes}

    def identity(self, grant: Any = None) -> dict[str, Any]:
        return identity_of(grant, DEFAULT_TENANT, DEFAULT_DATABASE)

    def healthcheck(self) -> dict[str, Any]:
        """Chroma's health body (`is_executor_ready`, `is_log_client_ready`) plus whether the
        catalog and the object store can be reached (`reachable`, and `error`: why not); the
        web layer answers 503 unless both can. Writes need the catalog (the "log"); reads
        need both."""
        try:
            problems = self.client._store_for_use().health()
        except Exception as exc:  # a closed store: nothing can be reached through it
            reason = f"{type(exc).__name__}: {exc}"
            problems = {"catalog": reason, "object_store": reason}
        catalog, storage = problems.get("catalog"), problems.get("object_store")
        return {
            "is_executor_ready": catalog is None and storage is None,
            "is_log_client_ready": catalog is None,
            "catalog": {"reachable": catalog is None, "error": catalog},
            "object_store": {"reachable": storage is None, "error": storage},
        }

    def reset(self) -> bool:
        if not self.allow_reset:
            raise HttpError(403, "ChromaError", "Reset is disabled by config")
        self._found.clear()
        return self.client.reset()  # the client is opened with allow_reset=self.allow_reset

    # -- tenants and databases ----------------------------------------------------------------
    @property
    def _store(self) -> Any:
        return self.client._store_for_use()

    def _scoped(self, tenant: str, database: str) -> Client:
        """The server's client, aimed at a request's tenant and database. They need not
        exist: as in chromadb, listing a deleted database's collections finds none and
        creating one there is refused by the store. A database name too short to exist
        is refused first, as Chroma's server does on every collection route."""
        return self.client._scoped(tenant, check_database_name(database))

    def get_tenant(self, tenant: str) -> dict[str, Any]:
        self._store.check_tenant(tenant)
        return {"name": tenant, "resource_name": None}

    def create_tenant(self, body: Any) -> dict[str, Any]:
        self._store.create_tenant(check_tenant_name(wire.body_object(body).get("name")))
        return {}

    def list_databases(self, tenant: str, limit: Any = None, offset: Any = None) -> list[dict[str, Any]]:
        limit, offset = _query_int(limit, "limit"), _query_int(offset, "offset")
        return self._store.list_databases(tenant, limit, offset)

    def get_database(self, tenant: str, database: str) -> dict[str, Any]:
        check_database_name(database)  # chromadb checks the name before the tenant
        self._store.check_tenant(tenant)
        return self._store.get_database(database, tenant)

    def create_database(self, tenant: str, body: Any) -> dict[str, Any]:
        self._store.create_database(check_database_name(wire.body_object(body).get("name")), tenant)
        return {}

    def delete_database(self, tenant: str, database: str) -> dict[str, Any]:
        self._store.delete_database(database, tenant)
        return {}

    # -- collections ------------------------------------------------------------------------
    def list_collections(self, tenant: str, database: str, limit: Any, offset: Any) -> list[dict[str, Any]]:
        check_database_name(database)
        limit, offset = _query_int(limit, "limit"), _query_int(offset, "offset")
        # The store's records directly: Client.list_collections would rebuild every
        # collection's embedding function, which a server must never do.
        records = self._store.list_collections(tenant, database, v.check_limit(limit), v.check_limit(offset, "offset"))
        return [wire.collection_json(Collection(self.client, record, None)) for record in records]

    def count_collections(self, tenant: str, database: str) -> int:
        return self._scoped(tenant, database).count_collections()

    def create_collection(self, tenant: str, database: str, body: Any) -> dict[str, Any]:
        client = self._scoped(tenant, database)
        body = wire.body_object(body)
        name = body.get("name")
        if not isinstance(name, str):
            raise wire.SchemaError(
                f"Failed to deserialize the JSON body into the target type: name: expected a string, got {name!r}"
            )
        metadata = wire.dict_field(body, "metadata")
        configuration = dict(wire.dict_field(body, "configuration") or {})
        # The stored embedding-function record is the request's, verbatim (None if absent):
        # build_configuration lets configuration["embedding_function"] win.
        configuration.setdefault("embedding_function", None)
        collection = client.create_collection(
            name,
            schema=wire.dict_field(body, "schema"),
            configuration=configuration,
            metadata=metadata,
            embedding_function=None,
            get_or_create=wire.bool_field(body, "get_or_create"),
        )
        return wire.collection_json(collection)

    def get_collection(self, tenant: str, database: str, name: str) -> dict[str, Any]:
        return wire.collection_json(self._scoped(tenant, database).get_collection(name, embedding_function=None))

    def get_collection_by_id(self, tenant: str, database: str, collection_id: str) -> dict[str, Any]:
        return wire.collection_json(self._collection(tenant, database, collection_id))

    def delete_collection(self, tenant: str, database: str, name: str) -> dict[str, Any]:
        self._scoped(tenant, database).delete_collection(name)
        return {}

    def modify_collection(self, tenant: str, database: str, collection_id: str, body: Any) -> dict[str, Any]:
        collection = self._collection(tenant, database, collection_id)
        body = wire.body_object(body)
        new_name = body.get("new_name")
        if new_name is not None and not isinstance(new_name, str):
            raise wire.SchemaError(
                "Failed to deserialize the JSON body into the target type: new_name: expected a string"
            )
        # Chroma's clients send every configuration section, unset ones as null: null means "unchanged"
        configuration = {
            k: val for k, val in (wire.dict_field(body, "new_configuration") or {}).items() if val is not None
        }
        collection._modify(new_name, wire.dict_field(body, "new_metadata"), configuration or None)
        return {}

    def _collection(self, tenant: str, database: str, collection_id: str) -> Collection:
        check_database_name(database)
        try:
            parsed = uuid.UUID(collection_id)
        except ValueError:
            raise InvalidArgumentError(f"Collection ID is not a valid UUIDv4: {collection_id!r}") from None
        collection = self.client.get_collection_by_id(str(parsed), embedding_function=None)
        if collection.tenant != tenant or collection.database != database:
            raise NotFoundError(f"Collection [{collection_id}] does not exist")
        return collection

    def _records(self, tenant: str, database: str, collection_id: str) -> Collection:
        """The collection for a call on its records, looked up once and then kept.

        A lookup costs a registry read (two PostgreSQL round trips on a shared lake) at every
        add. Record calls need only the collection's id and its fixed parts (tenant, database,
        schema): the store checks at each call that the collection still exists, caught up
        with every process's commits, and answers NotFoundError when it was deleted anywhere.
        Calls that answer the collection itself (its name, metadata, configuration) read it
        fresh through `_collection`."""
        key = (tenant, database, collection_id)
        found = self._found.get(key)
        if found is None:
            found = self._collection(tenant, database, collection_id)
            if len(self._found) >= FOUND_KEPT:
                self._found.pop(next(iter(self._found)))
            self._found[key] = found
        return found

    # -- records ----------------------------------------------------------------------------
    def write(self, tenant: str, database: str, collection_id: str, mode: str, body: Any) -> dict[str, Any]:
        """add / upsert / update: repeated ids keep their last record, as Chroma's server does."""
        collection = self._records(tenant, database, collection_id)
        body = wire.body_object(body)
        ids = wire.ids_field(body, required=mode != "add")
        embeddings = wire.embeddings_field(body, "embeddings", nullable_items=mode == "update")
        if embeddings is None and mode != "update":
            raise wire.SchemaError(
                f"Failed to deserialize the JSON body into the target type: embeddings: required for {mode}"
            )
        metadatas = wire.metadatas_field(body)
        documents = wire.optional_str_list(body, "documents", nullable_items=True)
        uris = wire.optional_str_list(body, "uris", nullable_items=True)
        if ids is None:  # an add without ids: vecduck gives each record a new uuid4 id
            ids = generated_ids([embeddings, metadatas, documents, uris])
        wire.check_lengths(ids, embeddings=embeddings, metadatas=metadatas, documents=documents, uris=uris)
        if not ids:
            return {}
        ids, (embeddings, metadatas, documents, uris) = wire.last_one_wins(ids, embeddings, metadatas, documents, uris)
        collection._write(mode, ids, embeddings, metadatas, documents, uris)
        return {}

    def get(self, tenant: str, database: str, collection_id: str, body: Any) -> dict[str, Any]:
        collection = self._records(tenant, database, collection_id)
        body = wire.body_object(body)
        include = wire.include_field(body, wire.GET_INCLUDE_DEFAULT)
        result = collection._get(
            wire.ids_field(body, required=False),
            wire.dict_field(body, "where"),
            wire.count_field(body, "limit"),
            wire.count_field(body, "offset"),
            wire.dict_field(body, "where_document"),
            [item for item in include if item != "data"],
        )
        return wire.get_response(result, include)

    def query(self, tenant: str, database: str, collection_id: str, body: Any) -> dict[str, Any]:
        collection = self._records(tenant, database, collection_id)
        body = wire.body_object(body)
        include = wire.include_field(body, wire.QUERY_INCLUDE_DEFAULT)
        queries = wire.embeddings_field(body, "query_embeddings", nullable_items=False)
        if queries is None:
            raise wire.SchemaError(
                "Failed to deserialize the JSON body into the target type: query_embeddings: required"
            )
        n_results = wire.count_field(body, "n_results")
        n_results = 10 if n_results is None else n_results
        ids = wire.ids_field(body, required=False)
        where = wire.dict_field(body, "where")
        where_document = wire.dict_field(body, "where_document")
        # A bad filter is a 400 even when no search runs (n_results 0, no queries), as in Chroma.
        filter_sql(where, where_document, {}, [])
        if not queries or n_results == 0:
            if queries:
                v.check_embeddings(queries)
            return wire.empty_query_response(len(queries), include)
        result = collection._query(
            queries, n_results, ids, where, where_document, [item for item in include if item != "data"]
        )
        return wire.query_response(result, include)

    def delete(self, tenant: str, database: str, collection_id: str, body: Any) -> dict[str, int]:
        collection = self._records(tenant, database, collection_id)
        body = wire.body_object(body)
        ids = wire.ids_field(body, required=False)
        where = wire.dict_field(body, "where")
        where_document = wire.dict_field(body, "where_document")
        limit = wire.count_field(body, "limit")
        if ids is None and where is None and where_document is None:
            return {"deleted": 0}
        return {"deleted": collection._delete(ids, where, where_document, limit)}

    def search(self, tenant: str, database: str, collection_id: str, body: Any) -> dict[str, Any]:
        """Chroma's Search API: `{"searches": [...], "read_level": ...}`."""
        collection = self._records(tenant, database, collection_id)
        body = wire.body_object(body)
        searches = body.get("searches")
        if not isinstance(searches, list):
            raise wire.SchemaError(
                "Failed to deserialize the JSON body into the target type: searches: expected a list"
            )
        level = body.get("read_level")
        return dict(collection._search(searches, "index_and_wal" if level is None else level))

    def fork(self, tenant: str, database: str, collection_id: str, body: Any) -> dict[str, Any]:
        collection = self._records(tenant, database, collection_id)
        new_name = wire.body_object(body).get("new_name")
        if not isinstance(new_name, str):
            raise wire.SchemaError(
                "Failed to deserialize the JSON body into the target type: new_name: expected a string"
            )
        v.check_collection_name(new_name)
        return wire.collection_json(Collection(self.client, collection._fork(new_name), None))

    def fork_count(self, tenant: str, database: str, collection_id: str) -> dict[str, int]:
        return {"count": self._records(tenant, database, collection_id).fork_count()}

    def indexing_status(self, tenant: str, database: str, collection_id: str) -> dict[str, Any]:
        return dataclasses.asdict(self._records(tenant, database, collection_id).get_indexing_status())

    def count(self, tenant: str, database: str, collection_id: str, level: str | None) -> int:
        wire.read_level(level)
        return self._records(tenant, database, collection_id).count()


def _query_int(value: str | None, name: str) -> int | None:
    """A `?limit=`/`?offset=` query parameter."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}") from None
    if number < 0 or number >= 2**63:
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}")
    return number


__all__ = ["HttpError", "Service", "not_supported"]
