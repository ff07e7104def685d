"""A collection's index schema: chromadb 1.5.9's ``Schema`` and index configurations.

``Schema()`` says which index each value type gets by default (``defaults``) and per
metadata key (``keys``, with the system keys ``#document`` and ``#embedding``).
``create_index`` / ``delete_index`` follow chromadb's rules and messages, and
``serialize_to_json()`` gives chromadb's JSON byte for byte, so a schema written by either
library reopens in the other. The configs check their arguments by hand the way
chromadb's pydantic models do (lax coercion of numbers and booleans, unknown names
rejected), raising ``ValueError`` where pydantic raises its ``ValidationError``.
"""

from __future__ import annotations

import copy
import math
import operator
import re
import warnings
from dataclasses import dataclass
from inspect import signature
from typing import Any, ClassVar, Literal

from vecduck.embeddings.config import build_embedding_function, embedding_function_config
from vecduck.embeddings.default import DefaultEmbeddingFunction

__all__ = [
    "BOOL_INVERTED_INDEX_NAME",
    "BOOL_VALUE_NAME",
    "DOCUMENT_KEY",
    "EMBEDDING_KEY",
    "FLOAT_INVERTED_INDEX_NAME",
    "FLOAT_LIST_VALUE_NAME",
    "FLOAT_VALUE_NAME",
    "FTS_INDEX_NAME",
    "HNSW_INDEX_NAME",
    "INT_INVERTED_INDEX_NAME",
    "INT_VALUE_NAME",
    "SPANN_INDEX_NAME",
    "SPARSE_VECTOR_INDEX_NAME",
    "SPARSE_VECTOR_VALUE_NAME",
    "STRING_INVERTED_INDEX_NAME",
    "STRING_VALUE_NAME",
    "VECTOR_INDEX_NAME",
    "BoolInvertedIndexConfig",
    "BoolInvertedIndexType",
    "BoolValueType",
    "FloatInvertedIndexConfig",
    "FloatInvertedIndexType",
    "FloatListValueType",
    "FloatValueType",
    "FtsIndexConfig",
    "FtsIndexType",
    "HnswIndexConfig",
    "IndexConfig",
    "IntInvertedIndexConfig",
    "IntInvertedIndexType",
    "IntValueType",
    "Schema",
    "SpannIndexConfig",
    "SparseVectorIndexConfig",
    "SparseVectorIndexType",
    "SparseVectorValueType",
    "StringInvertedIndexConfig",
    "StringInvertedIndexType",
    "StringValueType",
    "ValueTypes",
    "VectorIndexConfig",
    "VectorIndexType",
    "schema_from_json",
    "schema_json",
]

# Value type names, index names and system keys as they appear in the JSON.
STRING_VALUE_NAME = "string"
INT_VALUE_NAME = "int"
BOOL_VALUE_NAME = "bool"
FLOAT_VALUE_NAME = "float"
FLOAT_LIST_VALUE_NAME = "float_list"
SPARSE_VECTOR_VALUE_NAME = "sparse_vector"

FTS_INDEX_NAME = "fts_index"
VECTOR_INDEX_NAME = "vector_index"
SPARSE_VECTOR_INDEX_NAME = "sparse_vector_index"
STRING_INVERTED_INDEX_NAME = "string_inverted_index"
INT_INVERTED_INDEX_NAME = "int_inverted_index"
FLOAT_INVERTED_INDEX_NAME = "float_inverted_index"
BOOL_INVERTED_INDEX_NAME = "bool_inverted_index"
HNSW_INDEX_NAME = "hnsw_index"
SPANN_INDEX_NAME = "spann_index"

DOCUMENT_KEY = "#document"
EMBEDDING_KEY = "#embedding"

Space = Literal["cosine", "l2", "ip"]
_SPACES = ("cosine", "l2", "ip")
_ALL_SPACES: list[str] = list(_SPACES)

# One shared default, as in chromadb: vecduck's function is stateless until it embeds.
_DEFAULT_EMBEDDING_FUNCTION = DefaultEmbeddingFunction()


# --- lax coercion of field values, after pydantic's rules --------------------------------

_TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})
_INT_TEXT = re.compile(r"[+-]?\d[\d_]*(\.0*)?")


def _invalid(owner: str, field: str, message: str) -> ValueError:
    return ValueError(f"1 validation error for {owner}\n{field}\n  {message}")


def _as_int(owner: str, field: str, value: Any) -> int | None:
    """``value`` as an int: ints, bools, whole finite floats and integer strings pass."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            return int(text.split(".")[0].replace("_", ""))
        raise _invalid(
            owner, field, f"Input should be a valid integer, unable to parse string as an integer: {value!r}"
        )
    if isinstance(value, bool):
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, float) or hasattr(value, "is_integer"):
        number = float(value)
        if not math.isfinite(number):
            raise _invalid(owner, field, f"Input should be a finite number: {value!r}")
        if not number.is_integer():
            raise _invalid(
                owner, field, f"Input should be a valid integer, got a number with a fractional part: {value!r}"
            )
        return int(number)
    raise _invalid(owner, field, f"Input should be a valid integer, got {type(value).__name__}")


def _as_float(owner: str, field: str, value: Any) -> float | None:
    """``value`` as a float: numbers, bools and numeric strings pass."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _invalid(owner, field, f"Input should be a valid number, unable to parse string: {value!r}") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _invalid(owner, field, f"Input should be a valid number, got {type(value).__name__}") from None


def _as_bool(owner: str, field: str, value: Any) -> bool | None:
    """``value`` as a bool: bools, 0/1 and pydantic's yes/no words pass."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    elif isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise _invalid(owner, field, f"Input should be a valid boolean, unable to interpret input: {value!r}")


def _as_source_key(owner: str, value: Any) -> str | None:
    """A source key from a str or a Key-like object (anything with a str ``.name``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        name = getattr(value, "name", None)
        if not isinstance(name, str):
            raise _invalid(
                owner, "source_key", f"Value error, source_key must be str or Key, got {type(value).__name__}"
            )
        value = name
    if value.startswith("#") and value != DOCUMENT_KEY:
        raise _invalid(
            owner,
            "source_key",
            "Value error, source_key cannot begin with '#'. "
            "The only valid key starting with '#' is Key.DOCUMENT or '#document'.",
        )
    return value


def _as_embedding_function(owner: str, value: Any, protocol: str) -> Any:
    """``value`` if it is None or a callable taking ``input`` (chromadb's protocol check)."""
    if value is None:
        return None
    if not callable(value):
        what = "a callable SparseEmbeddingFunction" if protocol == "SparseEmbeddingFunction" else "callable"
        raise _invalid(owner, "embedding_function", f"Value error, embedding_function must be {what} or None")
    try:
        params = list(signature(type(value).__call__).parameters)
    except (TypeError, ValueError):
        params = []
    if params != ["self", "input"]:
        raise _invalid(
            owner,
            "embedding_function",
            f"Value error, Expected {protocol}.__call__ to have the following signature: "
            f"['self', 'input'], got {params}",
        )
    return value


# --- index configurations -----------------------------------------------------------------


class _Config:
    """What all index configs share: keyword-only fields, pydantic-like repr, ``==`` and dump.

    ``_fields`` are the stored fields in chromadb's order; ``_ignored`` are names chromadb
    accepts and drops; any other keyword is rejected with chromadb's message.
    """

    _fields: ClassVar[tuple[str, ...]] = ()
    _ignored: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **extra: Any) -> None:
        self._reject_unknown(extra)

    @classmethod
    def _reject_unknown(cls, extra: dict[str, Any]) -> None:
        unknown = [name for name in extra if name not in cls._ignored]
        if len(unknown) == 1:
            raise ValueError(
                f"1 validation error for {cls.__name__}\n  '{unknown[0]}' is not a valid field for {cls.__name__}."
            )
        if unknown:
            names = ", ".join(f"'{name}'" for name in unknown)
            raise ValueError(f"1 validation error for {cls.__name__}\n  Invalid fields for {cls.__name__}: {names}.")

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """The fields as a dict, nested configs as dicts (pydantic's ``model_dump``)."""
        out: dict[str, Any] = {}
        for name in self._fields:
            value = getattr(self, name)
            if isinstance(value, _Config):
                value = value.model_dump(exclude_none=exclude_none)
            if value is None and exclude_none:
                continue
            out[name] = value
        return out

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def __str__(self) -> str:
        return " ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)


class FtsIndexConfig(_Config):
    """Full-text search index on ``#document``; it takes no settings."""


class StringInvertedIndexConfig(_Config):
    """Inverted index on string metadata values; it takes no settings."""


class IntInvertedIndexConfig(_Config):
    """Inverted index on int metadata values; it takes no settings."""


class FloatInvertedIndexConfig(_Config):
    """Inverted index on float metadata values; it takes no settings."""


class BoolInvertedIndexConfig(_Config):
    """Inverted index on bool metadata values; it takes no settings."""


class HnswIndexConfig(_Config):
    """HNSW settings of the vector index; unset (None) fields keep the server's defaults."""

    _fields = (
        "ef_construction",
        "max_neighbors",
        "ef_search",
        "num_threads",
        "batch_size",
        "sync_threshold",
        "resize_factor",
    )

    def __init__(
        self,
        *,
        ef_construction: int | None = None,
        max_neighbors: int | None = None,
        ef_search: int | None = None,
        num_threads: int | None = None,
        batch_size: int | None = None,
        sync_threshold: int | None = None,
        resize_factor: float | None = None,
        **extra: Any,
    ) -> None:
        self._reject_unknown(extra)
        name = type(self).__name__
        self.ef_construction = _as_int(name, "ef_construction", ef_construction)
        self.max_neighbors = _as_int(name, "max_neighbors", max_neighbors)
        self.ef_search = _as_int(name, "ef_search", ef_search)
        self.num_threads = _as_int(name, "num_threads", num_threads)
        self.batch_size = _as_int(name, "batch_size", batch_size)
        self.sync_threshold = _as_int(name, "sync_threshold", sync_threshold)
        self.resize_factor = _as_float(name, "resize_factor", resize_factor)


class SpannIndexConfig(_Config):
    """SPANN settings of the vector index (Chroma Cloud's index); unset fields keep defaults.

    The other SPANN names chromadb's validator lets through (``quantize``,
    ``nreplica_count``, ...) are accepted and dropped, as chromadb drops them.
    """

    _fields = (
        "search_nprobe",
        "write_nprobe",
        "ef_construction",
        "ef_search",
        "max_neighbors",
        "reassign_neighbor_count",
        "split_threshold",
        "merge_threshold",
    )
    _ignored = frozenset(
        {
            "search_rng_factor",
            "search_rng_epsilon",
            "nreplica_count",
            "write_rng_factor",
            "write_rng_epsilon",
            "num_samples_kmeans",
            "initial_lambda",
            "num_centers_to_merge_to",
            "center_drift_threshold",
            "quantize",
        }
    )

    def __init__(
        self,
        *,
        search_nprobe: int | None = None,
        write_nprobe: int | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        max_neighbors: int | None = None,
        reassign_neighbor_count: int | None = None,
        split_threshold: int | None = None,
        merge_threshold: int | None = None,
        **extra: Any,
    ) -> None:
        self._reject_unknown(extra)
        name = type(self).__name__
        self.search_nprobe = _as_int(name, "search_nprobe", search_nprobe)
        self.write_nprobe = _as_int(name, "write_nprobe", write_nprobe)
        self.ef_construction = _as_int(name, "ef_construction", ef_construction)
        self.ef_search = _as_int(name, "ef_search", ef_search)
        self.max_neighbors = _as_int(name, "max_neighbors", max_neighbors)
        self.reassign_neighbor_count = _as_int(name, "reassign_neighbor_count", reassign_neighbor_count)
        self.split_threshold = _as_int(name, "split_threshold", split_threshold)
        self.merge_threshold = _as_int(name, "merge_threshold", merge_threshold)


def _nested(owner: str, field: str, cls: type[_Config], value: Any) -> Any:
    """A nested config from an instance, a dict of its fields, or chromadb's same-named model."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls(**value)
    if type(value).__name__ == cls.__name__ and hasattr(value, "model_dump"):
        return cls(**value.model_dump(exclude_none=True))
    raise _invalid(owner, field, f"Input should be a valid dictionary or instance of {cls.__name__}")


class VectorIndexConfig(_Config):
    """The dense vector index: distance space, embedding function, HNSW or SPANN settings.

    ``embedding_function`` defaults to vecduck's :class:`DefaultEmbeddingFunction`
    (nothing is loaded until it embeds); ``source_key`` names what is embedded
    (``"#document"`` or a metadata key, given as a str or a ``Key``).
    """

    _fields = ("space", "embedding_function", "source_key", "hnsw", "spann")

    def __init__(
        self,
        *,
        space: Space | None = None,
        embedding_function: Any = _DEFAULT_EMBEDDING_FUNCTION,
        source_key: Any = None,
        hnsw: HnswIndexConfig | dict[str, Any] | None = None,
        spann: SpannIndexConfig | dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        self._reject_unknown(extra)
        name = type(self).__name__
        if space is not None and (not isinstance(space, str) or space not in _SPACES):
            raise _invalid(name, "space", f"Input should be 'cosine', 'l2' or 'ip', got {space!r}")
        self.space: Space | None = space
        self.embedding_function: Any = _as_embedding_function(name, embedding_function, "EmbeddingFunction")
        self.source_key: str | None = _as_source_key(name, source_key)
        self.hnsw: HnswIndexConfig | None = _nested(name, "hnsw", HnswIndexConfig, hnsw)
        self.spann: SpannIndexConfig | None = _nested(name, "spann", SpannIndexConfig, spann)


class SparseVectorIndexConfig(_Config):
    """The sparse vector index on one metadata key, e.g. BM25 vectors of the documents.

    With ``source_key`` (``"#document"`` or a metadata key) the ``embedding_function``
    (a sparse embedding function such as ``ChromaBm25EmbeddingFunction``) fills the key
    from that source. ``algorithm`` is accepted and dropped, as in chromadb.
    """

    _fields = ("embedding_function", "source_key", "bm25")
    _ignored = frozenset({"algorithm"})

    def __init__(
        self,
        *,
        embedding_function: Any = None,
        source_key: Any = None,
        bm25: bool | None = None,
        **extra: Any,
    ) -> None:
        self._reject_unknown(extra)
        name = type(self).__name__
        self.embedding_function: Any = _as_embedding_function(name, embedding_function, "SparseEmbeddingFunction")
        self.source_key: str | None = _as_source_key(name, source_key)
        self.bm25: bool | None = _as_bool(name, "bm25", bm25)


IndexConfig = (
    FtsIndexConfig
    | VectorIndexConfig
    | SparseVectorIndexConfig
    | StringInvertedIndexConfig
    | IntInvertedIndexConfig
    | FloatInvertedIndexConfig
    | BoolInvertedIndexConfig
)

_CONFIG_CLASSES: dict[str, type[_Config]] = {
    cls.__name__: cls
    for cls in (
        FtsIndexConfig,
        VectorIndexConfig,
        SparseVectorIndexConfig,
        StringInvertedIndexConfig,
        IntInvertedIndexConfig,
        FloatInvertedIndexConfig,
        BoolInvertedIndexConfig,
    )
}


def _as_config(config: Any) -> _Config | None:
    """An index config of this module; chromadb's same-named models are converted field by field."""
    if config is None or isinstance(config, _Config):
        return config
    cls = _CONFIG_CLASSES.get(type(config).__name__)
    if cls is None:
        raise TypeError(
            f"config must be an index config such as StringInvertedIndexConfig(), not {type(config).__name__}"
        )
    return cls(**{name: getattr(config, name) for name in cls._fields if hasattr(config, name)})


# --- index and value types: which index a value type has, and whether it is enabled ---------


@dataclass
class FtsIndexType:
    enabled: bool
    config: FtsIndexConfig


@dataclass
class VectorIndexType:
    enabled: bool
    config: VectorIndexConfig


@dataclass
class SparseVectorIndexType:
    enabled: bool
    config: SparseVectorIndexConfig


@dataclass
class StringInvertedIndexType:
    enabled: bool
    config: StringInvertedIndexConfig


@dataclass
class IntInvertedIndexType:
    enabled: bool
    config: IntInvertedIndexConfig


@dataclass
class FloatInvertedIndexType:
    enabled: bool
    config: FloatInvertedIndexConfig


@dataclass
class BoolInvertedIndexType:
    enabled: bool
    config: BoolInvertedIndexConfig


@dataclass
class StringValueType:
    fts_index: FtsIndexType | None = None
    string_inverted_index: StringInvertedIndexType | None = None


@dataclass
class FloatListValueType:
    vector_index: VectorIndexType | None = None


@dataclass
class SparseVectorValueType:
    sparse_vector_index: SparseVectorIndexType | None = None


@dataclass
class IntValueType:
    int_inverted_index: IntInvertedIndexType | None = None


@dataclass
class FloatValueType:
    float_inverted_index: FloatInvertedIndexType | None = None


@dataclass
class BoolValueType:
    bool_inverted_index: BoolInvertedIndexType | None = None


@dataclass
class ValueTypes:
    string: StringValueType | None = None
    float_list: FloatListValueType | None = None
    sparse_vector: SparseVectorValueType | None = None
    int_value: IntValueType | None = None
    float_value: FloatValueType | None = None
    boolean: BoolValueType | None = None


# ValueTypes attribute -> (JSON name, value type class); in chromadb's JSON order.
_VALUE_SLOTS: dict[str, tuple[str, type]] = {
    "string": (STRING_VALUE_NAME, StringValueType),
    "float_list": (FLOAT_LIST_VALUE_NAME, FloatListValueType),
    "sparse_vector": (SPARSE_VECTOR_VALUE_NAME, SparseVectorValueType),
    "int_value": (INT_VALUE_NAME, IntValueType),
    "float_value": (FLOAT_VALUE_NAME, FloatValueType),
    "boolean": (BOOL_VALUE_NAME, BoolValueType),
}
# Index attribute (also its JSON name) -> (config class, index type class), per value type in order.
_INDEX_SLOTS: dict[type, dict[str, tuple[type[_Config], type]]] = {
    StringValueType: {
        FTS_INDEX_NAME: (FtsIndexConfig, FtsIndexType),
        STRING_INVERTED_INDEX_NAME: (StringInvertedIndexConfig, StringInvertedIndexType),
    },
    FloatListValueType: {VECTOR_INDEX_NAME: (VectorIndexConfig, VectorIndexType)},
    SparseVectorValueType: {SPARSE_VECTOR_INDEX_NAME: (SparseVectorIndexConfig, SparseVectorIndexType)},
    IntValueType: {INT_INVERTED_INDEX_NAME: (IntInvertedIndexConfig, IntInvertedIndexType)},
    FloatValueType: {FLOAT_INVERTED_INDEX_NAME: (FloatInvertedIndexConfig, FloatInvertedIndexType)},
    BoolValueType: {BOOL_INVERTED_INDEX_NAME: (BoolInvertedIndexConfig, BoolInvertedIndexType)},
}
# Config class -> (ValueTypes attribute, index attribute): where create_index puts it.
_CONFIG_SLOTS: dict[type[_Config], tuple[str, str]] = {
    config_cls: (attr, index_name)
    for attr, (_, value_cls) in _VALUE_SLOTS.items()
    for index_name, (config_cls, _) in _INDEX_SLOTS[value_cls].items()
}


def _place(value_types: ValueTypes, config: _Config, enabled: bool) -> None:
    """Set the index ``config`` belongs to in ``value_types``, creating its value type if need be."""
    attr, index_name = _CONFIG_SLOTS[type(config)]
    value_cls = _VALUE_SLOTS[attr][1]
    value = getattr(value_types, attr)
    if value is None:
        value = value_cls()
        setattr(value_types, attr, value)
    setattr(value, index_name, _INDEX_SLOTS[value_cls][index_name][1](enabled=enabled, config=config))


# --- embedding function records in the schema JSON ----------------------------------------


def _default_space(ef: Any) -> str:
    method = getattr(ef, "default_space", None)
    return method() if callable(method) else "l2"


def _supported_spaces(ef: Any) -> list[str]:
    method = getattr(ef, "supported_spaces", None)
    return list(method()) if callable(method) else _ALL_SPACES


def _known_record(ef: Any) -> dict[str, Any] | None:
    """``ef``'s ``{"name", "type": "known", "config"}`` record after its own config check, else None."""
    record = embedding_function_config(ef)
    if record is None or record.get("type") != "known":
        return None
    validate = getattr(ef, "validate_config", None)
    if callable(validate):
        validate(ef.get_config())
    return record


def _vector_config_json(config: VectorIndexConfig) -> dict[str, Any]:
    """chromadb's JSON of a vector index config: the function's record, the space it implies."""
    out = config.model_dump(exclude_none=True)
    ef = config.embedding_function
    try:
        record = _known_record(ef)
        if record is not None and config.space is None:
            out["space"] = _default_space(ef)
        elif record is not None and config.space not in (supported := _supported_spaces(ef)):
            warnings.warn(
                f"space {config.space} is not supported by {record['name']}. Supported spaces: {supported}",
                UserWarning,
                stacklevel=4,
            )
    except Exception:  # as chromadb: a function that cannot describe itself is "legacy"
        record = None
    out["embedding_function"] = record if record is not None else {"type": "legacy"}
    return out


def _sparse_config_json(config: SparseVectorIndexConfig) -> dict[str, Any]:
    """chromadb's JSON of a sparse vector index config: ``{"type": "unknown"}`` for no function."""
    out = config.model_dump(exclude_none=True)
    ef = config.embedding_function
    if ef is None:
        out["embedding_function"] = {"type": "unknown"}
        return out
    record = _known_record(ef)
    if record is None:
        raise ValueError(
            f"sparse embedding function {type(ef).__name__} cannot be saved in a schema: "
            "it needs name(), get_config() and build_from_config()"
        )
    out["embedding_function"] = record
    return out


def _config_json(config: _Config) -> dict[str, Any]:
    if isinstance(config, VectorIndexConfig):
        return _vector_config_json(config)
    if isinstance(config, SparseVectorIndexConfig):
        return _sparse_config_json(config)
    return config.model_dump(exclude_none=True)


def _rebuild(record: dict[str, Any], what: str) -> Any:
    """The function ``record`` describes, or None with a UserWarning when it cannot be rebuilt."""
    try:
        ef = build_embedding_function(record)
        if ef is None:
            raise LookupError(f"no embedding function is registered as {record.get('name')!r}")
        return ef
    except Exception as e:
        warnings.warn(
            f"Could not reconstruct {what} {record.get('name', 'unknown')}: {e}. Setting to None.",
            UserWarning,
            stacklevel=5,
        )
        return None


def _config_from_json(cls: type[_Config], data: dict[str, Any]) -> _Config:
    """An index config from its JSON, rebuilding embedding functions where it has them."""
    data = copy.deepcopy(data)
    if "embedding_function" in data and cls is VectorIndexConfig:
        record = data["embedding_function"]
        if record.get("type") == "legacy":
            data["embedding_function"] = None
        else:
            ef = _rebuild(record, "embedding function")
            data["embedding_function"] = ef
            if ef is not None and data.get("space") is None:
                data["space"] = _default_space(ef)
    elif "embedding_function" in data and cls is SparseVectorIndexConfig:
        record = data["embedding_function"]
        if record.get("type") in ("legacy", "unknown"):
            data["embedding_function"] = None
        else:
            data["embedding_function"] = _rebuild(record, "sparse embedding function")
    return cls(**data)


def _value_types_json(value_types: ValueTypes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, (json_name, value_cls) in _VALUE_SLOTS.items():
        value = getattr(value_types, attr)
        if value is None:
            continue
        indexes: dict[str, Any] = {}
        for index_name in _INDEX_SLOTS[value_cls]:
            index = getattr(value, index_name)
            if index is not None:
                indexes[index_name] = {"enabled": index.enabled, "config": _config_json(index.config)}
        out[json_name] = indexes
    return out


def _value_types_from_json(data: dict[str, Any]) -> ValueTypes:
    value_types = ValueTypes()
    for attr, (json_name, value_cls) in _VALUE_SLOTS.items():
        if json_name not in data:
            continue
        indexes = data[json_name]
        found: dict[str, Any] = {}
        for index_name, (config_cls, index_cls) in _INDEX_SLOTS[value_cls].items():
            if index_name in indexes:
                entry = indexes[index_name]
                config = _config_from_json(config_cls, entry.get("config", {}))
                found[index_name] = index_cls(enabled=entry.get("enabled", True), config=config)
        setattr(value_types, attr, value_cls(**found))
    return value_types


def _cmek_dict(cmek: Any) -> dict[str, Any] | None:
    """A customer-managed key as chromadb's ``{"gcp": resource}``, from that dict or a ``Cmek``."""
    if cmek is None:
        return None
    if not isinstance(cmek, dict):
        to_dict = getattr(cmek, "to_dict", None)
        if not callable(to_dict):
            raise TypeError(f"cmek must be a dict or have to_dict(), not {type(cmek).__name__}")
        cmek = to_dict()
    if "gcp" not in cmek:
        raise ValueError(f"Unsupported or missing CMEK provider in data: {cmek}")
    if not isinstance(cmek["gcp"], str):
        raise ValueError(f"CMEK gcp resource must be a string, got: {type(cmek['gcp'])}")
    return {"gcp": cmek["gcp"]}


def _key_name(key: Any) -> str | None:
    """A metadata key from a str or a Key-like object (anything with a str ``.name``)."""
    if key is None or isinstance(key, str):
        return key
    name = getattr(key, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"key must be a str or Key, not {type(key).__name__}")


# --- the schema ---------------------------------------------------------------------------


@dataclass(eq=False)
class Schema:
    """Which indexes a collection keeps: per value type (``defaults``) and per key (``keys``).

    A new schema has chromadb's defaults: inverted indexes on string, int, float and bool
    metadata; full-text search on ``#document``; the vector index on ``#embedding``, fed
    from ``#document`` by vecduck's default embedding function; no sparse index.
    ``create_index`` / ``delete_index`` return the schema, so calls chain.
    """

    defaults: ValueTypes
    keys: dict[str, ValueTypes]
    cmek: dict[str, Any] | None = None

    def __init__(self) -> None:
        self.defaults = ValueTypes(
            string=StringValueType(
                fts_index=FtsIndexType(enabled=False, config=FtsIndexConfig()),
                string_inverted_index=StringInvertedIndexType(enabled=True, config=StringInvertedIndexConfig()),
            ),
            float_list=FloatListValueType(vector_index=VectorIndexType(enabled=False, config=VectorIndexConfig())),
            sparse_vector=SparseVectorValueType(
                sparse_vector_index=SparseVectorIndexType(enabled=False, config=SparseVectorIndexConfig())
            ),
            int_value=IntValueType(
                int_inverted_index=IntInvertedIndexType(enabled=True, config=IntInvertedIndexConfig())
            ),
            float_value=FloatValueType(
                float_inverted_index=FloatInvertedIndexType(enabled=True, config=FloatInvertedIndexConfig())
            ),
            boolean=BoolValueType(
                bool_inverted_index=BoolInvertedIndexType(enabled=True, config=BoolInvertedIndexConfig())
            ),
        )
        self.keys = {
            DOCUMENT_KEY: ValueTypes(
                string=StringValueType(
                    fts_index=FtsIndexType(enabled=True, config=FtsIndexConfig()),
                    string_inverted_index=StringInvertedIndexType(enabled=False, config=StringInvertedIndexConfig()),
                )
            ),
            EMBEDDING_KEY: ValueTypes(
                float_list=FloatListValueType(
                    vector_index=VectorIndexType(enabled=True, config=VectorIndexConfig(source_key=DOCUMENT_KEY))
                )
            ),
        }
        self.cmek = None

    def create_index(self, config: IndexConfig | None = None, key: Any = None) -> Schema:
        """Enable an index: globally for its value type (``key=None``) or on one metadata key.

        ``VectorIndexConfig`` is only set globally (it configures ``#embedding``);
        ``FtsIndexConfig`` only on ``#document``; ``SparseVectorIndexConfig`` only on a key,
        and on one key per collection.
        """
        key = _key_name(key)
        config = _as_config(config)
        if config is None and key is None:
            raise ValueError("Cannot enable all index types globally. Must specify either config or key.")
        if key == EMBEDDING_KEY:
            raise ValueError(
                f"Cannot create index on special key '{key}'. This key is managed automatically by the system. "
                "Invoke create_index(VectorIndexConfig(...)) without specifying a key to configure the vector "
                "index globally."
            )
        if key == DOCUMENT_KEY and not isinstance(config, FtsIndexConfig):
            raise ValueError(
                f"Cannot create index on special key '{key}' with this config. "
                "Only FtsIndexConfig is allowed for #document."
            )
        if key is not None and key.startswith("#") and key != DOCUMENT_KEY:
            raise ValueError("key cannot begin with '#'. Keys starting with '#' are reserved for system use.")
        if isinstance(config, VectorIndexConfig):
            if key is not None:
                raise ValueError(
                    "Vector index cannot be enabled on specific keys. Use create_index(config=VectorIndexConfig(...)) "
                    "without specifying a key to configure the vector index globally."
                )
            self._set_vector_index_config(config)
            return self
        if isinstance(config, FtsIndexConfig) and key != DOCUMENT_KEY:
            raise ValueError(
                "FTS index can only be enabled on #document key. "
                "Use create_index(config=FtsIndexConfig(), key='#document')"
            )
        if isinstance(config, SparseVectorIndexConfig) and key is None:
            raise ValueError(
                "Sparse vector index must be created on a specific key. "
                "Please specify a key using: create_index(config=SparseVectorIndexConfig(...), key='your_key')"
            )
        if config is None:
            raise ValueError(
                f"Cannot enable all index types for key '{key}'. Please specify a specific index configuration."
            )
        if key is None:
            _place(self.defaults, config, enabled=True)
        else:
            self._set_index_for_key(key, config, enabled=True)
        return self

    def delete_index(self, config: IndexConfig | None = None, key: Any = None) -> Schema:
        """Disable an index, globally or on one key; vector and sparse vector indexes cannot be disabled."""
        key = _key_name(key)
        config = _as_config(config)
        if config is None and key is None:
            raise ValueError("Cannot disable all indexes. Must specify either config or key.")
        if key == EMBEDDING_KEY:
            raise ValueError("Cannot modify #embedding. Currently not supported")
        if key == DOCUMENT_KEY and not isinstance(config, FtsIndexConfig):
            raise ValueError(
                f"Cannot delete index on special key '{key}' with this config. "
                "Only FtsIndexConfig is allowed for #document."
            )
        if key is not None and key.startswith("#") and key != DOCUMENT_KEY:
            raise ValueError("key cannot begin with '#'. Keys starting with '#' are reserved for system use.")
        if isinstance(config, VectorIndexConfig):
            raise ValueError("Deleting vector index is not currently supported.")
        if isinstance(config, SparseVectorIndexConfig):
            raise ValueError("Deleting sparse vector index is not currently supported.")
        if isinstance(config, FtsIndexConfig) and key != DOCUMENT_KEY:
            raise ValueError("Deleting FTS index is only supported on #document key.")
        if config is None:
            raise ValueError(
                f"Cannot disable all index types for key '{key}'. Please specify a specific index configuration."
            )
        if key is None:
            _place(self.defaults, config, enabled=False)
        else:
            self._set_index_for_key(key, config, enabled=False)
        return self

    def set_cmek(self, cmek: Any) -> Schema:
        """Record a customer-managed encryption key (``{"gcp": resource}`` or a ``Cmek``), or None."""
        self.cmek = _cmek_dict(cmek)
        return self

    def _set_vector_index_config(self, config: VectorIndexConfig) -> None:
        """Use ``config`` for the defaults and ``#embedding``, keeping their enabled flags.

        ``#embedding`` keeps its own source key (``#document``).
        """
        if self.defaults.float_list is None:
            self.defaults.float_list = FloatListValueType()
        current = self.defaults.float_list.vector_index
        self.defaults.float_list.vector_index = VectorIndexType(
            enabled=current.enabled if current is not None else False, config=config
        )
        embedding = self.keys.setdefault(EMBEDDING_KEY, ValueTypes())
        if embedding.float_list is None:
            embedding.float_list = FloatListValueType()
        current = embedding.float_list.vector_index
        embedding.float_list.vector_index = VectorIndexType(
            enabled=current.enabled if current is not None else True,
            config=VectorIndexConfig(
                space=config.space,
                embedding_function=config.embedding_function,
                hnsw=config.hnsw,
                spann=config.spann,
                source_key=current.config.source_key if current is not None else DOCUMENT_KEY,
            ),
        )

    def _set_index_for_key(self, key: str, config: _Config, enabled: bool) -> None:
        if isinstance(config, SparseVectorIndexConfig) and enabled:
            for other, value_types in self.keys.items():
                sparse = value_types.sparse_vector
                index = sparse.sparse_vector_index if sparse is not None else None
                if other != key and index is not None and index.enabled:
                    raise ValueError(
                        f"Cannot enable sparse vector index on key '{key}'. "
                        f"A sparse vector index is already enabled on key '{other}'. "
                        "Only one sparse vector index is allowed per collection."
                    )
            if config.source_key is not None and config.embedding_function is None:
                raise ValueError(
                    "If source_key is provided then embedding_function must also be provided "
                    f"since there is no default embedding function. Config: {config}"
                )
        _place(self.keys.setdefault(key, ValueTypes()), config, enabled)

    def serialize_to_json(self) -> dict[str, Any]:
        """The schema as chromadb's JSON dict (what the server stores and sends)."""
        out: dict[str, Any] = {
            "defaults": _value_types_json(self.defaults),
            "keys": {key: _value_types_json(value_types) for key, value_types in self.keys.items()},
        }
        if self.cmek is not None:
            out["cmek"] = dict(self.cmek)
        return out

    @classmethod
    def deserialize_from_json(cls, json_data: dict[str, Any]) -> Schema:
        """The schema a JSON dict (from either library) describes.

        Embedding functions are rebuilt by name; ones that cannot be (unknown name,
        missing dependency) become None with a UserWarning, as in chromadb.
        """
        schema = cls.__new__(cls)
        schema.defaults = _value_types_from_json(json_data.get("defaults", {}))
        schema.keys = {key: _value_types_from_json(value) for key, value in json_data.get("keys", {}).items()}
        schema.cmek = _cmek_dict(json_data.get("cmek"))
        return schema

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return self.serialize_to_json() == other.serialize_to_json()

    __hash__ = None  # type: ignore[assignment]


def schema_json(schema: object) -> dict[str, Any]:
    """The JSON dict of a vecduck or chromadb ``Schema``; a dict is taken as that JSON already."""
    if isinstance(schema, dict):
        return schema
    serialize = getattr(schema, "serialize_to_json", None)
    if not callable(serialize):
        raise TypeError(f"schema must be a Schema or its JSON dict, not {type(schema).__name__}")
    data = serialize()
    if not isinstance(data, dict):
        raise TypeError(f"{type(schema).__name__}.serialize_to_json() returned {type(data).__name__}, not a dict")
    return data


def schema_from_json(data: object) -> Schema:
    """A vecduck ``Schema`` from its JSON dict or from a chromadb ``Schema`` (a vecduck one is returned as is)."""
    if isinstance(data, Schema):
        return data
    return Schema.deserialize_from_json(schema_json(data))
