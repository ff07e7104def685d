"""Result objects of chromadb's shapes: plain dicts (so `result["ids"]` works) with extras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

IncludeItem = Literal["documents", "embeddings", "metadatas", "distances", "uris", "data"]
Include = list[IncludeItem]
Metadata = dict[str, Any]
Where = dict[str, Any]
WhereDocument = dict[str, Any]

# How a sparse vector travels in JSON (chromadb's transport format): a tagged object.
TYPE_KEY = "#type"
SPARSE_VECTOR_TYPE_VALUE = "sparse_vector"

INCLUDE_ITEMS: tuple[str, ...] = ("documents", "embeddings", "metadatas", "distances", "uris", "data")
GET_INCLUDE_DEFAULT: tuple[str, ...] = ("metadatas", "documents")
QUERY_INCLUDE_DEFAULT: tuple[str, ...] = ("metadatas", "documents", "distances")


class _Frames:
    """Result conversions, delegated to vecduck.frames / vecduck.display."""

    def to_arrow(self) -> Any:
        """One row per record (a query: per hit, with query index and rank), metadata keys as columns."""
        from vecduck.frames import result_to_arrow

        return result_to_arrow(self)  # type: ignore[arg-type]

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        from vecduck.frames import to_polars

        return to_polars(self.to_arrow())

    def _repr_html_(self) -> str:
        from vecduck.display import result_html

        return result_html(self)  # type: ignore[arg-type]


class GetResult(_Frames, dict):  # type: ignore[type-arg]
    """Records from get/peek: ids, embeddings (2-D numpy), documents, uris, metadatas, included."""

    @property
    def ids(self) -> list[str]:
        return self["ids"]


class QueryResult(_Frames, dict):  # type: ignore[type-arg]
    """Nearest neighbours, one list per query in every field (distances too)."""

    @property
    def ids(self) -> list[list[str]]:
        return self["ids"]


@dataclass
class IndexingStatus:
    """chromadb's IndexingStatus: record operations in the vector index, waiting, in all."""

    num_indexed_ops: int
    num_unindexed_ops: int
    total_ops: int
    op_indexing_progress: float

    @classmethod
    def of(cls, total: int, unindexed: int) -> IndexingStatus:
        indexed = total - unindexed
        return cls(indexed, unindexed, total, 1.0 if total == 0 else indexed / total)


# A search result's row fields and the column-major field each comes from.
ROW_FIELDS = (("document", "documents"), ("embedding", "embeddings"), ("metadata", "metadatas"), ("score", "scores"))


@dataclass
class UserIdentity:
    """Who the client is to the server (`client.get_user_identity()`), as chromadb's: the
    user, the tenant it works in and the databases it may use ("*": every one)."""

    user_id: str
    tenant: str | None = None
    databases: list[str] | None = None
    attributes: dict[str, Any] | None = None


class SearchResult(dict):  # type: ignore[type-arg]
    """The answer of `Collection.search`, column-major as chromadb's: `ids`, `documents`,
    `embeddings`, `metadatas`, `scores` and `select`, one entry per search (a field the
    search did not select is None)."""

    @property
    def ids(self) -> list[list[str]]:
        return self["ids"]

    @property
    def documents(self) -> list[list[str | None] | None]:
        return self["documents"]

    @property
    def embeddings(self) -> list[list[list[float]] | None]:
        return self["embeddings"]

    @property
    def metadatas(self) -> list[list[dict[str, Any] | None] | None]:
        return self["metadatas"]

    @property
    def scores(self) -> list[list[float | None] | None]:
        return self["scores"]

    def rows(self) -> list[list[dict[str, Any]]]:
        """Row-major: per search, one dict per hit with `id` and whatever was selected."""
        per_search = []
        for position, ids in enumerate(self.get("ids", [])):
            columns = [(name, (self.get(plural) or [None] * (position + 1))[position]) for name, plural in ROW_FIELDS]
            hits = []
            for i, record_id in enumerate(ids):
                row: dict[str, Any] = {"id": record_id}
                for name, values in columns:
                    if values is not None and values[i] is not None:
                        row[name] = values[i]
                hits.append(row)
            per_search.append(hits)
        return per_search

    def to_arrow(self) -> Any:
        """One row per hit: `search` (which search), `rank`, id, score and the selected fields."""
        from vecduck.frames import search_result_to_arrow

        return search_result_to_arrow(self)

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        from vecduck.frames import to_polars

        return to_polars(self.to_arrow())


def empty_embeddings(dimension: int | None) -> np.ndarray:
    return np.empty((0, dimension or 0), dtype=np.float32)


@dataclass
class SparseVector:
    """A sparse vector as metadata value or query: strictly ascending `indices` with their `values`.

    The same checks as chromadb's `SparseVector` run at construction (ValueError), so a
    bad vector is refused where it is made; `labels` optionally names each index (BM25
    tokens). chromadb's own SparseVector objects are accepted wherever this one is.
    """

    indices: list[int]
    values: list[float]
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if self._well_formed():
            return
        self._explain_refusal()

    def _well_formed(self) -> bool:
        """The common case, checked in C: plain lists of ints (ascending, non-negative)
        and numbers, no labels or as many string labels. False sends the vector to the
        per-element checks, which say what is wrong (or accept what NumPy could not type)."""
        indices, values, labels = self.indices, self.values, self.labels
        if type(indices) is not list or type(values) is not list or len(indices) != len(values):
            return False
        if labels is not None and (type(labels) is not list or len(labels) != len(indices)):
            return False
        if not indices:
            return True
        try:
            index_array, value_array = np.asarray(indices), np.asarray(values)
        except (ValueError, TypeError, OverflowError):  # ragged or odd items
            return False
        return (
            index_array.ndim == 1
            and value_array.ndim == 1
            and index_array.dtype.kind == "i"
            and value_array.dtype.kind in "iuf"
            and bool(index_array[0] >= 0)
            and bool((index_array[1:] > index_array[:-1]).all())
        )

    @classmethod
    def _unchecked(cls, indices: list[int], values: list[float], labels: list[str] | None = None) -> SparseVector:
        """A vector from data already checked (the lake's rows, vecduck's own encoder):
        no per-element checks, which would dominate a large write or read."""
        vector = object.__new__(cls)
        vector.indices, vector.values, vector.labels = indices, values, labels
        return vector

    def _explain_refusal(self) -> None:
        """chromadb's per-element checks, with their messages (ValueError)."""
        if not isinstance(self.indices, list):
            raise ValueError(f"Expected SparseVector indices to be a list, got {type(self.indices).__name__}")
        if not isinstance(self.values, list):
            raise ValueError(f"Expected SparseVector values to be a list, got {type(self.values).__name__}")
        if len(self.indices) != len(self.values):
            raise ValueError(
                "SparseVector indices and values must have the same length, "
                f"got {len(self.indices)} indices and {len(self.values)} values"
            )
        if self.labels is not None:
            if not isinstance(self.labels, list):
                raise ValueError(f"Expected SparseVector labels to be a list, got {type(self.labels).__name__}")
            if len(self.labels) != len(self.indices):
                raise ValueError(
                    "SparseVector labels must have the same length as indices and values, "
                    f"got {len(self.labels)} labels, {len(self.indices)} indices"
                )
        for i, index in enumerate(self.indices):
            if not isinstance(index, int):
                raise ValueError(f"SparseVector indices must be integers, got {type(index).__name__} at position {i}")
            if index < 0:
                raise ValueError(f"SparseVector indices must be non-negative, got {index} at position {i}")
        for i, value in enumerate(self.values):
            if not isinstance(value, (int, float)):
                raise ValueError(f"SparseVector values must be numbers, got {type(value).__name__} at position {i}")
        for i in range(1, len(self.indices)):
            if self.indices[i] <= self.indices[i - 1]:
                raise ValueError(
                    "SparseVector indices must be sorted in strictly ascending order, "
                    f"found indices[{i}]={self.indices[i]} <= indices[{i - 1}]={self.indices[i - 1]}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The transport form: `{"#type": "sparse_vector", "indices", "values"[, "tokens"]}`."""
        result: dict[str, Any] = {TYPE_KEY: SPARSE_VECTOR_TYPE_VALUE, "indices": self.indices, "values": self.values}
        if self.labels is not None:
            result["tokens"] = self.labels
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SparseVector:
        """From the transport form (the `#type` tag is required)."""
        if data.get(TYPE_KEY) != SPARSE_VECTOR_TYPE_VALUE:
            raise ValueError(f"Expected {TYPE_KEY}='{SPARSE_VECTOR_TYPE_VALUE}', got {data.get(TYPE_KEY)}")
        return cls(indices=data["indices"], values=data["values"], labels=data.get("tokens"))


def is_sparse_vector(value: object) -> bool:
    """A SparseVector of vecduck's or chromadb's (duck-typed: chromadb need not be installed)."""
    return type(value).__name__ == "SparseVector" and hasattr(value, "indices") and hasattr(value, "values")


def as_sparse_vector(value: Any) -> SparseVector:
    """vecduck's SparseVector for one of ours, chromadb's, or the tagged transport dict."""
    if isinstance(value, SparseVector):
        return value
    if isinstance(value, dict):
        return SparseVector.from_dict(value)
    return SparseVector(list(value.indices), list(value.values), getattr(value, "labels", None))
