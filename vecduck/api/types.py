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


def empty_embeddings(dimension: int | None) -> np.ndarray:
    return np.empty((0, dimension or 0), dtype=np.float32)
