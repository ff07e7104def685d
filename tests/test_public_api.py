"""The public surface of `import vecduck` is pinned: a name added or dropped is a decision."""

from __future__ import annotations

import subprocess
import sys
import types

import vecduck

EXPECTED = {
    # clients and their results
    "AdminClient",
    "AsyncHttpClient",
    "Client",
    "EphemeralClient",
    "PersistentClient",
    "HttpClient",
    "Settings",
    "Collection",
    "GetResult",
    "QueryResult",
    "SearchResult",
    "duckdb_connect",
    "errors",
    "__version__",
    # the Search API's expressions and sparse vectors
    "Search",
    "Key",
    "K",
    "Knn",
    "Rrf",
    "Val",
    "Rank",
    "Where",
    "GroupBy",
    "MinK",
    "MaxK",
    "Limit",
    "Select",
    "SparseVector",
    # the collection schema
    "Schema",
    "VectorIndexConfig",
    "SparseVectorIndexConfig",
    "HnswIndexConfig",
    "SpannIndexConfig",
    "FtsIndexConfig",
    "StringInvertedIndexConfig",
    "IntInvertedIndexConfig",
    "FloatInvertedIndexConfig",
    "BoolInvertedIndexConfig",
}


def test_all_is_pinned() -> None:
    assert set(vecduck.__all__) == EXPECTED
    assert len(vecduck.__all__) == len(set(vecduck.__all__))


def test_every_exported_name_resolves() -> None:
    for name in vecduck.__all__:
        assert getattr(vecduck, name) is not None, name


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name in dir(vecduck)
        if not name.startswith("_") and not isinstance(getattr(vecduck, name), types.ModuleType)
    }
    public -= {"TYPE_CHECKING", "annotations"}
    assert public <= set(vecduck.__all__), sorted(public - set(vecduck.__all__))


def test_search_and_schema_classes_are_loaded_only_when_used() -> None:
    code = (
        "import sys, vecduck; "
        "print(any(m in sys.modules for m in ('vecduck.api.expressions', 'vecduck.api.schema', 'httpx'))); "
        "vecduck.Search; vecduck.Schema; "
        "print(all(m in sys.modules for m in ('vecduck.api.expressions', 'vecduck.api.schema')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
