"""chromadb-compatible wrapper around sentence-transformers, for users who have it installed.

Same name (``"sentence_transformer"``), arguments and config as chromadb's class, so
collections created with either library reopen with the same model.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np

from vecduck.embeddings.types import Embeddings, Space

__all__ = ["SentenceTransformerEmbeddingFunction"]

_PRIMITIVES = (str, int, float, bool, list, dict, tuple)


class SentenceTransformerEmbeddingFunction:
    """Embeds with ``sentence_transformers.SentenceTransformer(model_name, device=...)``.

    Models are loaded once per name and shared. Needs ``pip install sentence-transformers``
    (which brings PyTorch); vecduck's :class:`DefaultEmbeddingFunction` gives the
    all-MiniLM-L6-v2 vectors without it.
    """

    models: ClassVar[dict[str, Any]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model_name: str = "all-MiniLM-L6-v2",
        device: str = "cpu",
        normalize_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "SentenceTransformerEmbeddingFunction needs the sentence-transformers "
                "package: pip install sentence-transformers. For all-MiniLM-L6-v2 without "
                "PyTorch use vecduck.embeddings.DefaultEmbeddingFunction."
            ) from exc
        for key, value in kwargs.items():
            if not isinstance(value, _PRIMITIVES):
                raise ValueError(f"Keyword argument {key} is not a primitive type")
        self.model_name = model_name
        self.device = device
        self.normalize_embeddings = normalize_embeddings
        self.kwargs = kwargs
        with self._lock:
            if model_name not in self.models:
                self.models[model_name] = SentenceTransformer(model_name_or_path=model_name, device=device, **kwargs)
        self._model = self.models[model_name]

    def __call__(self, input: list[str]) -> Embeddings:
        """One float32 vector per document."""
        docs = [input] if isinstance(input, str) else list(input)
        if not docs:
            return []
        vectors = self._model.encode(docs, convert_to_numpy=True, normalize_embeddings=self.normalize_embeddings)
        return [np.asarray(v, dtype=np.float32) for v in vectors]

    def embed_query(self, input: list[str]) -> Embeddings:
        return self(input)

    @staticmethod
    def name() -> str:
        return "sentence_transformer"

    def get_config(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "device": self.device,
            "normalize_embeddings": self.normalize_embeddings,
            "kwargs": self.kwargs,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> SentenceTransformerEmbeddingFunction:
        missing = [k for k in ("model_name", "device", "normalize_embeddings") if k not in config]
        if missing:
            raise ValueError(f"sentence_transformer config lacks {', '.join(missing)}")
        return SentenceTransformerEmbeddingFunction(
            model_name=config["model_name"],
            device=config["device"],
            normalize_embeddings=config["normalize_embeddings"],
            **config.get("kwargs", {}),
        )

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        return None

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def is_legacy(self) -> bool:
        return False
