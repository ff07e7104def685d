"""Ingest benchmark: N rows x 384 from a polars frame into a PersistentClient via upsert_df.

    python benchmarks/bench_ingest.py [N] [--path DIR] [--chunk ROWS]

N defaults to 1,000,000. Vectors are deterministic, clustered and normalised; metadata
is a 20-value category, an int year, a float and a bool; documents are short. Prints
rows/s and the process's peak RSS (resource.getrusage), which includes the frame itself.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import polars as pl

import vecduck

DIM = 384


def make_frame(n: int, seed: int = 0) -> pl.DataFrame:
    """Clustered unit vectors (64 centres plus noise) with metadata, built without Python loops."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, DIM)).astype(np.float32)
    labels = rng.integers(0, 64, n)
    vectors = centres[labels] + 0.3 * rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = pl.int_range(0, n, eager=True).cast(pl.String)
    return pl.DataFrame(
        {
            "id": "doc-" + ids,
            "embedding": vectors,
            "document": "short document number " + ids,
            "category": "cat-" + pl.Series((labels % 20).astype(np.int64)).cast(pl.String),
            "year": rng.integers(1990, 2025, n),
            "score": rng.random(n),
            "flag": rng.random(n) < 0.5,
        }
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--path", default=None, help="data folder (default: a temporary one, removed after)")
    parser.add_argument("--chunk", type=int, default=50_000, help="rows per atomic write (default 50,000)")
    args = parser.parse_args(argv)
    folder = args.path or tempfile.mkdtemp(prefix="vecduck-bench-")
    try:
        started = time.perf_counter()
        frame = make_frame(args.n)
        built = time.perf_counter() - started
        rss_frame = peak_rss_mb()
        client = vecduck.PersistentClient(folder)
        collection = client.get_or_create_collection(
            "bench", embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        started = time.perf_counter()
        collection.upsert_df(frame, chunk_rows=args.chunk)
        client.flush()
        seconds = time.perf_counter() - started
        count = collection.count()
        client.close()
        print(f"rows: {count:,} x {DIM}  (frame built in {built:.1f} s, RSS after building it {rss_frame:,.0f} MB)")
        print(f"ingest: {seconds:.1f} s, {args.n / seconds:,.0f} rows/s  (chunk {args.chunk:,}, flush included)")
        print(f"peak RSS: {peak_rss_mb():,.0f} MB")
    finally:
        if args.path is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
