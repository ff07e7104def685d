"""Collection schemas: what a schema asks for becomes the collection's configuration and
indexes, what vecduck cannot honour is refused, and the schema reported back says what
the collection indexes (embedded, and through `vecduck run` for chromadb's client)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.api.types import Schema as ChromaSchema

import vecduck
from vecduck import K, Schema, SpannIndexConfig, SparseVectorIndexConfig, VectorIndexConfig
from vecduck.errors import InvalidArgumentError
from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction


def _server_class() -> Any:
    """`Server` of tests/server/conftest.py, loaded under a name of its own."""
    path = Path(__file__).resolve().parents[1] / "server" / "conftest.py"
    spec = importlib.util.spec_from_file_location("vecduck_api_server_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Server


Server = _server_class()


def bm25_schema() -> Schema:
    return Schema().create_index(
        config=SparseVectorIndexConfig(
            source_key=K.DOCUMENT, embedding_function=ChromaBm25EmbeddingFunction(), bm25=True
        ),
        key="sparse_embedding",
    )


def test_vector_index_settings_become_the_configuration() -> None:
    client = vecduck.Client()
    schema = Schema().create_index(config=VectorIndexConfig(space="ip", hnsw={"ef_search": 77, "max_neighbors": 24}))
    collection = client.create_collection("schema-vector", schema=schema, embedding_function=None)
    hnsw = collection.configuration_json["hnsw"]
    assert (hnsw["space"], hnsw["ef_search"], hnsw["max_neighbors"]) == ("ip", 77, 24)
    reported = collection.schema.keys["#embedding"].float_list.vector_index.config
    assert reported.space == "ip" and reported.hnsw.ef_search == 77
    collection.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.5, 0.5]])
    distances = collection.query(query_embeddings=[[1.0, 0.0]], n_results=2, include=["distances"])["distances"][0]
    assert distances == pytest.approx([0.0, 0.5])  # ip: 1 - dot


def test_sparse_index_is_kept_and_reported() -> None:
    client = vecduck.Client()
    collection = client.create_collection("schema-sparse", schema=bm25_schema(), embedding_function=None)
    config = collection.schema.keys["sparse_embedding"].sparse_vector.sparse_vector_index.config
    assert config.bm25 is True and config.source_key == "#document"
    assert config.embedding_function.name() == "chroma_bm25"
    again = client.get_collection("schema-sparse", embedding_function=None)
    assert again.schema == collection.schema
    # chromadb's Schema reads what vecduck reports
    parsed = ChromaSchema.deserialize_from_json(collection.schema.serialize_to_json())
    assert parsed.keys["sparse_embedding"].sparse_vector.sparse_vector_index.config.bm25 is True


def test_a_plain_collection_reports_chromas_default_layout() -> None:
    collection = vecduck.Client().create_collection("schema-plain", embedding_function=None)
    reported = collection.schema.serialize_to_json()
    default = ChromaSchema().serialize_to_json()
    assert set(reported["defaults"]) == set(default["defaults"])
    assert set(reported["keys"]) == {"#document", "#embedding"}
    assert reported["keys"]["#embedding"]["float_list"]["vector_index"]["enabled"] is True


def raw_schema() -> dict[str, Any]:
    return ChromaSchema().serialize_to_json()


def with_index(key: str, value_type: str, name: str, config: dict[str, Any]) -> dict[str, Any]:
    schema = raw_schema()
    schema["keys"].setdefault(key, {}).setdefault(value_type, {})[name] = {"enabled": True, "config": config}
    return schema


REFUSED = {
    "spann settings": Schema().create_index(config=VectorIndexConfig(spann=SpannIndexConfig(search_nprobe=8))),
    "customer-managed key": {**raw_schema(), "cmek": {"gcp": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}},
    "vector index on a metadata key": with_index("title", "float_list", "vector_index", {}),
    "full-text index on a metadata key": with_index("title", "string", "fts_index", {}),
    "sparse index on a system key": with_index("#embedding", "sparse_vector", "sparse_vector_index", {}),
    "unknown value type": {**raw_schema(), "keys": {"title": {"text": {}}}},
    "unknown index": with_index("title", "string", "trigram_index", {}),
    "unknown vector setting": with_index("#embedding", "float_list", "vector_index", {"metric": "l2"}),
    "bad space": with_index("#embedding", "float_list", "vector_index", {"space": "hamming"}),
    "bad hnsw": with_index("#embedding", "float_list", "vector_index", {"hnsw": {"ef_search": -1}}),
    "bad source key": with_index("sp", "sparse_vector", "sparse_vector_index", {"source_key": "#embedding"}),
    "not an object": ["defaults"],
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_vecduck_cannot_honour_is_refused(case: str) -> None:
    client = vecduck.Client()
    expected = TypeError if case == "not an object" else InvalidArgumentError
    with pytest.raises(expected):
        client.create_collection(f"refused-{abs(hash(case))}", schema=copy.deepcopy(REFUSED[case]))
    assert f"refused-{abs(hash(case))}" not in [c.name for c in client.list_collections()]


def test_schema_round_trip_through_the_server(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    try:
        chroma = chromadb.HttpClient(host="127.0.0.1", port=server.port)
        from chromadb import Schema as CSchema
        from chromadb import SparseVectorIndexConfig as CSparse
        from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction as CBm25

        schema = CSchema().create_index(
            config=CSparse(source_key=chromadb.K.DOCUMENT, embedding_function=CBm25(), bm25=True), key="kw"
        )
        made = chroma.create_collection("schema-rest", schema=schema, embedding_function=None)
        got = chroma.get_collection("schema-rest", embedding_function=None)
        for collection in (made, got):
            index = collection.schema.keys["kw"].sparse_vector.sparse_vector_index
            assert index.enabled and index.config.bm25 and index.config.embedding_function.name() == "chroma_bm25"
        ours = vecduck.HttpClient(port=server.port).get_collection("schema-rest", embedding_function=None)
        assert ours.schema.keys["kw"].sparse_vector.sparse_vector_index.config.bm25 is True
        # the server refuses what it cannot honour, with a 4xx chromadb maps to its error class
        with pytest.raises(chromadb.errors.ChromaError, match="SPANN"):
            chroma.create_collection(
                "schema-spann",
                schema=CSchema().create_index(
                    config=chromadb.VectorIndexConfig(spann=chromadb.SpannIndexConfig(search_nprobe=8))
                ),
                embedding_function=None,
            )
    finally:
        assert server.stop() == 0, server.log()
