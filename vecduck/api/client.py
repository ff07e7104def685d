"""Client: chromadb's client API over one data folder (a temporary one when in memory)."""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import shutil
import tempfile
import threading
import time
import uuid
from typing import Any

from vecduck import __version__
from vecduck.api import validation as v
from vecduck.api.client_base import UNSET, ClientBase
from vecduck.api.collection import Collection
from vecduck.api.configuration import build_configuration
from vecduck.api.embedding import (
    default_embedding_function,
    embedding_function_config,
    function_from_configuration,
    resolve_embedding_function,
)
from vecduck.api.indexing import check_schema, configuration_with_schema
from vecduck.api.types import UserIdentity
from vecduck.engine.location import Location, location_for
from vecduck.engine.registry import CollectionRecord
from vecduck.engine.store import Store
from vecduck.errors import AuthorizationError, InvalidArgumentError, NotFoundError

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
MAX_BATCH_SIZE = 5461


class Settings:
    """Client settings; names follow chromadb's `Settings` where they overlap.

    `durability` (persistent clients): "process" (default) keeps every acknowledged
    write through any crash of the process; "fsync" also through a power cut, at the
    price of an fsync per write.
    """

    def __init__(
        self,
        allow_reset: bool = False,
        is_persistent: bool = False,
        persist_directory: str = "./chroma",
        anonymized_telemetry: bool = False,
        durability: str = "process",
        **extra: Any,
    ) -> None:
        self.allow_reset = allow_reset
        self.is_persistent = is_persistent
        self.persist_directory = persist_directory
        self.anonymized_telemetry = anonymized_telemetry
        self.durability = durability
        self.extra = extra

    def __repr__(self) -> str:
        return f"Settings(allow_reset={self.allow_reset}, durability={self.durability!r})"


class _SharedStores:
    """One Store per folder per process, shared by every client opened on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[Store, int]] = {}
        self._ephemeral: Store | None = None
        self._ephemeral_dir: str | None = None

    def acquire(self, location: Location, durability: str) -> Store:
        key = location.key
        with self._lock:
            store, users = self._stores.get(key, (None, 0))
            if store is None or store.closed:
                store, users = Store(location, durability=durability), 0
            self._stores[key] = (store, users + 1)
            return store

    def release(self, store: Store) -> None:
        with self._lock:
            for key, (known, users) in list(self._stores.items()):
                if known is store:
                    if users <= 1:
                        del self._stores[key]
                        store.close()
                    else:
                        self._stores[key] = (known, users - 1)

    def ephemeral(self) -> Store:
        with self._lock:
            if self._ephemeral is None or self._ephemeral.closed:
                self._ephemeral_dir = tempfile.mkdtemp(prefix="vecduck-memory-")
                self._ephemeral = Store(self._ephemeral_dir, durability="none")
            return self._ephemeral

    def close_all(self) -> None:
        with self._lock:
            for store, _users in self._stores.values():
                with contextlib.suppress(Exception):
                    store.close()
            self._stores.clear()
            if self._ephemeral is not None:
                with contextlib.suppress(Exception):
                    self._ephemeral.close()
            if self._ephemeral_dir:
                shutil.rmtree(self._ephemeral_dir, ignore_errors=True)


STORES = _SharedStores()
atexit.register(STORES.close_all)


class Client(ClientBase):
    """An embedded vecduck client. `Client()` keeps everything in memory."""

    _admin = False  # AdminClient's own client: it manages tenants and databases, needs none to exist

    @staticmethod
    def clear_system_cache() -> None:
        """chromadb's reset of the process's open systems: every store this process holds
        is flushed and closed (clients opened before fail from then on), and the in-memory
        one is emptied; the next client opens afresh."""
        STORES.close_all()

    def __init__(
        self,
        settings: Settings | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
        *,
        path: str | os.PathLike[str] | None = None,
        data_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._settings = settings or Settings()
        if path is None and self._settings.is_persistent:
            path = self._settings.persist_directory
        elif path is not None:  # as chromadb's PersistentClient: the settings say where it persists
            self._settings = copy.copy(self._settings)
            self._settings.is_persistent, self._settings.persist_directory = True, os.fspath(path)
        self._path = None if path is None else os.fspath(path)
        self._data_path = None if data_path is None else os.fspath(data_path)
        self.tenant = tenant
        self.database = database
        if self._path is None:
            self._store: Store | None = STORES.ephemeral()
            self._shared = False
        else:
            location = location_for(self._path, self._data_path)
            self._store = STORES.acquire(location, self._settings.durability)
            self._shared = True
        if not self._admin:
            try:
                check_scope(self._store, tenant, database)
            except Exception:
                self.close()
                raise

    def _scoped(self, tenant: str, database: str) -> Client:
        """This client aimed at another tenant and database (the same store; closing it
        releases nothing). For the server, which serves every tenant from one client."""
        scoped = copy.copy(self)
        scoped.tenant, scoped.database, scoped._shared = tenant, database, False
        return scoped

    def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        """Use another tenant (and database) from now on; both must exist."""
        check_scope(self._store_for_use(), tenant, database)
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        """Use another database of the current tenant from now on; it must exist."""
        check_scope(self._store_for_use(), self.tenant, database)
        self.database = database

    # -- lifecycle ------------------------------------------------------------------------
    def _store_for_use(self) -> Store:
        if self._store is None or self._store.closed:
            raise InvalidArgumentError("This client is closed")
        return self._store

    def close(self) -> None:
        """Flush buffered writes to the lake and release the folder (idempotent)."""
        if self._store is not None and self._shared:
            STORES.release(self._store)
        self._store = None

    def flush(self) -> None:
        """Move buffered small writes into the lake's Parquet files now."""
        self._store_for_use().flush()

    @property
    def path(self) -> str | None:
        """The data folder of a persistent client (a shared lake's catalog URL)."""
        return self._path

    @property
    def data_path(self) -> str | None:
        """A shared lake's data path (`s3://bucket/prefix/` or a folder); None for a folder."""
        return self._data_path

    def get_max_batch_size(self) -> int:
        return MAX_BATCH_SIZE

    # -- server-ish -----------------------------------------------------------------------
    def heartbeat(self) -> int:
        """Nanoseconds since the epoch."""
        return time.time_ns()

    def get_version(self) -> str:
        return __version__

    def get_user_identity(self) -> UserIdentity:
        """chromadb's answer for an embedded client: no user, the default tenant and database."""
        return UserIdentity(user_id="", tenant=DEFAULT_TENANT, databases=[DEFAULT_DATABASE])

    def reset(self) -> bool:
        """Delete every collection; refused unless `Settings(allow_reset=True)`."""
        if not self._settings.allow_reset:
            raise AuthorizationError("Reset is disabled by config")
        self._store_for_use().reset()
        return True

    # -- collections ----------------------------------------------------------------------
    def _collection(self, record: CollectionRecord, embedding_function: Any, data_loader: Any) -> Collection:
        ef = resolve_embedding_function(record.configuration.get("embedding_function"), embedding_function, UNSET)
        return Collection(self, record, ef, data_loader)

    def create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = UNSET,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> Collection:
        """Create a collection; an existing name raises unless `get_or_create`."""
        v.check_collection_name(name)
        v.check_collection_metadata(metadata)
        configuration, embedding_function = function_from_configuration(configuration, embedding_function, UNSET)
        ef = default_embedding_function() if embedding_function is UNSET else embedding_function
        recorded = embedding_function_config(ef)
        if ef is None and configuration and (configuration.get("hnsw") or configuration.get("spann")):
            recorded = {"type": "legacy"}  # chromadb: no function with an index configuration embeds nothing
        config = build_configuration(metadata, configuration, recorded)
        declared = None
        if schema is not None:
            from vecduck.api.schema import schema_json

            declared = check_schema(schema_json(schema))
        config = configuration_with_schema(config, declared)
        record = self._store_for_use().create_collection(
            name, metadata, config, self.tenant, self.database, get_or_create=get_or_create, schema=declared
        )
        return self._collection(record, embedding_function, data_loader)

    def get_collection(self, name: str, embedding_function: Any = UNSET, data_loader: Any = None) -> Collection:
        """The collection named `name`; NotFoundError when there is none."""
        record = self._store_for_use().get_collection(name, self.tenant, self.database)
        return self._collection(record, embedding_function, data_loader)

    def get_collection_by_id(self, id: Any, embedding_function: Any = UNSET, data_loader: Any = None) -> Collection:
        record = self._store_for_use().get_collection_by_id(str(id))
        return self._collection(record, embedding_function, data_loader)

    def list_collections(self, limit: int | None = None, offset: int | None = None) -> list[Collection]:
        """Collections in creation order."""
        limit = v.check_limit(limit)
        offset = v.check_limit(offset, "offset")
        records = self._store_for_use().list_collections(self.tenant, self.database, limit, offset)
        return [self._collection(record, UNSET, None) for record in records]

    def count_collections(self) -> int:
        return self._store_for_use().count_collections(self.tenant, self.database)

    def delete_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""
        self._store_for_use().delete_collection(name, self.tenant, self.database)

    def __repr__(self) -> str:
        where = "in memory" if self._path is None else f"path={self._path!r}"
        return f"vecduck.Client({where})"

    # -- data science hooks (vecduck.sql, vecduck.display) --------------------------------
    def sql(self, query: str, params: Any = None, *, as_of: int | str | Any = None) -> Any:
        """Read-only DuckDB SQL over every collection (a view per name); a DuckDB relation."""
        from vecduck.sql import run_sql

        return run_sql(self, query, params, as_of=as_of)

    def _repr_html_(self) -> str:
        from vecduck.display import client_html

        return client_html(self)


def check_tenant_name(name: Any) -> str:
    """chromadb's rule: at least 3 characters; vecduck also refuses "/" (a URL path segment)."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"Validation error: name: expected a string, got {type(name).__name__}")
    if len(name) < 3:
        raise InvalidArgumentError(
            f'Validation error: name: Validation error: length [{{"value": String("{name}"), "min": Number(3)}}]'
        )
    _check_path_safe(name, "tenant")
    return name


def check_database_name(name: Any) -> str:
    """chromadb's rule: at least 3 characters; vecduck also refuses "/" (a URL path segment)."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"Validation error: database name: expected a string, got {type(name).__name__}")
    if len(name) < 3:
        raise InvalidArgumentError("database name must be at least 3 characters")
    _check_path_safe(name, "database")
    return name


def _check_path_safe(name: str, what: str) -> None:
    v.check_text(name, f"Validation error: {what} name")
    if "/" in name or "\x00" in name:
        raise InvalidArgumentError(f"Validation error: {what} name must not contain '/' or NUL, got {name!r}")


def check_scope(store: Store | None, tenant: str, database: str) -> None:
    """The tenant and database a client uses must exist (chromadb's errors)."""
    if store is None:
        raise InvalidArgumentError("This client is closed")
    if not isinstance(tenant, str) or not store.registry.tenant_exists(tenant):
        raise NotFoundError(f"Tenant [{tenant}] not found")
    check_database_name(database)
    store.get_database(database, tenant)


class AdminClient:
    """Tenants and databases of a folder (chromadb's `AdminClient`): create, get, list, delete.

    `AdminClient()` manages the in-memory store every `Client()` shares;
    `AdminClient(Settings(is_persistent=True, persist_directory=path))` a folder. For a
    server, use `vecduck.HttpClient`'s admin: `AdminClient(Settings(chroma_server_host=...,
    chroma_server_http_port=...))` returns `vecduck.http_client.HttpAdminClient`.
    """

    def __new__(cls, settings: Settings | None = None) -> Any:
        extra = (settings.extra if settings is not None else {}) or {}
        if extra.get("chroma_server_host") or str(extra.get("chroma_api_impl", "")).endswith("FastAPI"):
            from vecduck.http_client import HttpAdminClient

            return HttpAdminClient(settings=settings)
        return super().__new__(cls)

    def __init__(self, settings: Settings | None = None) -> None:
        self._client = _AdminsClient(settings=settings)

    def _store(self) -> Store:
        return self._client._store_for_use()

    def create_tenant(self, name: str) -> None:
        self._store().create_tenant(check_tenant_name(name))

    def get_tenant(self, name: str) -> dict[str, Any]:
        self._store().check_tenant(name)
        return {"name": name}

    def create_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._store().create_database(check_database_name(name), tenant)

    def get_database(self, name: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        return database_dict(self._store().get_database(check_database_name(name), tenant))

    def list_databases(
        self, limit: int | None = None, offset: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> list[dict[str, Any]]:
        """The tenant's databases by name, `offset` and `limit` as in list_collections."""
        found = self._store().list_databases(tenant, v.check_limit(limit), v.check_limit(offset, "offset"))
        return [database_dict(d) for d in found]

    def delete_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        """Delete a database and every collection in it (atomically)."""
        self._store().delete_database(name, tenant)  # no name rule: a missing one is NotFoundError, as in chromadb

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AdminsClient(Client):
    """The client an AdminClient opens its folder with: no tenant or database need exist."""

    _admin = True


def database_dict(found: dict[str, Any]) -> dict[str, Any]:
    """chromadb's `Database`: its id as a UUID."""
    return {"id": uuid.UUID(str(found["id"])), "name": found["name"], "tenant": found["tenant"]}


def EphemeralClient(  # noqa: N802 - chromadb's factory name
    settings: Settings | None = None, tenant: str = DEFAULT_TENANT, database: str = DEFAULT_DATABASE
) -> Client:
    """An in-memory client; all in-memory clients of a process share one store."""
    return Client(settings=settings, tenant=tenant, database=database)


class SharedSystemClient:
    """chromadb's name for the registry behind every client, for code that resets it with
    `SharedSystemClient.clear_system_cache()` (tests and notebooks do)."""

    clear_system_cache = staticmethod(Client.clear_system_cache)


def PersistentClient(  # noqa: N802 - chromadb's factory name
    path: str | os.PathLike[str] = "./chroma",
    settings: Settings | None = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
    *,
    data_path: str | os.PathLike[str] | None = None,
) -> Client:
    """A client whose data lives in the folder `path` (created if missing), or in a shared
    lake: `path` a PostgreSQL URL (its catalog) and `data_path` an `s3://bucket/prefix/`
    URL or a shared folder (its Parquet files); see docs/deploy.md."""
    return Client(settings=settings, tenant=tenant, database=database, path=path, data_path=data_path)


__all__ = [
    "AdminClient",
    "Client",
    "EphemeralClient",
    "NotFoundError",
    "PersistentClient",
    "Settings",
    "SharedSystemClient",
]
