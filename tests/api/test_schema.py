"""vecduck's collection ``Schema`` against chromadb 1.5.9's: same JSON, same rules, same errors.

Every case is built the same way with both libraries; the expected JSON, warnings and
exception classes are chromadb's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

chromadb = pytest.importorskip("chromadb")

import chromadb.api.types as chroma_types  # noqa: E402
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction as ChromaBm25  # noqa: E402
from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2 as ChromaMiniLM  # noqa: E402

import vecduck.api.schema as ours_schema  # noqa: E402
from vecduck.embeddings.default import DefaultEmbeddingFunction, ONNXMiniLM_L6_V2  # noqa: E402

try:
    from vecduck.api.expressions import Key as OurKey
except ImportError:  # expressions not there yet: any object with a str ``.name`` is a key

    class OurKey:  # type: ignore[no-redef]
        def __init__(self, name: str) -> None:
            self.name = name


try:
    from vecduck.embeddings.bm25 import ChromaBm25EmbeddingFunction as OurBm25
except ImportError:
    OurBm25 = None

needs_bm25 = pytest.mark.skipif(
    OurBm25 is None, reason="vecduck.embeddings.bm25.ChromaBm25EmbeddingFunction does not exist yet"
)


@dataclass(frozen=True)
class Lib:
    """One library's schema classes, key builder and embedding functions, under common names."""

    name: str
    m: Any  # module with Schema and the configs
    key: Callable[[str], Any]
    bm25: Any
    minilm: Any
    default_ef: Any


CHROMA = Lib("chromadb", chroma_types, chromadb.K, ChromaBm25, ChromaMiniLM, chroma_types.DefaultEmbeddingFunction)
OURS = Lib("vecduck", ours_schema, OurKey, OurBm25, ONNXMiniLM_L6_V2, DefaultEmbeddingFunction)


class LegacyEf:
    """An embedding function with no name: recorded as legacy by both libraries."""

    def __call__(self, input: list[str]) -> list[list[float]]:
        return [[1.0, 2.0] for _ in input]


class NamedEf:
    """A named function neither registry knows, supporting only cosine."""

    def __call__(self, input: list[str]) -> list[list[float]]:
        return [[1.0, 2.0] for _ in input]

    @staticmethod
    def name() -> str:
        return "not_registered_anywhere"

    def get_config(self) -> dict[str, Any]:
        return {"dim": 2}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NamedEf:
        return NamedEf()

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def is_legacy(self) -> bool:
        return False


def _inverted(lib: Lib) -> list[Any]:
    m = lib.m
    return [
        m.StringInvertedIndexConfig,
        m.IntInvertedIndexConfig,
        m.FloatInvertedIndexConfig,
        m.BoolInvertedIndexConfig,
    ]


# --- the cases: (id, builder, uses bm25) ----------------------------------------------------

Builder = Callable[[Lib], Any]
CASES: list[tuple[str, Builder, bool]] = [("default", lambda lib: lib.m.Schema(), False)]

for _i, _name in enumerate(["string", "int", "float", "bool"]):
    CASES += [
        (f"create-{_name}-global", lambda lib, i=_i: lib.m.Schema().create_index(_inverted(lib)[i]()), False),
        (f"delete-{_name}-global", lambda lib, i=_i: lib.m.Schema().delete_index(_inverted(lib)[i]()), False),
        (f"create-{_name}-key", lambda lib, i=_i: lib.m.Schema().create_index(_inverted(lib)[i](), key="field"), False),
        (f"delete-{_name}-key", lambda lib, i=_i: lib.m.Schema().delete_index(_inverted(lib)[i](), key="field"), False),
        (
            f"create-{_name}-Key",
            lambda lib, i=_i: lib.m.Schema().create_index(_inverted(lib)[i](), key=lib.key("field")),
            False,
        ),
        (
            f"create-then-delete-{_name}",
            lambda lib, i=_i: (
                lib.m.Schema().create_index(_inverted(lib)[i](), key="f").delete_index(_inverted(lib)[i](), key="f")
            ),
            False,
        ),
    ]

CASES += [
    ("fts-delete-document", lambda lib: lib.m.Schema().delete_index(lib.m.FtsIndexConfig(), key="#document"), False),
    (
        "fts-delete-create-document-Key",
        lambda lib: (
            lib.m.Schema()
            .delete_index(lib.m.FtsIndexConfig(), key=lib.key("#document"))
            .create_index(lib.m.FtsIndexConfig(), key=lib.key("#document"))
        ),
        False,
    ),
    (
        "several-keys",
        lambda lib: (
            lib.m.Schema()
            .create_index(lib.m.StringInvertedIndexConfig(), key="a")
            .delete_index(lib.m.IntInvertedIndexConfig(), key="b")
            .delete_index(lib.m.BoolInvertedIndexConfig(), key="a")
            .delete_index(lib.m.FloatInvertedIndexConfig())
            .create_index(lib.m.FloatInvertedIndexConfig(), key="c")
        ),
        False,
    ),
]

_VECTOR_CONFIGS: dict[str, Callable[[Lib], Any]] = {
    "space-cosine": lambda lib: lib.m.VectorIndexConfig(space="cosine"),
    "space-l2": lambda lib: lib.m.VectorIndexConfig(space="l2"),
    "space-ip": lambda lib: lib.m.VectorIndexConfig(space="ip"),
    "no-ef": lambda lib: lib.m.VectorIndexConfig(embedding_function=None),
    "no-ef-space": lambda lib: lib.m.VectorIndexConfig(embedding_function=None, space="ip"),
    "hnsw-full": lambda lib: lib.m.VectorIndexConfig(
        hnsw=lib.m.HnswIndexConfig(
            ef_construction=200,
            max_neighbors=32,
            ef_search=50,
            num_threads=4,
            batch_size=500,
            sync_threshold=2000,
            resize_factor=1.5,
        )
    ),
    "hnsw-empty": lambda lib: lib.m.VectorIndexConfig(hnsw=lib.m.HnswIndexConfig()),
    "hnsw-dict-lax": lambda lib: lib.m.VectorIndexConfig(
        hnsw={"ef_search": "12", "max_neighbors": 8.0, "resize_factor": 2, "batch_size": True}
    ),
    "spann": lambda lib: lib.m.VectorIndexConfig(
        space="cosine",
        spann=lib.m.SpannIndexConfig(search_nprobe=64, write_nprobe=32, ef_construction=100, merge_threshold=25),
    ),
    "spann-ignored-fields": lambda lib: lib.m.VectorIndexConfig(spann={"quantize": True, "split_threshold": 50}),
    "hnsw-and-spann": lambda lib: lib.m.VectorIndexConfig(
        hnsw=lib.m.HnswIndexConfig(ef_search=10), spann=lib.m.SpannIndexConfig(ef_search=20)
    ),
    "source-key": lambda lib: lib.m.VectorIndexConfig(source_key="text"),
    "source-Key-document": lambda lib: lib.m.VectorIndexConfig(source_key=lib.key("#document"), space="l2"),
    "default-ef-explicit": lambda lib: lib.m.VectorIndexConfig(embedding_function=lib.default_ef()),
    "minilm-ef": lambda lib: lib.minilm(),
    "legacy-ef": lambda lib: lib.m.VectorIndexConfig(embedding_function=LegacyEf(), space="ip"),
    "named-unregistered-ef": lambda lib: lib.m.VectorIndexConfig(embedding_function=NamedEf()),
    "named-ef-unsupported-space": lambda lib: lib.m.VectorIndexConfig(embedding_function=NamedEf(), space="l2"),
}
_VECTOR_CONFIGS["minilm-ef"] = lambda lib: lib.m.VectorIndexConfig(embedding_function=lib.minilm())

for _name, _make in _VECTOR_CONFIGS.items():
    CASES.append((f"vector-{_name}", lambda lib, make=_make: lib.m.Schema().create_index(make(lib)), False))

_SPARSE_CONFIGS: dict[str, tuple[Callable[[Lib], Any], bool]] = {
    "plain": (lambda lib: lib.m.SparseVectorIndexConfig(), False),
    "bm25-true": (lambda lib: lib.m.SparseVectorIndexConfig(bm25=True), False),
    "bm25-false": (lambda lib: lib.m.SparseVectorIndexConfig(bm25=False), False),
    "bm25-lax": (lambda lib: lib.m.SparseVectorIndexConfig(bm25="yes", algorithm="ignored"), False),
    "no-ef-explicit": (lambda lib: lib.m.SparseVectorIndexConfig(embedding_function=None, bm25=True), False),
    "ef-document": (
        lambda lib: lib.m.SparseVectorIndexConfig(embedding_function=lib.bm25(), source_key=lib.key("#document")),
        True,
    ),
    "ef-document-str-bm25": (
        lambda lib: lib.m.SparseVectorIndexConfig(embedding_function=lib.bm25(), source_key="#document", bm25=True),
        True,
    ),
    "ef-metadata-key": (
        lambda lib: lib.m.SparseVectorIndexConfig(embedding_function=lib.bm25(), source_key="body", bm25=False),
        True,
    ),
    "ef-params": (
        lambda lib: lib.m.SparseVectorIndexConfig(
            embedding_function=lib.bm25(
                k=1.5, b=0.5, avg_doc_length=100.0, token_max_length=20, stopwords=["the", "a"], include_tokens=True
            ),
            source_key=lib.key("#document"),
        ),
        True,
    ),
    "ef-no-source": (lambda lib: lib.m.SparseVectorIndexConfig(embedding_function=lib.bm25()), True),
}

for _name, (_make, _bm25) in _SPARSE_CONFIGS.items():
    CASES.append(
        (f"sparse-{_name}", lambda lib, make=_make: lib.m.Schema().create_index(make(lib), key="sparse"), _bm25)
    )
    CASES.append(
        (
            f"sparse-{_name}-Key-and-more",
            lambda lib, make=_make: (
                lib.m.Schema()
                .create_index(make(lib), key=lib.key("sparse"))
                .create_index(make(lib), key="sparse")
                .delete_index(lib.m.StringInvertedIndexConfig(), key="sparse")
                .create_index(lib.m.VectorIndexConfig(space="cosine"))
            ),
            _bm25,
        )
    )

CASES.append(
    (
        "cmek",
        lambda lib: lib.m.Schema().set_cmek(
            chroma_types.Cmek.gcp("projects/p/locations/l/keyRings/r/cryptoKeys/k")
            if lib is CHROMA
            else {"gcp": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}
        ),
        False,
    )
)

PARAMS = [pytest.param(build, id=name, marks=[needs_bm25] if bm25 else []) for name, build, bm25 in CASES]


def _build(lib: Lib, build: Builder) -> tuple[Any, dict[str, Any], list[type]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = build(lib)
        data = schema.serialize_to_json()
    return schema, data, [w.category for w in caught if issubclass(w.category, UserWarning)]


def _deserialize(lib: Lib, data: dict[str, Any]) -> tuple[dict[str, Any], list[type]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = lib.m.Schema.deserialize_from_json(json.loads(json.dumps(data))).serialize_to_json()
    return out, [w.category for w in caught if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("build", PARAMS)
def test_json_matches_chromadb(build: Builder) -> None:
    _, theirs, their_warnings = _build(CHROMA, build)
    ours, our_json, our_warnings = _build(OURS, build)
    assert our_json == theirs
    assert json.dumps(our_json) == json.dumps(theirs)  # same key order too
    assert our_warnings == their_warnings
    assert isinstance(ours, ours_schema.Schema)


@pytest.mark.parametrize("build", PARAMS)
def test_deserializes_chromadb_json(build: Builder) -> None:
    _, theirs, _ = _build(CHROMA, build)
    expected, expected_warnings = _deserialize(CHROMA, theirs)
    got, got_warnings = _deserialize(OURS, theirs)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)
    assert got_warnings == expected_warnings


@pytest.mark.parametrize("build", PARAMS)
def test_chromadb_deserializes_our_json(build: Builder) -> None:
    _, theirs, _ = _build(CHROMA, build)
    _, ours, _ = _build(OURS, build)
    expected, expected_warnings = _deserialize(CHROMA, theirs)
    got, got_warnings = _deserialize(CHROMA, ours)
    assert got == expected
    assert got_warnings == expected_warnings
    if not expected_warnings:  # every function rebuilt: chromadb gives our JSON back unchanged
        assert got == ours


@pytest.mark.parametrize("build", PARAMS)
def test_round_trip_is_stable(build: Builder) -> None:
    _, ours, _ = _build(OURS, build)
    once, _ = _deserialize(OURS, ours)
    twice, _ = _deserialize(OURS, once)
    assert once == twice


def test_attribute_paths_match_chromadb() -> None:
    def build(lib: Lib) -> Any:
        return (
            lib.m.Schema()
            .create_index(lib.m.SparseVectorIndexConfig(bm25=True), key="sparse_embedding")
            .create_index(lib.m.VectorIndexConfig(space="cosine", hnsw={"ef_search": 7}))
        )

    for schema in (
        build(CHROMA),
        build(OURS),
        ours_schema.Schema.deserialize_from_json(build(CHROMA).serialize_to_json()),
    ):
        assert schema.keys["sparse_embedding"].sparse_vector.sparse_vector_index.config.bm25 is True
        assert schema.keys["sparse_embedding"].sparse_vector.sparse_vector_index.enabled is True
        vector = schema.keys["#embedding"].float_list.vector_index
        assert (vector.enabled, vector.config.space, vector.config.source_key) == (True, "cosine", "#document")
        assert vector.config.hnsw.ef_search == 7
        assert schema.defaults.float_list.vector_index.enabled is False
        assert schema.defaults.string.fts_index.enabled is False
        assert schema.keys["#document"].string.fts_index.enabled is True
        assert schema.defaults.int_value.int_inverted_index.enabled is True
        assert schema.defaults.boolean.bool_inverted_index.enabled is True
        assert schema.cmek is None


def test_rebuilt_functions_are_vecduck_classes() -> None:
    data = chroma_types.Schema().create_index(chroma_types.VectorIndexConfig(embedding_function=ChromaMiniLM()))
    schema = ours_schema.Schema.deserialize_from_json(data.serialize_to_json())
    ef = schema.keys["#embedding"].float_list.vector_index.config.embedding_function
    assert type(ef) is ONNXMiniLM_L6_V2
    default = ours_schema.Schema.deserialize_from_json(chroma_types.Schema().serialize_to_json())
    assert type(default.defaults.float_list.vector_index.config.embedding_function) is DefaultEmbeddingFunction
    assert type(ours_schema.VectorIndexConfig().embedding_function) is DefaultEmbeddingFunction


@needs_bm25
def test_rebuilt_bm25_is_vecduck_class() -> None:
    data = chroma_types.Schema().create_index(
        chroma_types.SparseVectorIndexConfig(embedding_function=ChromaBm25(k=1.1), source_key="#document"), key="sp"
    )
    schema = ours_schema.Schema.deserialize_from_json(data.serialize_to_json())
    ef = schema.keys["sp"].sparse_vector.sparse_vector_index.config.embedding_function
    assert type(ef) is OurBm25
    assert ef.get_config() == ChromaBm25(k=1.1).get_config()


# --- hand-written JSON: records that cannot be rebuilt, missing parts, cmek ----------------


def _vector_json(ef: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "defaults": {"float_list": {"vector_index": {"enabled": False, "config": {**config, "embedding_function": ef}}}}
    }


def _sparse_json(ef: dict[str, Any], **config: Any) -> dict[str, Any]:
    entry = {"sparse_vector_index": {"enabled": True, "config": {**config, "embedding_function": ef}}}
    return {"defaults": {}, "keys": {"sp": {"sparse_vector": entry}}}


HAND_JSON = {
    "empty": {},
    "no-keys": {"defaults": {"int": {"int_inverted_index": {"enabled": False, "config": {}}}}},
    "enabled-missing": {"defaults": {"bool": {"bool_inverted_index": {"config": {}}}}, "keys": {"k": {"string": {}}}},
    "vector-legacy": _vector_json({"type": "legacy"}, space="ip"),
    "vector-unknown-type": _vector_json({"type": "unknown"}),
    "vector-unknown-name": _vector_json({"type": "known", "name": "no_such_function", "config": {}}),
    "vector-default-no-space": _vector_json({"type": "known", "name": "default", "config": {}}),
    "vector-minilm-space": _vector_json(
        {"type": "known", "name": "onnx_mini_lm_l6_v2", "config": {"preferred_providers": None}}, space="ip"
    ),
    "vector-no-ef-key": {"defaults": {"float_list": {"vector_index": {"enabled": True, "config": {"space": "ip"}}}}},
    "sparse-unknown": _sparse_json({"type": "unknown"}, bm25=True),
    "sparse-legacy": _sparse_json({"type": "legacy"}),
    "sparse-unknown-name": _sparse_json({"type": "known", "name": "no_such_sparse", "config": {}}, source_key="x"),
    "cmek": {"defaults": {}, "keys": {}, "cmek": {"gcp": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}},
    "cmek-none": {"defaults": {}, "keys": {}, "cmek": None},
}


@pytest.mark.parametrize("data", HAND_JSON.values(), ids=HAND_JSON.keys())
def test_hand_written_json_like_chromadb(data: dict[str, Any]) -> None:
    expected, expected_warnings = _deserialize(CHROMA, data)
    got, got_warnings = _deserialize(OURS, data)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)
    assert got_warnings == expected_warnings


BAD_JSON = {
    "unknown-config-field": {"defaults": {"int": {"int_inverted_index": {"enabled": True, "config": {"x": 1}}}}},
    "bad-space": _vector_json({"type": "legacy"}, space="manhattan"),
    "bad-hnsw-field": _vector_json({"type": "legacy"}, hnsw={"nope": 1}),
    "bad-source-key": _sparse_json({"type": "unknown"}, source_key="#meta"),
    "cmek-no-provider": {"cmek": {"aws": "arn"}},
    "cmek-not-str": {"cmek": {"gcp": 5}},
}


@pytest.mark.parametrize("data", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_bad_json_raises_like_chromadb(data: dict[str, Any]) -> None:
    with pytest.raises(Exception) as theirs:
        chroma_types.Schema.deserialize_from_json(data)
    with pytest.raises(Exception) as ours:
        ours_schema.Schema.deserialize_from_json(data)
    assert _kind(ours.value) == _kind(theirs.value)


# --- errors ---------------------------------------------------------------------------------


def _kind(exc: BaseException) -> str:
    """ValueError or TypeError (pydantic's ValidationError is a ValueError), else the class name."""
    for cls in (ValueError, TypeError):
        if isinstance(exc, cls):
            return cls.__name__
    return type(exc).__name__


CONFIG_ERRORS: dict[str, Callable[[Lib], Any]] = {
    "hnsw-unknown": lambda lib: lib.m.HnswIndexConfig(foo=1),
    "hnsw-unknown-two": lambda lib: lib.m.HnswIndexConfig(foo=1, bar=2),
    "hnsw-positional": lambda lib: lib.m.HnswIndexConfig(1),
    "hnsw-fraction": lambda lib: lib.m.HnswIndexConfig(ef_search=1.5),
    "hnsw-inf": lambda lib: lib.m.HnswIndexConfig(ef_search=float("inf")),
    "hnsw-text": lambda lib: lib.m.HnswIndexConfig(max_neighbors="many"),
    "hnsw-list": lambda lib: lib.m.HnswIndexConfig(batch_size=[1]),
    "hnsw-resize-text": lambda lib: lib.m.HnswIndexConfig(resize_factor="big"),
    "spann-unknown": lambda lib: lib.m.SpannIndexConfig(foo=1),
    "spann-fraction": lambda lib: lib.m.SpannIndexConfig(search_nprobe=2.5),
    "fts-arg": lambda lib: lib.m.FtsIndexConfig(x=1),
    "string-arg": lambda lib: lib.m.StringInvertedIndexConfig(x=1),
    "int-arg": lambda lib: lib.m.IntInvertedIndexConfig(x=1),
    "float-arg": lambda lib: lib.m.FloatInvertedIndexConfig(x=1),
    "bool-arg": lambda lib: lib.m.BoolInvertedIndexConfig(x=1),
    "vector-unknown": lambda lib: lib.m.VectorIndexConfig(foo=1),
    "vector-positional": lambda lib: lib.m.VectorIndexConfig("cosine"),
    "vector-space": lambda lib: lib.m.VectorIndexConfig(space="euclid"),
    "vector-space-case": lambda lib: lib.m.VectorIndexConfig(space="L2"),
    "vector-space-int": lambda lib: lib.m.VectorIndexConfig(space=1),
    "vector-ef-not-callable": lambda lib: lib.m.VectorIndexConfig(embedding_function=5),
    "vector-ef-lambda": lambda lib: lib.m.VectorIndexConfig(embedding_function=lambda input: input),
    "vector-ef-sparse-class": lambda lib: lib.m.VectorIndexConfig(embedding_function=str),
    "vector-source-int": lambda lib: lib.m.VectorIndexConfig(source_key=5),
    "vector-source-hash": lambda lib: lib.m.VectorIndexConfig(source_key="#embedding"),
    "vector-source-Key-hash": lambda lib: lib.m.VectorIndexConfig(source_key=lib.key("#metadata")),
    "vector-hnsw-int": lambda lib: lib.m.VectorIndexConfig(hnsw=5),
    "vector-hnsw-bad-dict": lambda lib: lib.m.VectorIndexConfig(hnsw={"foo": 1}),
    "vector-hnsw-spann": lambda lib: lib.m.VectorIndexConfig(hnsw=lib.m.SpannIndexConfig()),
    "vector-spann-hnsw": lambda lib: lib.m.VectorIndexConfig(spann=lib.m.HnswIndexConfig()),
    "sparse-unknown": lambda lib: lib.m.SparseVectorIndexConfig(foo=1),
    "sparse-bm25-word": lambda lib: lib.m.SparseVectorIndexConfig(bm25="maybe"),
    "sparse-bm25-two": lambda lib: lib.m.SparseVectorIndexConfig(bm25=2),
    "sparse-ef-not-callable": lambda lib: lib.m.SparseVectorIndexConfig(embedding_function="bm25"),
    "sparse-ef-lambda": lambda lib: lib.m.SparseVectorIndexConfig(embedding_function=lambda input: input),
    "sparse-source-float": lambda lib: lib.m.SparseVectorIndexConfig(source_key=3.5),
    "sparse-source-hash": lambda lib: lib.m.SparseVectorIndexConfig(source_key="#id"),
}


@pytest.mark.parametrize("make", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_config_errors_like_chromadb(make: Callable[[Lib], Any]) -> None:
    with pytest.raises(Exception) as theirs:
        make(CHROMA)
    with pytest.raises(Exception) as ours:
        make(OURS)
    assert _kind(ours.value) == _kind(theirs.value)


def _setup_sparse(lib: Lib) -> Any:
    return lib.m.Schema().create_index(lib.m.SparseVectorIndexConfig(bm25=True), key="first")


# (setup, failing call) pairs; the message and the schema left behind must match too
SCHEMA_ERRORS: dict[str, tuple[Callable[[Lib], Any], Callable[[Lib, Any], Any]]] = {
    "create-nothing": (lambda lib: lib.m.Schema(), lambda lib, s: s.create_index()),
    "create-embedding-key": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.StringInvertedIndexConfig(), key="#embedding"),
    ),
    "create-embedding-Key-vector": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.VectorIndexConfig(), key=lib.key("#embedding")),
    ),
    "create-document-inverted": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.StringInvertedIndexConfig(), key="#document"),
    ),
    "create-document-none": (lambda lib: lib.m.Schema(), lambda lib, s: s.create_index(key="#document")),
    "create-hash-key": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.IntInvertedIndexConfig(), key="#id"),
    ),
    "create-vector-on-key": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.VectorIndexConfig(), key="vec"),
    ),
    "create-fts-global": (lambda lib: lib.m.Schema(), lambda lib, s: s.create_index(lib.m.FtsIndexConfig())),
    "create-fts-key": (lambda lib: lib.m.Schema(), lambda lib, s: s.create_index(lib.m.FtsIndexConfig(), key="t")),
    "create-sparse-global": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.SparseVectorIndexConfig()),
    ),
    "create-all-for-key": (lambda lib: lib.m.Schema(), lambda lib, s: s.create_index(key="field")),
    "create-second-sparse": (
        _setup_sparse,
        lambda lib, s: s.create_index(lib.m.SparseVectorIndexConfig(), key="second"),
    ),
    "create-sparse-source-no-ef": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.SparseVectorIndexConfig(source_key="text"), key="sp"),
    ),
    "create-sparse-Key-source-no-ef": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.create_index(lib.m.SparseVectorIndexConfig(source_key=lib.key("#document")), key="sp"),
    ),
    "delete-nothing": (lambda lib: lib.m.Schema(), lambda lib, s: s.delete_index()),
    "delete-embedding": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.delete_index(lib.m.VectorIndexConfig(), key="#embedding"),
    ),
    "delete-document-inverted": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.delete_index(lib.m.StringInvertedIndexConfig(), key="#document"),
    ),
    "delete-document-all": (lambda lib: lib.m.Schema(), lambda lib, s: s.delete_index(key=lib.key("#document"))),
    "delete-hash-key": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.delete_index(lib.m.BoolInvertedIndexConfig(), key="#meta"),
    ),
    "delete-vector-global": (lambda lib: lib.m.Schema(), lambda lib, s: s.delete_index(lib.m.VectorIndexConfig())),
    "delete-vector-key": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.delete_index(lib.m.VectorIndexConfig(), key="v"),
    ),
    "delete-sparse-global": (
        lambda lib: lib.m.Schema(),
        lambda lib, s: s.delete_index(lib.m.SparseVectorIndexConfig()),
    ),
    "delete-sparse-key": (_setup_sparse, lambda lib, s: s.delete_index(lib.m.SparseVectorIndexConfig(), key="first")),
    "delete-fts-global": (lambda lib: lib.m.Schema(), lambda lib, s: s.delete_index(lib.m.FtsIndexConfig())),
    "delete-fts-key": (lambda lib: lib.m.Schema(), lambda lib, s: s.delete_index(lib.m.FtsIndexConfig(), key="x")),
    "delete-all-for-key": (lambda lib: lib.m.Schema(), lambda lib, s: s.delete_index(key="field")),
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS.values(), ids=SCHEMA_ERRORS.keys())
def test_schema_errors_like_chromadb(case: tuple[Callable[[Lib], Any], Callable[[Lib, Any], Any]]) -> None:
    setup, call = case
    their_schema, our_schema = setup(CHROMA), setup(OURS)
    with pytest.raises(Exception) as theirs:
        call(CHROMA, their_schema)
    with pytest.raises(Exception) as ours:
        call(OURS, our_schema)
    assert _kind(ours.value) == _kind(theirs.value)
    assert str(ours.value) == str(theirs.value)
    assert our_schema.serialize_to_json() == their_schema.serialize_to_json()


def test_sparse_index_may_be_recreated_on_its_own_key() -> None:
    def build(lib: Lib) -> Any:
        return _setup_sparse(lib).create_index(lib.m.SparseVectorIndexConfig(bm25=False), key="first")

    assert build(OURS).serialize_to_json() == build(CHROMA).serialize_to_json()


# --- vecduck conveniences ---------------------------------------------------------------------


def test_chromadb_configs_are_accepted() -> None:
    c = chroma_types
    theirs = (
        c.Schema()
        .create_index(c.VectorIndexConfig(space="ip", hnsw=c.HnswIndexConfig(ef_search=9), embedding_function=None))
        .create_index(c.SparseVectorIndexConfig(bm25=True), key="sp")
        .delete_index(c.StringInvertedIndexConfig(), key="s")
    )
    ours = (
        ours_schema.Schema()
        .create_index(c.VectorIndexConfig(space="ip", hnsw=c.HnswIndexConfig(ef_search=9), embedding_function=None))
        .create_index(c.SparseVectorIndexConfig(bm25=True), key=chromadb.K("sp"))
        .delete_index(c.StringInvertedIndexConfig(), key="s")
    )
    assert ours.serialize_to_json() == theirs.serialize_to_json()
    assert isinstance(ours.keys["sp"].sparse_vector.sparse_vector_index.config, ours_schema.SparseVectorIndexConfig)
    with pytest.raises(TypeError):
        ours_schema.Schema().create_index("StringInvertedIndexConfig", key="s")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ours_schema.Schema().create_index(ours_schema.IntInvertedIndexConfig(), key=5)


def test_schema_json_and_schema_from_json() -> None:
    theirs = chroma_types.Schema().create_index(chroma_types.IntInvertedIndexConfig(), key="n")
    expected = theirs.serialize_to_json()
    assert ours_schema.schema_json(theirs) == expected
    assert ours_schema.schema_json(expected) is expected
    ours = ours_schema.schema_from_json(theirs)
    assert isinstance(ours, ours_schema.Schema)
    assert ours.serialize_to_json() == expected
    assert ours_schema.schema_json(ours) == expected
    assert ours_schema.schema_from_json(expected) == ours
    assert ours_schema.schema_from_json(ours) is ours
    for bad in (None, "schema", [expected], 5):
        with pytest.raises(TypeError):
            ours_schema.schema_json(bad)


def test_equality_and_configs_compare_by_value() -> None:
    m = ours_schema
    assert m.Schema() == m.Schema()
    assert m.Schema() != m.Schema().delete_index(m.IntInvertedIndexConfig())
    assert m.HnswIndexConfig(ef_search=5) == m.HnswIndexConfig(ef_search="5")
    assert m.VectorIndexConfig() == m.VectorIndexConfig()
    assert m.VectorIndexConfig(space="ip") != m.VectorIndexConfig()
    assert repr(m.HnswIndexConfig(ef_search=5)) == repr(chroma_types.HnswIndexConfig(ef_search=5))
    assert str(m.SparseVectorIndexConfig(bm25=True)) == str(chroma_types.SparseVectorIndexConfig(bm25=True))
    assert (
        m.SpannIndexConfig(search_nprobe=3).model_dump() == chroma_types.SpannIndexConfig(search_nprobe=3).model_dump()
    )


def test_set_cmek_forms() -> None:
    resource = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    expected = chroma_types.Schema().set_cmek(chroma_types.Cmek.gcp(resource)).serialize_to_json()
    assert ours_schema.Schema().set_cmek(chroma_types.Cmek.gcp(resource)).serialize_to_json() == expected
    assert ours_schema.Schema().set_cmek({"gcp": resource}).serialize_to_json() == expected
    assert "cmek" not in ours_schema.Schema().set_cmek({"gcp": resource}).set_cmek(None).serialize_to_json()


# --- importing and constructing stay cheap -----------------------------------------------------


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )


def test_imports_and_works_without_chromadb() -> None:
    result = _run(
        """
        import sys
        sys.modules["chromadb"] = None  # any import of chromadb now fails
        from vecduck.api.schema import Schema, SparseVectorIndexConfig, VectorIndexConfig
        s = Schema().create_index(SparseVectorIndexConfig(bm25=True), key="sp")
        s.create_index(VectorIndexConfig(space="cosine"))
        data = s.serialize_to_json()
        again = Schema.deserialize_from_json(data)
        assert again.serialize_to_json() == data, (again.serialize_to_json(), data)
        ef = again.defaults.float_list.vector_index.config.embedding_function
        assert type(ef).__name__ == "DefaultEmbeddingFunction"
        assert sys.modules["chromadb"] is None
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_schema_is_cheap_and_loads_no_model() -> None:
    result = _run(
        """
        import time
        import vecduck.api.schema as m
        import vecduck.embeddings.default as default
        start = time.perf_counter()
        s = m.Schema()
        s.create_index(m.VectorIndexConfig(space="cosine"))
        data = s.serialize_to_json()
        m.Schema.deserialize_from_json(data).serialize_to_json()
        elapsed = time.perf_counter() - start
        assert default._model is None, "the MiniLM model was loaded"
        print(elapsed)
        """
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) < 0.25
