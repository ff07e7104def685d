"""Deterministic benchmark data, written once to a cache folder and read back in batches.

Two kinds of data set:
- ``clustered-<n>``: n x 384 float32 unit vectors around 256 centres (sentence embeddings
  are clustered; uniform noise is a worst case no real corpus has), with metadata.
- ``sentences-<n>``: n real sentences (the standard library's docstrings, split into
  sentences) embedded with vecduck's default model (all-MiniLM-L6-v2).
- ``descriptions-<n>``: n real one-line texts, with 1,000 more held out as queries: the
  package descriptions of this machine's Debian package list when it has one (about
  63,000), topped up with the first lines of installed Python packages' docstrings;
  embedded with the default model once (cached by text) and searched with exact ties
  counted as hits (recall_ties).

Every row carries the same metadata: ``category`` (20 values), ``year`` (int, 2000-2019),
``score`` (float in [0, 1)), ``flag`` (bool), and a short document. The filters below
select about 1%, 15% and 50% of the rows. Ground truth is exact (NumPy, float64 sums).

Files per set, under the cache folder: ``vectors.npy`` (read in slices with plain file
reads, so the harness itself holds no more than one batch), ``meta.parquet`` (id,
document, metadata), ``queries.npy`` and ``truth.npz`` (exact top-k row numbers per
query, unfiltered and per filter).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DIM = 384
K = 10
N_QUERIES = 200
CENTRES = 256
SPREAD = 0.35
CHUNK = 50_000

# name -> (chroma `where`, lancedb SQL, Arrow predicate over the metadata table)
FILTERS: dict[str, tuple[dict, str]] = {
    "1%": ({"score": {"$lt": 0.01}}, "score < 0.01"),
    "15%": ({"year": {"$in": [2000, 2001, 2002]}}, "year IN (2000, 2001, 2002)"),
    "50%": ({"flag": True}, "flag = true"),
}
GET_FILTER = "15%"


def filter_mask(meta: pa.Table, name: str) -> np.ndarray:
    """Boolean mask of the rows a named filter selects (the ground truth's definition)."""
    if name == "1%":
        return pc.less(meta["score"], 0.01).to_numpy(zero_copy_only=False)
    if name == "15%":
        return pc.is_in(meta["year"], pa.array([2000, 2001, 2002])).to_numpy(zero_copy_only=False)
    if name == "50%":
        return meta["flag"].to_numpy(zero_copy_only=False).astype(bool)
    raise KeyError(name)


@dataclass
class Dataset:
    """A cached data set: where its files are and how to read them in batches."""

    folder: Path
    rows: int

    @property
    def vectors_path(self) -> Path:
        return self.folder / "vectors.npy"

    def vectors(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of the vectors, read from the file (not memory-mapped)."""
        offset = np.load(self.vectors_path, mmap_mode="r").offset  # the header's length
        with open(self.vectors_path, "rb") as file:
            file.seek(offset + start * DIM * 4)
            return np.fromfile(file, dtype=np.float32, count=(stop - start) * DIM).reshape(-1, DIM)

    def meta(self, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.folder / "meta.parquet", columns=columns)

    def batches(self, size: int):
        """(ids, vectors, metadatas as Arrow table, documents) in batches of `size` rows."""
        file = pq.ParquetFile(self.folder / "meta.parquet")
        start = 0
        for batch in file.iter_batches(batch_size=size):
            stop = start + batch.num_rows
            yield batch, self.vectors(start, stop)
            start = stop

    def queries(self) -> np.ndarray:
        return np.load(self.folder / "queries.npy")

    def truth(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "truth.npz") as data:
            return {name: data[name] for name in data.files}


def load(spec: str) -> Dataset:
    """The data set a spec names: clustered-<n>, sentences-<n> or descriptions-<n>."""
    kind, rows = spec.rsplit("-", 1)
    makers = {"clustered": clustered, "sentences": sentences, "descriptions": descriptions}
    return makers[kind](int(rows))


def cache_root() -> Path:
    return Path(os.environ.get("VECDUCK_BENCH_CACHE", Path(__file__).parent / ".cache"))


def clustered(rows: int) -> Dataset:
    """The clustered data set of `rows` rows, generated on first use."""
    folder = cache_root() / f"clustered-{rows}"
    if not (folder / "truth.npz").exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(20261125)
        centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        out = np.lib.format.open_memmap(folder / "vectors.npy.tmp", mode="w+", dtype=np.float32, shape=(rows, DIM))
        for start in range(0, rows, CHUNK):
            stop = min(rows, start + CHUNK)
            chunk_rng = np.random.default_rng([20261125, start])
            out[start:stop] = _around(centres, chunk_rng, stop - start)
        out.flush()
        del out
        os.replace(folder / "vectors.npy.tmp", folder / "vectors.npy")
        _write_meta(folder, rows, rng)
        query_rng = np.random.default_rng(7)
        np.save(folder / "queries.npy", _around(centres, query_rng, N_QUERIES))
        _write_truth(Dataset(folder, rows))
    return Dataset(folder, rows)


def sentences(rows: int) -> Dataset:
    """Real sentences embedded with the default model, generated (slowly, once) on first use."""
    folder = cache_root() / f"sentences-{rows}"
    if not (folder / "truth.npz").exists():
        from vecduck.embeddings import DefaultEmbeddingFunction

        folder.mkdir(parents=True, exist_ok=True)
        texts = _stdlib_sentences(rows + N_QUERIES)
        ef = DefaultEmbeddingFunction()
        embedded = np.asarray(ef(texts), dtype=np.float32)
        np.save(folder / "vectors.npy", embedded[:rows])
        np.save(folder / "queries.npy", embedded[rows:])
        _write_meta(folder, rows, np.random.default_rng(11), documents=texts[:rows])
        _write_truth(Dataset(folder, rows))
    return Dataset(folder, rows)


DESCRIPTION_QUERIES = 1_000


def descriptions(rows: int) -> Dataset:
    """Real one-line texts embedded with the default model (see the module docstring)."""
    folder = cache_root() / f"descriptions-{rows}"
    if not (folder / "truth.npz").exists():
        import hybrid_data as hd

        folder.mkdir(parents=True, exist_ok=True)
        texts = _one_line_texts(rows + DESCRIPTION_QUERIES)
        order = np.random.default_rng(13).permutation(len(texts))
        texts = [texts[i] for i in order]
        queries, documents = texts[:DESCRIPTION_QUERIES], texts[DESCRIPTION_QUERIES:]
        vectors = hd.embedded(documents + queries, "one-line texts")
        np.save(folder / "vectors.npy", vectors[:rows])
        np.save(folder / "queries.npy", vectors[rows:])
        _write_meta(folder, rows, np.random.default_rng(17), documents=documents)
        _write_truth(Dataset(folder, rows))
        (folder / "origin.txt").write_text(ONE_LINE_ORIGIN["text"])
    return Dataset(folder, rows)


ONE_LINE_ORIGIN = {"text": ""}


def _one_line_texts(n: int) -> list[str]:
    """`n` distinct one-line texts: Debian package descriptions first, then docstring summaries."""
    import glob
    import subprocess

    seen: dict[str, None] = {}
    for path in sorted(glob.glob("/var/lib/apt/lists/*_Packages*")):
        command = ["lz4cat", path] if path.endswith(".lz4") else ["cat", path]
        try:
            text = subprocess.run(command, capture_output=True, check=True).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.CalledProcessError):
            continue
        for line in text.splitlines():
            if line.startswith("Description: "):
                seen.setdefault(line[len("Description: ") :].strip(), None)
    debian = len(seen)
    if len(seen) < n:
        import hybrid_data as hd

        for doc in hd.docstrings().column("doc").to_pylist():
            first = doc.strip().split("\n", 1)[0].strip()
            if len(first.split()) >= 3:
                seen.setdefault(first, None)
            if len(seen) >= n:
                break
    if len(seen) < n:
        raise RuntimeError(f"only {len(seen)} distinct one-line texts, asked for {n}")
    ONE_LINE_ORIGIN["text"] = (
        f"{min(debian, n):,} Debian package descriptions, {max(0, n - debian):,} docstring first lines"
    )
    return list(seen)[:n]


def _around(centres: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    labels = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, DIM), dtype=np.float32) * (SPREAD / np.sqrt(DIM))
    vectors = centres[labels] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def _write_meta(folder: Path, rows: int, rng: np.random.Generator, documents: list[str] | None = None) -> None:
    numbers = np.arange(rows)
    category = rng.integers(0, 20, rows)
    year = rng.integers(2000, 2020, rows)
    score = rng.random(rows)
    flag = rng.random(rows) < 0.5
    if documents is None:
        documents = [f"document {i} about topic {c} from {y}" for i, c, y in zip(numbers, category, year, strict=True)]
    table = pa.table(
        {
            "id": pa.array([f"id{i}" for i in numbers]),
            "document": pa.array(documents),
            "category": pa.array([f"cat{c:02d}" for c in category]),
            "year": pa.array(year, pa.int64()),
            "score": pa.array(score, pa.float64()),
            "flag": pa.array(flag, pa.bool_()),
        }
    )
    pq.write_table(table, folder / "meta.parquet", row_group_size=CHUNK)


def _write_truth(data: Dataset) -> None:
    """Exact cosine top-K row numbers per query: unfiltered, and under each filter."""
    queries = data.queries().astype(np.float64)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    meta = data.meta(["score", "year", "flag"])
    masks = {name: filter_mask(meta, name) for name in FILTERS}
    best: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for start in range(0, data.rows, CHUNK):
        stop = min(data.rows, start + CHUNK)
        vectors = data.vectors(start, stop).astype(np.float64)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        distances = 1.0 - queries @ vectors.T
        rows = np.arange(start, stop)
        for name, mask in [("all", None), *masks.items()]:
            keep = slice(None) if mask is None else mask[start:stop]
            d, r = distances[:, keep], rows[keep]
            if name in best:
                d = np.hstack([best[name][0], d])
                r = np.hstack([best[name][1], np.broadcast_to(r, (len(queries), len(r)))])
            else:
                r = np.broadcast_to(r, (len(queries), len(r)))
            top = np.argsort(d, axis=1, kind="stable")[:, :K]
            best[name] = (np.take_along_axis(d, top, 1), np.take_along_axis(r, top, 1))
    np.savez(
        data.folder / "truth.npz",
        **{name: rows for name, (_, rows) in best.items()},
        **{f"{name}_kth": distances[:, -1] for name, (distances, _) in best.items()},
    )
    (data.folder / "info.json").write_text(json.dumps({"rows": data.rows, "selectivity": {
        name: float(mask.mean()) for name, mask in masks.items()}}))


SKIP_MODULES = {"antigravity", "this", "idlelib", "turtle", "turtledemo", "tkinter", "webbrowser", "pydoc_data"}


def _stdlib_sentences(n: int) -> list[str]:
    """Distinct English sentences from the standard library's docstrings, in a fixed order."""
    import importlib
    import pkgutil
    import re
    import sys

    tops = sorted(name for name in sys.stdlib_module_names if not name.startswith("_") and name not in SKIP_MODULES)
    names: list[str] = []
    for top in tops:
        try:
            module = importlib.import_module(top)
        except Exception:  # platform-specific modules
            continue
        names.append(top)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=top + "."):
            if not any(part.startswith("_") or part in ("test", "tests") for part in info.name.split(".")):
                names.append(info.name)
    seen: dict[str, None] = {}
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # optional or platform-specific modules
            continue
        for doc in _docstrings(module):
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if 25 <= len(sentence) <= 300 and sentence[0].isupper():
                    seen.setdefault(sentence, None)
        if len(seen) >= n:
            return list(seen)[:n]
    raise RuntimeError(f"only {len(seen)} distinct docstring sentences, asked for {n}")


def _docstrings(module) -> list[str]:
    """The module's docstring, its functions' and classes', and the classes' members'."""
    docs = [module.__doc__]
    for attribute in sorted(vars(module)):
        value = getattr(module, attribute, None)
        if callable(value):
            docs.append(getattr(value, "__doc__", None))
        if isinstance(value, type) and value.__module__ == module.__name__:
            docs += [getattr(member, "__doc__", None) for _, member in sorted(vars(value).items())]
    return [doc for doc in docs if isinstance(doc, str)]
