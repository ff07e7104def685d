"""HTML summaries for notebooks: clients, collections and results render as compact tables.

Jupyter calls `_repr_html_` on the object a cell returns; the api classes delegate here
so that the api layer stays free of presentation code. Everything shown is escaped.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from vecduck.api.client import Client
    from vecduck.api.collection import Collection

MAX_ROWS = 20
MAX_TEXT = 80

_STYLE = "border-collapse:collapse;font-size:12px"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _table(header: list[str], rows: list[list[Any]], caption: str = "") -> str:
    head = "".join(f'<th style="{_CELL}">{_esc(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{_esc(c)}</td>' for c in row) + "</tr>" for row in rows)
    cap = f'<caption style="text-align:left;font-weight:bold">{caption}</caption>' if caption else ""
    return f'<table style="{_STYLE}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def collection_disk_bytes(folder: str, collection_id: str) -> int:
    """Bytes on disk of a collection: its Parquet files plus its index files."""
    total = 0
    table_dir = os.path.join(folder, "data", "main", "c_" + collection_id.replace("-", ""))
    for root, _dirs, names in os.walk(table_dir):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names if os.path.exists(os.path.join(root, n)))
    for suffix in (".usearch", ".usearch.json"):
        path = os.path.join(folder, "index", collection_id + suffix)
        if os.path.exists(path):
            total += os.path.getsize(path)
    return total


def _disk(store: Any, collection_id: str) -> str:
    """A local folder's bytes for the collection; a shared lake's data are elsewhere."""
    folder = getattr(store.location, "folder", None)
    return "shared lake" if folder is None else _size(collection_disk_bytes(folder, collection_id))


def _space(collection: Collection) -> str:
    hnsw = (collection.configuration or {}).get("hnsw") or {}
    return str(hnsw.get("space", "l2"))


def collection_html(collection: Collection) -> str:
    """Name, count, dimension, space, metadata columns with their types, size on disk."""
    store = collection._store
    record = store.get_collection_by_id(collection._record.id)
    facts = [
        ["name", collection.name],
        ["records", f"{collection.count():,}"],
        ["dimension", collection.dimension if collection.dimension is not None else "—"],
        ["space", _space(collection)],
        ["on disk", _disk(store, record.id)],
    ]
    columns = [[column, key, kind] for (key, kind), column in sorted(record.columns.items(), key=lambda x: x[1])]
    parts = [_table(["", ""], facts, caption=f"vecduck collection {_esc(collection.name)}")]
    if columns:
        parts.append(_table(["column", "metadata key", "type"], columns, caption="metadata columns"))
    return "<div>" + "".join(parts) + "</div>"


def client_html(client: Client) -> str:
    """Where the data lives and one line per collection."""
    where = "in memory" if client.path is None else client.path
    rows = []
    for collection in client.list_collections():
        rows.append([collection.name, f"{collection.count():,}", collection.dimension or "—", _space(collection)])
    caption = f"vecduck client ({_esc(where)}): {len(rows)} collection{'s' if len(rows) != 1 else ''}"
    return _table(["collection", "records", "dimension", "space"], rows, caption=caption)


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple | np.ndarray):
        items = list(value)
        shown = ", ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in items[:4])
        return f"[{shown}{', …' if len(items) > 4 else ''}]" + (f" ({len(items)})" if len(items) > 4 else "")
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def arrow_html(table: pa.Table, caption: str = "") -> str:
    """The first rows of an Arrow table; long texts and vectors shortened."""
    head = table.slice(0, MAX_ROWS).to_pylist()
    rows = [[_cell(row[name]) for name in table.column_names] for row in head]
    more = f" (first {MAX_ROWS} of {table.num_rows:,} rows)" if table.num_rows > MAX_ROWS else ""
    return _table(table.column_names, rows, caption=_esc(caption) + more)


def result_html(result: dict[str, Any]) -> str:
    """A get or query result as a table (a query: one row per hit)."""
    from vecduck.frames import result_to_arrow

    kind = "query" if "distances" in result else "get"
    table = result_to_arrow(result)
    return arrow_html(table, caption=f"{kind} result: {table.num_rows} row{'s' if table.num_rows != 1 else ''}")


__all__ = ["arrow_html", "client_html", "collection_disk_bytes", "collection_html", "result_html"]
