"""A collection's configuration, in chromadb's `configuration_json` shape.

HNSW settings come from the `configuration` argument (`{"hnsw": {...}}`) or from the
legacy `hnsw:*` metadata keys; an explicit `configuration.hnsw.space` wins, otherwise
the metadata's space stands (chromadb would fall back to l2 there, which surprises).
"""

from __future__ import annotations

import copy
from typing import Any

from vecduck.errors import InvalidArgumentError

SPACES = ("l2", "cosine", "ip")
HNSW_DEFAULTS: dict[str, Any] = {
    "space": "l2",
    "ef_construction": 100,
    "ef_search": 100,
    "max_neighbors": 16,
    "resize_factor": 1.2,
    "sync_threshold": 1000,
}
LEGACY_KEYS = {
    "hnsw:space": "space",
    "hnsw:M": "max_neighbors",
    "hnsw:construction_ef": "ef_construction",
    "hnsw:search_ef": "ef_search",
    "hnsw:sync_threshold": "sync_threshold",
    "hnsw:resize_factor": "resize_factor",
}
IGNORED_LEGACY_KEYS = {"hnsw:num_threads", "hnsw:batch_size"}
MUTABLE_HNSW = {"ef_search", "num_threads", "batch_size", "sync_threshold", "resize_factor"}
ACCEPTED_HNSW = set(HNSW_DEFAULTS) | {"num_threads", "batch_size"}


def _check_hnsw_value(field: str, value: Any) -> Any:
    if field == "space":
        if value not in SPACES:
            raise InvalidArgumentError(f"Invalid space {value!r}: expected one of {', '.join(SPACES)}")
        return value
    if field == "resize_factor":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InvalidArgumentError(f"Invalid HNSW {field}: {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"Invalid HNSW {field}: {value!r}")
    return value


def build_configuration(
    metadata: dict[str, Any] | None,
    configuration: dict[str, Any] | None,
    embedding_function: dict[str, Any] | None,
) -> dict[str, Any]:
    """The configuration a new collection is created with."""
    hnsw = dict(HNSW_DEFAULTS)
    for key in metadata or {}:
        if key.startswith("hnsw:") and key not in LEGACY_KEYS and key not in IGNORED_LEGACY_KEYS:
            raise InvalidArgumentError("Failed to parse hnsw parameters from segment metadata")  # chromadb's words
    for key, field in LEGACY_KEYS.items():
        if metadata and key in metadata:
            try:
                hnsw[field] = _check_hnsw_value(field, metadata[key])
            except InvalidArgumentError:
                raise InvalidArgumentError("Failed to parse hnsw parameters from segment metadata") from None
    given = dict(configuration or {})
    if given.get("hnsw") and given.get("spann"):
        raise InvalidArgumentError("Multiple vector index configurations provided")
    index_config = given.get("hnsw") or given.get("spann") or {}
    if not isinstance(index_config, dict):
        raise InvalidArgumentError(f"Invalid index configuration: {index_config!r}")
    for field, value in index_config.items():
        if field in ("num_threads", "batch_size"):
            continue
        if field not in HNSW_DEFAULTS:
            if given.get("spann"):
                continue  # spann-only settings have no meaning for an HNSW index
            raise InvalidArgumentError(f"Unknown HNSW configuration field {field!r}")
        hnsw[field] = _check_hnsw_value(field, value)
    ef = given.get("embedding_function", embedding_function)
    return {"hnsw": hnsw, "spann": None, "embedding_function": ef}


def updated_configuration(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`modify(configuration=...)`: only the mutable HNSW settings may change."""
    result = copy.deepcopy(current)
    for section, values in change.items():
        if values is None:
            continue  # chromadb's client sends every section, unset ones as null
        if section == "embedding_function":
            result["embedding_function"] = values
            continue
        if section not in ("hnsw", "spann") or not isinstance(values, dict):
            raise InvalidArgumentError(f"Cannot modify configuration section {section!r}")
        for field, value in values.items():
            if field not in MUTABLE_HNSW:
                raise InvalidArgumentError(f"HNSW setting {field!r} cannot be changed after creation")
            if field in result["hnsw"]:
                result["hnsw"][field] = _check_hnsw_value(field, value)
    return result
