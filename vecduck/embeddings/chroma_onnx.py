"""Reuse the ONNX model chromadb already downloaded, when our own files are absent.

chromadb keeps its default model in ``~/.cache/chroma/onnx_models/all-MiniLM-L6-v2``
(an ``onnx.tar.gz`` and, once used, its extracted ``onnx/`` folder). When vecduck's
model package is not installed and onnxruntime is, that copy gives the same vectors
without a download. Only used as a fallback: the NumPy path needs no onnxruntime.
"""

from __future__ import annotations

import hashlib
import importlib.util
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecduck.embeddings.minilm import SentenceEncoder
from vecduck.embeddings.model_files import cache_dir

__all__ = ["CHROMA_MODEL_DIR", "OnnxMiniLM", "chroma_onnx_dir"]

CHROMA_MODEL_DIR = Path.home() / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2"
#: chromadb's published SHA-256 of ``onnx.tar.gz`` (``ONNXMiniLM_L6_V2._MODEL_SHA256``)
ARCHIVE_SHA256 = "913d7300ceae3b2dbc2c50d1de4baacab4be7b9380491c27fab7418616a16ec3"
_NEEDED = ("model.onnx", "tokenizer.json")


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _NEEDED)


def chroma_onnx_dir(root: Path | None = None) -> Path | None:
    """A folder with chromadb's ``model.onnx`` and ``tokenizer.json``, or None.

    None as well when onnxruntime is not installed. A verified archive that chromadb
    has not extracted yet is unpacked (those two files only) into vecduck's cache.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    root = CHROMA_MODEL_DIR if root is None else root
    if _complete(root / "onnx"):
        return root / "onnx"
    archive = root / "onnx.tar.gz"
    if not archive.is_file():
        return None
    target = cache_dir().parent / "chroma-onnx"
    if _complete(target):
        return target
    with archive.open("rb") as handle:
        if hashlib.file_digest(handle, "sha256").hexdigest() != ARCHIVE_SHA256:
            return None
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and name in _NEEDED:
                source = tar.extractfile(member)
                if source is not None:
                    (target / name).write_bytes(source.read())
    return target if _complete(target) else None


class OnnxMiniLM(SentenceEncoder):
    """all-MiniLM-L6-v2 through onnxruntime on chromadb's exported model; same pooling."""

    parallel_batches = False  # onnxruntime runs its own thread pool

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        super().__init__((folder / "tokenizer.json").read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(folder / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def _hidden(self, ids: NDArray[np.intp], lengths: NDArray[np.int64]) -> NDArray[np.float32]:
        mask = (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.int64)
        feed = {
            "input_ids": ids.astype(np.int64),
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(mask),
        }
        return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
