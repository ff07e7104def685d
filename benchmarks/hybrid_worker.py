"""One workload of the hybrid-search benchmark in this process; prints its figures as one JSON line.

    python benchmarks/hybrid_worker.py quality <system> <folder> [--queries N]
    python benchmarks/hybrid_worker.py ingest  <system> <folder> --docs N
    python benchmarks/hybrid_worker.py query   <system> <folder> --docs N [--queries N --repeats N]

systems: vecduck (BM25 schema), vecduck-plain (no schema; ingest only), lancedb, duckdb.
The driver (hybrid.py) starts one process per workload and system.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hybrid_data as hd
import numpy as np
import pyarrow as pa

K = 10  # results per query
DEPTH = 100  # candidates each side of a hybrid search brings to the fusion
MISSING_RANK = 1_000  # rank a union Rrf gives a record one side did not find
BATCH = 5_000
WARMUP = 20
NAME = "docs"
SPARSE_KEY = "sparse_embedding"


# -- measuring ------------------------------------------------------------------------------------
def scores(found: list[list[int]], relevant: np.ndarray) -> dict[str, float]:
    """recall@10 (the one relevant document is in the top 10) and MRR over the top 10."""
    hits, reciprocal = 0, 0.0
    for rows, answer in zip(found, relevant.tolist(), strict=True):
        rows = rows[:K]
        if answer in rows:
            hits += 1
            reciprocal += 1.0 / (rows.index(answer) + 1)
    return {"recall": hits / len(relevant), "mrr": reciprocal / len(relevant)}


def latencies(variants: dict[str, Callable[[int], Any]], n: int, repeats: int) -> dict[str, float]:
    """p50 / p95 of single queries per variant (ms): WARMUP queries first, then `repeats`
    rounds over the n queries; in each round the variants take turns query by query, so
    drift in the machine's speed reaches all of them alike. Medians over the rounds."""
    for call in variants.values():
        for i in range(min(WARMUP, n)):
            call(i)
    p50s: dict[str, list[float]] = {name: [] for name in variants}
    p95s: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        times: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(n):
            for name, call in variants.items():
                start = time.perf_counter()
                call(i)
                times[name].append(time.perf_counter() - start)
        for name, seconds in times.items():
            p50s[name].append(1e3 * float(np.percentile(seconds, 50)))
            p95s[name].append(1e3 * float(np.percentile(seconds, 95)))
    out = {}
    for name in variants:
        out[f"{name}_p50_ms"] = statistics.median(p50s[name])
        out[f"{name}_p95_ms"] = statistics.median(p95s[name])
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> list[list[int]]:
    """Exact cosine top k (row numbers), in float64."""
    v = vectors.astype(np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = []
    for start in range(0, len(q), 256):
        sims = q[start : start + 256] @ v.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable"), 1)
        out += order.tolist()
    return out


def overlap(found: list[list[int]], truth: list[list[int]]) -> float:
    return sum(len(set(f[:K]) & set(t)) for f, t in zip(found, truth, strict=True)) / (K * len(truth))


def rows_of(ids: list[str]) -> list[int]:
    return [int(i[1:]) for i in ids]


# -- systems ----------------------------------------------------------------------------------------
class Vecduck:
    """vecduck's Search API: dense Knn, BM25 Knn (text query, embedded by the schema's
    function), Rrf of both."""

    def __init__(self, folder: str, schema: bool = True, name: str = NAME, **bm25: Any) -> None:
        self.folder, self.with_schema, self.name, self.bm25_options = folder, schema, name, bm25

    def open(self, create: bool) -> None:
        import vecduck

        self.client = vecduck.PersistentClient(path=self.folder)
        if not create:
            self.col = self.client.get_collection(self.name, embedding_function=None)
            return
        kwargs: dict[str, Any] = {}
        if self.with_schema:
            from vecduck import K as Key
            from vecduck import Schema, SparseVectorIndexConfig
            from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction

            function = ChromaBm25EmbeddingFunction(**self.bm25_options)
            config = SparseVectorIndexConfig(source_key=Key.DOCUMENT, embedding_function=function, bm25=True)
            kwargs["schema"] = Schema().create_index(config=config, key=SPARSE_KEY)
        self.col = self.client.create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}, **kwargs
        )

    def close(self) -> None:
        self.client.close()

    def add(self, start: int, documents: list[str], vectors: np.ndarray) -> None:
        self.col.add(ids=[f"d{start + i}" for i in range(len(documents))], embeddings=vectors, documents=documents)

    # searches: each builds the Search as a caller would
    @staticmethod
    def dense(vector: np.ndarray, limit: int = K) -> Any:
        from vecduck import K as Key
        from vecduck import Knn, Search

        return Search().rank(Knn(query=vector, limit=limit)).limit(K).select(Key.SCORE)

    @staticmethod
    def bm25(text: str, limit: int = K) -> Any:
        from vecduck import K as Key
        from vecduck import Knn, Search

        return Search().rank(Knn(query=text, key=SPARSE_KEY, limit=limit)).limit(K).select(Key.SCORE)

    @staticmethod
    def hybrid(vector: np.ndarray, text: str, weights: list[float] | None = None, union: bool = False) -> Any:
        from vecduck import K as Key
        from vecduck import Knn, Rrf, Search

        default = MISSING_RANK if union else None
        ranks = [
            Knn(query=vector, return_rank=True, limit=DEPTH, default=default),
            Knn(query=text, key=SPARSE_KEY, return_rank=True, limit=DEPTH, default=default),
        ]
        return Search().rank(Rrf(ranks, weights=weights)).limit(K).select(Key.SCORE)

    def run(self, search: Any) -> list[str]:
        return self.col.search(search)["ids"][0]

    def run_many(self, searches: list[Any]) -> list[list[int]]:
        out = []
        for start in range(0, len(searches), 50):
            out += [rows_of(ids) for ids in self.col.search(searches[start : start + 50])["ids"]]
        return out

    def variants(self, texts: list[str], vectors: np.ndarray) -> dict[str, Callable[[], list[list[int]]]]:
        pairs = list(zip(texts, vectors, strict=True))
        return {
            "dense": lambda: self.run_many([self.dense(v) for v in vectors]),
            "bm25": lambda: self.run_many([self.bm25(t) for t in texts]),
            "rrf": lambda: self.run_many([self.hybrid(v, t) for t, v in pairs]),
            "rrf_union": lambda: self.run_many([self.hybrid(v, t, union=True) for t, v in pairs]),
            "rrf_dense7": lambda: self.run_many([self.hybrid(v, t, weights=[0.7, 0.3]) for t, v in pairs]),
            "rrf_bm25_7": lambda: self.run_many([self.hybrid(v, t, weights=[0.3, 0.7]) for t, v in pairs]),
        }


class Lance:
    """lancedb: native FTS index on the text, vectors exact or IVF_HNSW_SQ, hybrid with its RRFReranker."""

    INDEX = "IVF_HNSW_SQ"

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.table = None

    def open(self, create: bool) -> None:
        import lancedb

        self.db = lancedb.connect(self.folder)
        if not create:
            self.table = self.db.open_table(NAME)
        from lancedb.rerankers import RRFReranker

        self.reranker = RRFReranker()  # K = 60, like Rrf's default

    def close(self) -> None:
        pass

    def add(self, start: int, documents: list[str], vectors: np.ndarray) -> None:
        flat = pa.array(np.ascontiguousarray(vectors, np.float32).ravel())
        table = pa.table(
            {
                "id": pa.array([f"d{start + i}" for i in range(len(documents))]),
                "document": pa.array(documents, pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, hd.DIM),
            }
        )
        if self.table is None:
            self.table = self.db.create_table(NAME, table)
        else:
            self.table.add(table)

    def fts_index(self) -> None:
        self.table.create_fts_index("document")  # native (not tantivy): English stemming, stop words

    def vector_index(self) -> None:
        self.table.create_index(metric="cosine", vector_column_name="vector", index_type=self.INDEX)

    def dense(self, vector: np.ndarray, exact: bool = True) -> list[str]:
        query = self.table.search(vector, vector_column_name="vector").metric("cosine").limit(K).select(["id"])
        if exact:
            query = query.bypass_vector_index()
        return query.to_arrow()["id"].to_pylist()

    def fts(self, text: str) -> list[str]:
        return self.table.search(text, query_type="fts").limit(K).select(["id"]).to_arrow()["id"].to_pylist()

    def hybrid(self, vector: np.ndarray, text: str, depth: int = K, exact: bool = True) -> list[str]:
        """lancedb's hybrid: each side brings `depth` results (its default: the limit), fused by RRF."""
        query = (
            self.table.search(query_type="hybrid", vector_column_name="vector")
            .vector(vector)
            .text(text)
            .metric("cosine")
            .rerank(self.reranker)
            .limit(depth)
            .select(["id"])
        )
        if exact:
            query = query.bypass_vector_index()
        return query.to_arrow()["id"].to_pylist()[:K]

    def variants(self, texts: list[str], vectors: np.ndarray) -> dict[str, Callable[[], list[list[int]]]]:
        pairs = list(zip(texts, vectors, strict=True))
        return {
            "dense": lambda: [rows_of(self.dense(v)) for v in vectors],
            "bm25": lambda: [rows_of(self.fts(t)) for t in texts],
            "rrf_lance10": lambda: [rows_of(self.hybrid(v, t)) for t, v in pairs],
            "rrf_lance100": lambda: [rows_of(self.hybrid(v, t, depth=DEPTH)) for t, v in pairs],
        }


class DuckFts:
    """DuckDB's fts extension (Porter stemmer, English stop words, BM25 k1 = 1.2, b = 0.75)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, "fts.duckdb")

    def open(self, create: bool) -> None:
        from vecduck.engine.lake import _packaged_extension, connect

        os.makedirs(self.folder, exist_ok=True)
        extension = _packaged_extension("duckdb_extension_fts", "fts.duckdb_extension")
        if extension is None:
            raise RuntimeError("duckdb-extension-fts is not installed: pip install 'duckdb-extension-fts==1.5.5'")
        self.con = connect()
        self.con.execute(f"ATTACH '{self.path}' AS store")
        self.con.execute("USE store")
        self.con.execute(f"LOAD '{extension}'")
        if create:
            self.con.execute("CREATE TABLE docs (id INTEGER, document VARCHAR)")

    def close(self) -> None:
        self.con.close()

    def add(self, start: int, documents: list[str], vectors: np.ndarray) -> None:
        batch = pa.table(
            {
                "id": pa.array(np.arange(start, start + len(documents), dtype=np.int32)),
                "document": pa.array(documents, pa.string()),
            }
        )
        self.con.register("batch", batch)
        self.con.execute("INSERT INTO docs SELECT * FROM batch")
        self.con.unregister("batch")

    def fts_index(self) -> None:
        self.con.execute("PRAGMA create_fts_index('docs', 'id', 'document', stemmer = 'porter', stopwords = 'english')")
        self.con.execute("CHECKPOINT")

    def bm25(self, text: str) -> list[int]:
        return [
            row[0]
            for row in self.con.execute(
                "SELECT id FROM (SELECT id, fts_main_docs.match_bm25(id, ?) AS score FROM docs)"
                " WHERE score IS NOT NULL ORDER BY score DESC, id LIMIT 10",
                [text],
            ).fetchall()
        ]

    def variants(self, texts: list[str], vectors: np.ndarray) -> dict[str, Callable[[], list[list[int]]]]:
        return {"bm25": lambda: [self.bm25(t) for t in texts]}


def make(system: str, folder: str) -> Any:
    return {
        "vecduck": lambda: Vecduck(folder),
        "vecduck-plain": lambda: Vecduck(folder, schema=False),
        "lancedb": lambda: Lance(folder),
        "duckdb": lambda: DuckFts(folder),
    }[system]()


def load_all(system: Any, documents: list[str], vectors: Callable[[int, int], np.ndarray]) -> None:
    for start in range(0, len(documents), BATCH):
        stop = min(len(documents), start + BATCH)
        system.add(start, documents[start:stop], np.asarray(vectors(start, stop)))


# -- workloads ------------------------------------------------------------------------------------
def phase_quality(name: str, folder: str, n_queries: int) -> dict:
    data = hd.quality(n_queries)
    shutil.rmtree(folder, ignore_errors=True)
    system = make(name, folder)
    system.open(create=True)
    load_all(system, data.documents, lambda a, b: data.vectors[a:b])
    if hasattr(system, "fts_index"):
        system.fts_index()
    out: dict[str, Any] = {"corpus": len(data.documents), "digest": data.digest}
    for query_set in data.sets:
        figures: dict[str, Any] = {"queries": len(query_set.texts)}
        if name == "vecduck":  # the exact dense ranking, for what HNSW costs in quality
            figures["dense_exact"] = scores(exact_top(data.vectors, query_set.vectors), query_set.relevant)
        for variant, run in system.variants(query_set.texts, query_set.vectors).items():
            try:
                figures[variant] = scores(run(), query_set.relevant)
            except Exception as exc:  # a peer's failure is a result, not the end of the run
                figures[f"{variant}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        figures["what"] = query_set.what
        out[query_set.name] = figures
    system.close()
    if name == "vecduck":
        # Chroma's BM25 function normalises document length by a fixed avg_doc_length
        # (256 tokens); the same ranking with this corpus's mean length instead
        mean = corpus_mean_length(data.documents)
        out["mean_doc_length"] = mean
        tuned = Vecduck(folder, name="avgdl", avg_doc_length=mean)
        tuned.open(create=True)
        load_all(tuned, data.documents, lambda a, b: data.vectors[a:b])
        for query_set in data.sets:
            pairs = list(zip(query_set.texts, query_set.vectors, strict=True))
            out[query_set.name]["bm25_avgdl"] = scores(
                tuned.run_many([tuned.bm25(t) for t in query_set.texts]), query_set.relevant
            )
            out[query_set.name]["rrf_union_avgdl"] = scores(
                tuned.run_many([tuned.hybrid(v, t, union=True) for t, v in pairs]), query_set.relevant
            )
        tuned.close()
    return out


def corpus_mean_length(documents: list[str]) -> float:
    """Mean document length as Chroma's BM25 function counts it: words (runs of word
    characters, lowercased) that are not stop words."""
    import re

    from vecduck.embeddings.bm25 import DEFAULT_CHROMA_BM25_STOPWORDS

    stop = set(DEFAULT_CHROMA_BM25_STOPWORDS)
    lengths = [sum(1 for w in re.sub(r"[^\w\s]+", " ", d).lower().split() if w not in stop) for d in documents]
    return round(float(np.mean(lengths)), 1)


def phase_ingest(name: str, folder: str, docs: int) -> dict:
    data = hd.speed(docs, 1)
    documents = data.documents
    shutil.rmtree(folder, ignore_errors=True)
    system = make(name, folder)
    out: dict[str, Any] = {}
    start = time.perf_counter()
    system.open(create=True)
    load_all(system, documents, data.vectors)
    system.close()
    out["add_rows_per_s"] = docs / (time.perf_counter() - start)
    if name == "vecduck":
        # the sparse index is built at the first BM25 search (then saved at close)
        system.open(create=False)
        start = time.perf_counter()
        system.run(system.bm25(data.query_texts[0]))
        out["first_bm25_build_ms"] = 1e3 * (time.perf_counter() - start)
        start = time.perf_counter()
        system.close()
        out["close_after_build_ms"] = 1e3 * (time.perf_counter() - start)
        out["sparse_index_saved"] = int(any(Path(folder, "index").glob("*.sparse.arrow")))
    elif name in ("lancedb", "duckdb"):
        system.open(create=False)
        start = time.perf_counter()
        system.fts_index()
        out["fts_index_s"] = time.perf_counter() - start
        if name == "lancedb":
            start = time.perf_counter()
            system.vector_index()
            out["vector_index_s"] = time.perf_counter() - start
        system.close()
    out["disk_mb"] = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20
    return out


def phase_query(name: str, folder: str, docs: int, n_queries: int, repeats: int) -> dict:
    data = hd.speed(docs, n_queries)
    texts, vectors = data.query_texts, data.query_vectors
    system = make(name, folder)
    out: dict[str, Any] = {"queries": len(texts), "origin": data.origin}
    start = time.perf_counter()
    system.open(create=False)
    if name == "vecduck":
        system.run(system.bm25(texts[0]))
        out["first_bm25_ms"] = 1e3 * (time.perf_counter() - start)  # open + load the sparse index
        system.run(system.dense(vectors[0]))
        variants = {
            "bm25": lambda i: system.run(system.bm25(texts[i])),
            "hybrid": lambda i: system.run(system.hybrid(vectors[i], texts[i])),
            "hybrid_union": lambda i: system.run(system.hybrid(vectors[i], texts[i], union=True)),
            "dense": lambda i: system.run(system.dense(vectors[i])),
        }
        dense = [rows_of(system.run(system.dense(v))) for v in vectors]
    elif name == "lancedb":
        system.fts(texts[0])
        out["first_bm25_ms"] = 1e3 * (time.perf_counter() - start)
        variants = {
            "bm25": lambda i: system.fts(texts[i]),
            "hybrid": lambda i: system.hybrid(vectors[i], texts[i], depth=DEPTH, exact=False),
            "hybrid_lance10": lambda i: system.hybrid(vectors[i], texts[i], exact=False),
            "hybrid_exact": lambda i: system.hybrid(vectors[i], texts[i], depth=DEPTH, exact=True),
            "dense": lambda i: system.dense(vectors[i], exact=False),
            "dense_exact": lambda i: system.dense(vectors[i], exact=True),
        }
        dense = [rows_of(system.dense(v, exact=False)) for v in vectors]
    else:
        system.bm25(texts[0])
        out["first_bm25_ms"] = 1e3 * (time.perf_counter() - start)
        variants = {"bm25": lambda i: system.bm25(texts[i])}
        dense = None
    if dense is not None:
        out["dense_recall"] = overlap(dense, exact_top(data.vectors(0, docs), vectors))
    out.update(latencies(variants, len(texts), repeats))
    system.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["quality", "ingest", "query"])
    parser.add_argument("system", choices=["vecduck", "vecduck-plain", "lancedb", "duckdb"])
    parser.add_argument("folder")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=hd.QUERIES_A)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.phase == "quality":
        result = phase_quality(args.system, args.folder, args.queries)
    elif args.phase == "ingest":
        result = phase_ingest(args.system, args.folder, args.docs)
    else:
        result = phase_query(args.system, args.folder, args.docs, args.queries, args.repeats)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
