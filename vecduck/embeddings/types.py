"""The embedding-function protocol vecduck accepts: the one chromadb 1.5 defines."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Documents", "EmbeddingFunction", "Embeddings", "Space"]

Documents = list[str]
Embeddings = list[NDArray[np.float32]]
Space = str  # "cosine", "l2" or "ip"


@runtime_checkable
class EmbeddingFunction(Protocol):
    """Turns documents into vectors; chromadb's ``EmbeddingFunction`` objects fit it as is.

    Only ``__call__`` is required to embed. ``name()`` and ``get_config()`` let a
    collection record which function it uses, so it can be rebuilt on reopening
    (see :func:`vecduck.embeddings.embedding_function_config`).
    """

    def __call__(self, input: Documents) -> Embeddings: ...


class NamedEmbeddingFunction(EmbeddingFunction, Protocol):
    """An embedding function that can be persisted and rebuilt by name, as in chromadb."""

    @staticmethod
    def name() -> str: ...

    def get_config(self) -> dict[str, Any]: ...

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> EmbeddingFunction: ...
