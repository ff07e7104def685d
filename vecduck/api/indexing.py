"""What a collection indexes: its schema checked against what vecduck can honour, and
the schema vecduck reports.

A schema given at creation (chromadb's JSON, from `Schema.serialize_to_json()` or the
REST body) is checked here: its vector index settings become the collection's HNSW
configuration, its sparse-vector indexes are kept with the collection, and what
vecduck cannot honour is refused with `InvalidArgumentError` (SPANN settings,
customer-managed keys, a vector index or full-text index on another key). Inverted
indexes need no declaration: vecduck filters every metadata key by scanning typed
columns, so enabling or disabling one is recorded and changes nothing.

The schema a collection reports (`collection.schema`, the REST `schema` field) is
chromadb's layout filled from the collection's actual configuration, plus the
sparse-vector indexes and per-key entries it was created with.
"""

from __future__ import annotations

import copy
from typing import Any

from vecduck.errors import InvalidArgumentError

DOCUMENT_KEY = "#document"
EMBEDDING_KEY = "#embedding"
# value type -> the indexes it may hold
INDEXES_OF = {
    "string": ("fts_index", "string_inverted_index"),
    "float_list": ("vector_index",),
    "sparse_vector": ("sparse_vector_index",),
    "int": ("int_inverted_index",),
    "float": ("float_inverted_index",),
    "bool": ("bool_inverted_index",),
}
VECTOR_FIELDS = {"space", "embedding_function", "source_key", "hnsw", "spann"}
SPARSE_FIELDS = {"embedding_function", "source_key", "bm25", "algorithm"}
HNSW_FIELDS = (
    "ef_construction",
    "max_neighbors",
    "ef_search",
    "num_threads",
    "batch_size",
    "sync_threshold",
    "resize_factor",
)
# What chromadb reports for the HNSW settings vecduck does not keep.
HNSW_REPORTED_DEFAULTS = {"num_threads": 2, "batch_size": 100}


def _refuse(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Invalid schema: {message}")


def _index_entry(entry: Any, where: str, fields: set[str] | None) -> tuple[bool, dict[str, Any]]:
    if not isinstance(entry, dict) or not set(entry) <= {"enabled", "config"}:
        raise _refuse(f"{where} must be an object with 'enabled' and 'config'")
    enabled = entry.get("enabled", True)
    config = entry.get("config") or {}
    if not isinstance(enabled, bool) or not isinstance(config, dict):
        raise _refuse(f"{where}: 'enabled' must be a boolean and 'config' an object")
    unknown = set(config) - (fields or set())
    if unknown:
        raise _refuse(f"{where}: unknown settings {sorted(unknown)}")
    return enabled, config


def _check_embedding_function(record: Any, where: str) -> None:
    if record is None:
        return
    if not isinstance(record, dict) or record.get("type") not in ("known", "legacy", "unknown"):
        raise _refuse(f"{where}: embedding_function must be {{'type': 'known' | 'legacy' | 'unknown', ...}}")
    if record.get("type") == "known" and not isinstance(record.get("name"), str):
        raise _refuse(f"{where}: a known embedding_function needs a name")


def _check_vector_config(config: dict[str, Any], where: str) -> None:
    if config.get("spann") is not None:
        raise _refuse(f"{where}: vecduck indexes vectors with HNSW; SPANN settings are not supported")
    space = config.get("space")
    if space is not None and space not in ("l2", "cosine", "ip"):
        raise _refuse(f"{where}: space must be l2, cosine or ip, got {space!r}")
    hnsw = config.get("hnsw")
    if hnsw is not None:
        if not isinstance(hnsw, dict) or not set(hnsw) <= set(HNSW_FIELDS):
            raise _refuse(f"{where}: hnsw settings must be among {', '.join(HNSW_FIELDS)}")
        for field, value in hnsw.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise _refuse(f"{where}: hnsw {field} must be a positive number, got {value!r}")
    _check_embedding_function(config.get("embedding_function"), where)


def _check_sparse_config(key: str, config: dict[str, Any], where: str) -> None:
    if key.startswith("#"):
        raise _refuse(f"{where}: a sparse vector index must be on a metadata key, not {key!r}")
    source = config.get("source_key")
    if source is not None and (not isinstance(source, str) or (source.startswith("#") and source != DOCUMENT_KEY)):
        raise _refuse(f"{where}: source_key must be '#document' or a metadata key, got {source!r}")
    if config.get("bm25") is not None and not isinstance(config.get("bm25"), bool):
        raise _refuse(f"{where}: bm25 must be a boolean")
    _check_embedding_function(config.get("embedding_function"), where)


def check_schema(schema: Any) -> dict[str, Any]:
    """A schema's JSON checked: its shape, and that vecduck can honour every index it asks for."""
    if not isinstance(schema, dict):
        raise _refuse(f"expected an object, got {type(schema).__name__}")
    if not set(schema) <= {"defaults", "keys", "cmek"}:
        raise _refuse(f"unknown fields {sorted(set(schema) - {'defaults', 'keys', 'cmek'})}")
    if schema.get("cmek") is not None:
        raise _refuse("customer-managed encryption keys (cmek) are not supported by vecduck")
    defaults = schema.get("defaults") or {}
    keys = schema.get("keys") or {}
    if not isinstance(defaults, dict) or not isinstance(keys, dict):
        raise _refuse("'defaults' and 'keys' must be objects")
    for key, value_types in [(None, defaults), *keys.items()]:
        if key is not None and (not isinstance(key, str) or not key):
            raise _refuse(f"keys must be non-empty strings, got {key!r}")
        if not isinstance(value_types, dict) or not set(value_types) <= set(INDEXES_OF):
            raise _refuse(f"value types of {key or 'defaults'} must be among {', '.join(INDEXES_OF)}")
        for value_type, indexes in value_types.items():
            if not isinstance(indexes, dict) or not set(indexes) <= set(INDEXES_OF[value_type]):
                raise _refuse(f"{key or 'defaults'}.{value_type} may hold {', '.join(INDEXES_OF[value_type])}")
            for name, entry in indexes.items():
                where = f"{key or 'defaults'}.{value_type}.{name}"
                fields = {"vector_index": VECTOR_FIELDS, "sparse_vector_index": SPARSE_FIELDS}.get(name)
                enabled, config = _index_entry(entry, where, fields)
                if name == "vector_index":
                    _check_vector_config(config, where)
                    if enabled and key not in (None, EMBEDDING_KEY):
                        raise _refuse(f"{where}: the vector index is on {EMBEDDING_KEY} only")
                elif name == "sparse_vector_index":
                    if key is not None:
                        _check_sparse_config(key, config, where)
                    elif enabled:
                        raise _refuse("a sparse vector index must be declared on a specific key")
                elif name == "fts_index" and enabled and key not in (None, DOCUMENT_KEY):
                    raise _refuse(f"{where}: full-text search is on {DOCUMENT_KEY} only")
    return schema


def vector_config(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The vector index settings a schema gives `#embedding` (or its defaults)."""
    if not schema:
        return {}
    for holder in (((schema.get("keys") or {}).get(EMBEDDING_KEY) or {}), schema.get("defaults") or {}):
        entry = (holder.get("float_list") or {}).get("vector_index")
        if entry is not None:
            return entry.get("config") or {}
    return {}


def configuration_with_schema(configuration: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    """A collection's configuration with the schema's vector index settings applied where
    the configuration arguments left them unset (so a schema alone can set the space)."""
    config = vector_config(schema)
    if not config:
        return configuration
    merged = copy.deepcopy(configuration)
    hnsw = merged.setdefault("hnsw", {})
    if config.get("space") is not None:
        hnsw["space"] = config["space"]
    for field, value in (config.get("hnsw") or {}).items():
        if value is not None and field in hnsw:
            hnsw[field] = value
    record = config.get("embedding_function")
    if (
        isinstance(record, dict)
        and record.get("type") in ("known", "legacy")
        and merged.get("embedding_function") is None
    ):
        merged["embedding_function"] = record  # a schema naming no function ("legacy", as the JS client's) keeps none
    return merged


def sparse_index_configs(schema: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The enabled sparse-vector indexes of a schema's JSON: metadata key -> index config."""
    found: dict[str, dict[str, Any]] = {}
    for key, value_types in ((schema or {}).get("keys") or {}).items():
        index = ((value_types or {}).get("sparse_vector") or {}).get("sparse_vector_index") or {}
        if index.get("enabled"):
            found[key] = index.get("config") or {}
    return found


DEFAULT_FUNCTION_RECORD = {"name": "default", "type": "known", "config": {}}


def reported_schema(configuration: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    """The schema a collection reports: chromadb's layout with the collection's actual
    space, HNSW settings and embedding function, plus the keys it was created with."""
    hnsw_config = configuration.get("hnsw") or {}
    # no function recorded (created with embedding_function=None and no index configuration):
    # chromadb's schema keeps the default one there, and its clients embed with it
    ef = configuration.get("embedding_function") or DEFAULT_FUNCTION_RECORD
    hnsw = {field: hnsw_config.get(field, HNSW_REPORTED_DEFAULTS.get(field)) for field in HNSW_FIELDS}
    vector = {
        "space": hnsw_config.get("space", "l2"),
        "embedding_function": ef,
        "hnsw": {field: value for field, value in hnsw.items() if value is not None},
    }
    embedding = dict(vector)
    embedding["source_key"] = DOCUMENT_KEY

    def index(name: str, enabled: bool, config: dict[str, Any] | None = None) -> dict[str, Any]:
        return {name: {"enabled": enabled, "config": config or {}}}

    reported: dict[str, Any] = {
        "defaults": {
            "string": {**index("fts_index", False), **index("string_inverted_index", True)},
            "float_list": {"vector_index": {"enabled": False, "config": vector}},
            "sparse_vector": index(
                "sparse_vector_index", False, {"embedding_function": {"type": "unknown"}, "bm25": False}
            ),
            "int": index("int_inverted_index", True),
            "float": index("float_inverted_index", True),
            "bool": index("bool_inverted_index", True),
        },
        "keys": {
            DOCUMENT_KEY: {"string": {**index("fts_index", True), **index("string_inverted_index", False)}},
            EMBEDDING_KEY: {"float_list": {"vector_index": {"enabled": True, "config": embedding}}},
        },
    }
    if schema:
        for value_type, indexes in (schema.get("defaults") or {}).items():
            for name, entry in indexes.items():
                if name != "vector_index":
                    reported["defaults"].setdefault(value_type, {})[name] = copy.deepcopy(entry)
        for key, value_types in (schema.get("keys") or {}).items():
            if key != EMBEDDING_KEY:  # #embedding is reported from the configuration
                reported["keys"][key] = copy.deepcopy(value_types)
    return reported


__all__ = [
    "check_schema",
    "configuration_with_schema",
    "reported_schema",
    "sparse_index_configs",
    "vector_config",
]
