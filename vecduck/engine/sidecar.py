"""Derived files beside the lake: one Arrow table per file, checked before use.

The read model saves what it derives from the lake (the rows without vectors, the
sparse index) so a new process need not derive it again. Each file is written by
atomic rename with a marker (`<file>.json`: the write number it reflects, its size and
xxh3 checksum); a missing, torn or garbled file reads as None and is derived again.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import pyarrow as pa

from vecduck.engine.index import file_digest, private_tmp


def save_table(path: str, table: pa.Table, seq: int) -> None:
    """Write `table` as of write number `seq` (one record batch, memory-mappable)."""
    table = table.replace_schema_metadata({"vecduck_seq": str(seq)}).combine_chunks()
    tmp = private_tmp(path)
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))
    marker = {"seq": seq, "rows": table.num_rows, "bytes": os.path.getsize(tmp), "xxh3": file_digest(tmp)}
    with open(tmp + ".json", "w") as f:
        json.dump(marker, f)
    os.replace(tmp, path)
    os.replace(tmp + ".json", path + ".json")


def load_table(path: str) -> tuple[pa.Table, int] | None:
    """The table saved at `path` and the write number it reflects, or None when the file
    is missing, torn or does not match its marker."""
    try:
        with open(path + ".json") as f:
            marker: dict[str, Any] = json.load(f)
        if os.path.getsize(path) != marker["bytes"] or file_digest(path) != marker["xxh3"]:
            return None
        table = pa.ipc.open_file(pa.memory_map(path)).read_all()
        if table.num_rows != marker["rows"] or table.schema.metadata.get(b"vecduck_seq") != str(marker["seq"]).encode():
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException):
        return None
    return table.replace_schema_metadata(None), int(marker["seq"])


def saved_seq(path: str) -> int | None:
    """The write number a saved file's marker records (None: no marker), unchecked."""
    try:
        with open(path + ".json") as f:
            return int(json.load(f)["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def discard(path: str) -> None:
    """Remove a saved table and its marker (either may be missing)."""
    for name in (path, path + ".json"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
