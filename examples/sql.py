"""SQL over collections: read-only DuckDB queries, vectors in SQL, time travel, compaction.

python examples/sql.py
"""

from __future__ import annotations

import tempfile

import numpy as np
import polars as pl

import vecduck

rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as folder:
    client = vecduck.PersistentClient(folder)
    docs = client.create_collection("docs", embedding_function=None)
    docs.add_df(
        pl.DataFrame(
            {
                "id": [f"d{i}" for i in range(500)],
                "embedding": rng.random((500, 8), dtype=np.float32),
                "style": [["prose", "poem"][i % 2] for i in range(500)],
                "year": [2000 + i % 25 for i in range(500)],
            }
        )
    )

    # Every collection is a table named after it; metadata keys are typed columns.
    print(client.sql("SELECT style, count(*) AS n, avg(year) FROM docs GROUP BY style ORDER BY style").pl())

    # Vectors are FLOAT[] columns: DuckDB's list functions work on them.
    target = docs.get(ids=["d0"], include=["embeddings"])["embeddings"][0].tolist()
    print(
        client.sql(
            "SELECT id, list_cosine_similarity(embedding, ?::FLOAT[]) AS sim FROM docs ORDER BY sim DESC LIMIT 3",
            [target],
        ).df()
    )

    # Read-only and sandboxed: writes and file access are refused.
    for query in ["DELETE FROM docs", "SELECT * FROM read_csv('/etc/passwd')"]:
        try:
            client.sql(query)
        except vecduck.errors.InvalidArgumentError as error:
            print("refused:", error)

    # Time travel: each write that reaches the lake is a snapshot.
    before = docs.versions()[-1].snapshot_id
    docs.delete(where={"style": "poem"})
    print(
        "now:",
        client.sql("SELECT count(*) FROM docs").fetchone()[0],
        "before:",
        client.sql("SELECT count(*) FROM docs", as_of=before).fetchone()[0],
    )
    print(docs.versions())

    # Maintenance: merge small files, expire snapshots older than the retention, free disk space.
    print(docs.compact(retention=0))
    client.close()
