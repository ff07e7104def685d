"""chromadb's ``chromadb.utils.embedding_functions`` import path, for drop-in code.

``from vecduck.utils import embedding_functions`` then
``embedding_functions.DefaultEmbeddingFunction()`` works as with chromadb.
"""

from __future__ import annotations

from vecduck.embeddings import (
    ChromaBm25EmbeddingFunction,
    DefaultEmbeddingFunction,
    EmbeddingFunction,
    ONNXMiniLM_L6_V2,
    SentenceTransformerEmbeddingFunction,
)

__all__ = [
    "ChromaBm25EmbeddingFunction",
    "DefaultEmbeddingFunction",
    "EmbeddingFunction",
    "ONNXMiniLM_L6_V2",
    "SentenceTransformerEmbeddingFunction",
]
