"""vecduck: a Chroma-compatible embedding database on DuckDB, Parquet and usearch.

Change `import chromadb` to `import vecduck` and the same code runs; each collection is
also a Parquet-backed table you can query with SQL.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vecduck import errors
from vecduck.api.client import (
    Client,
    EphemeralClient,
    PersistentClient,
    Settings,
)
from vecduck.api.collection import Collection
from vecduck.api.types import GetResult, QueryResult
from vecduck.engine.lake import open_readonly as duckdb_connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vecduck.http_client import HttpClient


def __getattr__(name: str) -> object:
    """`vecduck.HttpClient`, imported at first use: embedded users skip loading httpx."""
    if name == "HttpClient":
        from vecduck.http_client import HttpClient

        return HttpClient
    raise AttributeError(f"module 'vecduck' has no attribute {name!r}")

__all__ = [
    "Client",
    "Collection",
    "EphemeralClient",
    "GetResult",
    "HttpClient",
    "PersistentClient",
    "QueryResult",
    "Settings",
    "__version__",
    "duckdb_connect",
    "errors",
]
