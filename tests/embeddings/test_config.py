"""Persisting and rebuilding a collection's embedding function in chromadb's format."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from vecduck.embeddings import (
    DefaultEmbeddingFunction,
    ONNXMiniLM_L6_V2,
    SentenceTransformerEmbeddingFunction,
    build_embedding_function,
    embedding_function_config,
)

HAS_ST = importlib.util.find_spec("sentence_transformers") is not None


def test_none_has_no_config() -> None:
    assert embedding_function_config(None) is None
    assert build_embedding_function(None) is None


def test_default_config_is_chromadb_shape() -> None:
    assert embedding_function_config(DefaultEmbeddingFunction()) == {
        "name": "default",
        "type": "known",
        "config": {},
    }


def test_chromadb_default_has_same_config_as_ours() -> None:
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction as ChromaDefault

    chroma = ChromaDefault()  # not called: calling would download chromadb's ONNX model
    assert embedding_function_config(chroma) == embedding_function_config(DefaultEmbeddingFunction())


def test_chromadb_serialises_ours_as_it_serialises_its_own() -> None:
    from chromadb.api.collection_configuration import collection_configuration_to_json
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction as ChromaDefault

    persisted = collection_configuration_to_json(
        {"hnsw": None, "spann": None, "embedding_function": ChromaDefault()}  # type: ignore[typeddict-item]
    )["embedding_function"]
    assert persisted == embedding_function_config(DefaultEmbeddingFunction())


def test_rebuilding_default_gives_ours() -> None:
    ef = build_embedding_function({"type": "known", "name": "default", "config": {}})
    assert isinstance(ef, DefaultEmbeddingFunction)
    assert embedding_function_config(ef) == {"name": "default", "type": "known", "config": {}}


def test_chromadb_onnx_name_rebuilds_offline_and_round_trips() -> None:
    providers = {"preferred_providers": ["CPUExecutionProvider"]}
    record = {"type": "known", "name": "onnx_mini_lm_l6_v2", "config": providers}
    ef = build_embedding_function(record)
    assert isinstance(ef, ONNXMiniLM_L6_V2)
    assert embedding_function_config(ef) == {
        "name": "onnx_mini_lm_l6_v2",
        "type": "known",
        "config": providers,
    }


class _PlainCallable:
    def __call__(self, input: list[str]) -> list[Any]:
        return [[0.0] for _ in input]


def test_function_without_name_is_legacy() -> None:
    assert embedding_function_config(_PlainCallable()) == {"type": "legacy"}
    assert embedding_function_config(lambda input: input) == {"type": "legacy"}
    assert build_embedding_function({"type": "legacy"}) is None


def test_chromadb_subclass_without_overrides_is_legacy() -> None:
    from chromadb.api.types import EmbeddingFunction as ChromaEF

    class Bare(ChromaEF):  # type: ignore[type-arg]
        def __init__(self) -> None:
            pass

        def __call__(self, input: list[str]) -> list[Any]:
            return [[1.0] for _ in input]

    assert embedding_function_config(Bare()) == {"type": "legacy"}


def test_unknown_name_rebuilds_as_none() -> None:
    assert build_embedding_function({"type": "known", "name": "no_such_function", "config": {}}) is None


def test_other_names_come_from_chromadb_registry() -> None:
    from chromadb.api.types import EmbeddingFunction as ChromaEF
    from chromadb.utils.embedding_functions import known_embedding_functions

    class Custom(ChromaEF):  # type: ignore[type-arg]
        def __init__(self, size: int = 3) -> None:
            self.size = size

        def __call__(self, input: list[str]) -> list[Any]:
            return [[1.0] * self.size for _ in input]

        @staticmethod
        def name() -> str:
            return "vecduck_test_custom"

        def get_config(self) -> dict[str, Any]:
            return {"size": self.size}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> Custom:
            return Custom(config["size"])

    known_embedding_functions["vecduck_test_custom"] = Custom
    try:
        record = embedding_function_config(Custom(5))
        assert record == {"name": "vecduck_test_custom", "type": "known", "config": {"size": 5}}
        rebuilt = build_embedding_function(record)
        assert isinstance(rebuilt, Custom) and rebuilt.size == 5
    finally:
        del known_embedding_functions["vecduck_test_custom"]


def test_malformed_records_are_refused() -> None:
    with pytest.raises(ValueError, match="no name"):
        build_embedding_function({"type": "known", "config": {}})
    with pytest.raises(ValueError, match="type"):
        build_embedding_function({"type": "mystery", "name": "default"})


@pytest.mark.skipif(HAS_ST, reason="checks the message shown when sentence-transformers is absent")
def test_sentence_transformer_needs_the_package() -> None:
    assert SentenceTransformerEmbeddingFunction.name() == "sentence_transformer"
    with pytest.raises(ImportError, match="pip install sentence-transformers"):
        SentenceTransformerEmbeddingFunction()
    config = {"model_name": "all-MiniLM-L6-v2", "device": "cpu", "normalize_embeddings": False, "kwargs": {}}
    with pytest.raises(ImportError, match="sentence-transformers"):
        build_embedding_function({"type": "known", "name": "sentence_transformer", "config": config})
