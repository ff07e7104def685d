"""The default embedding function gives Chroma's all-MiniLM-L6-v2 vectors, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vecduck.embeddings import DefaultEmbeddingFunction, EmbeddingFunction, ONNXMiniLM_L6_V2
from vecduck.embeddings.default import load_model

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ef() -> DefaultEmbeddingFunction:
    return DefaultEmbeddingFunction()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_matches_reference_embeddings(ef: DefaultEmbeddingFunction, reference: dict) -> None:
    texts = [item["text"] for item in reference["items"]]
    expected = np.array([item["embedding"] for item in reference["items"]], dtype=np.float64)
    assert len(texts) == 20 and expected.shape == (20, reference["dim"])
    got = np.stack(ef(texts))
    cos = _cosines(got.astype(np.float64), expected)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.9999, f"text {texts[worst]!r}: cosine {cos[worst]:.6f}"


def test_each_text_alone_gives_its_batched_vector(ef: DefaultEmbeddingFunction, reference: dict) -> None:
    texts = [item["text"] for item in reference["items"]]
    batched = np.stack(ef(texts))
    alone = np.stack([ef([t])[0] for t in texts])
    np.testing.assert_allclose(alone, batched, atol=2e-6)


def test_empty_string_and_empty_input(ef: DefaultEmbeddingFunction) -> None:
    [vec] = ef([""])
    assert vec.shape == (384,) and vec.dtype == np.float32
    assert np.isfinite(vec).all()
    assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    assert ef([]) == []


def test_many_texts_are_batched_in_order(ef: DefaultEmbeddingFunction) -> None:
    # different lengths so batches group and reorder texts internally
    texts = [f"document {i}: " + "lorem ipsum " * (i % 7) for i in range(300)]
    out = ef(texts)
    assert isinstance(out, list) and len(out) == 300
    arr = np.stack(out)
    assert arr.shape == (300, 384) and arr.dtype == np.float32
    assert all(v.ndim == 1 and v.dtype == np.float32 for v in out)
    np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)
    for i in (0, 1, 22, 157, 299):  # spot-check order against single-text calls
        np.testing.assert_allclose(arr[i], ef([texts[i]])[0], atol=2e-6)
    assert np.linalg.matrix_rank(arr[:50].astype(np.float64)) > 20  # not one repeated vector


def test_worker_threads_do_not_change_results() -> None:
    model = load_model()
    texts = [f"sentence number {i} " + "x" * (i % 40) for i in range(64)]
    serial = model.encode(texts, workers=1, batch_size=8)
    parallel = model.encode(texts, workers=2, batch_size=8)
    np.testing.assert_allclose(parallel, serial, atol=2e-6)


def test_long_texts_are_truncated_to_256_tokens(ef: DefaultEmbeddingFunction) -> None:
    model = load_model()
    long_text = "word " * 1000
    assert len(model.token_ids([long_text])[0]) == 256
    a, b = ef([long_text, "word " * 300])
    np.testing.assert_allclose(a, b, atol=1e-6)  # both cut to the same 254 word tokens
    c = ef(["word " * 200])[0]
    assert float(a @ c) < 0.99999  # shorter than the limit: a genuinely different input


def test_semantics_are_sane(ef: DefaultEmbeddingFunction) -> None:
    cat, feline, stocks = ef(["The cat sat on the mat.", "A feline rested on the rug.", "Stock markets fell sharply."])
    assert float(cat @ feline) > float(cat @ stocks) + 0.2


def test_rejects_non_string_documents(ef: DefaultEmbeddingFunction) -> None:
    with pytest.raises(TypeError, match="item 1"):
        ef(["fine", 3])  # type: ignore[list-item]


def test_single_string_is_one_document(ef: DefaultEmbeddingFunction) -> None:
    [vec] = ef("hello world")  # type: ignore[arg-type]
    np.testing.assert_allclose(vec, ef(["hello world"])[0], atol=1e-7)


def test_embed_query_equals_call(ef: DefaultEmbeddingFunction) -> None:
    np.testing.assert_array_equal(ef.embed_query(["a query"])[0], ef(["a query"])[0])


def test_chromadb_protocol_surface(ef: DefaultEmbeddingFunction) -> None:
    from chromadb.api.types import DefaultEmbeddingFunction as ChromaDefault

    chroma = ChromaDefault()  # never called: that would download an ONNX model
    assert isinstance(ef, EmbeddingFunction)
    assert DefaultEmbeddingFunction.name() == chroma.name() == "default"
    assert ef.get_config() == chroma.get_config() == {}
    assert ef.default_space() == chroma.default_space()
    assert ef.supported_spaces() == chroma.supported_spaces()
    assert ef.max_tokens() == chroma.max_tokens() == 256
    assert ef.is_legacy() is False
    rebuilt = DefaultEmbeddingFunction.build_from_config(ef.get_config())
    assert isinstance(rebuilt, DefaultEmbeddingFunction) and rebuilt == ef


def test_onnx_named_variant_gives_same_vectors(ef: DefaultEmbeddingFunction) -> None:
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2 as ChromaOnnx

    onnx = ONNXMiniLM_L6_V2()
    assert onnx.name() == ChromaOnnx.name() == "onnx_mini_lm_l6_v2"
    assert onnx.get_config() == {"preferred_providers": None}
    assert onnx.default_space() == "cosine"
    np.testing.assert_array_equal(onnx(["same text"])[0], ef(["same text"])[0])
