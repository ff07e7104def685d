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


def test_no_embedding_function_gives_a_clear_error() -> None:
    col = vecduck.Client().create_collection("no-ef", embedding_function=None)
    with pytest.raises(ValueError, match="You must provide an embedding function"):
        col.add(ids=["a"], documents=["text"])
    assert col.count() == 0
