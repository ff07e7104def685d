"""What a collection records about its embedding function, and rebuilding it from that.

The record has chromadb 1.5's shape (``chromadb/api/collection_configuration.py``):
``{"name": ..., "type": "known", "config": {...}}`` for a function that can be rebuilt
by name, ``{"type": "legacy"}`` for one that cannot. The same record therefore reopens
the same function in chromadb and in vecduck.
"""

from __future__ import annotations

from typing import Any

from vecduck.embeddings.types import EmbeddingFunction

__all__ = ["build_embedding_function", "embedding_function_config"]


def _is_legacy(ef: Any) -> bool:
    """Whether ``ef`` cannot be persisted by name (chromadb's notion of "legacy")."""
    for attr in ("name", "get_config", "build_from_config"):
        method = getattr(ef, attr, None)
        if not callable(method):
            return True
        qualname = getattr(method, "__qualname__", "")
        if getattr(method, "__module__", "") == "chromadb.api.types" and qualname.startswith("EmbeddingFunction."):
            return True  # chromadb's base-class placeholder, not implemented by ef
    try:
        return ef.name() is NotImplemented or ef.get_config() is NotImplemented
    except Exception:
        return True


def embedding_function_config(ef: Any) -> dict[str, Any] | None:
    """The persisted description of ``ef``: ``None`` for no function, else chromadb's record.

    Functions with ``name()``, ``get_config()`` and ``build_from_config()`` (vecduck's and
    chromadb's own) give ``{"name", "type": "known", "config"}``; others give
    ``{"type": "legacy"}``, which reopens as no function. Nothing is embedded or loaded.
    """
    if ef is None:
        return None
    if _is_legacy(ef):
        return {"type": "legacy"}
    return {"name": ef.name(), "type": "known", "config": dict(ef.get_config())}


def build_embedding_function(config: dict[str, Any] | None) -> EmbeddingFunction | None:
    """Rebuild the function a collection recorded, or ``None`` when it cannot be.

    ``"default"``, ``"onnx_mini_lm_l6_v2"``, ``"chroma_bm25"`` and ``"sentence_transformer"``
    map to vecduck's classes (all but the last run offline; the last needs sentence-transformers
    and raises ImportError without it). Other names are looked up in chromadb's registry
    when chromadb is installed; unknown names and legacy records give ``None``. Errors
    raised while building a found function (e.g. a missing API key) propagate, as in
    chromadb.
    """
    if config is None:
        return None
    if not isinstance(config, dict):
        raise TypeError(f"embedding function config must be a dict, not {type(config).__name__}")
    kind = config.get("type", "known")
    if kind == "legacy":
        return None
    if kind != "known":
        raise ValueError(f"unknown embedding function config type {kind!r}")
    name = config.get("name")
    if not isinstance(name, str):
        raise ValueError(f"embedding function config has no name: {config!r}")
    params = config.get("config") or {}
    cls = _known().get(name)
    if cls is None:
        cls = _chromadb_known(name)
    if cls is None:
        return None
    return cls.build_from_config(params)


def _known() -> dict[str, Any]:
    from vecduck.embeddings.bm25 import ChromaBm25EmbeddingFunction
    from vecduck.embeddings.default import DefaultEmbeddingFunction, ONNXMiniLM_L6_V2
    from vecduck.embeddings.sentence_transformer import SentenceTransformerEmbeddingFunction

    return {
        DefaultEmbeddingFunction.name(): DefaultEmbeddingFunction,
        ONNXMiniLM_L6_V2.name(): ONNXMiniLM_L6_V2,
        SentenceTransformerEmbeddingFunction.name(): SentenceTransformerEmbeddingFunction,
        ChromaBm25EmbeddingFunction.name(): ChromaBm25EmbeddingFunction,
    }


def _chromadb_known(name: str) -> Any:
    try:
        from chromadb.utils.embedding_functions import known_embedding_functions
    except Exception:  # chromadb absent or failing to import: no registry to consult
        return None
    return known_embedding_functions.get(name)
