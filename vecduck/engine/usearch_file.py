"""A saved usearch file read directly: stored vectors by key, and the graph's unreachable nodes.

usearch's Python API returns vectors one array per key (microseconds each), too slow
for exact search over thousands of candidates. A saved dense index begins with its
vectors as one (rows x bytes-per-vector) block in slot order, followed by the HNSW
graph, whose nodes (in the same slot order) start with their key. Reading the keys
from the graph gives key -> slot, and the block, memory-mapped, gives the vectors.

The same graph shows which nodes the bottom level does not connect to the rest: stored,
but never found by a search. usearch's multi-threaded inserts leave a few such nodes
(unum-cloud/USearch#735), and HNSW's neighbour pruning some more in tight clusters;
`orphans` names them, so that the index can insert them again on one thread.

The layout is checked, not assumed: the node sizes must add up to the file's length
and the keys found must be exactly the index's keys; otherwise `map_vectors` and
`orphans` return None and callers do without.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

NODE_HEAD = 10  # key (uint64) + level (int16)
SLOT_BYTES = 4  # neighbour slots and counts are uint32
HEADER_GUESSES = (104, *range(0, 512, 8))
GRAPH_HEADER = 40  # the graph's own header (size, connectivity x2, max level, entry slot: uint64 each)
REMOVED = -1  # the key usearch writes over a removed node's (its "free key", all ones)
ORPHAN_CHUNK = 16_384  # nodes whose bottom-level links are gathered at once (~17 MB of offsets)


class FileVectors:
    """Vectors of a saved index's keys: `rows(keys)` for keys it holds."""

    def __init__(self, block: np.ndarray, slot_of_key: np.ndarray) -> None:
        self.block = block
        self.slot_of_key = slot_of_key

    def holds(self, keys: np.ndarray) -> np.ndarray:
        inside = keys < len(self.slot_of_key)
        found = np.zeros(len(keys), bool)
        found[inside] = self.slot_of_key[keys[inside]] >= 0
        return found

    def rows(self, keys: np.ndarray) -> np.ndarray:
        return self.block[self.slot_of_key[keys]]


@dataclass
class Layout:
    """Where a saved index's parts lie: its vectors block and each graph node."""

    data: np.ndarray  # the whole file, memory-mapped bytes
    rows: int
    vectors_end: int  # the vectors block is data[8:vectors_end]
    starts: np.ndarray  # byte offset of each node, in slot order
    keys: np.ndarray  # each slot's key (REMOVED for a removed node)
    entry_slot: int  # where every search starts


def _open(path: str, identity: tuple[int, ...] | None) -> np.ndarray | None:
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if identity is not None and (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) != identity:
                return None
            return np.memmap(f, dtype=np.uint8, mode="r")
    except (OSError, ValueError):
        return None


def _layout(data: np.ndarray, dimension: int, connectivity: int, expected_keys: np.ndarray) -> Layout | None:
    """The file's layout, or None unless it parses whole and holds exactly `expected_keys`."""
    if len(data) < 8:
        return None
    rows, row_bytes = (int(x) for x in np.frombuffer(data[:8], np.uint32))
    if row_bytes != 4 * dimension:
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


def map_vectors(
    path: str, identity: tuple[int, ...], dimension: int, connectivity: int, expected_keys: np.ndarray
) -> FileVectors | None:
    """Map the float32 vectors of the index saved at `path`, or None if the layout differs,
    the file holds removed nodes, or `path` no longer names the file of `identity`
    (another process saved since)."""
    data = _open(path, identity)
    if data is None:
        return None
    layout = _layout(data, dimension, connectivity, expected_keys)
    if layout is None or layout.rows != len(expected_keys):
        return None
    keys = layout.keys
    slot_of_key = np.full(int(keys.max()) + 1 if layout.rows else 0, -1, np.int64)
    slot_of_key[keys] = np.arange(layout.rows)
    block = np.frombuffer(data[8 : layout.vectors_end], np.float32).reshape(layout.rows, dimension)
    return FileVectors(block, slot_of_key)


def orphans(path: str, dimension: int, connectivity: int, expected_keys: np.ndarray) -> np.ndarray | None:
    """Keys of the live nodes of the index saved at `path` that the graph's bottom level
    (where every search ends) does not connect to its entry node; None if the file does
    not parse.

    A search reaches a node on the bottom level only by following links there from where
    it entered, so these are stored yet never returned: a node nothing links to, or a
    few that link only to one another."""
    data = _open(path, None)
    if data is None:
        return None
    layout = _layout(data, dimension, connectivity, expected_keys)
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
