"""The clients the Search API tests run on, each with its expression classes.

* `embedded`: `vecduck.Client()` with vecduck's expression classes;
* `embedded-chromadb-exprs`: `vecduck.Client()` given chromadb's classes (Search, K, Knn,
  Schema, SparseVector, chromadb's BM25 embedding function);
* `persistent`: `vecduck.PersistentClient(folder)`;
* `reopened`: the same with chromadb's classes, closed and reopened after every batch of
  writes (`backend.settle()`);
* `chromadb-http`: the official `chromadb.HttpClient` against `vecduck run`;
* `vecduck-http`: `vecduck.HttpClient` against `vecduck run`, with vecduck's classes.

The server is the `Server` of tests/server/conftest.py, loaded under its own module name so
the two conftest modules do not collide.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import search_reference as ref
from search_reference import KnnSpec, Query

SERVER_CONFTEST = Path(__file__).parent.parent / "server" / "conftest.py"
BACKENDS = ["embedded", "embedded-chromadb-exprs", "persistent", "reopened", "chromadb-http", "vecduck-http"]
SPACES = ["l2", "cosine", "ip"]
DATA_SEED = 20240611


def server_class() -> Any:
    module = sys.modules.get("vecduck_search_server_conftest")
    if module is None:
        spec = importlib.util.spec_from_file_location("vecduck_search_server_conftest", SERVER_CONFTEST)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module.Server


def vecduck_classes() -> SimpleNamespace:
    import vecduck
    from vecduck.execution.expression import GroupBy, K, Knn, Limit, MaxK, MinK, Rrf, Search, Select, Val
    from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction

    return SimpleNamespace(
        Search=Search,
        K=K,
        Knn=Knn,
        Rrf=Rrf,
        Val=Val,
        GroupBy=GroupBy,
        MinK=MinK,
        MaxK=MaxK,
        Limit=Limit,
        Select=Select,
        SparseVector=vecduck.SparseVector,
        Schema=vecduck.Schema,
        SparseVectorIndexConfig=vecduck.SparseVectorIndexConfig,
        Bm25=ChromaBm25EmbeddingFunction,
    )


def chromadb_classes() -> SimpleNamespace:
    import chromadb
    from chromadb.execution.expression import GroupBy, Limit, MaxK, MinK, Select, Val
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

    return SimpleNamespace(
        Search=chromadb.Search,
        K=chromadb.K,
        Knn=chromadb.Knn,
        Rrf=chromadb.Rrf,
        Val=Val,
        GroupBy=GroupBy,
        MinK=MinK,
        MaxK=MaxK,
        Limit=Limit,
        Select=Select,
        SparseVector=chromadb.SparseVector,
        Schema=chromadb.Schema,
        SparseVectorIndexConfig=chromadb.SparseVectorIndexConfig,
        Bm25=ChromaBm25EmbeddingFunction,
    )


_names = itertools.count()


def unique(name: str) -> str:
    """A collection name no other test uses (in-memory clients share one store)."""
    return f"{name}-{next(_names)}-{uuid.uuid4().hex[:6]}"


class Backend:
    """One client kind: creates collections, and `settle()`s them after writes (the
    `reopened` backend closes its client and opens the folder again)."""

    def __init__(self, name: str, api: SimpleNamespace, open_client: Any, reopen: bool = False) -> None:
        self.name = name
        self.api = api
        self._open = open_client
        self.client = open_client()
        self.reopen = reopen
        self.generation = 0  # counts reopenings: collection handles of older clients are stale
        self.official = name == "chromadb-http"
        self.functions: dict[str, Any] = {}  # collection name -> embedding function passed at creation

    def create(self, name: str, *, space: str | None = None, schema: Any = None, embedding_function: Any = None) -> Any:
        kwargs: dict[str, Any] = {"embedding_function": embedding_function}
        if space is not None:
            kwargs["configuration"] = {"hnsw": {"space": space}}
        if schema is not None:
            kwargs["schema"] = schema
        self.functions[name] = embedding_function
        return self.client.create_collection(name, **kwargs)

    def get(self, name: str) -> Any:
        return self.client.get_collection(name, embedding_function=self.functions.get(name))

    def settle(self, collection: Any) -> Any:
        """The collection after its writes: reopened from disk for the `reopened` backend."""
        if not self.reopen:
            return collection
        self.client.close()
        self.client = self._open()
        self.generation += 1
        return self.get(collection.name)

    def bm25_schema(self) -> Any:
        api = self.api
        config = api.SparseVectorIndexConfig(source_key=api.K.DOCUMENT, embedding_function=api.Bm25(), bm25=True)
        return api.Schema().create_index(config=config, key=ref.BM25_KEY)

    def add_records(self, collection: Any, records: list[ref.Record]) -> None:
        collection.add(
            ids=[r.id for r in records],
            embeddings=np.stack([r.embedding for r in records]),
            documents=[r.document for r in records],
            metadatas=[r.full_metadata(self.api.SparseVector) for r in records],
        )

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def open_backend(name: str, request: pytest.FixtureRequest, folder: Path) -> Backend:
    import vecduck

    if name == "embedded":
        return Backend(name, vecduck_classes(), vecduck.Client)
    if name == "embedded-chromadb-exprs":
        return Backend(name, chromadb_classes(), vecduck.Client)
    if name == "persistent":
        return Backend(name, vecduck_classes(), lambda: vecduck.PersistentClient(folder))
    if name == "reopened":
        return Backend(name, chromadb_classes(), lambda: vecduck.PersistentClient(folder), reopen=True)
    server = request.getfixturevalue("search_server")
    if name == "chromadb-http":
        import chromadb

        settings = chromadb.Settings(anonymized_telemetry=False)
        return Backend(
            name, chromadb_classes(), lambda: chromadb.HttpClient("127.0.0.1", server.port, settings=settings)
        )
    if name == "vecduck-http":
        return Backend(name, vecduck_classes(), lambda: vecduck.HttpClient("127.0.0.1", server.port))
    raise ValueError(name)


class DataSet:
    """The main records, added to one collection per distance space."""

    def __init__(self, backend: Backend, records: list[ref.Record]) -> None:
        self.backend = backend
        self.records = records
        self.names: dict[str, str] = {}
        self.embeddings = np.stack([r.embedding for r in records])
        self.position = {r.id: i for i, r in enumerate(records)}
        self._handles: dict[tuple[int, str], Any] = {}

    def collection(self, space: str = "l2") -> Any:
        """The collection of that space, on the backend's current client."""
        key = (self.backend.generation, space)
        if key not in self._handles:
            self._handles[key] = self.backend.get(self.names[space])
        return self._handles[key]


# The queries of the main data set (4 dimensions; sparse ones on SPARSE_KEY).
_queries_rng = np.random.default_rng(7)
QUERIES = {
    "d0": Query(vector=_queries_rng.normal(size=4).astype(np.float32).tolist()),
    "d1": Query(vector=_queries_rng.normal(size=4).astype(np.float32)),  # an ndarray query
    "d2": Query(vector=[0.5, -1.0, 0.25, 2.0]),
    "s0": Query(indices=[1, 4, 7], values=[0.9, 0.5, 0.3], key=ref.SPARSE_KEY),
    "s1": Query(indices=[0, 3], values=[1.0, 0.25], key=ref.SPARSE_KEY),
    "s2": Query(indices=[2, 5, 11], values=[0.4, 0.8, 0.6], key=ref.SPARSE_KEY),
}


def expected_ranking(data: DataSet, node: Any, space: str, case: ref.FilterCase | None = None) -> ref.Expected:
    """The reference ranking (ids) of a rank tree over the data set."""
    records = data.records
    sparse = [r.sparse for r in records]

    def scores(spec: KnnSpec) -> dict[int, float]:
        query = QUERIES[spec.query]
        if query.sparse:
            return ref.sparse_scores(sparse, query.indices, query.values)
        return dict(enumerate(ref.dense_distances(data.embeddings, query.vector, space).tolist()))

    expected = ref.evaluate_rank(node, ref.matching(records, case), scores)
    return ref.Expected([(records[p].id, s, t) for p, s, t in expected.ranked], expected.ambiguous)
