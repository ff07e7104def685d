"""The usearch sidecar: one HNSW index per collection, saved beside the data.

The index holds every live row's vector under the row's int64 `_key` twice: quantised to
int8 in the HNSW graph, which finds candidates (see quantize.py), and exactly as float32
beside it, which ranks them: a search takes the graph's best RERANK * k + RERANK_EXTRA and
orders those by their exact distances, chromadb's definitions, computed in float64. The
float32 vectors also serve stored vectors back, filtered exact searches and calibration.

The saved file is usearch's file with the float32 vectors and their keys appended
(usearch_file.py), memory-mapped on open. It records the highest write sequence it
reflects; on open it catches up from the table instead of rebuilding. A missing, torn or
mismatched file is never trusted: it is rebuilt from the table, which always holds every
vector.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import mmap
import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xxhash
from usearch.index import Index

from vecduck.engine.quantize import Quantizer
from vecduck.engine.usearch_file import FileVectors, append_vectors, map_vectors, orphans
from vecduck.progress import progress

# The graph's metric on its int8 vectors: cosine vectors are quantised at unit length,
# where cosine ranks as the inner product does.
GRAPH_METRICS = {"l2": "l2sq", "cosine": "ip", "ip": "ip"}
GRAPH_DTYPE = "i8"
FILE_FORMAT = 2  # int8 graph + float32 vectors; a file of another format is rebuilt
# Candidates the graph hands to the exact re-ranking: RERANK * k + RERANK_EXTRA. On 61,666
# real MiniLM embeddings, 30 for k = 10 brought int8's recall@10 (0.985 alone at width 200)
# to float32's (0.993) at a third of its query time (benchmarks/README.md, "Ninth round").
RERANK = 2
RERANK_EXTRA = 10
# A query is answered exactly (brute force) when its candidates are this few, or
# (filtered) at most EXACT_LIMIT whose vectors fit CANDIDATE_BYTES: one pass over the
# filter's gathered vectors costs about a millisecond there and misses nothing, where
# HNSW's post-filtered answer loses recall at mid selectivity. Larger filters go through HNSW.
EXACT_SMALL = 2_000
EXACT_LIMIT = 20_000
# chromadb's default ef_search. Left there, the search width is "auto": calibrated on the
# collection's own vectors (see `calibrate`), never below it; any other value is used as given.
AUTO_EF = 100
CALIBRATE_FROM = 5_000  # vectors before the first calibration (below, 100 is plenty)
CALIBRATE_GROWTH = 2  # calibrated again each time the index has grown this many times
# Own vectors sampled as queries. The estimate's noise decides the width: on one graph of
# 61,666 real MiniLM embeddings, samples of 300 (three seeds) chose 160, 200 and 358 (held
# out: recall 0.989 at 160), of 1,000 chose 256-320, of 3,000 256. Fewer in large indexes,
# where each costs an exact search over all of them.
CALIBRATION_QUERIES = 1_000
CALIBRATION_QUERIES_LARGE = 100
# A width is first tried on this many of the sample, and settled there when their recall
# lies further from the target than this many standard errors (at least 0.001 each).
CALIBRATION_FIRST = 250
CALIBRATION_SETTLED = 4
CALIBRATION_LARGE = 200_000
CALIBRATION_K = 10  # chromadb's default n_results
CALIBRATION_SLICE_VALUES = 2_500_000  # distances per slice of the exact ground truth (10 MB)
# Recall@10 the calibration asks of its own sample (stored vectors as queries). New queries
# lie between the stored ones and come out lower: on 61,666 real MiniLM embeddings, the
# width reaching 0.993 here gave 0.989-0.993 on 1,000 held-out texts, 0.995 gave ~0.994.
CALIBRATION_TARGET = 0.995
# The widths the calibration climbs (each ~1.25x the one before), and between each two the
# (rounded) geometric mean, tried once the climb has passed the target: a width ~12% apart
# from the next instead of ~25% (on real embeddings the step from 200 to 256 alone costs
# ~20% of a query).
EF_STEPS = (100, 128, 160, 200, 256, 320, 400, 512, 640, 800, 1024, 1280, 1600, 2048)
EF_LADDER = tuple(sorted({*EF_STEPS, *(round((low * high) ** 0.5) for low, high in itertools.pairwise(EF_STEPS))}))
# A found vector this close to the k-th true distance is a tie, as good a hit as the true one.
TIE_TOLERANCE = 1e-6
# Batches of at least this many vectors are inserted on a background thread, so that the
# caller's other work (the lake commit) overlaps the HNSW build; every read waits for it.
BACKGROUND_FROM = 1_000
# Writes of fewer vectors than this are held back and inserted in one batch later.
DEFER_BELOW = 64
DEFER_MAX = 1_024
# Worker threads for large index builds; a few vectors are added on the calling thread,
# since starting workers costs more than the insert itself.
THREADS = os.cpu_count() or 1
# Removals after which the graph is rebuilt: at least REBUILD_MIN and REBUILD_SHARE of it.
REBUILD_MIN = 256
REBUILD_SHARE = 0.1
# Bytes of gathered candidate vectors kept for exact filtered search (see `_candidate_vectors`).
CANDIDATE_BYTES = 64 * 2**20
CANDIDATE_SETS = 64
# Index builds of more vectors than this show a progress bar.
PROGRESS_MIN = 20_000
# Once multi-threaded inserts add up to this share of the index, it is checked for nodes
# no search can reach (by saving it to a scratch file, see `save_linked`), and at every
# save after one: the checks cost about a save per doubling.
ORPHAN_CHECK_SHARE = 1 / 2
# The insert search of an unlinked vector inserted again, as multiples of ef_construction:
# a round, then a wider one for those still unlinked.
REPAIR_WIDENING = (4, 16)
MAX_REPAIR_EF = 4_096
REPAIR_CHECK_EF = 512  # the search that tells whether a vector inserted again is linked in
LINK_ROUNDS = 3  # walks of a saved file and repairs, at most


@dataclass
class CandidateSet:
    """A filter's candidate keys and what searches derived from them."""

    keys: np.ndarray
    vectors: np.ndarray | None = None
    squares: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(0 if part is None else part.nbytes for part in (self.vectors, self.squares, self.mask))


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

    def __init__(self, settings: IndexSettings, path: str | None, sync: bool = True) -> None:
        self.settings = settings
        self.path = path
        # fsync saved files: a torn file is caught by its checksum and rebuilt from the
        # table, so only a folder that fsyncs its writes pays for it
        self.sync = sync
        self.seq = 0
        self.changes_since_save = 0
        self.churn = 0  # vectors removed (deleted or replaced) since the graph was built
        self._deferred: dict[int, np.ndarray] = {}
        self._building: Future[None] | None = None
        self._building_count = 0  # vectors the background insert in flight carries
        self._builder: ThreadPoolExecutor | None = None
        # float32 vectors by key: the saved file's (memory-mapped) and those added since.
        self._file_identity: tuple[int, ...] | None = None  # of the file last loaded or saved
        self._file: FileVectors | None = None
        self._extra_pos = np.full(0, -1, np.int64)  # key -> row among those kept since the file
        self._extra_chunks: list[np.ndarray] = []  # those rows, a batch per chunk (never copied to grow)
        self._extra_starts = np.zeros(1, np.int64)  # first row of each chunk, then the row count
        self._parts: dict[str, int] | None = None  # where the file's float32 vectors lie (from its marker)
        self.quantizer: Quantizer | None = None  # fitted to the first vectors inserted
        self._refit = False  # a batch outgrew the quantizer's scale: rebuild at the next chance
        self.viewed = False
        self._orphans_unchecked = 0  # vectors inserted on many threads since the last orphan check
        # the auto search width found by `calibrate`, and the index size it was found at
        self.calibrated_ef: int | None = None
        self.calibrated_size = 0
        self.index = self._new()
        # What was derived from a filter's candidate keys, by the array's identity.
        self._candidates: dict[int, CandidateSet] = {}

    def _new(self) -> Index:
        s = self.settings
        return Index(
            ndim=s.dimension,
            metric=GRAPH_METRICS[s.space],
            dtype=GRAPH_DTYPE,
            connectivity=s.max_neighbors,
            expansion_add=s.ef_construction,
            expansion_search=self.search_ef,
        )

    @property
    def search_ef(self) -> int:
        """The HNSW search width in use: the configured one, or (left at the default) the
        calibrated one."""
        if self.settings.ef_search != AUTO_EF or self.calibrated_ef is None:
            return self.settings.ef_search
        return max(AUTO_EF, self.calibrated_ef)

    # -- persistence ------------------------------------------------------------------
    def _marker_path(self) -> str:
        assert self.path is not None
        return self.path + ".json"

    def load(self, digest: Future[tuple[tuple[int, ...], str]] | None = None) -> bool:
        """Open the saved index if it is whole and matches; False means start empty.

        The file is memory-mapped (opening costs no read of the vectors); the first
        change loads it into memory. Size, checksum (xxh3, a few GB/s), header and
        count are checked first: usearch trusts the file's bytes, and a damaged graph
        means wrong neighbours or worse. `digest` is the checksum from `prefetch_digest`,
        computed while the caller did other work.
        """
        if self.path is None or not os.path.exists(self.path):
            return False
        try:
            with open(self._marker_path()) as f:
                marker = json.load(f)
            before, checksum = digest.result() if digest is not None else _digest_with_identity(self.path)
            if (
                marker.get("format") != FILE_FORMAT
                or marker.get("bytes") != before[2]
                or marker.get("dimension") != self.settings.dimension
                or marker.get("space") != self.settings.space
                or marker.get("xxh3") != checksum
            ):
                return False
            saved_quantizer = marker["quantizer"]
            quantizer = (
                None
                if saved_quantizer is None
                else Quantizer.from_json(self.settings.space, saved_quantizer, self.settings.dimension)
            )
            parts = {name: int(marker[name]) for name in ("graph_bytes", "vectors_at", "keys_at", "count")}
            index = self._new()
            index.view(self.path)
            calibrated = marker.get("calibrated_ef")
            self.calibrated_ef = int(calibrated) if isinstance(calibrated, int) else None
            self.calibrated_size = int(marker.get("calibrated_size", 0)) if self.calibrated_ef else 0
            index.expansion_search = self.search_ef
            if len(index) != parts["count"] or _identity(self.path) != before:
                return False  # damaged, or replaced by another process while it was checked
            # (the keys appended were the index's own at the save, and the checksum held)
            mapped = map_vectors(self.path, before, parts, self.settings.dimension)
            if mapped is None:
                return False
        except (OSError, ValueError, RuntimeError, KeyError, TypeError):
            return False
        self.quantizer = quantizer
        self._refit = False
        self._file_identity, self._parts = before, parts
        self._set_file(mapped)
        self.index = index
        self._candidates.clear()
        self.viewed = True
        self.seq = int(marker["seq"])
        self.churn = int(marker.get("churn", 0))
        return True

    def _writable(self) -> Index:
        """The index, loaded into memory if it was only memory-mapped."""
        if self.viewed:
            assert self.path is not None
            index = self._new()
            index.load(self.path)
            index.expansion_search = self.search_ef
            self.index = index
            self.viewed = False
        return self.index

    def needs_rebuild(self) -> bool:
        """usearch removes by tombstone and never repairs the links around it: after enough
        removals (deletes, and updates, which remove and re-add) some live vectors drop
        out of reach of the graph search. Rebuilt once removals reach a tenth of the size."""
        if self._refit:
            return True
        return self.churn >= max(REBUILD_MIN, REBUILD_SHARE * len(self.index))

    def rebuild(self) -> None:
        """A fresh graph over the same keys and vectors, its int8 scale fitted to all of
        them (the file is saved by the caller)."""
        self._drain()
        self._candidates.clear()
        keys = self.keys()
        vectors = self._get(keys)
        self.index = self._new()
        self.viewed = False
        self.churn = 0
        self.quantizer, self._refit = None, False
        if len(keys):
            self._insert(keys, vectors, keep=False)
        self.churn = 0  # what linking the new graph removed and added again is no wear to rebuild for

    def worth_saving(self) -> bool:
        """As many changes as the last save held: saves then add up to at most twice the
        final size, and a crash leaves at most half of the index to catch up."""
        return self.changes_since_save >= max(10_000, len(self.index) // 2)

    def save(self) -> None:
        """Write the index, then its marker, each by atomic rename (marker never ahead)."""
        if self.path is None:
            return
        self._drain()
        self._calibrate_if_due()  # a large write's save pays it, not the next process's first query
        tmp = private_tmp(self.path)
        if self._orphans_unchecked:
            self.save_linked(tmp)
        else:
            self.index.save(tmp)
        parts = append_vectors(tmp, self.keys(), self._get, self.settings.dimension)
        if self.sync:
            _fsync(tmp)
        digest = file_digest(tmp)
        identity = _identity(tmp)  # the same file once renamed into place
        os.replace(tmp, self.path)
        marker = {
            "format": FILE_FORMAT,
            "seq": self.seq,
            "churn": self.churn,
            **parts,
            "bytes": identity[2],
            "xxh3": digest,
            "dimension": self.settings.dimension,
            "space": self.settings.space,
            "quantizer": None if self.quantizer is None else self.quantizer.to_json(),
            "calibrated_ef": self.calibrated_ef,
            "calibrated_size": self.calibrated_size,
        }
        self._write_marker(marker)
        self.changes_since_save = 0
        self._file_identity, self._parts = identity, parts
        self._map_file()

    def _write_marker(self, marker: dict[str, object]) -> None:
        """The marker beside the index file, replaced atomically (fsynced when the folder asks)."""
        marker_tmp = private_tmp(self._marker_path())
        with open(marker_tmp, "w") as f:
            json.dump(marker, f)
        if self.sync:
            _fsync(marker_tmp)
        os.replace(marker_tmp, self._marker_path())

    def discard_files(self) -> None:
        if self.path is None:
            return
        for path in (self.path, self._marker_path()):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def set_ef_search(self, ef_search: int) -> None:
        self.settings = IndexSettings(**{**self.settings.__dict__, "ef_search": ef_search})
        self.index.expansion_search = self.search_ef

    # -- the auto search width --------------------------------------------------------
    def _calibrate_if_due(self) -> bool:
        """Calibrate when the width is auto and the index has grown enough; True if it did."""
        if self.settings.ef_search != AUTO_EF:
            return False
        size = len(self.index)
        if size >= CALIBRATE_FROM and (not self.calibrated_size or size >= CALIBRATE_GROWTH * self.calibrated_size):
            self.calibrate()
            return True
        return False

    def calibrate(self) -> int:
        """The smallest search width on EF_LADDER (climbing EF_STEPS, then trying the width
        between the step reached and the one below) at which the graph finds the exact 10
        nearest neighbours (ties counted) of a sample of its own vectors, each itself left
        out, for CALIBRATION_TARGET of them; kept and used from now on.

        Real embeddings need a wider search than synthetic clusters for the same recall,
        and how much wider depends on the data: measured here, not guessed. Costs one exact
        pass over the vectors plus the sample's graph searches at each width tried (1-2 s
        in all at 60,000 real 384-d embeddings), once per doubling."""
        keys = self.keys()
        wanted = CALIBRATION_QUERIES if len(keys) <= CALIBRATION_LARGE else CALIBRATION_QUERIES_LARGE
        sample = np.random.default_rng(len(keys)).choice(len(keys), wanted, replace=False)
        query_keys = keys[np.sort(sample)]
        k = CALIBRATION_K
        queries = self._get(query_keys)
        true_keys, true_distances = self._exact_neighbours(queries, keys, k + 1)
        truth = [_left_out(true_keys[row], true_distances[row], own, k) for row, own in enumerate(query_keys)]
        true_sets = [set(found.tolist()) for found, _ in truth]
        kth = np.array([distances[-1] for _, distances in truth], np.float64)
        limit = kth + TIE_TOLERANCE * np.maximum(1.0, np.abs(kth))

        def recalls(ef: int, rows: range) -> list[float]:
            self.index.expansion_search = ef
            got = self._graph_search(queries[rows.start : rows.stop], k + 1)
            found_share = []
            for at, row in enumerate(rows):
                found, distances = _left_out(*got[at], query_keys[row], k)
                tied = distances <= limit[row]
                hits = sum(int(key) in true_sets[row] or near for key, near in zip(found, tied, strict=True))
                found_share.append(hits / k)
            return found_share

        def reaches(ef: int) -> bool:
            # A first part of the sample settles a width far from the target either way;
            # one near it is read on the whole sample.
            first = min(len(queries), CALIBRATION_FIRST)
            shares = recalls(ef, range(first))
            if first < len(queries):
                mean, spread = float(np.mean(shares)), float(np.std(shares)) / math.sqrt(first)
                if abs(mean - CALIBRATION_TARGET) > CALIBRATION_SETTLED * max(spread, 1e-3):
                    return mean >= CALIBRATION_TARGET
                shares += recalls(ef, range(first, len(queries)))
            return float(np.mean(shares)) >= CALIBRATION_TARGET

        # Climb from the step of the width found before (a graph that grew rarely needs a
        # narrower search), down while the step below still reaches the target, else up.
        step = max((i for i, ef in enumerate(EF_STEPS) if ef <= (self.calibrated_ef or 0)), default=0)
        found: int | None = None
        if reaches(EF_STEPS[step]):
            while step and reaches(EF_STEPS[step - 1]):
                step -= 1
            found = step
        else:
            found = next((i for i in range(step + 1, len(EF_STEPS)) if reaches(EF_STEPS[i])), None)
        chosen = EF_LADDER[-1]
        if found is not None:
            # the width between the step found and the one below (which fell short) may do
            ef = EF_STEPS[found]
            between = EF_LADDER[EF_LADDER.index(ef) - 1] if found else None
            chosen = between if between is not None and reaches(between) else ef
        self.calibrated_ef, self.calibrated_size = chosen, len(keys)
        self.index.expansion_search = self.search_ef
        return chosen

    def _exact_neighbours(self, queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's exact `k` nearest keys and distances (in float32 BLAS), over the
        index in slices of keys in key order (read from the file as runs, not through its
        map): never all its vectors in memory at once."""
        metric = self.settings.space
        keys = np.sort(keys)
        queries = queries.astype(np.float32)
        best_keys = np.empty((len(queries), 0), np.int64)
        best = np.empty((len(queries), 0), np.float32)
        rows = max(1_024, CALIBRATION_SLICE_VALUES // max(1, len(queries)))
        for start in range(0, len(keys), rows):
            part = keys[start : start + rows]
            distances = exact_distances(queries, self._get(part), metric).astype(np.float32, copy=False)
            if distances.shape[1] > k:  # the slice's own best k first: only those are kept
                keep = np.argpartition(distances, k - 1, axis=1)[:, :k]
                distances, part_keys = np.take_along_axis(distances, keep, 1), part[keep]
            else:
                part_keys = np.broadcast_to(part, distances.shape)
            best, best_keys = np.hstack([best, distances]), np.hstack([best_keys, part_keys])
            if best.shape[1] > k:
                keep = np.argpartition(best, k - 1, axis=1)[:, :k]
                best, best_keys = np.take_along_axis(best, keep, 1), np.take_along_axis(best_keys, keep, 1)
        order = np.argsort(best, axis=1, kind="stable")
        return np.take_along_axis(best_keys, order, 1), np.take_along_axis(best, order, 1)

    def _note_calibration(self) -> None:
        """Record the width in the saved file's marker when the file holds this very index
        (else the next save records it)."""
        if self.path is None or self.changes_since_save or self._deferred or self._file_identity is None:
            return
        try:
            if _identity(self.path) != self._file_identity:
                return
            with open(self._marker_path()) as f:
                marker = json.load(f)
            if marker.get("count") != len(self.index):
                return
            marker["calibrated_ef"], marker["calibrated_size"] = self.calibrated_ef, self.calibrated_size
            self._write_marker(marker)
        except (OSError, ValueError):
            pass  # only a saving: the next process calibrates again

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
        self._candidates.clear()
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(keys) < DEFER_BELOW:
            for key, vector in zip(keys.tolist(), vectors, strict=True):
                self._deferred[key] = vector
            self.changes_since_save += len(keys)
            if len(self._deferred) >= DEFER_MAX:
                self._drain(background=True)
            return
        self._drain()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(keys) >= BACKGROUND_FROM:
            self._insert_in_background(np.array(keys, dtype=np.int64), vectors)
        else:
            self._insert(keys, vectors)

    def _insert_in_background(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if self._builder is None:
            self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecduck-index")
        self._building_count = len(keys)
        self._building = self._builder.submit(self._insert, keys, vectors)

    def waiting(self) -> int:
        """Vectors written but not in the graph yet: held back, or in a background insert."""
        building = self._building is not None and not self._building.done()
        return len(self._deferred) + (self._building_count if building else 0)

    def _drain(self, background: bool = False) -> None:
        """Finish background inserts and insert held-back vectors; every read calls this first.

        With `background`, the held-back vectors go in on the worker thread (a loop of
        single adds goes on meanwhile) and the next read waits for them."""
        if self._building is not None:
            building, self._building = self._building, None
            building.result()
        if self._deferred:
            keys = np.fromiter(self._deferred.keys(), np.int64, len(self._deferred))
            vectors = np.stack(list(self._deferred.values()))
            self._deferred = {}
            if background:
                self._insert_in_background(keys, vectors)
            else:
                self._insert(keys, vectors)

    def _insert(self, keys: np.ndarray, vectors: np.ndarray, keep: bool = True) -> None:
        """Insert into the graph (quantised) and, with `keep`, remember the float32 vectors."""
        index = self._writable()
        present = index.contains(keys) if len(index) else np.zeros(len(keys), bool)
        if np.any(present):
            index.remove(keys[present])
            self.churn += int(present.sum())
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if keep:
            self._keep(keys, vectors)
        if self.quantizer is None:
            self.quantizer = Quantizer.fit(self.settings.space, vectors)
        elif not self._refit and self.quantizer.outgrown_by(vectors):
            self._refit = True  # rebuilt with a new scale at the next save or search
        graph_vectors = self.quantizer(vectors)
        with progress(total=len(keys), desc="Indexing", unit="vectors", min_total=PROGRESS_MIN) as bar:
            done = 0

            def report(processed: int, _total: int) -> bool:
                nonlocal done
                bar.update(processed - done)
                done = processed
                return True

            # usearch checks the callback's annotations as types, not as strings.
            report.__annotations__ = {"processed": int, "_total": int, "return": bool}
            threads = THREADS if len(keys) >= 256 else 1
            index.add(keys, graph_vectors, threads=threads, progress=report if len(keys) > PROGRESS_MIN else None)
        self.changes_since_save += len(keys)
        if threads > 1:
            self._orphans_unchecked += len(keys)
            if self._orphans_unchecked >= ORPHAN_CHECK_SHARE * len(index):
                self._check_orphans_now()

    def _keep(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Remember vectors added since the file was mapped (later writes win)."""
        need = int(keys.max()) + 1
        if need > len(self._extra_pos):
            grown = np.full(max(need, 2 * len(self._extra_pos)), -1, np.int64)
            grown[: len(self._extra_pos)] = self._extra_pos
            self._extra_pos = grown
        start = int(self._extra_starts[-1])
        self._extra_chunks.append(np.array(vectors, np.float32))  # a copy: the caller's array may change
        self._extra_starts = np.append(self._extra_starts, start + len(keys))
        self._extra_pos[keys] = np.arange(start, start + len(keys))

    def _check_orphans_now(self) -> None:
        """Link in the index's unlinked vectors, walking its graph in a scratch file."""
        if self.path is not None:
            scratch = private_tmp(self.path + ".check")  # a ".tmp": never taken for a sidecar
        else:
            handle, scratch = tempfile.mkstemp(suffix=".usearch")
            os.close(handle)
        try:
            self.save_linked(scratch, final_save=False)
        finally:
            with contextlib.suppress(OSError):
                os.remove(scratch)

    def save_linked(self, path: str, final_save: bool = True) -> int:
        """Save the index to `path` with every vector linked into its graph; how many
        vectors had to be inserted again.

        A vector that the graph's bottom level does not connect to its entry node is
        never returned by a search (its record is stored, and an exact or filtered search
        finds it). usearch's multi-threaded inserts leave 0.01-0.2% of a batch so
        (unum-cloud/USearch#735). The graph is read from the saved file (usearch shows no
        links; about 0.1 s at 100,000 vectors), and each such vector is inserted again
        (see `_link`); the file is then saved and walked again, up to LINK_ROUNDS times.
        With `final_save` false (a scratch file) it is neither."""
        self._orphans_unchecked = 0
        self.index.save(path)
        repaired = 0
        for _ in range(LINK_ROUNDS):  # an insert can cut another vector off: the saved file is walked again
            keys = np.asarray(self.index.keys, np.int64)
            found = orphans(path, self.settings.dimension, self.settings.max_neighbors, keys)  # a byte each
            if found is None or not len(found):
                break
            self._link(found, self._graph_vectors(self._get(found)))
            repaired += len(found)
            if not final_save:
                break
            self.index.save(path)
        return repaired

    def _link(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Remove unlinked vectors (`vectors`: as the graph holds them) and insert them
        again on one thread with a 4x wider
        insert search; those a wide search for their own vector still misses, once more
        at 16x (on 100,000 clustered 384-d vectors: ~170 unlinked -> ~15 -> 0; at the
        collection's own width ~40% stayed unlinked)."""
        index = self._writable()
        for widening in REPAIR_WIDENING:
            index.remove(keys)
            index.expansion_add = min(MAX_REPAIR_EF, widening * self.settings.ef_construction)
            try:
                index.add(keys, vectors, threads=1)
            finally:
                index.expansion_add = self.settings.ef_construction
            self.churn += len(keys)
            self.changes_since_save += len(keys)
            index.expansion_search = REPAIR_CHECK_EF
            try:
                found = np.asarray(index.search(vectors, 1, threads=THREADS).keys, np.int64).reshape(-1)
            finally:
                index.expansion_search = self.search_ef
            missed = found != keys
            keys, vectors = keys[missed], vectors[missed]
            if not len(keys):
                return

    def _map_file(self) -> None:
        """Map the just saved file's vectors, which hold every one kept so far."""
        mapped = None
        if self.path is not None and self._file_identity is not None and self._parts is not None:
            mapped = map_vectors(self.path, self._file_identity, self._parts, self.settings.dimension)
        if mapped is None:
            raise RuntimeError(f"the index file {self.path} changed while it was saved")
        self._set_file(mapped)

    def _set_file(self, mapped: FileVectors | None) -> None:
        """Take `mapped` as the saved vectors and forget those kept before (it holds them)."""
        self._file = mapped
        self._extra_pos = np.full(0, -1, np.int64)
        self._extra_chunks = []
        self._extra_starts = np.zeros(1, np.int64)

    def _get(self, keys: np.ndarray) -> np.ndarray:
        """The float32 vectors of `keys` (each held): those kept since the file, then the file's."""
        out = np.empty((len(keys), self.settings.dimension), np.float32)
        todo = np.ones(len(keys), bool)
        inside = keys < len(self._extra_pos)
        kept = np.zeros(len(keys), bool)
        kept[inside] = self._extra_pos[keys[inside]] >= 0
        if kept.any():
            rows = self._extra_pos[keys[kept]]
            chunks = np.searchsorted(self._extra_starts, rows, side="right") - 1
            taken = np.empty((len(rows), self.settings.dimension), np.float32)
            for chunk in np.unique(chunks).tolist():
                here = chunks == chunk
                taken[here] = self._extra_chunks[chunk][rows[here] - self._extra_starts[chunk]]
            out[kept] = taken
            todo &= ~kept
        if todo.any():
            if self._file is None or not self._file.holds(keys[todo]).all():
                raise KeyError("a vector asked of the index is not in it")
            out[todo] = self._file.rows(keys[todo])
        return out

    def remove(self, keys: np.ndarray) -> None:
        if len(keys) == 0:
            return
        self._drain()
        self._candidates.clear()
        if len(self.index):
            present = self.index.contains(keys)
            if np.any(present):
                self._writable().remove(keys[present])
                self.changes_since_save += int(present.sum())
                self.churn += int(present.sum())

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors of `keys`, as an (n, dimension) float32 array."""
        self._drain()
        if len(keys) == 0:
            return np.empty((0, self.settings.dimension), np.float32)
        return self._get(np.asarray(keys, np.int64))

    # -- search -----------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, candidates: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Nearest `k` keys and distances per query, among `candidates` when given.

        Small candidate sets are searched exactly; otherwise HNSW, widened until each
        query has k matches that pass the filter, with an exact search as last resort.
        """
        self._drain()
        if self.needs_rebuild():
            self.rebuild()
        total = len(self.index) if candidates is None else len(candidates)
        k = min(k, total)
        if k == 0:
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in queries]
        if total <= EXACT_SMALL or (candidates is not None and total <= self._exact_limit()):
            if candidates is None:
                return self.exact(queries, self.keys(), k)
            return self.exact(queries, candidates, k, *self._candidate_vectors(candidates))
        if self._calibrate_if_due():
            self._note_calibration()  # (a save calibrates before writing its own marker)
        if candidates is None and len(queries) > 1:
            return self._hnsw_batch(queries, k)
        return [self._hnsw_one(query, k, candidates) for query in queries]

    def _exact_limit(self) -> int:
        """Most candidates searched exactly: EXACT_LIMIT, and no more than fit the kept
        gathered vectors (a filter's vectors gathered again at every query cost more than
        the graph search)."""
        return min(EXACT_LIMIT, CANDIDATE_BYTES // (4 * self.settings.dimension))

    def _hnsw_batch(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Unfiltered queries in one usearch call, on every core."""
        results = []
        for query, (keys, distances) in zip(queries, self._graph_search(queries, k), strict=True):
            if len(keys) < k:  # HNSW came up short: the one-query path widens the search
                results.append(self._hnsw_one(query, k, None))
            else:
                results.append((keys, distances))
        return results

    def _graph_search(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each query's `k` nearest (fewer if the graph finds fewer): the graph's best
        RERANK * k + RERANK_EXTRA, ordered by their exact distances."""
        fetch = RERANK * k + RERANK_EXTRA
        graph_queries, fits = self._graph_queries(queries)
        matches = self.index.search(graph_queries, fetch, threads=THREADS)
        all_keys = np.asarray(matches.keys, np.int64).reshape(len(queries), -1)
        counts = np.asarray(matches.counts).reshape(-1)
        # queries the graph cannot answer (see `Quantizer.queries`): one exact pass for all
        outside = iter(self.exact(queries[~fits], self.keys(), k) if not fits.all() else [])
        return [
            self._rerank(query, all_keys[row, : counts[row]], k) if fits[row] else next(outside)
            for row, query in enumerate(queries)
        ]

    def _rerank(self, query: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` of `keys` nearest to `query` by exact distance (float64, ties by key)."""
        if not len(keys):
            return keys, np.empty(0, np.float32)
        distances = exact_distances(query[None, :].astype(np.float64), self._get(keys), self.settings.space)[0]
        order = np.lexsort((keys, distances))[:k]
        return keys[order], distances[order].astype(np.float32)

    def _hnsw_one(self, query: np.ndarray, k: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        size = len(self.index)
        wanted = RERANK * k + RERANK_EXTRA  # candidates to re-rank
        fetch = wanted if candidates is None else min(size, max(4 * wanted, int(wanted * size / len(candidates) * 2)))
        graph_queries, fits = self._graph_queries(query[None, :])
        if not fits[0]:
            return self.exact(query[None, :], self.keys() if candidates is None else candidates, k)[0]
        graph_query = graph_queries[0]
        while True:
            keys = np.asarray(self.index.search(graph_query, fetch).keys, dtype=np.int64)
            if candidates is not None:
                mask = self._candidate_mask(candidates)
                inside = keys < len(mask)
                inside[inside] = mask[keys[inside]]
                keys = keys[inside]
            if len(keys) >= k:
                return self._rerank(query, keys[:wanted], k)
            if fetch >= size:
                pool = self.keys() if candidates is None else candidates
                return self.exact(query[None, :], pool, k)[0]
            fetch = min(size, fetch * 4)

    def _graph_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors (or queries) as the graph holds them: int8, by the collection's quantizer."""
        quantizer = self.quantizer or Quantizer.fit(self.settings.space, vectors)  # (none: nothing inserted)
        return quantizer(vectors)

    def _graph_queries(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Queries as the graph takes them, and which of them it can answer (`Quantizer.queries`)."""
        if self.quantizer is None:
            return np.zeros(queries.shape, np.int8), np.zeros(len(queries), bool)
        return self.quantizer.queries(queries)

    def _candidate_set(self, candidates: np.ndarray) -> CandidateSet:
        """What searches derive from a filter's candidate keys, kept while they repeat.

        The store hands out one array per filter until the next write (its filter cache),
        so the array's identity names the set; any change to the index forgets them all.
        """
        found = self._candidates.get(id(candidates))
        if found is not None and found.keys is candidates:
            return found
        found = CandidateSet(candidates)
        self._candidates[id(candidates)] = found
        held = sum(entry.nbytes for entry in self._candidates.values())
        while len(self._candidates) > 1 and (held > CANDIDATE_BYTES or len(self._candidates) > CANDIDATE_SETS):
            held -= self._candidates.pop(next(iter(self._candidates))).nbytes
        return found

    def _candidate_vectors(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and squared norms of candidate keys, gathered once: gathering scattered
        vectors costs more than the exact search over them."""
        found = self._candidate_set(candidates)
        if found.vectors is None or found.squares is None:
            vectors = np.ascontiguousarray(self.vectors(candidates))
            squares = np.einsum("ij,ij->i", vectors, vectors)
            if vectors.nbytes > CANDIDATE_BYTES:
                return vectors, squares
            found.vectors, found.squares = vectors, squares
        return found.vectors, found.squares

    def _candidate_mask(self, candidates: np.ndarray) -> np.ndarray:
        """A boolean array over keys, True at candidate keys: np.isin sorts the candidates
        at every call, several times the cost of the graph search at 15% selectivity."""
        found = self._candidate_set(candidates)
        if found.mask is None:
            mask = np.zeros(int(candidates.max()) + 1 if len(candidates) else 0, bool)
            mask[candidates] = True
            found.mask = mask
        return found.mask

    def exact(
        self,
        queries: np.ndarray,
        keys: np.ndarray,
        k: int,
        vectors: np.ndarray | None = None,
        squares: np.ndarray | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Brute-force distances with chromadb's definitions; ties by insertion order.

        Ranks in float32, then recomputes the best few in float64 to order them exactly.
        `vectors` (and their squared norms) may be given when already gathered.
        """
        if vectors is None:
            vectors = self.vectors(keys)
        k = min(k, len(keys))
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught just below
            rough = exact_distances(queries.astype(np.float32), vectors, self.settings.space, squares)
        if not np.isfinite(rough).all():  # float32 overflowed (huge components): rank in float64
            rough = exact_distances(queries.astype(np.float64), vectors, self.settings.space)
        shortlist = min(len(keys), 4 * k + 32)
        results = []
        for query, row in zip(queries, rough, strict=True):
            if shortlist < len(keys):
                # Everything within float32 error of the shortlist's edge, so ties stay whole.
                edge = np.partition(row, shortlist - 1)[shortlist - 1]
                best = np.flatnonzero(row <= edge + 1e-4 * (abs(edge) + 1.0))
            else:
                best = np.arange(len(keys))
            fine = exact_distances(query[None, :].astype(np.float64), vectors[best], self.settings.space)[0]
            order = np.lexsort((keys[best], fine))[:k]
            results.append((keys[best][order], fine[order].astype(np.float32)))
        return results


def _left_out(keys: np.ndarray, distances: np.ndarray, own: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A sampled vector's first `k` neighbours (keys, float64 distances) without itself."""
    keys = np.asarray(keys, np.int64)
    others = keys != own
    return keys[others][:k], np.asarray(distances, np.float64)[others][:k]


def exact_distances(
    queries: np.ndarray, vectors: np.ndarray, space: str, squares: np.ndarray | None = None
) -> np.ndarray:
    """(queries x vectors) distances: squared L2, 1 - cosine similarity, or 1 - inner product.

    Computed in float64 unless both inputs are float32 (a quick ranking pass). `squares`,
    the vectors' squared norms in the vectors' precision, may be given precomputed."""
    fast = queries.dtype == np.float32 and vectors.dtype == np.float32
    q = queries if fast else queries.astype(np.float64)
    v = vectors if fast else vectors.astype(np.float64)
    if squares is None or squares.dtype != v.dtype:
        squares = np.einsum("ij,ij->i", v, v)
    dots = q @ v.T
    if space == "ip":
        return 1.0 - dots
    if space == "cosine":
        qn = np.linalg.norm(q, axis=1)[:, None]
        vn = np.sqrt(squares)[None, :]
        denom = qn * vn
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
        return 1.0 - cos
    squared = (q * q).sum(axis=1)[:, None] + squares[None, :] - 2.0 * dots
    return np.maximum(squared, 0.0)


def file_digest(path: str) -> str:
    """xxh3-64 of a file's bytes, through a memory map one window at a time (no copy, and
    never the whole file resident at once)."""
    digest = xxhash.xxh3_64()
    window = 64 * mmap.ALLOCATIONGRANULARITY * 16  # 64 MiB with 4 KiB granularity
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for offset in range(0, size, window):
            with mmap.mmap(f.fileno(), min(window, size - offset), offset=offset, access=mmap.ACCESS_READ) as view:
                digest.update(view)
    return digest.hexdigest()


_digests: ThreadPoolExecutor | None = None


def prefetch_digest(path: str) -> Future[tuple[tuple[int, ...], str]] | None:
    """Start checksumming a saved index file on a worker thread (xxhash releases the GIL),
    so that a new process checks its other files meanwhile; for `VectorIndex.load`."""
    global _digests
    if not os.path.exists(path):
        return None
    if _digests is None:
        _digests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecduck-digest")
    return _digests.submit(_digest_with_identity, path)


def _digest_with_identity(path: str) -> tuple[tuple[int, ...], str]:
    """Which file a path named before it was read, and the xxh3 of what was read."""
    before = _identity(path)
    return before, file_digest(path)


def private_tmp(path: str) -> str:
    """A temporary name beside `path` that no other process or thread writes at once: a
    reader process may save the index while another saves it too (outside the writer lock)."""
    return f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"


def _identity(path: str) -> tuple[int, ...]:
    """Which file a path names now (device, inode, size, mtime): files are replaced by rename."""
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
