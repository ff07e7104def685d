"""Single-item add loop on a PersistentClient: items/s, vecduck next to chromadb.

Run: python benchmarks/bench_add_loop.py [n_items] [repeats]   (defaults: 2000, 3)
Each system runs in its own fresh folder; the figure is the median of the repeats.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import numpy as np


def add_loop(client_factory, n: int, dim: int = 384) -> float:
    # Clustered unit vectors, as sentence embeddings are (uniform noise is a worst case for HNSW).
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, n)] + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as folder:
        client = client_factory(folder)
        col = client.create_collection("loop", embedding_function=None)
        start = time.perf_counter()
        for i in range(n):
            col.add(ids=[f"id{i}"], embeddings=[vectors[i]], metadatas=[{"i": i}], documents=[f"doc {i}"])
        elapsed = time.perf_counter() - start
        assert col.count() == n
        if hasattr(client, "close"):
            client.close()
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    import vecduck

    systems = {"vecduck": lambda path: vecduck.PersistentClient(path=path)}
    try:
        import chromadb

        systems["chromadb"] = lambda path: chromadb.PersistentClient(path=path)
    except ImportError:
        pass
    results = {name: statistics.median(add_loop(f, n) for _ in range(repeats)) for name, f in systems.items()}
    print(f"single-item add loop, {n} items x 384 dims, median of {repeats}")
    for name, rate in results.items():
        ratio = rate / results["vecduck"]
        print(f"{name:10s} {rate:10.0f} items/s   ({ratio:.2f}x vecduck)")


if __name__ == "__main__":
    main()
