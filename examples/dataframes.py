"""DataFrames in and out of vecduck: polars / pandas / Arrow frames, chunked and typed.

python examples/dataframes.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

import vecduck

rng = np.random.default_rng(0)
client = vecduck.Client()  # in memory; vecduck.PersistentClient("data") keeps it on disk
docs = client.create_collection("docs", embedding_function=None, metadata={"hnsw:space": "cosine"})

# In: one call, chunked (50,000 rows per atomic write); every column but id / embedding / document is metadata.
frame = pl.DataFrame(
    {
        "id": [f"doc-{i}" for i in range(1_000)],
        "embedding": rng.random((1_000, 16), dtype=np.float32),  # a fixed-size Array column
        "document": [f"document {i}" for i in range(1_000)],
        "style": [["prose", "poem", "code"][i % 3] for i in range(1_000)],
        "year": [1990 + i % 30 for i in range(1_000)],
        "tags": [["a", "b"] if i % 2 else ["c"] for i in range(1_000)],
    }
)
docs.upsert_df(frame)

# pandas works the same; nulls leave stored values alone on upsert (nulls="delete" removes the key).
docs.upsert_df(pd.DataFrame({"id": ["doc-0"], "embedding": [np.ones(16)], "year": [None], "style": ["draft"]}))

# Out: typed columns, filters as in get().
print(docs.to_polars(where={"style": "poem"}, columns=["id", "year", "tags"]).head())
print(docs.to_pandas(include_embeddings=True).dtypes)

# Query results as frames: one row per hit.
hits = docs.query(query_embeddings=rng.random((2, 16)), n_results=3, where={"year": {"$gte": 2000}})
print(hits.to_polars().select("query", "rank", "id", "distance", "style", "year"))
