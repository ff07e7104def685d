"""Hostile search payloads over HTTP: each gets a 4xx with Chroma's error body, never a 500,
and the server goes on answering (and stored records are untouched)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import Server

SPARSE = {"#type": "sparse_vector", "indices": [1, 2], "values": [0.5, 0.5]}


def knn(**fields: Any) -> dict[str, Any]:
    return {"$knn": {"query": [0.1, 0.2, 0.3], **fields}}


class Raw(str):
    """A payload given as JSON text (too deep for the json module to encode)."""


def nested(depth: int) -> Raw:
    return Raw('{"$abs": ' * depth + '{"$knn": {"query": [0.1, 0.2, 0.3]}}' + "}" * depth)


def nested_where(depth: int) -> Raw:
    return Raw('{"$and": [' * depth + '{"a": 1}' + "]}" * depth)


def as_python(raw: Raw) -> Any:
    """A Raw payload as Python objects, built iteratively (json.loads recurses too deep)."""
    if raw.startswith('{"$abs": '):
        node: Any = {"$knn": {"query": [0.1, 0.2, 0.3]}}
        for _ in range(raw.count('{"$abs": ')):
            node = {"$abs": node}
        return node
    if raw.startswith('{"$and": ['):
        node = {"a": 1}
        for _ in range(raw.count('{"$and": [')):
            node = {"$and": [node]}
        return node
    return json.loads(raw)


HOSTILE: list[tuple[str, Any]] = [
    ("unknown rank operator", {"rank": {"$pow": [knn(), {"$val": 2}]}}),
    ("two operators in one rank", {"rank": {"$val": 1, "$knn": {"query": [1, 2, 3]}}}),
    ("rank not an object", {"rank": [1, 2]}),
    ("rank a number", {"rank": 3}),
    ("$val not a number", {"rank": {"$val": "1"}}),
    ("$val a boolean", {"rank": {"$val": True}}),
    ("$knn without query", {"rank": {"$knn": {"limit": 3}}}),
    ("$knn query not numbers", {"rank": {"$knn": {"query": ["a", "b", "c"]}}}),
    ("$knn empty query", {"rank": {"$knn": {"query": []}}}),
    ("$knn nested query", {"rank": {"$knn": {"query": [[1, 2, 3]]}}}),
    ("$knn zero limit", {"rank": knn(limit=0)}),
    ("$knn negative limit", {"rank": knn(limit=-5)}),
    ("$knn huge limit", {"rank": knn(limit=10**30)}),
    ("$knn float limit", {"rank": knn(limit=2.5)}),
    ("$knn return_rank not bool", {"rank": knn(return_rank="yes")}),
    ("$knn default not a number", {"rank": knn(default="x")}),
    ("$knn key not a string", {"rank": knn(key=7)}),
    ("$knn on #document", {"rank": knn(key="#document")}),
    ("dense query on a sparse key", {"rank": knn(key="sparse")}),
    ("sparse query on #embedding", {"rank": {"$knn": {"query": SPARSE}}}),
    ("text query the server cannot embed", {"rank": {"$knn": {"query": "hello"}}}),
    ("wrong dimension", {"rank": {"$knn": {"query": [0.1] * 7}}}),
    ("sparse unsorted indices", {"rank": {"$knn": {"query": {**SPARSE, "indices": [2, 1]}, "key": "sparse"}}}),
    ("sparse duplicate indices", {"rank": {"$knn": {"query": {**SPARSE, "indices": [1, 1]}, "key": "sparse"}}}),
    ("sparse negative index", {"rank": {"$knn": {"query": {**SPARSE, "indices": [-1, 2]}, "key": "sparse"}}}),
    ("sparse index beyond u32", {"rank": {"$knn": {"query": {**SPARSE, "indices": [1, 2**40]}, "key": "sparse"}}}),
    ("sparse length mismatch", {"rank": {"$knn": {"query": {**SPARSE, "values": [1.0]}, "key": "sparse"}}}),
    ("sparse with a wrong tag", {"rank": {"$knn": {"query": {**SPARSE, "#type": "dense"}, "key": "sparse"}}}),
    ("$sum not a list", {"rank": {"$sum": knn()}}),
    ("$sum empty", {"rank": {"$sum": []}}),
    ("$sub without right", {"rank": {"$sub": {"left": knn()}}}),
    ("$div extra field", {"rank": {"$div": {"left": knn(), "right": {"$val": 2}, "x": 1}}}),
    ("deep rank nesting", {"rank": nested(500)}),
    ("deep filter nesting", {"filter": nested_where(500)}),
    ("very deep rank nesting", {"rank": nested(100_000)}),
    ("unknown filter operator", {"filter": {"a": {"$like": "x%"}}}),
    ("filter operator at top", {"filter": {"$gt": 3}}),
    ("filter not an object", {"filter": "a = 1"}),
    ("#id with a number", {"filter": {"#id": {"$in": [1, 2]}}}),
    ("#id with $gt", {"filter": {"#id": {"$gt": "a"}}}),
    ("#document with $eq", {"filter": {"#document": {"$eq": "x"}}}),
    ("bad regex", {"filter": {"#document": {"$regex": "(unclosed"}}}),
    ("$in empty", {"filter": {"a": {"$in": []}}}),
    ("limit negative", {"limit": {"limit": -1}}),
    ("offset negative", {"limit": {"offset": -1}}),
    ("limit huge", {"limit": {"limit": 10**40}}),
    ("limit a string", {"limit": {"limit": "10"}}),
    ("limit unknown field", {"limit": {"limit": 1, "page": 2}}),
    ("select not a list", {"select": {"keys": "#document"}}),
    ("select numbers", {"select": {"keys": [1, 2]}}),
    ("group_by without aggregate", {"rank": knn(), "group_by": {"keys": ["a"]}}),
    (
        "group_by unknown aggregate",
        {"rank": knn(), "group_by": {"keys": ["a"], "aggregate": {"$top_k": {"keys": ["#score"], "k": 1}}}},
    ),
    (
        "group_by k zero",
        {"rank": knn(), "group_by": {"keys": ["a"], "aggregate": {"$min_k": {"keys": ["#score"], "k": 0}}}},
    ),
    (
        "group_by keys empty",
        {"rank": knn(), "group_by": {"keys": [], "aggregate": {"$min_k": {"keys": ["#score"], "k": 1}}}},
    ),
    ("lone surrogate in a filter", {"filter": Raw('{"a": "\\ud800"}')}),
    ("search not an object", [1, 2, 3]),
]


@pytest.fixture(scope="module")
def target(strict_server: Server) -> tuple[Server, str, dict[str, Any]]:
    """A collection with 3-d vectors, metadata and a sparse key, and its search URL."""
    base = f"{strict_server.url}/api/v2/tenants/default_tenant/databases/default_database"
    made = httpx.post(f"{base}/collections", json={"name": "hostile-search", "configuration": {}}).json()
    rng = np.random.default_rng(0)
    records = {
        "ids": [f"r{i}" for i in range(50)],
        "embeddings": rng.random((50, 3)).round(4).tolist(),
        "metadatas": [{"a": i % 5, "sparse": {**SPARSE, "indices": [i % 7, 7 + i % 3]}} for i in range(50)],
        "documents": [f"document number {i}" for i in range(50)],
    }
    assert httpx.post(f"{base}/collections/{made['id']}/add", json=records).status_code == 201
    return strict_server, f"{base}/collections/{made['id']}", records


@pytest.mark.parametrize(("case", "payload"), HOSTILE, ids=[case for case, _ in HOSTILE])
def test_hostile_search_is_refused_with_4xx(
    target: tuple[Server, str, dict[str, Any]], case: str, payload: Any
) -> None:
    server, url, _records = target
    if isinstance(payload, dict) and any(isinstance(v, Raw) for v in payload.values()):
        parts = ", ".join(f'"{k}": {v if isinstance(v, Raw) else json.dumps(v)}' for k, v in payload.items())
        answer = httpx.post(
            f"{url}/search",
            content='{"searches": [{' + parts + "}]}",
            headers={"content-type": "application/json"},
            timeout=30,
        )
    else:
        answer = httpx.post(f"{url}/search", json={"searches": [payload]}, timeout=30)
    assert 400 <= answer.status_code < 500, (case, answer.status_code, answer.text)
    body = answer.json()
    assert isinstance(body.get("error"), str) and body.get("message"), body
    assert server.alive()


@pytest.mark.parametrize(
    "body",
    [
        b'{"searches": [{"rank": {"$val": NaN}}]}',
        b'{"searches": [{"rank": {"$knn": {"query": [1, 2, Infinity]}}}]}',
        b'{"searches": {"rank": null}}',
        b'{"searches": [], "read_level": "everything"}',
        b"[1, 2]",
        b"not json",
    ],
)
def test_malformed_search_bodies_are_refused(target: tuple[Server, str, dict[str, Any]], body: bytes) -> None:
    server, url, _records = target
    answer = httpx.post(f"{url}/search", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
    assert server.alive()


def test_hostile_searches_leave_records_untouched(target: tuple[Server, str, dict[str, Any]]) -> None:
    _server, url, records = target
    got = httpx.post(f"{url}/get", json={"include": ["embeddings", "documents"]}).json()
    assert got["ids"] == records["ids"]
    assert got["documents"] == records["documents"]
    np.testing.assert_allclose(np.asarray(got["embeddings"]), np.asarray(records["embeddings"]), rtol=1e-6)
    # SQL in names and values is only ever a name or a value: nothing matches, nothing breaks
    sneaky = {"filter": {"a'; DROP TABLE x; --": {"$in": ["'", '"']}}, "select": {"keys": ["#document"]}}
    answer = httpx.post(f"{url}/search", json={"searches": [sneaky]})
    assert answer.status_code == 200 and answer.json()["ids"] == [[]]
    # a well-formed search still answers, and overflowing arithmetic gives null scores, not an error
    overflow = {"rank": {"$exp": {"$mul": [{"$val": 1e30}, {"$knn": {"query": [1, 1, 1], "limit": 3}}]}}}
    answer = httpx.post(f"{url}/search", json={"searches": [{**overflow, "select": {"keys": ["#score"]}}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["scores"] == [[None, None, None]]


@pytest.fixture(scope="module")
def embedded(target: tuple[Server, str, dict[str, Any]]) -> Any:
    """The same records in an in-memory vecduck collection."""
    import vecduck

    _server, _url, records = target
    collection = vecduck.Client().get_or_create_collection("hostile-search-embedded", embedding_function=None)
    metadatas = [
        {**m, "sparse": vecduck.SparseVector(m["sparse"]["indices"], m["sparse"]["values"])}
        for m in records["metadatas"]
    ]
    collection.upsert(
        ids=records["ids"], embeddings=records["embeddings"], metadatas=metadatas, documents=records["documents"]
    )
    return collection


@pytest.mark.parametrize(("case", "payload"), HOSTILE, ids=[case for case, _ in HOSTILE])
def test_hostile_search_embedded_raises_a_clear_error(embedded: Any, case: str, payload: Any) -> None:
    import vecduck.errors

    if isinstance(payload, dict):
        payload = {k: as_python(v) if isinstance(v, Raw) else v for k, v in payload.items()}
    count = embedded.count()
    with pytest.raises((vecduck.errors.InvalidArgumentError, ValueError, TypeError)):
        embedded.search(payload)
    assert embedded.count() == count
