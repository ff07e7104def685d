"""The usearch sidecar: one HNSW index per collection, saved beside the data.

The index holds every live row's vector under the row's int64 `_key`, so it also
serves stored vectors back (usearch keeps them exactly as float32). It records the
highest write sequence it reflects; on open it catches up from the table instead of
rebuilding. A missing, torn or mismatched file is never trusted: it is rebuilt from
the table, which always holds every vector.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from dataclasses import dataclass

import numpy as np
from usearch.index import Index

from vecduck.progress import progress

METRICS = {"l2": "l2sq", "cosine": "cos", "ip": "ip"}
# Below this many candidate rows a query is answered exactly, by brute force.
EXACT_LIMIT = 20_000
# Writes of fewer vectors than this are held back and inserted in one batch later.
DEFER_BELOW = 64
DEFER_MAX = 1_024
# Worker threads for large index builds; a few vectors are added on the calling thread,
# since starting workers costs more than the insert itself.
THREADS = os.cpu_count() or 1
# Index builds of more vectors than this show a progress bar.
PROGRESS_MIN = 20_000


@dataclass(frozen=True)
class IndexSettings:
    """What an index is built with, from the collection's HNSW configuration."""

    dimension: int
    space: str = "l2"
    max_neighbors: int = 16
    ef_construction: int = 100
    ef_search: int = 100


class VectorIndex:
    """An in-memory usearch index with a crash-safe file beside it."""

    def __init__(self, settings: IndexSettings, path: str | None) -> None:
        self.settings = settings
        self.path = path
        self.seq = 0
        self.changes_since_save = 0
        self._deferred: dict[int, np.ndarray] = {}
        self.viewed = False
        self.index = self._new()

    def _new(self) -> Index:
        s = self.settings
        return Index(
            ndim=s.dimension,
            metric=METRICS[s.space],
            dtype="f32",
            connectivity=s.max_neighbors,
            expansion_add=s.ef_construction,
            expansion_search=s.ef_search,
        )

    # -- persistence ------------------------------------------------------------------
    def _marker_path(self) -> str:
        assert self.path is not None
        return self.path + ".json"

    def load(self) -> bool:
        """Open the saved index if it is whole and matches; False means start empty.

        The file is memory-mapped (opening costs no read of the vectors); the first
        change loads it into memory.
        """
        if self.path is None or not os.path.exists(self.path):
            return False
        try:
            with open(self._marker_path()) as f:
                marker = json.load(f)
            if (
                marker.get("bytes") != os.path.getsize(self.path)
                or marker.get("dimension") != self.settings.dimension
                or marker.get("space") != self.settings.space
                or marker.get("crc32") != _crc32(self.path)
            ):
                return False
            index = self._new()
            index.view(self.path)
            index.expansion_search = self.settings.ef_search
            if len(index) != marker.get("count"):
                return False
        except (OSError, ValueError, RuntimeError, KeyError):
            return False
        self.index = index
        self.viewed = True
        self.seq = int(marker["seq"])
        return True

    def _writable(self) -> Index:
        """The index, loaded into memory if it was only memory-mapped."""
        if self.viewed:
            assert self.path is not None
            index = self._new()
            index.load(self.path)
            index.expansion_search = self.settings.ef_search
            self.index = index
            self.viewed = False
        return self.index

    def save_if_worth_it(self, seq: int) -> None:
        """Save when much has changed since the last save, so that saving stays O(n) overall.

        A stale file is never wrong, only slower to open: it is caught up from the table.
        """
        if self.changes_since_save >= max(10_000, len(self.index) // 4):
            self.seq = seq
            self.save()

    def save(self) -> None:
        """Write the index, then its marker, each by atomic rename (marker never ahead)."""
        if self.path is None:
            return
        self._drain()
        tmp = self.path + ".tmp"
        self.index.save(tmp)
        _fsync(tmp)
        crc = _crc32(tmp)
        os.replace(tmp, self.path)
        marker = {
            "seq": self.seq,
            "count": len(self.index),
            "bytes": os.path.getsize(self.path),
            "crc32": crc,
            "dimension": self.settings.dimension,
            "space": self.settings.space,
        }
        with open(self._marker_path() + ".tmp", "w") as f:
            json.dump(marker, f)
        _fsync(self._marker_path() + ".tmp")
        os.replace(self._marker_path() + ".tmp", self._marker_path())
        self.changes_since_save = 0

    def discard_files(self) -> None:
        if self.path is None:
            return
        for path in (self.path, self._marker_path()):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def set_ef_search(self, ef_search: int) -> None:
        self.settings = IndexSettings(**{**self.settings.__dict__, "ef_search": ef_search})
        self.index.expansion_search = ef_search

    # -- contents ---------------------------------------------------------------------
    def __len__(self) -> int:
        self._drain()
        return len(self.index)

    def keys(self) -> np.ndarray:
        self._drain()
        return np.asarray(self.index.keys, dtype=np.int64) if len(self.index) else np.empty(0, np.int64)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors. A few at a time are held back and inserted together at
        the next read (or once 1,024 wait): HNSW inserts cost far less in a batch."""
        if len(keys) == 0:
            return
        if len(keys) < DEFER_BELOW:
            for key, vector in zip(keys.tolist(), np.asarray(vectors, dtype=np.float32), strict=True):
                self._deferred[key] = vector
            self.changes_since_save += len(keys)
            if len(self._deferred) >= DEFER_MAX:
                self._drain()
            return
        self._drain()
        self._insert(keys, vectors)

    def _drain(self) -> None:
        """Insert the held-back vectors; every read of the index calls this first."""
        if self._deferred:
            keys = np.fromiter(self._deferred.keys(), np.int64, len(self._deferred))
            vectors = np.stack(list(self._deferred.values()))
            self._deferred = {}
            self._insert(keys, vectors)

    def _insert(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        index = self._writable()
        present = index.contains(keys) if len(index) else np.zeros(len(keys), bool)
        if np.any(present):
            index.remove(keys[present])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with progress(total=len(keys), desc="Indexing", unit="vectors", min_total=PROGRESS_MIN) as bar:
            done = 0

            def report(processed: int, _total: int) -> bool:
                nonlocal done
                bar.update(processed - done)
                done = processed
                return True

            # usearch checks the callback's annotations as types, not as strings.
            report.__annotations__ = {"processed": int, "_total": int, "return": bool}
            index.add(
                keys,
                vectors,
                threads=THREADS if len(keys) >= 256 else 1,
                progress=report if len(keys) > PROGRESS_MIN else None,
            )
        self.changes_since_save += len(keys)

    def remove(self, keys: np.ndarray) -> None:
        if len(keys) == 0:
            return
        self._drain()
        if len(self.index):
            present = self.index.contains(keys)
            if np.any(present):
                self._writable().remove(keys[present])
                self.changes_since_save += int(present.sum())

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors of `keys`, as an (n, dimension) float32 array."""
        self._drain()
        if len(keys) == 0:
            return np.empty((0, self.settings.dimension), np.float32)
        got = self.index.get(keys, dtype=np.float32)
        if isinstance(got, np.ndarray) and got.ndim == 2:
            return got
        return np.vstack(got).astype(np.float32, copy=False)

    # -- search -----------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, candidates: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Nearest `k` keys and distances per query, among `candidates` when given.

        Small candidate sets are searched exactly; otherwise HNSW, widened until each
        query has k matches that pass the filter, with an exact search as last resort.
        """
        self._drain()
        total = len(self.index) if candidates is None else len(candidates)
        k = min(k, total)
        if k == 0:
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in queries]
        if total <= EXACT_LIMIT:
            keys = self.keys() if candidates is None else candidates
            return self.exact(queries, keys, k)
        results = []
        for query in queries:
            results.append(self._hnsw_one(query, k, candidates))
        return results

    def _hnsw_one(self, query: np.ndarray, k: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        size = len(self.index)
        fetch = k if candidates is None else min(size, max(4 * k, int(k * size / len(candidates) * 2)))
        while True:
            matches = self.index.search(query.astype(np.float32), fetch)
            keys = np.asarray(matches.keys, dtype=np.int64)
            distances = np.asarray(matches.distances, dtype=np.float32)
            if candidates is not None:
                keep = np.isin(keys, candidates)
                keys, distances = keys[keep], distances[keep]
            if len(keys) >= k:
                order = np.lexsort((keys, distances))[:k]
                return keys[order], distances[order]
            if fetch >= size:
                pool = self.keys() if candidates is None else candidates
                return self.exact(query[None, :], pool, k)[0]
            fetch = min(size, fetch * 4)

    def exact(self, queries: np.ndarray, keys: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Brute-force distances with chromadb's definitions; ties by insertion order."""
        vectors = self.vectors(keys)
        distances = exact_distances(queries, vectors, self.settings.space)
        k = min(k, len(keys))
        results = []
        for row in distances:
            order = np.lexsort((keys, row))[:k]
            results.append((keys[order], row[order].astype(np.float32)))
        return results


def exact_distances(queries: np.ndarray, vectors: np.ndarray, space: str) -> np.ndarray:
    """(queries x vectors) distances: squared L2, 1 - cosine similarity, or 1 - inner product."""
    q = queries.astype(np.float64)
    v = vectors.astype(np.float64)
    dots = q @ v.T
    if space == "ip":
        return 1.0 - dots
    if space == "cosine":
        qn = np.linalg.norm(q, axis=1)[:, None]
        vn = np.linalg.norm(v, axis=1)[None, :]
        denom = qn * vn
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
        return 1.0 - cos
    squared = (q * q).sum(axis=1)[:, None] + (v * v).sum(axis=1)[None, :] - 2.0 * dots
    return np.maximum(squared, 0.0)


def _crc32(path: str) -> int:
    """CRC-32 of a file: a damaged index file must never be opened (usearch trusts its
    bytes, and a flipped byte means wrong neighbours or a crash), ~2 GB/s."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
