"""Start `vecduck run` on a temporary folder, use it with chromadb's client, stop it cleanly.

Run: python examples/server.py   (needs `pip install chromadb` for the client side)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time

import chromadb


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    folder = tempfile.mkdtemp(prefix="vecduck-server-")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vecduck.cli", "run", "--path", folder, "--port", str(port)])
    try:
        client = None
        for _ in range(300):  # wait for the server (opening the folder takes a moment)
            try:
                client = chromadb.HttpClient(host="127.0.0.1", port=port)
                break
            except Exception:
                time.sleep(0.1)
        assert client is not None, "the server did not start"
        collection = client.create_collection("example", embedding_function=None)
        collection.add(ids=["a", "b"], embeddings=[[1, 0, 0], [0, 1, 0]], documents=["apple", "banana"])
        print(collection.query(query_embeddings=[[0.9, 0.1, 0]], n_results=1))
    finally:
        server.send_signal(signal.SIGTERM)  # flushes and exits with status 0
        print("server exited with", server.wait())


if __name__ == "__main__":
    main()
