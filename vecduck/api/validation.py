"""Argument checks with chromadb 1.5's exception classes and messages.

Two families, as in chromadb: the checks its Python client makes before sending
(`ValueError`/`TypeError`, message suffixed with " in <method>."), and the checks its
server makes (`InvalidArgumentError` and friends). The HTTP server runs only the
second family, since clients have already run the first.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vecduck.api.types import INCLUDE_ITEMS, SparseVector, as_sparse_vector, is_sparse_vector
from vecduck.errors import DuplicateIDError, InvalidArgumentError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
RESERVED_DOCUMENT_KEY = "chroma:document"


class in_method:  # noqa: N801 - used like a function: `with in_method("add"):`
    """Suffix errors raised in the block with " in <name>." as chromadb does for its
    client-side checks (a plain class: this runs on every call)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> bool:
        if isinstance(exc, Exception):
            exc.args = (f"{exc.args[0] if exc.args else ''} in {self.name}.", *exc.args[1:])
        return False


# -- unpacking -------------------------------------------------------------------------
def one_or_many(value: Any) -> list[Any] | None:
    """A single value becomes a one-item list; lists pass through; None stays None."""
    if value is None:
        return None
    if isinstance(value, list):
        return value
    return [value]


def normalize_embeddings(value: Any) -> list[np.ndarray] | None:
    """Embeddings in any of chromadb's accepted shapes as a list of 1-D arrays."""
    if value is None:
        return None
    if len(value) == 0:
        raise ValueError(f"Expected Embeddings to be non-empty list or numpy array, got {value}")
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            return [value]
        if value.ndim == 2:
            return list(value)
    elif isinstance(value, list):
        first = value[0]
        if isinstance(first, (int, float, np.number)) and not isinstance(first, (bool, np.bool_)):
            return [np.array(value, dtype=np.float32)]
        if isinstance(first, np.ndarray):
            return value
        if (
            isinstance(first, list)
            and first
            and isinstance(first[0], (int, float, np.number))
            and not isinstance(first[0], (bool, np.bool_))
        ):
            return [np.array(row, dtype=np.float32) for row in value]
    raise ValueError(
        "Expected embeddings to be a list of floats or ints, a list of lists, a numpy array,"
        f" or a list of numpy arrays, got {value}"
    )


# -- client-side checks (ValueError / TypeError) --------------------------------------
def validate_ids(ids: Any) -> list[str]:
    if not isinstance(ids, list):
        raise ValueError(f"Expected IDs to be a list, got {type(ids).__name__} as IDs")
    if not ids:
        raise ValueError(f"Expected IDs to be a non-empty list, got {len(ids)} IDs")
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in ids:
        if not isinstance(item, str):
            raise ValueError(f"Expected ID to be a str, got {item}")
        if item in seen and item not in duplicates:
            duplicates.append(item)
        seen.add(item)
    if duplicates:
        if len(duplicates) < 10:
            message = f"Expected IDs to be unique, found duplicates of: {', '.join(duplicates)}"
        else:
            shown = duplicates[:11]
            message = (
                f"Expected IDs to be unique, found {len(duplicates)} duplicated IDs: "
                f"{', '.join(shown[:5])}, ..., {', '.join(shown[-5:])}"
            )
        raise DuplicateIDError(message)
    return ids


def validate_lengths(fields: dict[str, list[Any] | None]) -> None:
    present = {name: value for name, value in fields.items() if value is not None}
    if not present:
        raise ValueError(f"At least one of one of {', '.join(fields)} must be provided")
    empty = [name for name, value in present.items() if len(value) == 0]
    if empty:
        raise ValueError(f"Non-empty lists are required for {empty}")
    if len({len(value) for value in present.values()}) > 1:
        detail = ", ".join(f"{name}: {len(value)}" for name, value in present.items())
        raise ValueError(f"Unequal lengths for fields: {detail}")


def validate_embedding_arrays(embeddings: list[Any]) -> None:
    if not all(isinstance(e, np.ndarray) for e in embeddings):
        kinds = sorted({type(e).__name__ for e in embeddings})
        raise ValueError(f"Expected each embedding in the embeddings to be a numpy array, got {kinds}")
    for position, embedding in enumerate(embeddings):
        if embedding.ndim == 0:
            raise ValueError(f"Expected a 1-dimensional array, got a 0-dimensional array {embedding}")
        if embedding.size == 0:
            raise ValueError(
                "Expected each embedding in the embeddings to be a 1-dimensional numpy array with at"
                f" least 1 int/float value. Got a 1-dimensional numpy array with no values at pos {position}"
            )
        if embedding.dtype not in (np.float16, np.float32, np.float64, np.int32, np.int64):
            raise ValueError(
                "Expected each value in the embedding to be a int or float, got an embedding with "
                f"{embedding.dtype} - {embedding}"
            )


def validate_documents(documents: Any, nullable: bool) -> None:
    if not isinstance(documents, list):
        raise ValueError(f"Expected documents to be a list, got {type(documents).__name__}")
    for document in documents:
        if document is None and nullable:
            continue
        if not isinstance(document, str):
            raise ValueError(f"Expected document to be a str, got {document}")


def _validate_list_value(key: str, value: list[Any]) -> None:
    if not value:
        raise ValueError(f"Expected metadata list value for key '{key}' to be non-empty")
    first = bool if isinstance(value[0], bool) else type(value[0])
    for item in value:
        kind = bool if isinstance(item, bool) else type(item)
        if kind is not first or kind not in (str, int, float, bool):
            raise ValueError(
                f"Expected metadata list value for key '{key}' to contain only str, int, float, or bool "
                f"and all elements must be the same type, got {value}"
            )


def validate_metadata(metadata: Any) -> None:
    """One record's (or a collection's) metadata, as chromadb's client checks it."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ValueError(f"Expected metadata to be a dict or None, got {type(metadata).__name__} as metadata")
    if not metadata:
        raise ValueError(f"Expected metadata to be a non-empty dict, got {len(metadata)} metadata attributes")
    for key, value in metadata.items():
        if key == RESERVED_DOCUMENT_KEY:
            raise ValueError(f"Expected metadata to not contain the reserved key {RESERVED_DOCUMENT_KEY}")
        if not isinstance(key, str):
            raise TypeError(f"Expected metadata key to be a str, got {key} which is a {type(key).__name__}")
        if isinstance(value, list):
            _validate_list_value(key, value)
        elif not isinstance(value, (str, int, float, bool, type(None))) and not is_sparse_vector(value):
            raise ValueError(
                "Expected metadata value to be a str, int, float, bool, SparseVector, list, or None,"
                f" got {value} which is a {type(value).__name__}"
            )


def validate_metadatas(metadatas: Any) -> None:
    if not isinstance(metadatas, list):
        raise ValueError(f"Expected metadatas to be a list, got {metadatas}")
    for metadata in metadatas:
        validate_metadata(metadata)


def validate_where(where: Any) -> None:
    if not isinstance(where, dict):
        raise ValueError(f"Expected where to be a dict, got {where}")
    if len(where) != 1:
        raise ValueError(f"Expected where to have exactly one operator, got {where}")
    key, value = next(iter(where.items()))
    if not isinstance(key, str):
        raise ValueError(f"Expected where key to be a str, got {key}")
    if key in ("$contains", "$not_contains"):
        raise ValueError(f"Expected where key to be a metadata field name or a logical operator ($and, $or), got {key}")
    if key not in ("$and", "$or", "$in", "$nin") and not isinstance(value, (str, int, float, dict)):
        raise ValueError(f"Expected where value to be a str, int, float, or operator expression, got {value}")
    if key in ("$and", "$or"):
        if not isinstance(value, list):
            raise ValueError(f"Expected where value for $and or $or to be a list of where expressions, got {value}")
        if len(value) <= 1:
            raise ValueError(
                f"Expected where value for $and or $or to be a list with at least two where expressions, got {value}"
            )
        for item in value:
            validate_where(item)
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(f"Expected operator expression to have exactly one operator, got {value}")
        operator, operand = next(iter(value.items()))
        if operator in ("$gt", "$gte", "$lt", "$lte") and not isinstance(operand, (int, float)):
            raise ValueError(f"Expected operand value to be an int or a float for operator {operator}, got {operand}")
        if operator in ("$in", "$nin") and not isinstance(operand, list):
            raise ValueError(f"Expected operand value to be an list for operator {operator}, got {operand}")
        if operator in ("$contains", "$not_contains"):
            if key == "#document" and not isinstance(operand, str):
                raise ValueError(
                    f"Expected operand value to be a str for operator {operator} on #document, got {operand}"
                )
            if not isinstance(operand, (str, int, float, bool)):
                raise ValueError(
                    f"Expected operand value to be a str, int, float, or bool for operator {operator}, got {operand}"
                )
        if operator not in (
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$ne",
            "$eq",
            "$in",
            "$nin",
            "$contains",
            "$not_contains",
        ):
            raise ValueError(
                "Expected where operator to be one of $gt, $gte, $lt, $lte, $ne, $eq, $in, $nin, "
                f"$contains, $not_contains, got {operator}"
            )
        if not isinstance(operand, (str, int, float, bool, list)):
            raise ValueError(
                f"Expected where operand value to be a str, int, float, bool, or list of those type, got {operand}"
            )
        if isinstance(operand, list) and (not operand or not all(isinstance(x, type(operand[0])) for x in operand)):
            raise ValueError(
                "Expected where operand value to be a non-empty list, and all values to be of the"
                f" same type got {operand}"
            )


def validate_where_document(where_document: Any) -> None:
    if not isinstance(where_document, dict):
        raise ValueError(f"Expected where document to be a dictionary, got {where_document}")
    if len(where_document) != 1:
        raise ValueError(f"Expected where document to have exactly one operator, got {where_document}")
    operator, operand = next(iter(where_document.items()))
    if operator not in ("$contains", "$not_contains", "$regex", "$not_regex", "$and", "$or"):
        raise ValueError(
            "Expected where document operator to be one of $contains, $not_contains, $regex,"
            f" $not_regex, $and, $or, got {operator}"
        )
    if operator in ("$and", "$or"):
        if not isinstance(operand, list):
            raise ValueError(
                f"Expected document value for $and or $or to be a list of where document expressions, got {operand}"
            )
        if len(operand) <= 1:
            raise ValueError(
                "Expected document value for $and or $or to be a list with at least two where"
                f" document expressions, got {operand}"
            )
        for item in operand:
            validate_where_document(item)
    elif not isinstance(operand, str):
        raise ValueError(f"Expected where document operand value for operator {operator} to be a str, got {operand}")
    elif not operand:
        raise ValueError(f"Expected where document operand value for operator {operator} to be a non-empty str")


_NUMBER_TYPES = frozenset({int, float})


def is_number_list(items: list[Any] | tuple[Any, ...]) -> bool:
    """Whether a list holds only ints and floats (not bools), checked in C: dense vectors
    are skipped whole by the walks over a request, which would otherwise visit each number."""
    return set(map(type, items)) <= _NUMBER_TYPES


def check_text(value: Any, what: str) -> None:
    """Refuse strings that are not valid Unicode (lone surrogates, which JSON escapes can
    carry): no storage or SQL parameter can hold them. Walks dicts and lists; encodes all
    the strings found in one go (one call per batch, not per value)."""
    if value is None:
        return
    strings: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings.append(item)
        elif isinstance(item, dict):
            strings.extend(key for key in item if isinstance(key, str))
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            if not is_number_list(item):
                stack.extend(item)
        elif is_sparse_vector(item) and getattr(item, "labels", None):
            stack.extend(item.labels)
    check_strings(strings, what)


def check_strings(strings: list[str], what: str) -> None:
    """Refuse a string that is not valid Unicode (one encode for all of them)."""
    try:
        "".join(strings).encode("utf-8")
    except UnicodeEncodeError:
        bad = next(s for s in strings if not _is_unicode(s))
        message = f"{what} must be valid Unicode text (no lone surrogates), got {bad[:80]!r}"
        raise InvalidArgumentError(message) from None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_filters(where: Any, where_document: Any) -> None:
    check_text(where, "where")
    check_text(where_document, "where_document")
    if where is not None:
        validate_where(where)
    if where_document is not None:
        validate_where_document(where_document)


def validate_include(include: Any, disallowed: Sequence[str] = ()) -> None:
    if not isinstance(include, list):
        raise ValueError(f"Expected include to be a list, got {include}")
    for item in include:
        if not isinstance(item, str):
            raise ValueError(f"Expected include item to be a str, got {item}")
        if item not in INCLUDE_ITEMS:
            raise ValueError(f"Expected include item to be one of {', '.join(INCLUDE_ITEMS)}, got {item}")
        if item in disallowed:
            raise ValueError(f"Include item cannot be one of {', '.join(disallowed)}, got {item}")


def validate_n_results(n_results: Any) -> int:
    if not isinstance(n_results, int):
        raise ValueError(f"Expected requested number of results to be a int, got {n_results}")
    if n_results <= 0:
        raise TypeError(f"Number of requested results {n_results}, cannot be negative, or zero.")
    return n_results


# -- server-side checks (InvalidArgumentError) ------------------------------------------
def check_collection_name(name: Any) -> str:
    prefix = "Validation error: name: "
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidArgumentError(
            prefix + "Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and"
            f" ending with a character in [a-zA-Z0-9]. Got: {name}"
        )
    if ".." in name:
        raise InvalidArgumentError(
            prefix + f"Expected a name that does not contains two consecutive periods (..). Got {name}"
        )
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise InvalidArgumentError(prefix + f"Expected a name that is not a valid ip address. Got {name}")


def check_collection_metadata(metadata: Any) -> dict[str, Any] | None:
    """Collection metadata: a non-empty dict of scalars (lists and nesting are refused)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"Validation error: metadata: Expected a dict, got {metadata!r}")
    if not metadata:
        raise InvalidArgumentError("Validation error: metadata: Metadata cannot be empty")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise InvalidArgumentError(
                f"Validation error: metadata: value of {key!r} must be a str, int, float or bool"
            )
        _check_scalar(value, f"metadata value of {key!r}")
    check_text(metadata, "Validation error: metadata")
    return metadata


def _check_scalar(value: Any, what: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"Validation error: {what} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise InvalidArgumentError(f"Validation error: {what} is outside the 64-bit integer range")


SPARSE_INDEX_LIMIT = 2**32  # chromadb stores sparse indices as unsigned 32-bit integers


def check_sparse_vector(value: Any, what: str) -> SparseVector:
    """A sparse vector (vecduck's, chromadb's, or the tagged transport dict) as the server
    checks it: strictly ascending 32-bit indices, finite values; returned as vecduck's."""
    try:
        vector = as_sparse_vector(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidArgumentError(f"Validation error: {what} is not a valid sparse vector: {exc}") from None
    indices, labels = list(vector.indices), vector.labels
    if indices and (
        indices[-1] >= SPARSE_INDEX_LIMIT or bool in set(map(type, indices))  # ascending: the last is the largest
    ):
        raise InvalidArgumentError(f"Validation error: {what}: sparse vector indices must be below 2**32")
    try:  # numbers, as the vector's own checks made sure; an int too large for a float is refused
        values = np.asarray(vector.values, dtype=np.float64)
    except OverflowError:
        values = np.array([np.inf])
    if not np.isfinite(values).all():
        raise InvalidArgumentError(f"Validation error: {what}: sparse vector values must be finite numbers")
    if labels is not None and not all(isinstance(label, str) for label in labels):
        raise InvalidArgumentError(f"Validation error: {what}: sparse vector labels must be strings")
    return SparseVector._unchecked(indices, values.tolist(), None if labels is None else list(labels))


def check_record_ids(ids: Sequence[str]) -> None:
    for record_id in ids:
        if not isinstance(record_id, str):
            raise InvalidArgumentError(f"IDs must be strings, got {record_id!r}")
        if record_id == "":
            raise InvalidArgumentError("Empty ID, ID must have at least one character")


def check_record_metadatas(
    metadatas: Sequence[dict[str, Any] | None], allow_none_values: bool
) -> list[dict[str, Any] | None]:
    """Record metadata as the server checks it; drops `chroma:*` keys as chromadb does."""
    cleaned: list[dict[str, Any] | None] = []
    for position, metadata in enumerate(metadatas):
        if metadata is None:
            cleaned.append(None)
            continue
        if not isinstance(metadata, dict):
            raise InvalidArgumentError(f"Validation error: metadatas: Invalid metadata at index {position}")
        kept: dict[str, Any] = {}
        for key, value in metadata.items():
            if not isinstance(key, str) or key == "" or key[0] in "#$" or "\x00" in key:
                raise InvalidArgumentError(f"Validation error: metadatas: Invalid metadata at index {position}")
            if key.startswith("chroma:"):
                continue
            if value is None:
                if not allow_none_values:
                    raise InvalidArgumentError(
                        f"Validation error: metadatas: value of {key!r} at index {position} cannot be null"
                    )
            elif isinstance(value, list):
                if not value:
                    continue
                kinds = {bool if isinstance(v, bool) else type(v) for v in value}
                if not kinds <= {str, int, float, bool} or (len(kinds) > 1 and kinds != {int, float}):
                    raise InvalidArgumentError(
                        f"Validation error: metadatas: list value of {key!r} at index {position} mixes kinds"
                    )
                for item in value:
                    _check_scalar(item, f"metadata value of {key!r}")
            elif isinstance(value, (str, int, float, bool)):
                _check_scalar(value, f"metadata value of {key!r}")
            elif is_sparse_vector(value) or isinstance(value, dict):
                value = check_sparse_vector(value, f"metadata value of {key!r} at index {position}")
            else:
                raise InvalidArgumentError(
                    f"Validation error: metadatas: value of {key!r} at index {position} has an unsupported type"
                )
            kept[key] = value
        cleaned.append(kept or None)
    return cleaned


def check_lengths(ids: Sequence[Any], **fields: Sequence[Any] | None) -> None:
    """Every given per-record field has one entry per id (the server's check)."""
    if any(value is not None and len(value) != len(ids) for value in fields.values()):
        raise InvalidArgumentError("Inconsistent number of IDs, embeddings, documents, URIs and metadatas")


def check_update_embeddings(embeddings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings where some entries may be None (an update keeping those vectors).

    Returns the matrix (kept rows zero-filled) and the mask of kept rows, or None.
    """
    kept = np.array([e is None for e in embeddings], dtype=bool)
    if not kept.any():
        return check_embeddings(embeddings), None
    if kept.all():
        raise InvalidArgumentError("Embeddings must not all be null")
    given = check_embeddings([e for e in embeddings if e is not None])
    matrix = np.zeros((len(embeddings), given.shape[1]), np.float32)
    matrix[~kept] = given
    return matrix, kept


def check_embeddings(embeddings: Sequence[Any]) -> np.ndarray:
    """Vectors as one (n, d) float32 matrix: same dimension, finite values."""
    try:
        lengths = {len(e) for e in embeddings}
    except TypeError:
        raise InvalidArgumentError("Embeddings must be lists of numbers") from None
    if len(lengths) > 1:
        raise InvalidArgumentError("Inconsistent dimensions in provided embeddings")
    try:
        matrix = np.asarray([np.asarray(e, dtype=np.float32) for e in embeddings], dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidArgumentError("Embeddings must be lists of numbers") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InvalidArgumentError("Embeddings must be non-empty lists of numbers")
    if not np.isfinite(matrix).all():
        raise InvalidArgumentError("Embeddings must not contain NaN or infinite values")
    return matrix


def check_documents(documents: Sequence[Any]) -> None:
    for document in documents:
        if document is not None and not isinstance(document, str):
            raise InvalidArgumentError(f"Documents must be strings, got {type(document).__name__}")


def check_limit(limit: Any, name: str = "limit") -> int | None:
    """A limit or offset as an int: any integer type, NumPy's too, as chromadb takes them."""
    if limit is None:
        return None
    if not isinstance(limit, numbers.Integral) or limit < 0:
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {limit!r}")
    return int(limit)
