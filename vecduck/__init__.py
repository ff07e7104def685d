"""vecduck: a Chroma-compatible embedding database on DuckDB, Parquet and usearch.

Change `import chromadb` to `import vecduck` and the same code runs; each collection is
also a Parquet-backed table you can query with SQL.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vecduck import errors
from vecduck.api.client import (
    AdminClient,
    Client,
    EphemeralClient,
    PersistentClient,
    Settings,
)
from vecduck.api.collection import Collection
from vecduck.api.types import GetResult, QueryResult, SearchResult, SparseVector
from vecduck.engine.lake import open_readonly as duckdb_connect
from vecduck.utils.pandas_deferral import defer_pandas_import as _defer_pandas_import

_defer_pandas_import()  # before anything asks pyarrow about pandas: see the module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vecduck.api.expressions import GroupBy, K, Key, Knn, Limit, MaxK, MinK, Rank, Rrf, Search, Select, Val, Where
    from vecduck.api.schema import (
        BoolInvertedIndexConfig,
        FloatInvertedIndexConfig,
        FtsIndexConfig,
        HnswIndexConfig,
        IntInvertedIndexConfig,
        Schema,
        SpannIndexConfig,
        SparseVectorIndexConfig,
        StringInvertedIndexConfig,
        VectorIndexConfig,
    )
    from vecduck.async_http_client import AsyncHttpClient
    from vecduck.http_client import HttpClient

# Imported at first use: an embedded user who never searches or declares a schema skips them.
_LAZY = {
    "HttpClient": "vecduck.http_client",
    "AsyncHttpClient": "vecduck.async_http_client",
    **dict.fromkeys(
        ["GroupBy", "K", "Key", "Knn", "Limit", "MaxK", "MinK", "Rank", "Rrf", "Search", "Select", "Val", "Where"],
        "vecduck.api.expressions",
    ),
    **dict.fromkeys(
        [
            "BoolInvertedIndexConfig",
            "FloatInvertedIndexConfig",
            "FtsIndexConfig",
            "HnswIndexConfig",
            "IntInvertedIndexConfig",
            "Schema",
            "SpannIndexConfig",
            "SparseVectorIndexConfig",
            "StringInvertedIndexConfig",
            "VectorIndexConfig",
        ],
        "vecduck.api.schema",
    ),
}


def __getattr__(name: str) -> object:
    """The names of `_LAZY`, imported at first use (httpx, the Search and Schema classes)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vecduck' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AdminClient",
    "AsyncHttpClient",
    "BoolInvertedIndexConfig",
    "Client",
    "Collection",
    "EphemeralClient",
    "FloatInvertedIndexConfig",
    "FtsIndexConfig",
    "GetResult",
    "GroupBy",
    "HnswIndexConfig",
    "HttpClient",
    "IntInvertedIndexConfig",
    "K",
    "Key",
    "Knn",
    "Limit",
    "MaxK",
    "MinK",
    "PersistentClient",
    "QueryResult",
    "Rank",
    "Rrf",
    "Schema",
    "Search",
    "SearchResult",
    "Select",
    "Settings",
    "SpannIndexConfig",
    "SparseVector",
    "SparseVectorIndexConfig",
    "StringInvertedIndexConfig",
    "Val",
    "VectorIndexConfig",
    "Where",
    "__version__",
    "duckdb_connect",
    "errors",
]
