"""Documents-only writes and text queries through the default embedding function."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecduck
from vecduck.embeddings import DefaultEmbeddingFunction

TEXTS = {
    "cat": "The cat sat on the mat and purred.",
    "stocks": "Shares fell sharply as the central bank raised interest rates.",
    "soup": "Simmer the onions, add the stock and season the soup.",
}


class NamedEmbedding:
    """A chromadb-protocol embedding function with a name of its own."""

    def __call__(self, input: list[str]) -> list[np.ndarray]:
        return [np.full(384, float(len(text)), np.float32) for text in input]

    @staticmethod
    def name() -> str:
        return "constant_length"

    def get_config(self) -> dict[str, object]:
        return {}


class OtherEmbedding(NamedEmbedding):
    @staticmethod
    def name() -> str:
        return "another_function"


def test_documents_only_add_and_query_texts(tmp_path: Path) -> None:
    client = vecduck.PersistentClient(path=tmp_path / "db")
    col = client.create_collection("texts")
    col.add(ids=list(TEXTS), documents=list(TEXTS.values()))
    stored = col.get(include=["embeddings"])["embeddings"]
    assert stored.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    hit = col.query(query_texts=["a kitten on a rug", "recipe for vegetable broth"], n_results=1)
    assert hit["ids"] == [["cat"], ["soup"]]
    col.update(ids=["cat"], documents=["Markets rallied after the rate decision."])
    assert col.query(query_texts=["bond yields and equities"], n_results=2)["ids"][0][0] in {"cat", "stocks"}
    assert col.configuration_json["embedding_function"] == {"type": "known", "name": "default", "config": {}}
    client.close()


def test_reopened_collection_uses_its_function_and_refuses_another(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    client = vecduck.PersistentClient(path=folder)
    client.create_collection("named", embedding_function=NamedEmbedding())
    client.create_collection("default_ef").add(ids=["cat"], documents=[TEXTS["cat"]])
    client.close()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, vecduck
                c = vecduck.PersistentClient(path=sys.argv[1])
                col = c.get_collection("default_ef")
                print(type(col.embedding_function).__name__)
                print(col.query(query_texts=["a cat on a mat"], n_results=1)["ids"][0][0])
                """
            ),
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["DefaultEmbeddingFunction", "cat"]
    client = vecduck.PersistentClient(path=folder)
    with pytest.raises(ValueError, match="constant_length"):
        client.get_collection("default_ef", embedding_function=NamedEmbedding())
    assert isinstance(client.get_collection("default_ef").embedding_function, DefaultEmbeddingFunction)
    client.close()


def test_no_function_and_no_index_configuration_embeds_with_the_default() -> None:
    """chromadb 1.5.9: `embedding_function=None` without an index configuration records no
    function, the collection's schema keeps the default one, and documents and query texts
    are embedded with it (what LangChain's `Chroma` without embeddings relies on)."""
    col = vecduck.Client().create_collection("no-ef-default", embedding_function=None)
    assert col.configuration_json["embedding_function"] is None
    col.add(ids=list(TEXTS), documents=list(TEXTS.values()))
    expected = np.asarray(DefaultEmbeddingFunction()([TEXTS["soup"]])[0], np.float32)
    np.testing.assert_allclose(col.get(ids=["soup"], include=["embeddings"])["embeddings"][0], expected, atol=1e-6)
    assert col.query(query_texts=["purring cat"], n_results=1)["ids"] == [["cat"]]


def test_no_function_with_an_index_configuration_gives_a_clear_error() -> None:
    """With an index configuration, chromadb records "legacy": nothing is embedded."""
    col = vecduck.Client().create_collection(
        "no-ef-configured", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    assert col.configuration_json["embedding_function"] == {"type": "legacy"}
    assert col.configuration["embedding_function"] is None  # as chromadb loads a "legacy" record
    with pytest.raises(ValueError, match="You must provide an embedding function"):
        col.add(ids=["a"], documents=["text"])
    assert col.count() == 0


def test_function_given_in_the_configuration() -> None:
    """`configuration={"embedding_function": ef}` (chromadb's other way to name one), at
    creation and in `modify`; a different function passed beside it is refused."""
    client = vecduck.Client()
    col = client.create_collection("in-config", configuration={"embedding_function": NamedEmbedding()})
    col.add(ids=["a"], documents=["four"])
    np.testing.assert_array_equal(col.get(include=["embeddings"])["embeddings"][0], np.full(384, 4.0, np.float32))
    later = client.create_collection("later", embedding_function=None, configuration={"hnsw": {"space": "ip"}})
    later.modify(configuration={"embedding_function": NamedEmbedding()})
    later.add(ids=["b"], documents=["seven"])
    np.testing.assert_array_equal(later.get(include=["embeddings"])["embeddings"][0], np.full(384, 5.0, np.float32))
    assert later.configuration_json["embedding_function"] == col.configuration_json["embedding_function"]
    with pytest.raises(ValueError, match="Multiple embedding functions"):
        client.create_collection(
            "conflict", configuration={"embedding_function": NamedEmbedding()}, embedding_function=OtherEmbedding()
        )


def test_query_with_both_texts_and_embeddings_uses_the_embeddings() -> None:
    col = vecduck.Client().create_collection("both-given", embedding_function=NamedEmbedding())
    col.add(ids=["near", "far"], embeddings=[np.zeros(384), np.full(384, 9.0)])
    found = col.query(query_embeddings=[np.full(384, 8.0)], query_texts=["x"], n_results=1)
    assert found["ids"] == [["far"]]  # "x" would embed to 1.0 everywhere: nearer "near"
