"""Result objects of chromadb's shapes: plain dicts (so `result["ids"]` works) with extras."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

IncludeItem = Literal["documents", "embeddings", "metadatas", "distances", "uris", "data"]
Include = list[IncludeItem]
Metadata = dict[str, Any]
Where = dict[str, Any]
WhereDocument = dict[str, Any]

INCLUDE_ITEMS: tuple[str, ...] = ("documents", "embeddings", "metadatas", "distances", "uris", "data")
GET_INCLUDE_DEFAULT: tuple[str, ...] = ("metadatas", "documents")
QUERY_INCLUDE_DEFAULT: tuple[str, ...] = ("metadatas", "documents", "distances")


class GetResult(dict):  # type: ignore[type-arg]
    """Records from get/peek: ids, embeddings (2-D numpy), documents, uris, metadatas, included."""

    @property
    def ids(self) -> list[str]:
        return self["ids"]


class QueryResult(dict):  # type: ignore[type-arg]
    """Nearest neighbours, one list per query in every field (distances too)."""

    @property
    def ids(self) -> list[list[str]]:
        return self["ids"]


def empty_embeddings(dimension: int | None) -> np.ndarray:
    return np.empty((0, dimension or 0), dtype=np.float32)
