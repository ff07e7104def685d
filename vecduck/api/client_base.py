"""What every vecduck client shares, whatever carries its calls (in-process or HTTP)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self


class _Unset:
    """Marks an argument the caller did not pass (None means 'no embedding function')."""

    def __repr__(self) -> str:
        return "<default>"


UNSET: Any = _Unset()


class ClientBase(ABC):
    """The transport-independent part of chromadb's client API.

    Subclasses provide `create_collection`, `get_version`, `close` and the rest of the
    calls that reach storage; this class derives the ones defined in terms of those.
    """

    tenant: str
    database: str
    _settings: Any

    @abstractmethod
    def create_collection(self, *args: Any, **kwargs: Any) -> Any:
        """Create a collection (or return the existing one with get_or_create=True)."""

    @abstractmethod
    def get_version(self) -> str:
        """The version of whatever answers the calls."""

    @abstractmethod
    def close(self) -> None:
        """Release what the client holds (idempotent)."""

    def get_or_create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = UNSET,
        data_loader: Any = None,
    ) -> Any:
        """The existing collection unchanged, or a new one with these settings."""
        return self.create_collection(
            name,
            schema=schema,
            configuration=configuration,
            metadata=metadata,
            embedding_function=embedding_function,
            data_loader=data_loader,
            get_or_create=True,
        )

    def version(self) -> str:
        return self.get_version()

    def get_settings(self) -> Any:
        return self._settings

    def set_tenant(self, tenant: str, database: str = "default_database") -> None:
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        self.database = database

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
