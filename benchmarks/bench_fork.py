"""Fork cost against re-adding the rows: time, and disk until one side changes.

    python benchmarks/bench_fork.py [--rows 100000] [--dim 384] [--repeats 3]

Adds `--rows` clustered unit vectors (with metadata and documents) to a persistent
collection in batches of 5,000, flushes, then forks it `--repeats` times (each fork of the
original); reports the add time, the median fork time and their ratio, and the folder's
size on disk (`du`: hard links counted once) before and after the forks. Targets: a fork
at most a tenth of the add, and at most 5% more disk.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vecduck


def disk_bytes(folder: Path) -> int:
    return int(
        subprocess.run(["du", "-sb", "--", str(folder)], capture_output=True, text=True, check=True).stdout.split()[0]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vecduck-fork-bench-"))
    try:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(256, args.dim)).astype(np.float32)
        client = vecduck.PersistentClient(folder)
        collection = client.create_collection(
            "source", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        started = time.perf_counter()
        for start in range(0, args.rows, 5_000):
            n = min(5_000, args.rows - start)
            vectors = centres[rng.integers(0, 256, n)] + 0.3 * rng.normal(size=(n, args.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            collection.add(
                ids=[f"r{start + i}" for i in range(n)],
                embeddings=vectors,
                metadatas=[{"n": start + i, "category": f"c{(start + i) % 20}"} for i in range(n)],
                documents=[f"document number {start + i}" for i in range(n)],
            )
        client.flush()
        adding = time.perf_counter() - started
        before = disk_bytes(folder)
        forks = []
        for i in range(args.repeats):
            started = time.perf_counter()
            fork = collection.fork(f"fork-{i}")
            forks.append(time.perf_counter() - started)
            assert fork.count() == args.rows
        after = disk_bytes(folder)
        client.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fork_time = statistics.median(forks)
    print(f"rows {args.rows:,} x {args.dim}; {args.repeats} forks of the same collection")
    print(f"add (batches of 5,000, then flush): {adding:.2f} s")
    print(
        f"fork, median of {args.repeats}: {fork_time:.3f} s  (ratio to the add {fork_time / adding:.4f}; target <= 0.1)"
    )
    growth = (after - before) / before
    print(
        f"disk: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after {args.repeats} forks"
        f" (+{growth:.2%} in all, +{growth / args.repeats:.2%} a fork; target <= 5%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
