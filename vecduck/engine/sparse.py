"""The sparse-vector index of one metadata key: an inverted index scored by dot product.

Postings (term, slot, value) live in a few chunks, each sorted by term, so the postings
of a query's terms are found by binary search in every chunk and scored in one
`np.bincount`. A write appends a chunk (a rewritten record gets a new slot and its old
one is marked dead); chunks merge by size, dropping dead postings as they go, so a
write costs what it touches and the chunk count stays logarithmic.

BM25 (Chroma's `bm25=True`): the documents hold BM25's saturated term frequencies (the
`chroma_bm25` embedding function computes them) and the query's weights are scaled by
each term's inverse document frequency over the collection's current records,
`ln(1 + (n - n_t + 0.5) / (n_t + 0.5))`, as Chroma's server does. A record's score is
`1 - query · document`, lower first; only records sharing a term with the query are
candidates.

The index is derived data: built from the read model's rows, saved beside the lake
with the write number it reflects, and rebuilt when missing or damaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecduck.engine import sidecar
from vecduck.engine.arrays import numpy_column, unique_keys

# A new chunk merges with the previous one while that one is at most this many times larger.
MERGE_RATIO = 2
# Below one posting per this many slots, a search sorts its postings instead of summing
# into an array of every slot.
SORT_BELOW = 8
NO_SLOT = -1


@dataclass
class Chunk:
    """Postings sorted by term."""

    terms: np.ndarray  # uint32
    slots: np.ndarray  # int32
    values: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.terms)


def _chunk(terms: np.ndarray, slots: np.ndarray, values: np.ndarray) -> Chunk:
    order = np.argsort(terms, kind="stable")
    return Chunk(terms[order], slots[order], values[order])


def flatten_sparse(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column of sparse-vector structs as (lengths, indices, values) arrays; a null row
    (no vector under this key) has length 0."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty.astype(np.uint32), empty.astype(np.float32)
    present = np.asarray(array.is_valid())
    indices = pc.fill_null(array.field("indices"), pa.scalar([], pa.list_(pa.uint32())))
    values = array.field("values")
    lengths = np.asarray(pc.list_value_length(indices).fill_null(0), dtype=np.int64)
    lengths[~present] = 0
    # flatten() honours each list's offsets, so sliced arrays and null rows come out right
    flat_indices = np.asarray(indices.filter(pa.array(present)).flatten(), dtype=np.uint32)
    flat_values = np.asarray(values.filter(pa.array(present)).flatten(), dtype=np.float32)
    return lengths, flat_indices, flat_values


class SparseIndex:
    """Postings of one sparse-vector key, by row key; dead rows are skipped until merged away."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.slot_keys = np.empty(0, np.int64)  # slot -> row key
        self.alive = np.empty(0, bool)  # slot -> still the row's current vector
        self.key_slot = np.full(0, NO_SLOT, np.int32)  # row key -> slot
        self.slots_used = 0
        self.seq = 0  # the last write this index reflects (set by its owner)
        self.saved_seq: int | None = None  # the write its saved file reflects (None: no file)
        self.dead_postings = False  # some chunk holds postings of dead slots (searches filter them)

    # -- writes -------------------------------------------------------------------------
    def remove(self, keys: np.ndarray) -> None:
        """Forget the vectors of `keys` (deleted rows, or rows that lost the key)."""
        keys = np.asarray(keys, np.int64)
        keys = keys[keys < len(self.key_slot)]
        slots = self.key_slot[keys]
        slots = slots[slots != NO_SLOT]
        if len(slots):
            self.alive[slots] = False
            self.dead_postings = True
        self.key_slot[keys] = NO_SLOT

    def replace(self, keys: np.ndarray, column: pa.ChunkedArray | pa.Array | None) -> None:
        """The rows `keys` now hold the vectors in `column` (null: no vector under this key)."""
        keys = np.asarray(keys, np.int64)
        self.remove(keys)
        if column is None or len(keys) == 0 or pa.types.is_null(column.type):
            return
        lengths, indices, values = flatten_sparse(column)
        holding = lengths > 0  # an empty vector shares no term with any query: no slot
        if not holding.any():
            return
        slots = self._new_slots(keys[holding])
        self._append(_chunk(indices, np.repeat(slots, lengths[holding]).astype(np.int32), values))

    def _new_slots(self, keys: np.ndarray) -> np.ndarray:
        start, end = self.slots_used, self.slots_used + len(keys)
        if end > len(self.slot_keys):
            size = max(end, 2 * len(self.slot_keys), 1024)
            self.slot_keys = np.resize(self.slot_keys, size)
            grown = np.zeros(size, bool)
            grown[: len(self.alive)] = self.alive
            self.alive = grown
        top = int(keys.max()) + 1
        if top > len(self.key_slot):
            grown_keys = np.full(max(top, 2 * len(self.key_slot)), NO_SLOT, np.int32)
            grown_keys[: len(self.key_slot)] = self.key_slot
            self.key_slot = grown_keys
        slots = np.arange(start, end, dtype=np.int32)
        self.slot_keys[start:end] = keys
        self.alive[start:end] = True
        self.key_slot[keys] = slots
        self.slots_used = end
        return slots

    def _append(self, chunk: Chunk) -> None:
        """Add a chunk, merging while the previous one is not much larger (size tiers)."""
        self.chunks.append(chunk)
        while len(self.chunks) > 1 and len(self.chunks[-2]) <= MERGE_RATIO * len(self.chunks[-1]):
            newer = self.chunks.pop()
            older = self.chunks.pop()
            self.chunks.append(self._merge([older, newer]))
        if len(self.chunks) == 1:  # merged (which drops dead postings) or the first chunk
            self.dead_postings = False

    def _merge(self, chunks: list[Chunk]) -> Chunk:
        terms = np.concatenate([c.terms for c in chunks])
        slots = np.concatenate([c.slots for c in chunks])
        values = np.concatenate([c.values for c in chunks])
        keep = self.alive[slots]
        return _chunk(terms[keep], slots[keep], values[keep])

    def compact(self) -> None:
        """One chunk of live postings only (before saving)."""
        if len(self.chunks) > 1 or (self.chunks and self.dead_postings):
            self.chunks = [self._merge(self.chunks)]
        self.dead_postings = False

    # -- reads --------------------------------------------------------------------------
    def postings(self, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Live postings of `terms`: (which query term, slot, value) arrays."""
        found_terms, found_slots, found_values = [], [], []
        positions = np.arange(len(terms), dtype=np.int32)
        for chunk in self.chunks:
            starts = np.searchsorted(chunk.terms, terms, side="left")
            ends = np.searchsorted(chunk.terms, terms, side="right")
            counts = ends - starts
            hit = np.flatnonzero(counts)
            if not len(hit):
                continue
            found_terms.append(np.repeat(positions[hit], counts[hit]))
            for a, b in zip(starts[hit].tolist(), ends[hit].tolist(), strict=True):
                found_slots.append(chunk.slots[a:b])
                found_values.append(chunk.values[a:b])
        if not found_slots:
            empty = np.empty(0, np.int32)
            return empty, empty, np.empty(0, np.float32)
        which = np.concatenate(found_terms)
        slots = np.concatenate(found_slots)
        values = np.concatenate(found_values)
        if self.dead_postings:
            live = self.alive[slots]
            return which[live], slots[live], values[live]
        return which, slots, values

    def search(
        self,
        terms: np.ndarray,
        weights: np.ndarray,
        limit: int,
        candidates: np.ndarray | None = None,
        documents: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `limit` best rows for the query (terms, weights): their keys and scores
        `1 - query · document`, lowest first, ties by key. `candidates` (sorted keys)
        restricts the rows scored; `documents`, when given, turns on BM25's inverse
        document frequencies over that many records."""
        terms = np.asarray(terms, np.uint32)
        weights = np.asarray(weights, np.float64)
        which, slots, values = self.postings(terms)
        if documents is not None:
            per_term = np.bincount(which, minlength=len(terms)).astype(np.float64)
            n = float(documents)
            frequency = np.minimum(per_term, n)
            weights = weights * np.log1p((n - frequency + 0.5) / (frequency + 0.5))
        if candidates is not None and len(slots):
            keys = self.slot_keys[slots]
            allowed = np.zeros(len(slots), bool)
            at = np.searchsorted(candidates, keys)
            inside = at < len(candidates)
            allowed[inside] = candidates[at[inside]] == keys[inside]
            which, slots, values = which[allowed], slots[allowed], values[allowed]
        if len(slots) == 0 or limit <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        contributions = weights[which] * values
        if len(slots) * SORT_BELOW < self.slots_used:  # few postings: sort them rather than sweep every slot
            touched, inverse = np.unique(slots, return_inverse=True)
            scores = 1.0 - np.bincount(inverse, weights=contributions, minlength=len(touched))
        else:
            touched, scores = self._best_slots(slots, contributions, limit, len(terms))
        keys = self.slot_keys[touched]
        if len(scores) > limit:
            threshold = np.partition(scores, limit - 1)[limit - 1]
            cut = np.flatnonzero(scores <= threshold)  # every tie at the boundary, then by key
            keys, scores = keys[cut], scores[cut]
        order = np.lexsort((keys, scores))[:limit]
        return keys[order], scores[order]

    def _best_slots(
        self, slots: np.ndarray, contributions: np.ndarray, limit: int, terms: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distinct slots holding at least the `limit` best scores (and all their ties),
        with their scores: dot products summed over every slot at once, then only the
        postings looked at (a slot has at most one posting per query term, so the best
        `limit * terms` postings hold the best `limit` slots)."""
        dots = np.bincount(slots, weights=contributions, minlength=self.slots_used)
        posting_scores = 1.0 - dots[slots]
        enough = limit * terms
        if len(slots) > enough:
            best = slots[np.argpartition(posting_scores, enough - 1)[:enough]]
            best_scores = 1.0 - dots[unique_keys(best)]
            if len(best_scores) > limit:
                threshold = np.partition(best_scores, limit - 1)[limit - 1]
                slots = slots[posting_scores <= threshold]
        touched = unique_keys(slots)
        return touched, 1.0 - dots[touched]

    def live_count(self) -> int:
        return int(self.alive[: self.slots_used].sum())

    # -- saving -------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Save the live postings by row key, as of `self.seq`."""
        self.compact()
        if self.chunks:
            chunk = self.chunks[0]
            table = pa.table({"term": chunk.terms, "key": self.slot_keys[chunk.slots], "value": chunk.values})
        else:
            table = pa.table({"term": pa.array([], pa.uint32()), "key": pa.array([], pa.int64()), "value": []})
            table = table.cast(pa.schema([("term", pa.uint32()), ("key", pa.int64()), ("value", pa.float32())]))
        sidecar.save_table(path, table, self.seq)
        self.saved_seq = self.seq

    @classmethod
    def load(cls, path: str) -> SparseIndex | None:
        """The index saved at `path`, or None when missing or damaged."""
        saved = sidecar.load_table(path)
        if saved is None:
            return None
        table, seq = saved
        index = cls()
        index.seq = index.saved_seq = seq
        keys = numpy_column(table, "key", np.int64)
        if len(keys):
            if keys.min() < 0:
                return None
            index._new_slots(unique_keys(keys))
            # saved sorted by term: one chunk as it is, no sort
            index.chunks = [
                Chunk(
                    numpy_column(table, "term", np.uint32),
                    index.key_slot[keys],
                    numpy_column(table, "value", np.float32),
                )
            ]
            if not (index.chunks[0].terms[1:] >= index.chunks[0].terms[:-1]).all():
                return None  # not the order save wrote: damaged
        return index

    @staticmethod
    def discard(path: str) -> None:
        sidecar.discard(path)


__all__ = ["SparseIndex", "flatten_sparse"]
