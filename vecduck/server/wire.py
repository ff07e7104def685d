"""Chroma's JSON wire format: request bodies checked and decoded, results encoded.

Pure functions, no HTTP. A body that does not have the shape of Chroma's request type
raises `SchemaError` (HTTP 422, as Chroma's server answers a body it cannot
deserialise); values of the right shape but wrong content are left to the api layer's
server-side checks (`InvalidArgumentError`, HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
from typing import Any

import numpy as np
import orjson

from vecduck.api.indexing import reported_schema
from vecduck.api.types import INCLUDE_ITEMS
from vecduck.errors import InvalidArgumentError

GET_INCLUDE_DEFAULT = ["documents", "metadatas"]
QUERY_INCLUDE_DEFAULT = ["documents", "metadatas", "distances"]
READ_LEVELS = ("index_and_wal", "index_only", "index_and_bounded_wal")


class SchemaError(ValueError):
    """A request body that does not match Chroma's request schema (HTTP 422)."""


# -- JSON ------------------------------------------------------------------------------
def _no_constant(name: str) -> Any:
    raise InvalidArgumentError(f"Failed to parse the request body as JSON: {name} is not valid JSON")


# Digits as "0", "." kept, everything else a space: a run of 20 digits is then a bytes.find
# (a regex for one costs as much as the standard library's whole parse).
_DIGIT_SHAPES = bytes(0x30 if 0x30 <= c <= 0x39 else c if c == 0x2E else 0x20 for c in range(256))
_LONG_RUN = b"0" * 20


def _long_integer(body: bytes) -> bool:
    """True if the body has a run of 20 or more digits that is not a fraction's: an integer
    that may not fit 64 bits (fractions of 20 digits are common, e.g. 0.00012345678901234567)."""
    shapes = body.translate(_DIGIT_SHAPES)
    start = shapes.find(_LONG_RUN)
    while start != -1:
        if start == 0 or shapes[start - 1] != 0x2E:
            return True
        # past this fraction's digits: up to the next space (no 20-run before it can count,
        # every byte there is a digit or a "."), without copying the rest of the body
        end = shapes.find(b" ", start)
        if end == -1:
            return False
        start = shapes.find(_LONG_RUN, end)
    return False


def parse_json(body: bytes) -> Any:
    """The decoded body; malformed JSON is a 400 as in Chroma.

    orjson reads a 384-float add several times faster than the standard library. What it
    refuses (NaN and Infinity, lone surrogates, deep nesting) goes to the standard library,
    which decides as before: the same values, the same errors. So does a body with a run of
    20 or more digits: orjson reads an integer beyond 64 bits as a float."""
    if not _long_integer(body):
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"Failed to parse the request body as JSON: not UTF-8 ({exc.reason})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"Failed to parse the request body as JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgumentError("Failed to parse the request body as JSON: nested too deeply") from None


def dumps(value: Any) -> bytes:
    """Compact JSON; numpy scalars and arrays become plain numbers and lists."""
    return json.dumps(value, separators=(",", ":"), default=_plain, allow_nan=False).encode("utf-8")


def _plain(value: Any) -> Any:
    if type(value).__name__ == "SparseVector":
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# -- field checks ------------------------------------------------------------------------
def _fail(field: str, expected: str, value: Any) -> SchemaError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return SchemaError(
        f"Failed to deserialize the JSON body into the target type: {field}: expected {expected}, got {shown}"
    )


def body_object(body: Any) -> dict[str, Any]:
    """The body as a JSON object (a missing body counts as `{}`)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _fail("body", "a JSON object", body)
    return body


def optional_str_list(body: dict[str, Any], field: str, nullable_items: bool = False) -> list[Any] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(field, "a list", value)
    for item in value:
        if not (isinstance(item, str) or (nullable_items and item is None)):
            raise _fail(field, "strings" + (" or nulls" if nullable_items else ""), item)
    return value


def ids_field(body: dict[str, Any], required: bool) -> list[str] | None:
    ids = optional_str_list(body, "ids")
    if ids is None and required:
        raise _fail("ids", "a list of strings", None)
    return ids


def metadatas_field(body: dict[str, Any]) -> list[dict[str, Any] | None] | None:
    value = body.get("metadatas")
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail("metadatas", "a list", value)
    for item in value:
        if item is not None and not isinstance(item, dict):
            raise _fail("metadatas", "objects or nulls", item)
    return value


def dict_field(body: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = body.get(field)
    if value is not None and not isinstance(value, dict):
        raise _fail(field, "an object or null", value)
    return value


def count_field(body: dict[str, Any], field: str) -> int | None:
    """A non-negative integer or null (limit, offset, n_results)."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, "a non-negative integer", value)
    if not 0 <= value < 2**63:  # the api layer's class for a bad value (Chroma's server says 422)
        raise InvalidArgumentError(f"{field} must be a non-negative integer, got {value!r}")
    return value


def include_field(body: dict[str, Any], default: list[str]) -> list[str]:
    value = body.get("include")
    if value is None:
        return list(default)
    if not isinstance(value, list) or not all(isinstance(item, str) and item in INCLUDE_ITEMS for item in value):
        raise _fail("include", f"a list of {', '.join(INCLUDE_ITEMS)}", value)
    return value


def bool_field(body: dict[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(field, "a boolean", value)
    return value


def read_level(value: str | None) -> None:
    if value is not None and value not in READ_LEVELS:
        raise InvalidArgumentError(f"Invalid read_level {value!r}: expected one of {', '.join(READ_LEVELS)}")


# -- embeddings --------------------------------------------------------------------------
def decode_vector(item: Any, field: str) -> np.ndarray:
    """One embedding: a list of numbers, or base64 of little-endian float32."""
    if isinstance(item, str):
        try:
            raw = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgumentError(f"{field}: invalid base64 embedding") from None
        if len(raw) % 4:
            raise InvalidArgumentError(f"{field}: base64 embedding is not a whole number of float32 values")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(item, list):
        kinds = set(map(type, item))  # one pass in C: the common all-float vector skips the loop
        if not kinds <= {float} and not (kinds <= {float, int} and all(abs(n) <= 2**128 for n in item)):
            for number in item:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise _fail(field, "numbers", number)
                if isinstance(number, int) and abs(number) > 2**128:
                    raise InvalidArgumentError(f"{field}: number out of range")
        with np.errstate(over="ignore"):
            vector = np.asarray(item, dtype=np.float64).astype(np.float32)
        if not np.isfinite(vector).all():
            raise InvalidArgumentError("Embeddings must not contain NaN or infinite values")
        return vector
    raise _fail(field, "lists of numbers or base64 strings", item)


def embeddings_field(body: dict[str, Any], field: str, nullable_items: bool) -> list[np.ndarray | None] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(field, "a list", value)
    out: list[np.ndarray | None] = []
    for item in value:
        if item is None:
            if not nullable_items:
                raise _fail(field, "embeddings, not null", item)
            out.append(None)
        else:
            out.append(decode_vector(item, field))
    return out


# -- records -----------------------------------------------------------------------------
def check_lengths(ids: list[str], **fields: list[Any] | None) -> None:
    for value in fields.values():
        if value is not None and len(value) != len(ids):
            raise InvalidArgumentError("Inconsistent number of IDs, embeddings, documents, URIs and metadatas")


def last_one_wins(ids: list[str], *fields: list[Any] | None) -> tuple[list[str], list[list[Any] | None]]:
    """Drop all but the last occurrence of a repeated id (Chroma's server accepts repeats)."""
    if len(set(ids)) == len(ids):
        return ids, list(fields)
    last = {record_id: i for i, record_id in enumerate(ids)}
    keep = sorted(last.values())
    return [ids[i] for i in keep], [None if f is None else [f[i] for i in keep] for f in fields]


# -- results -----------------------------------------------------------------------------
def _rows(array: Any) -> list[list[float]]:
    return np.asarray(array, dtype=np.float32).tolist()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def get_response(result: dict[str, Any], include: list[str]) -> dict[str, Any]:
    embeddings = result.get("embeddings")
    return {
        "ids": result["ids"],
        "embeddings": None if embeddings is None else _rows(embeddings),
        "documents": result.get("documents"),
        "uris": result.get("uris"),
        "metadatas": result.get("metadatas"),
        "include": include,
    }


def query_response(result: dict[str, Any], include: list[str]) -> dict[str, Any]:
    embeddings = result.get("embeddings")
    distances = result.get("distances")
    return {
        "ids": result["ids"],
        "embeddings": None if embeddings is None else [_rows(block) for block in embeddings],
        "documents": result.get("documents"),
        "uris": result.get("uris"),
        "metadatas": result.get("metadatas"),
        "distances": None if distances is None else [[_finite(float(d)) for d in row] for row in distances],
        "include": include,
    }


def empty_query_response(queries: int, include: list[str]) -> dict[str, Any]:
    """n_results = 0 or no queries: one empty list per query for each included field."""
    blocks: list[list[Any]] = [[] for _ in range(queries)]
    return {
        "ids": [list(b) for b in blocks],
        "embeddings": [list(b) for b in blocks] if "embeddings" in include else None,
        "documents": [list(b) for b in blocks] if "documents" in include else None,
        "uris": [list(b) for b in blocks] if "uris" in include else None,
        "metadatas": [list(b) for b in blocks] if "metadatas" in include else None,
        "distances": [list(b) for b in blocks] if "distances" in include else None,
        "include": include,
    }


def collection_json(collection: Any) -> dict[str, Any]:
    """A collection in the shape both official clients parse."""
    record = collection._record  # the registry record: dimension without loading the collection
    return {
        "id": record.id,
        "name": record.name,
        "metadata": record.metadata,
        "dimension": record.dimension,
        "tenant": record.tenant,
        "database": record.database,
        "version": 0,
        "log_position": 0,
        "configuration_json": record.configuration,
        "schema": reported_schema(record.configuration, record.schema),
    }
