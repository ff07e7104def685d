"""The read model's rows by key: the few-keys path (values read from the Arrow buffers)
must agree with an Arrow take, over the base, the tail, nulls, and merges."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from vecduck.engine.rowstore import FEW_KEYS, RowStore

COLUMNS = ["id", "document", "metadata"]


def rows(keys: range, tag: str) -> pa.Table:
    return pa.table(
        {
            "id": [f"id{k}" for k in keys],
            "_key": pa.array(list(keys), pa.int64()),
            "_seq": pa.array([1] * len(keys), pa.int64()),
            "document": [None if k % 3 == 0 else f"doc {k} {tag} é" for k in keys],
            "metadata": [None if k % 5 == 0 else f'{{"k": {k}, "tag": "{tag}"}}' for k in keys],
        }
    )


def expected(store: RowStore, keys: np.ndarray) -> dict[str, list[bytes | None]]:
    table = store.take(keys, COLUMNS)
    return {name: [None if v is None else v.encode() for v in table.column(name).to_pylist()] for name in COLUMNS}


def test_few_keys_read_from_buffers_match_take() -> None:
    store = RowStore()
    store.apply(rows(range(0, 3_000), "base"), np.empty(0, np.int64))
    rng = np.random.default_rng(1)
    keys = rng.choice(3_000, 10, replace=False)
    assert store.strings(keys, COLUMNS) == expected(store, keys)

    # a tail chunk, and a rewrite of base keys that now live in the tail
    store.apply(rows(range(3_000, 3_100), "tail"), np.empty(0, np.int64))
    store.apply(rows(range(0, 10), "rewritten"), np.empty(0, np.int64))
    mixed = np.array([5, 3_050, 2_999, 0, 3_099, 7])
    got = store.strings(mixed, COLUMNS)
    assert got == expected(store, mixed)
    assert got["document"][0] == "doc 5 rewritten é".encode() and got["document"][3] is None

    # deleted keys are gone from `keys()`; a merge folds the tail into a new base
    store.apply(rows(range(3_100, 3_100 + 2_048), "more"), np.array([1, 2], np.int64))
    assert not store.tail  # merged
    live = store.keys()
    sample = rng.choice(live, 50, replace=False)
    assert store.strings(sample, COLUMNS) == expected(store, sample)

    assert store.strings(live[: FEW_KEYS + 1], COLUMNS) is None  # many keys: the caller takes
