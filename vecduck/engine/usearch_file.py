"""Stored vectors by key, read zero-copy from a saved usearch file.

usearch's Python API returns vectors one array per key (microseconds each), too slow
for exact search over thousands of candidates. A saved dense index begins with its
vectors as one (rows x bytes-per-vector) block in slot order, followed by the HNSW
graph, whose nodes (in the same slot order) start with their key. Reading the keys
from the graph gives key -> slot, and the block, memory-mapped, gives the vectors.

The layout is checked, not assumed: the node sizes must add up to the file's length
and the keys found must be exactly the index's keys; otherwise `map_vectors` returns
None and callers use the slow path.
"""

from __future__ import annotations

import os

import numpy as np

NODE_HEAD = 10  # key (uint64) + level (int16)
SLOT_BYTES = 4  # neighbour slots and counts are uint32
HEADER_GUESSES = (104, *range(0, 512, 8))


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


def map_vectors(
    path: str, identity: tuple[int, ...], dimension: int, connectivity: int, expected_keys: np.ndarray
) -> FileVectors | None:
    """Map the float32 vectors of the index saved at `path`, or None if the layout differs
    or `path` no longer names the file of `identity` (another process saved since)."""
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) != identity:
                return None
            data = np.memmap(f, dtype=np.uint8, mode="r")
    except (OSError, ValueError):
        return None
    if len(data) < 8:
        return None
    rows, row_bytes = (int(x) for x in np.frombuffer(data[:8], np.uint32))
    if row_bytes != 4 * dimension or rows != len(expected_keys):
        return None
    graph = 8 + rows * row_bytes
    base_bytes = SLOT_BYTES + SLOT_BYTES * 2 * connectivity
    level_bytes = SLOT_BYTES + SLOT_BYTES * connectivity
    for header in HEADER_GUESSES:
        levels_at = graph + header
        if levels_at + 2 * rows > len(data):
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
        if not np.array_equal(np.sort(keys), np.sort(expected_keys)):
            return None
        slot_of_key = np.full(int(keys.max()) + 1 if rows else 0, -1, np.int64)
        slot_of_key[keys] = np.arange(rows)
        block = np.frombuffer(data[8:graph], np.float32).reshape(rows, dimension)
        return FileVectors(block, slot_of_key)
    return None
