"""SIGTERM and Ctrl-C stop the server cleanly; every acknowledged write is there after a restart."""

from __future__ import annotations

import signal
from pathlib import Path

import chromadb
import numpy as np
import pytest
from conftest import Server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_acknowledged_writes_survive_a_stop_and_restart(tmp_path: Path, sig: int) -> None:
    folder = tmp_path / "data"
    server = Server(folder).start()
    client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
    col = client.create_collection("durable", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    vectors = np.random.default_rng(7).random((300, 16), dtype=np.float32)
    for start in range(0, 300, 30):  # many small writes: they sit in the write buffer until the flush
        col.add(
            ids=[f"id{i}" for i in range(start, start + 30)],
            embeddings=vectors[start : start + 30],
            metadatas=[{"i": i} for i in range(start, start + 30)],
            documents=[f"doc {i}" for i in range(start, start + 30)],
        )
    col.update(ids=["id0"], metadatas=[{"i": None, "updated": True}])
    col.delete(ids=["id1"])
    assert server.stop(sig) == 0, server.log()
    log = server.log()
    assert "Uvicorn running on http://127.0.0.1:" in log and "vecduck stopped" in log
    assert "Traceback" not in log

    server = Server(folder).start()
    try:
        again = chromadb.HttpClient(host="127.0.0.1", port=server.port)
        col = again.get_collection("durable", embedding_function=None)
        assert col.count() == 299
        got = col.get(ids=["id0", "id1", "id299"], include=["metadatas", "embeddings", "documents"])
        assert got["ids"] == ["id0", "id299"]
        assert got["metadatas"] == [{"updated": True}, {"i": 299}]
        np.testing.assert_allclose(got["embeddings"], vectors[[0, 299]], rtol=1e-6)
        assert col.query(query_embeddings=vectors[5:6], n_results=1)["ids"] == [["id5"]]
    finally:
        assert server.stop() == 0
