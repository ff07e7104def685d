"""The saved index file read directly: the float32 vectors saved after the graph, and the
graph's unreachable nodes.

A saved index is usearch's own file (its int8 vectors in slot order, then the HNSW graph,
whose nodes start with their key), followed by what usearch does not keep: the float32
vectors, in key order, and their keys (`append_vectors`; usearch reads its part and ignores
the rest). The marker records where each part starts. Memory-mapped, the float32 block
serves the exact re-ranking of the graph's candidates without reading the file first.

The graph shows which nodes the bottom level does not connect to the rest: stored, but
never found by a search. usearch's multi-threaded inserts leave a few such nodes
(unum-cloud/USearch#735), and HNSW's neighbour pruning some more in tight clusters;
`orphans` names them, so that the index can insert them again on one thread. The layout is
checked, not assumed: the node sizes must add up to the graph's length and the keys found
must be exactly the index's keys; otherwise `orphans` returns None and callers do without.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

NODE_HEAD = 10  # key (uint64) + level (int16)
SLOT_BYTES = 4  # neighbour slots and counts are uint32
HEADER_GUESSES = (104, *range(0, 512, 8))
GRAPH_HEADER = 40  # the graph's own header (size, connectivity x2, max level, entry slot: uint64 each)
REMOVED = -1  # the key usearch writes over a removed node's (its "free key", all ones)
ALIGN = 64  # the float32 block starts on a 64-byte boundary after the graph
WRITE_VALUES = 1 << 22  # float32 values appended per write (16 MB)
BULK_ROWS = 1_024  # vectors asked at once from which a nearby run is read with pread
ORPHAN_CHUNK = 16_384  # nodes whose bottom-level links are gathered at once (~17 MB of offsets)


class FileVectors:
    """The float32 vectors saved in an index file: `rows(keys)` for keys it holds."""

    def __init__(self, source: BinaryIO, block: np.ndarray, keys: np.ndarray, vectors_at: int) -> None:
        # a descriptor of its own, closed with this object: bulk reads come from this very
        # file even once another save has replaced it
        self.fd = os.dup(source.fileno())
        source.close()
        self.block = block
        self.keys = keys
        self.vectors_at = vectors_at
        self.slot_of_key = np.full(int(keys[-1]) + 1 if len(keys) else 0, -1, np.int64)
        self.slot_of_key[keys] = np.arange(len(keys))

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self.fd)

    def holds(self, keys: np.ndarray) -> np.ndarray:
        inside = (keys >= 0) & (keys < len(self.slot_of_key))
        found = np.zeros(len(keys), bool)
        found[inside] = self.slot_of_key[keys[inside]] >= 0
        return found

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """The vectors of `keys` (all held). A long run of nearby slots is read with one
        pread, not through the map: the pages read stay out of the process's resident memory."""
        slots = self.slot_of_key[keys]
        if len(slots) >= BULK_ROWS:
            low, high = int(slots.min()), int(slots.max()) + 1
            if high - low <= 2 * len(slots):
                span = np.empty((high - low, self.block.shape[1]), np.float32)
                if os.preadv(self.fd, [span], self.vectors_at + low * span.shape[1] * 4) == span.nbytes:
                    return span[slots - low]
        return self.block[slots]


def append_vectors(
    path: str, keys: np.ndarray, rows: Callable[[np.ndarray], np.ndarray], dimension: int
) -> dict[str, int]:
    """Append to the usearch file at `path` the float32 vectors of `keys` (`rows` gives
    them, asked a slice of keys at a time) in key order, then the keys; the offsets, for the
    marker."""
    keys = np.sort(np.asarray(keys, np.int64))
    with open(path, "r+b") as f:
        graph_bytes = f.seek(0, os.SEEK_END)
        vectors_at = -(-graph_bytes // ALIGN) * ALIGN
        f.write(bytes(vectors_at - graph_bytes))
        step = max(1, WRITE_VALUES // max(1, dimension))
        for start in range(0, len(keys), step):
            f.write(np.ascontiguousarray(rows(keys[start : start + step]), np.float32).tobytes())
        keys_at = f.tell()
        f.write(keys.tobytes())
    return {"graph_bytes": graph_bytes, "vectors_at": vectors_at, "keys_at": keys_at, "count": len(keys)}


def map_vectors(path: str, identity: tuple[int, ...], parts: dict[str, int], dimension: int) -> FileVectors | None:
    """Map the float32 vectors saved in the index file at `path`, or None when `path` no
    longer names the file of `identity` (another process saved since) or the parts do not fit."""
    opened = _open(path, identity)
    if opened is None:
        return None
    source, data = opened
    count, vectors_at, keys_at = parts["count"], parts["vectors_at"], parts["keys_at"]
    if vectors_at + 4 * dimension * count != keys_at or keys_at + 8 * count != len(data):
        source.close()
        return None
    keys = data[keys_at:].view(np.int64)
    if count > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        source.close()
        return None
    block = data[vectors_at:keys_at].view(np.float32).reshape(count, dimension)
    return FileVectors(source, block, np.asarray(keys), vectors_at)


@dataclass
class Layout:
    """Where a saved index's parts lie: its vectors block and each graph node."""

    data: np.ndarray  # the whole file, memory-mapped bytes
    rows: int
    vectors_end: int  # the vectors block is data[8:vectors_end]
    starts: np.ndarray  # byte offset of each node, in slot order
    keys: np.ndarray  # each slot's key (REMOVED for a removed node)
    entry_slot: int  # where every search starts


def _open(path: str, identity: tuple[int, ...] | None) -> tuple[BinaryIO, np.ndarray] | None:
    """The file open, and all of it memory-mapped (None if it is not the file of `identity`)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (returned open)
    except OSError:
        return None
    try:
        stat = os.fstat(f.fileno())
        if identity is not None and (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) != identity:
            f.close()
            return None
        return f, np.memmap(f, dtype=np.uint8, mode="r")
    except (OSError, ValueError):
        f.close()
        return None


def _layout(data: np.ndarray, vector_bytes: int, connectivity: int, expected_keys: np.ndarray) -> Layout | None:
    """The graph's layout (`data` is usearch's file, nothing after it), or None unless it
    parses whole and holds exactly `expected_keys`."""
    if len(data) < 8:
        return None
    rows, row_bytes = (int(x) for x in np.frombuffer(data[:8], np.uint32))
    if row_bytes != vector_bytes:
        return None
    graph = 8 + rows * row_bytes
    base_bytes = SLOT_BYTES + SLOT_BYTES * 2 * connectivity
    level_bytes = SLOT_BYTES + SLOT_BYTES * connectivity
    for header in HEADER_GUESSES:
        levels_at = graph + header
        if header < GRAPH_HEADER or levels_at + 2 * rows > len(data):
            continue
        levels = np.frombuffer(data[levels_at : levels_at + 2 * rows], np.int16)
        if rows and (levels.min() < 0 or levels.max() > 64):
            continue
        sizes = NODE_HEAD + base_bytes + levels.astype(np.int64) * level_bytes
        nodes_at = levels_at + 2 * rows
        if nodes_at + int(sizes.sum()) != len(data):
            continue
        starts = nodes_at + np.concatenate([[0], np.cumsum(sizes)[:-1]]) if rows else np.empty(0, np.int64)
        keys = data[starts[:, None] + np.arange(8)[None, :]].copy().view(np.int64).ravel()
        if not np.array_equal(np.sort(keys[keys != REMOVED]), np.sort(expected_keys)):
            return None
        entry_slot = int(np.frombuffer(data[levels_at - 8 : levels_at], np.uint64)[0])
        if rows and entry_slot >= rows:
            return None
        return Layout(data, rows, graph, starts, keys, entry_slot)
    return None


def orphans(path: str, vector_bytes: int, connectivity: int, expected_keys: np.ndarray) -> np.ndarray | None:
    """Keys of the live nodes of the index saved at `path` that the graph's bottom level
    (where every search ends) does not connect to its entry node; None if the file does
    not parse.

    A search reaches a node on the bottom level only by following links there from where
    it entered, so these are stored yet never returned: a node nothing links to, or a
    few that link only to one another."""
    opened = _open(path, None)
    if opened is None:
        return None
    source, data = opened
    source.close()  # the map stays valid
    layout = _layout(data, vector_bytes, connectivity, expected_keys)
    if layout is None:
        return None
    links = _bottom_links(layout, connectivity)
    if links is None:
        return None
    first, targets = links
    reached = np.zeros(layout.rows, bool)
    frontier = np.array([layout.entry_slot], np.int64) if layout.rows else np.empty(0, np.int64)
    reached[frontier] = True
    while len(frontier):  # breadth first, a level of the search at a time
        begins, counts = first[frontier], first[frontier + 1] - first[frontier]
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        found = targets[np.repeat(begins, counts) + offsets]
        frontier = np.unique(found[~reached[found]])
        reached[frontier] = True
    return layout.keys[~reached & (layout.keys != REMOVED)]


def _bottom_links(layout: Layout, connectivity: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Every node's bottom-level links as (first, targets): node i links to
    targets[first[i]:first[i + 1]]; None if a count or a target is out of range."""
    base = 2 * connectivity
    span = np.arange(SLOT_BYTES * (1 + base))
    counts = np.empty(layout.rows, np.int64)
    parts = []
    for start in range(0, layout.rows, ORPHAN_CHUNK):
        starts = layout.starts[start : start + ORPHAN_CHUNK]
        words = layout.data[starts[:, None] + NODE_HEAD + span[None, :]].copy().view(np.uint32)
        chunk_counts = words[:, 0].astype(np.int64)
        if np.any(chunk_counts > base):
            return None
        counts[start : start + len(starts)] = chunk_counts
        parts.append(words[:, 1:][np.arange(base)[None, :] < chunk_counts[:, None]].astype(np.int32))
    targets = np.concatenate(parts) if parts else np.empty(0, np.int32)
    if len(targets) and targets.max() >= layout.rows:
        return None
    return np.concatenate([[0], np.cumsum(counts)]), targets
