"""Torn or damaged files: a bad index sidecar is rebuilt from the table, an unreadable data
file is a clear `CorruptedDataError`; neither ever yields wrong results."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import spawn

import vecduck
from vecduck.engine.index import IndexSettings, VectorIndex
from vecduck.errors import CorruptedDataError

DIM = 8

# 400 rows reach the lake and the index file (close), then 30 adds, 10 updates and 10
# deletes stay in the write buffer and the process dies without saving the index: on
# disk the index is behind the table, as after a crash.
BUILD = textwrap.dedent(
    """
    import os, sys, numpy as np, vecduck
    path = sys.argv[1]
    rng = np.random.default_rng(7)
    client = vecduck.PersistentClient(path=path)
    col = client.create_collection("torn", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(400)], embeddings=rng.random((400, 8), dtype=np.float32),
            metadatas=[{"g": i % 4, "s": f"v{i}"} for i in range(400)], documents=[f"doc {i}" for i in range(400)])
    client.close()
    client = vecduck.PersistentClient(path=path)
    col = client.get_collection("torn", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(400, 430)], embeddings=rng.random((30, 8), dtype=np.float32),
            metadatas=[{"g": i % 4} for i in range(400, 430)])
    col.update(ids=[f"r{i}" for i in range(10)], embeddings=rng.random((10, 8), dtype=np.float32),
               metadatas=[{"g": 9} for _ in range(10)])
    col.delete(ids=[f"r{i}" for i in range(100, 110)])
    os._exit(0)
    """
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A folder whose index is behind its table, and what a reader must see in it."""
    root = tmp_path_factory.mktemp("torn")
    folder = root / "pristine"
    proc = spawn(BUILD, str(folder))
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    reference = root / "reference"
    shutil.copytree(folder, reference)
    return folder, observe(reference)


def observe(folder: Path) -> dict[str, Any]:
    """Everything a reader sees: records, and each record's own nearest neighbour."""
    client = vecduck.PersistentClient(path=folder)
    try:
        col = client.get_collection("torn", embedding_function=None)
        got = col.get(include=["embeddings", "metadatas", "documents"])
        vectors = np.asarray(got["embeddings"], dtype=np.float32)
        hits = col.query(query_embeddings=vectors, n_results=1, include=["distances"])
        nine = col.query(query_embeddings=vectors[:1], n_results=50, where={"g": 9})
        return {
            "count": col.count(),
            "ids": got["ids"],
            "vectors": vectors,
            "metadatas": got["metadatas"],
            "documents": got["documents"],
            "nearest": [ids[0] for ids in hits["ids"]],
            "distances": [d[0] for d in hits["distances"]],
            "g9": sorted(nine["ids"][0]),
        }
    finally:
        client.close()


def index_files(folder: Path) -> tuple[Path, Path]:
    (index,) = (folder / "index").glob("*.usearch")
    return index, Path(str(index) + ".json")


def data_files(folder: Path) -> list[Path]:
    return sorted((folder / "data").rglob("*.parquet"))


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def xor_range(path: Path, start: float, length: int) -> None:
    """Flip bytes in place (same size, so only a checksum can tell)."""
    data = bytearray(path.read_bytes())
    at = int(len(data) * start)
    for i in range(at, min(len(data), at + length)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def edit_marker(path: Path, **changes: Any) -> None:
    marker = json.loads(path.read_text())
    marker.update(changes)
    path.write_text(json.dumps(marker))


INDEX_DAMAGE: dict[str, Callable[[Path, Path], None]] = {
    "truncated-half": lambda index, marker: truncate(index, 0.5),
    "truncated-empty": lambda index, marker: truncate(index, 0.0),
    "header-flipped": lambda index, marker: xor_range(index, 0.0, 64),
    "graph-flipped": lambda index, marker: xor_range(index, 0.5, 4000),  # usearch crashed on this
    "vectors-zeroed": lambda index, marker: xor_range(index, 0.1, 1500),  # usearch read wrong vectors
    "tail-flipped": lambda index, marker: xor_range(index, 0.98, 200),
    "index-missing": lambda index, marker: index.unlink(),
    "marker-missing": lambda index, marker: marker.unlink(),
    "marker-garbage": lambda index, marker: marker.write_bytes(b"\x00{not json"),
    "marker-truncated": lambda index, marker: truncate(marker, 0.5),
    "marker-wrong-count": lambda index, marker: edit_marker(marker, count=3),
    "marker-wrong-dimension": lambda index, marker: edit_marker(marker, dimension=4),
    "marker-wrong-space": lambda index, marker: edit_marker(marker, space="ip"),
    "marker-no-checksum": lambda index, marker: edit_marker(marker, crc32=None),
    "torn-save-leftover": lambda index, marker: Path(str(index) + ".tmp").write_bytes(os.urandom(5000)),
}


def assert_same(seen: dict[str, Any], expected: dict[str, Any]) -> None:
    assert seen["count"] == expected["count"] == 420
    assert seen["ids"] == expected["ids"]
    np.testing.assert_array_equal(seen["vectors"], expected["vectors"])
    assert seen["metadatas"] == expected["metadatas"]
    assert seen["documents"] == expected["documents"]
    assert seen["nearest"] == expected["ids"], "a record is not its own nearest neighbour"
    assert max(seen["distances"]) < 1e-5
    assert seen["g9"] == expected["g9"] == [f"r{i}" for i in range(10)]


@pytest.mark.parametrize("damage", sorted(INDEX_DAMAGE))
def test_damaged_index_is_rebuilt_from_the_table(
    pristine: tuple[Path, dict[str, Any]], tmp_path: Path, damage: str
) -> None:
    source, expected = pristine
    folder = tmp_path / "copy"
    shutil.copytree(source, folder)
    INDEX_DAMAGE[damage](*index_files(folder))
    assert_same(observe(folder), expected)
    # close() saved a whole, checksummed index again; it opens as is next time
    index, marker = index_files(folder)
    reopened = VectorIndex(IndexSettings(DIM), str(index))
    assert reopened.load(), f"the index saved after repair does not load: {marker.read_text()}"
    assert len(reopened) == 420
    assert_same(observe(folder), expected)


DATA_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda path: truncate(path, 0.5),
    "emptied": lambda path: truncate(path, 0.0),
    "random-bytes": lambda path: path.write_bytes(os.urandom(path.stat().st_size)),
    "footer-flipped": lambda path: xor_range(path, 0.97, 150),
    "header-and-metadata-flipped": lambda path: (xor_range(path, 0.0, 4), xor_range(path, 0.995, 64)),
    "missing": lambda path: path.unlink(),
}


@pytest.mark.parametrize(
    ("damage", "index"),
    [(damage, "kept") for damage in sorted(DATA_DAMAGE)] + [("truncated", "deleted"), ("missing", "deleted")],
)
def test_unreadable_data_file_is_a_clear_error(
    pristine: tuple[Path, dict[str, Any]], tmp_path: Path, damage: str, index: str
) -> None:
    source, _expected = pristine
    folder = tmp_path / "copy"
    shutil.copytree(source, folder)
    (data,) = data_files(folder)
    DATA_DAMAGE[damage](data)
    if index == "deleted":
        for path in index_files(folder):
            path.unlink()
    client = vecduck.PersistentClient(path=folder)
    try:
        col = client.get_collection("torn", embedding_function=None)
        for call in (col.count, lambda: col.get(ids=["r1"]), lambda: col.query(query_embeddings=[[0.0] * DIM])):
            with pytest.raises(CorruptedDataError, match="missing or damaged") as raised:
                call()
            assert "restored from a backup" in str(raised.value)
        # the folder's other collections stay usable
        other = client.create_collection("fine", embedding_function=None)
        other.add(ids=["a"], embeddings=[[1.0] * DIM])
        assert other.get(ids=["a"])["ids"] == ["a"]
    finally:
        # the buffered writes of "torn" cannot reach its table: close says so, and keeps them
        with pytest.raises(CorruptedDataError):
            client.close()
    client = vecduck.PersistentClient(path=folder)
    try:
        assert client.get_collection("fine", embedding_function=None).get(ids=["a"])["ids"] == ["a"]
        with pytest.raises(CorruptedDataError):
            client.get_collection("torn", embedding_function=None).count()
    finally:
        with pytest.raises(CorruptedDataError):
            client.close()
