"""Hybrid search on real text: dense (MiniLM) + BM25 fused with Rrf, on the standard library's docstrings.

    python examples/hybrid_search.py [FOLDER]

Each docstring's first line is a question whose answer is known: the rest of that
docstring. Dense search finds meaning, BM25 finds exact words; Rrf fuses the two rankings.
"""

from __future__ import annotations

import inspect
import sys
import tempfile

import vecduck
from vecduck import K, Knn, Rrf, Schema, Search, SparseVectorIndexConfig
from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction

MODULES = ["json", "pathlib", "collections", "itertools", "functools", "statistics", "textwrap", "shutil", "csv"]


def docstrings() -> list[tuple[str, str, str, str]]:
    """(id, module, summary line, rest of the docstring) for public functions and methods."""
    found = []
    for name in MODULES:
        module = __import__(name)
        for attr, value in vars(module).items():
            doc = inspect.getdoc(value) if not attr.startswith("_") and callable(value) else None
            if doc and "\n\n" in doc:
                summary, body = doc.split("\n\n", 1)
                if len(body.split()) >= 12:
                    found.append((f"{name}.{attr}", name, summary.replace("\n", " "), body))
    return found


def main(folder: str) -> None:
    rows = docstrings()
    client = vecduck.PersistentClient(folder)
    schema = Schema().create_index(
        config=SparseVectorIndexConfig(
            source_key=K.DOCUMENT, embedding_function=ChromaBm25EmbeddingFunction(), bm25=True
        ),
        key="sparse_embedding",
    )
    docs = client.get_or_create_collection("stdlib_hybrid", schema=schema, configuration={"hnsw": {"space": "cosine"}})
    docs.upsert(ids=[r[0] for r in rows], documents=[r[3] for r in rows], metadatas=[{"module": r[1]} for r in rows])
    hits = {"dense": 0, "bm25": 0, "hybrid": 0}
    for record_id, _module, summary, _body in rows:
        searches = [
            Search().rank(Knn(query=summary)).limit(5),
            Search().rank(Knn(query=summary, key="sparse_embedding")).limit(5),
            Search()
            .rank(
                Rrf(
                    [
                        Knn(query=summary, return_rank=True, limit=50),
                        Knn(query=summary, key="sparse_embedding", return_rank=True, limit=50),
                    ]
                )
            )
            .limit(5),
        ]
        for name, ids in zip(hits, docs.search(searches)["ids"], strict=True):
            hits[name] += record_id in ids
    print(f"{len(rows)} docstrings; the summary line finds its own docstring in the top 5:")
    for name, count in hits.items():
        print(f"  {name:7s} {count / len(rows):.1%}")
    query = "read JSON from a file"
    result = docs.search(
        Search()
        .where(K("module").is_in(["json", "pathlib"]))
        .rank(Rrf([Knn(query=query, return_rank=True), Knn(query=query, key="sparse_embedding", return_rank=True)]))
        .limit(3)
        .select(K.SCORE, "module")
    )
    print(f"\n{query!r}, hybrid, json and pathlib only:")
    for row in result.rows()[0]:
        print(f"  {row['score']:.4f}  {row['id']}")
    client.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="vecduck-hybrid-"))
