"""Quick start: a persistent collection, documents in, questions out, then SQL over it.

Run: python examples/quickstart.py [folder]   (default folder: ./demo-data)
"""

from __future__ import annotations

import sys

import vecduck

folder = sys.argv[1] if len(sys.argv) > 1 else "demo-data"
client = vecduck.PersistentClient(path=folder)
collection = client.get_or_create_collection("docs")  # default embedding function: all-MiniLM-L6-v2

collection.upsert(
    ids=["duck", "whale", "falcon", "oak", "rose", "granite"],
    documents=[
        "Ducks paddle on ponds and dabble for plants under the water.",
        "Blue whales are the largest animals that have ever lived in the sea.",
        "The peregrine falcon dives faster than any other bird.",
        "An oak tree can live for a thousand years and feeds hundreds of insects.",
        "Roses are flowering shrubs prized for their scent and their thorns.",
        "Granite is an igneous rock made mostly of quartz and feldspar.",
    ],
    metadatas=[
        {"kingdom": "animal", "habitat": "water"},
        {"kingdom": "animal", "habitat": "water"},
        {"kingdom": "animal", "habitat": "air"},
        {"kingdom": "plant", "habitat": "land"},
        {"kingdom": "plant", "habitat": "land"},
        {"kingdom": "mineral", "habitat": "land"},
    ],
)
print(f"{collection.count()} documents in {folder!r}")

result = collection.query(query_texts=["Which bird is fastest?", "stones and rocks"], n_results=2)
for question, ids, distances in zip(
    ["Which bird is fastest?", "stones and rocks"], result["ids"], result["distances"], strict=True
):
    print(f"{question!r} -> " + ", ".join(f"{i} ({d:.3f})" for i, d in zip(ids, distances, strict=True)))

animals = collection.query(query_texts=["lives in the sea"], n_results=3, where={"kingdom": "animal"})
print("animals near 'lives in the sea':", animals["ids"][0])

client.close()  # moves buffered writes into the lake's Parquet files, for plain DuckDB readers

con = vecduck.duckdb_connect(folder)  # plain DuckDB, the folder's lake attached read-only
print(con.sql("SELECT kingdom, count(*) AS n FROM docs GROUP BY kingdom ORDER BY n DESC"))
