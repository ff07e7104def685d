"""One adapter per system under test, all with the same small interface.

Each adapter owns a folder and answers in row numbers (ids are ``id<row>``), so the
harness can score every system against the same exact ground truth. Settings are each
system's documented defaults, with cosine distance, except the search-time knob the
harness raises until recall@10 reaches 0.99 (``levels``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dataset import DIM, FILTERS, Dataset, filter_mask

NAME = "bench"


def row_numbers(ids: list[str]) -> list[int]:
    return [int(i[2:]) for i in ids]


def metadatas(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    return batch.select(["category", "year", "score", "flag"]).to_pylist()


def folder_bytes(folder: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


class System:
    """The interface; a workload a system cannot run raises NotImplementedError (shown as n/a)."""

    name = "?"
    levels: list[Any] = [None]

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def open(self, create: bool) -> None: ...
    def close(self) -> None: ...
    def ingest(self, batch: pa.RecordBatch, vectors: np.ndarray) -> None: raise NotImplementedError
    def finish_ingest(self, data: Dataset) -> None: ...
    def upsert_frame(self, data: Dataset) -> None: raise NotImplementedError
    def add_one(self, row: int, vector: np.ndarray, meta: dict[str, Any], document: str) -> None:
        raise NotImplementedError
    def tune(self, level: Any) -> None: ...
    def query(self, queries: np.ndarray, k: int, filter_name: str | None = None) -> list[list[int]]:
        raise NotImplementedError
    def get_where(self, filter_name: str) -> int: raise NotImplementedError
    def count(self) -> int: raise NotImplementedError
    def group_by(self) -> dict[str, int]: raise NotImplementedError


class ChromaAPI(System):
    """The same Chroma-API calls against vecduck and chromadb (only the import differs)."""

    levels = [100, 200, 400, 800, 1600]  # ef_search: the default, then wider

    def connect(self) -> Any:
        raise NotImplementedError

    def open(self, create: bool) -> None:
        self.client = self.connect()
        if create:
            self.col = self.client.create_collection(
                NAME, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        else:
            self.col = self.client.get_collection(NAME, embedding_function=None)

    def ingest(self, batch: pa.RecordBatch, vectors: np.ndarray) -> None:
        self.col.add(
            ids=batch["id"].to_pylist(),
            embeddings=vectors,
            metadatas=metadatas(batch),
            documents=batch["document"].to_pylist(),
        )

    def add_one(self, row: int, vector: np.ndarray, meta: dict[str, Any], document: str) -> None:
        self.col.add(ids=[f"id{row}"], embeddings=[vector], metadatas=[meta], documents=[document])

    def tune(self, level: Any) -> None:
        self.col.modify(configuration={"hnsw": {"ef_search": level}})

    def query(self, queries: np.ndarray, k: int, filter_name: str | None = None) -> list[list[int]]:
        where = FILTERS[filter_name][0] if filter_name else None
        result = self.col.query(query_embeddings=queries, n_results=k, where=where)
        return [row_numbers(ids) for ids in result["ids"]]

    def get_where(self, filter_name: str) -> int:
        return len(self.col.get(where=FILTERS[filter_name][0])["ids"])

    def count(self) -> int:
        return self.col.count()


class Vecduck(ChromaAPI):
    name = "vecduck"

    def connect(self) -> Any:
        import vecduck

        return vecduck.PersistentClient(path=self.folder)

    def close(self) -> None:
        self.client.close()

    def upsert_frame(self, data: Dataset) -> None:
        import polars as pl

        frame = pl.from_arrow(data.meta()).with_columns(pl.Series("embedding", data.vectors(0, data.rows)))
        self.col.upsert_df(frame, show_progress=False)

    def group_by(self) -> dict[str, int]:
        rows = self.client.sql(f'SELECT category, count(*) FROM "{NAME}" GROUP BY category').fetchall()
        return dict(rows)


class Chroma(ChromaAPI):
    name = "chromadb"

    def connect(self) -> Any:
        import chromadb

        return chromadb.PersistentClient(path=self.folder, settings=chromadb.Settings(anonymized_telemetry=False))

    def upsert_frame(self, data: Dataset) -> None:
        import polars as pl

        frame = pl.from_arrow(data.meta()).with_columns(pl.Series("embedding", data.vectors(0, data.rows)))
        step = min(5_000, self.client.get_max_batch_size())
        for start in range(0, frame.height, step):
            part = frame.slice(start, step)
            self.col.upsert(
                ids=part["id"].to_list(),
                embeddings=part["embedding"].to_numpy(),
                metadatas=part.select(["category", "year", "score", "flag"]).to_dicts(),
                documents=part["document"].to_list(),
            )

    def group_by(self) -> dict[str, int]:
        # paged: one get of every record fails above ~30,000 ("too many SQL variables")
        counts: dict[str, int] = {}
        total, page = self.col.count(), 10_000
        for offset in range(0, total, page):
            for meta in self.col.get(include=["metadatas"], limit=page, offset=offset)["metadatas"]:
                counts[meta["category"]] = counts.get(meta["category"], 0) + 1
        return counts


class Lance(System):
    """lancedb: exact search below about 100,000 rows (its docs: no index needed), IVF_PQ above."""

    name = "lancedb"
    INDEX_FROM = 200_000

    def open(self, create: bool) -> None:
        import lancedb

        self.db = lancedb.connect(self.folder)
        self.table = None if create else self.db.open_table(NAME)
        self.nprobes, self.refine = None, None
        if self.table is not None and self.table.count_rows() >= self.INDEX_FROM:
            self.levels = [(20, 10), (50, 10), (100, 20), (200, 40)]

    def _arrow(self, batch: pa.RecordBatch | pa.Table, vectors: np.ndarray) -> pa.Table:
        flat = pa.array(np.ascontiguousarray(vectors, np.float32).ravel())
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        return table.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, DIM))

    def ingest(self, batch: pa.RecordBatch, vectors: np.ndarray) -> None:
        table = self._arrow(batch, vectors)
        if self.table is None:
            self.table = self.db.create_table(NAME, table)
        else:
            self.table.add(table)

    def finish_ingest(self, data: Dataset) -> None:
        if data.rows >= self.INDEX_FROM:
            self.table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ")

    def upsert_frame(self, data: Dataset) -> None:
        table = self._arrow(data.meta(), data.vectors(0, data.rows))
        self.table = self.db.create_table(NAME, table.schema.empty_table())
        self.table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(table)

    def add_one(self, row: int, vector: np.ndarray, meta: dict[str, Any], document: str) -> None:
        record = {"id": f"id{row}", "document": document, **meta, "vector": vector.tolist()}
        if self.table is None:
            self.table = self.db.create_table(NAME, [record])
        else:
            self.table.add([record])

    def tune(self, level: Any) -> None:
        if level is not None:
            self.nprobes, self.refine = level

    def query(self, queries: np.ndarray, k: int, filter_name: str | None = None) -> list[list[int]]:
        out = []
        for query in queries:
            search = self.table.search(query, vector_column_name="vector").metric("cosine").limit(k).select(["id"])
            if self.nprobes:
                search = search.nprobes(self.nprobes).refine_factor(self.refine)
            if filter_name:
                search = search.where(FILTERS[filter_name][1], prefilter=True)
            out.append(row_numbers(search.to_arrow()["id"].to_pylist()))
        return out

    def get_where(self, filter_name: str) -> int:
        query = self.table.search().where(FILTERS[filter_name][1]).limit(self.table.count_rows())
        return query.select(["id", "document", "category", "year", "score", "flag"]).to_arrow().num_rows

    def count(self) -> int:
        return self.table.count_rows()

    def group_by(self) -> dict[str, int]:
        table = self.table.search().select(["category"]).limit(self.table.count_rows()).to_arrow()
        counts = table.group_by("category").aggregate([("category", "count")])
        return dict(zip(counts["category"].to_pylist(), counts["category_count"].to_pylist(), strict=True))


class Usearch(System):
    """usearch alone, same HNSW settings as vecduck's defaults: vectors only, no metadata."""

    name = "usearch"
    levels = [100, 200, 400, 800, 1600]

    @property
    def path(self) -> str:
        return os.path.join(self.folder, "index.usearch")

    def open(self, create: bool) -> None:
        from usearch.index import Index

        os.makedirs(self.folder, exist_ok=True)
        self.index = Index(ndim=DIM, metric="cos", dtype="f32", connectivity=16, expansion_add=100)
        if not create:
            self.index.view(self.path)
        self.next = 0

    def close(self) -> None:
        if len(self.index) and not os.path.exists(self.path):
            self.index.save(self.path)

    def ingest(self, batch: pa.RecordBatch, vectors: np.ndarray) -> None:
        keys = np.arange(self.next, self.next + len(vectors))
        self.index.add(keys, vectors, threads=os.cpu_count() or 1)
        self.next += len(vectors)

    def finish_ingest(self, data: Dataset) -> None:
        self.index.save(self.path)

    def upsert_frame(self, data: Dataset) -> None:
        self.index.add(np.arange(data.rows), data.vectors(0, data.rows), threads=os.cpu_count() or 1)

    def add_one(self, row: int, vector: np.ndarray, meta: dict[str, Any], document: str) -> None:
        self.index.add(row, vector)

    def tune(self, level: Any) -> None:
        self.index.expansion_search = level

    def query(self, queries: np.ndarray, k: int, filter_name: str | None = None) -> list[list[int]]:
        if filter_name:
            raise NotImplementedError
        matches = self.index.search(queries, k)
        keys = matches.keys.reshape(len(queries), -1)
        return [list(map(int, row)) for row in keys]

    def count(self) -> int:
        return len(self.index)


class NumpyExact(System):
    """NumPy brute force over a memory-mapped vector file, metadata as in-memory arrays."""

    name = "numpy"

    def open(self, create: bool) -> None:
        self.source = None if create else Path(self.folder)

    def finish_ingest(self, data: Dataset) -> None:
        os.makedirs(self.folder, exist_ok=True)
        import shutil

        shutil.copyfile(data.vectors_path, os.path.join(self.folder, "vectors.npy"))
        shutil.copyfile(data.folder / "meta.parquet", os.path.join(self.folder, "meta.parquet"))

    def ingest(self, batch: pa.RecordBatch, vectors: np.ndarray) -> None:
        pass  # the files are copied whole in finish_ingest

    def _loaded(self) -> None:
        if not hasattr(self, "vectors"):
            import pyarrow.parquet as pq

            self.vectors = np.load(os.path.join(self.folder, "vectors.npy"), mmap_mode="r")
            self.meta = pq.read_table(os.path.join(self.folder, "meta.parquet"))

    def query(self, queries: np.ndarray, k: int, filter_name: str | None = None) -> list[list[int]]:
        self._loaded()
        if filter_name:
            rows = np.flatnonzero(filter_mask(self.meta, filter_name))
            vectors = self.vectors[rows]
        else:
            rows, vectors = None, self.vectors
        scores = queries @ vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)
        return [list(map(int, r if rows is None else rows[r])) for r in order]

    def get_where(self, filter_name: str) -> int:
        self._loaded()
        return self.meta.filter(pa.array(filter_mask(self.meta, filter_name))).num_rows

    def count(self) -> int:
        self._loaded()
        return len(self.vectors)

    def group_by(self) -> dict[str, int]:
        self._loaded()
        counts = pc.value_counts(self.meta["category"])
        return {item["values"].as_py(): item["counts"].as_py() for item in counts}


SYSTEMS: dict[str, type[System]] = {
    cls.name: cls for cls in (Vecduck, Chroma, Lance, Usearch, NumpyExact)
}
