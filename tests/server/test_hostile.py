"""200+ malformed or hostile requests: each gets a 4xx (never a 5xx), the server keeps serving,
the data stays intact and nothing is written outside the data folder."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST, Server

BASE = "/api/v2/tenants/default_tenant/databases/default_database"
LIMIT = 1024 * 1024  # --max-body-bytes of the server under test


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    cwd = root / "cwd"
    cwd.mkdir()
    running = Server(root / "data", "--max-body-bytes", str(LIMIT), cwd=cwd).start()
    yield running, root
    assert running.stop() == 0, running.log()


def call(
    server: Server,
    method: str,
    path: str,
    body: bytes | str | Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    sent = {"Content-Type": "application/json"} if body is not None else {}
    sent.update(headers or {})
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in sent.items():
            connection.putheader(name, value)
        if body is not None and "Content-Length" not in sent:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.send(body)  # the server may answer (413) before reading it all
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def raw(server: Server, data: bytes) -> bytes:
    """Bytes straight onto the socket: for requests http.client refuses to form."""
    with socket.create_connection((HOST, server.port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def bad_record_bodies() -> list[Any]:
    """Bodies that every record route (add/upsert/update/get/query/delete) must refuse."""
    return [
        b"{",
        b"nul",
        b'{"ids": ["a"],}',
        b"\xff\xfe\x00",
        b'{"ids": NaN}',
        b'{"ids": Infinity}',
        b"[" * 50_000 + b"]" * 50_000,
        "[1, 2, 3]",
        '"just a string"',
        "42",
        {"ids": "abc", "query_embeddings": "x", "include": "documents"},
        {"ids": [1, 2], "query_embeddings": [[1, 2, 3]], "include": ["bogus"]},
        {"ids": {"a": 1}, "query_embeddings": [["1", "2", "3"]], "where": "x"},
        {"ids": ["a"], "embeddings": "x", "query_embeddings": [[True, 1, 2]], "where": {"a": {"$bad": 1}}},
        {"ids": ["a"], "embeddings": [[1, "a", 3]], "query_embeddings": [[None, 0, 0]], "limit": -1},
        {"ids": ["a"], "embeddings": [["!!!"]], "query_embeddings": [[1, 2]], "where": {"$and": "x"}, "limit": 1.5},
        {
            "ids": ["a"],
            "embeddings": ["!!!notbase64"],
            "query_embeddings": [],
            "n_results": -1,
            "include": None,
            "where": {"$or": [{"a": {"$in": []}}, {"b": {"$regex": "("}}]},
            "offset": "x",
        },
        {
            "ids": ["a"],
            "embeddings": [[1, 2, 3]],
            "metadatas": "x",
            "query_embeddings": [[1, 2, 3]],
            "n_results": "5",
            "where": {"a": {"$gt": "text"}},
            "limit": 2**64,
        },
        {
            "ids": ["a", "b"],
            "embeddings": [[1, 2, 3]],
            "metadatas": [[1]],
            "query_embeddings": [[1, 2, 3]],
            "n_results": 10**30,
            "where": {"a": [1, 2]},
            "where_document": {"$contains": 5},
        },
    ]


def hostile_requests(uuid: str) -> Iterator[tuple[str, str, Any, dict[str, str] | None]]:
    one = f"{BASE}/collections/{uuid}"
    for action in ("add", "upsert", "update", "get", "query", "delete"):
        for body in bad_record_bodies():
            yield "POST", f"{one}/{action}", body, None
    # wrong value content on writes
    for body in (
        {"ids": [""], "embeddings": [[1, 2, 3]]},
        {"ids": ["a"], "embeddings": [[1, 2]]},
        {"ids": ["a", "b"], "embeddings": [[1, 2, 3], [1, 2]]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"": 1}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"$where": 1}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"k": {"nested": 1}}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"k": 10**30}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"k": [1, "a"]}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"k\x00": 1}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"k": None}]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "documents": [7]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "uris": [7]},
        {"ids": ["a"], "embeddings": ["AAA"]},
        {"ids": ["a"], "embeddings": ["AAAAAA=="]},
        {"ids": ["a"], "embeddings": [""]},
        {"ids": ["a"], "embeddings": [[]]},
        {"ids": ["a"], "embeddings": [None]},
        {"ids": ["a"], "embeddings": [[1, 2, 3]], "documents": ["x", "y"]},
        {"ids": ["a"]},
    ):
        yield "POST", f"{one}/add", body, None
    # filters: SQL and garbage
    for where in (
        {"k": {"$eq": None}},
        {"k": {"$not": 1}},
        {"$and": [{"a": 1}, "x"]},
        {"a": 1, "b": 2},
        {"#document": {"$eq": "x"}},
        {},
        {"k": {"$in": [1, "a", None]}},
        {"k": {"$gt": 1, "$lt": 3}},
        {"$or": []} if False else {"$nor": [{"a": 1}, {"b": 1}]},
    ):
        yield "POST", f"{one}/get", {"where": where}, None
    for where_document in (
        {"$regex": "(unclosed"},
        {"$matches": "x"},
        {"$contains": ["a"]},
        {},
        {"$and": "x"},
        {"$regex": "a", "$contains": "b"},
    ):
        yield "POST", f"{one}/get", {"where_document": where_document}, None
    depth = 3000
    nested = '{"where": ' + '{"$and": [' * depth + '{"k": 1}' + ', {"k": 1}]}' * depth + "}"
    yield "POST", f"{one}/get", nested, None
    yield "POST", f"{one}/add", '{"ids": ["a"], "embeddings": [[1e400, 0, 0]]}', None
    yield "POST", f"{one}/add", '{"ids": ["a"], "embeddings": [[1, 2, 3]], "metadatas": [{"k": -1e400}]}', None
    yield "POST", f"{one}/query", '{"query_embeddings": [[1e400, 0, 0]]}', None
    # collection names: SQL, traversal, NUL, unicode, wrong types
    for name in (
        "x'; DROP TABLE collections; --",
        "../x",
        "../../etc/passwd",
        "..",
        "a/b",
        "abc\x00def",
        "a" * 600,
        "ab",
        "127.0.0.1",
        "naïve-name",
        "with space",
        "a..b",
        "-abc",
        "\ud800abc",
        7,
        None,
        ["abc"],
    ):
        yield "POST", f"{BASE}/collections", {"name": name}, None
    for body in (
        {"name": "okname", "metadata": {}},
        {"name": "okname", "metadata": {"k": [1, 2]}},
        {"name": "okname", "metadata": {"k": {"a": 1}}},
        {"name": "okname", "metadata": "x"},
        {"name": "okname", "configuration": {"hnsw": {"space": "manhattan"}}},
        {"name": "okname", "configuration": {"hnsw": {"bogus": 1}}},
        {"name": "okname", "configuration": {"hnsw": {"space": "l2"}, "spann": {"space": "l2"}}},
        {"name": "okname", "configuration": "x"},
        {"name": "okname", "metadata": {"hnsw:space": "bad"}},
        {"name": "okname", "get_or_create": "yes"},
    ):
        yield "POST", f"{BASE}/collections", body, None
    # lookups by name / id that do not exist or are malformed
    for name in ("..%2F..%2Fx", "%2e%2e", "x%00y", "a'%20OR%20'1'='1", "no-such-collection", "%ff%fe"):
        yield "GET", f"{BASE}/collections/{name}", None, None
        yield "DELETE", f"{BASE}/collections/{name}", None, None
    for bad in (
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "' OR 1=1 --",
        "..%2F..",
        uuid + "x",
        "g" * 36,
    ):
        quoted = bad.replace(" ", "%20").replace("'", "%27")
        yield "POST", f"{BASE}/collections/{quoted}/add", {"ids": ["a"], "embeddings": [[1, 2, 3]]}, None
        yield "GET", f"{BASE}/collections/{quoted}/count", None, None
        yield "PUT", f"{BASE}/collections/{quoted}", {"new_name": "renamed"}, None
        yield "GET", f"{BASE}/collections/by-id/{quoted}", None, None
    # modify with bad values
    for body in (
        {"new_name": "../x"},
        {"new_name": 5},
        {"new_metadata": {}},
        {"new_metadata": {"hnsw:space": "bad", "k": [1]}},
        {"new_configuration": {"hnsw": {"space": "cosine"}}},
        {"new_configuration": {"bogus": {}}},
        "[]",
    ):
        yield "PUT", one, body, None
    # unknown tenants / databases, routes and methods
    yield "GET", "/api/v2/tenants/other_tenant", None, None
    yield "GET", "/api/v2/tenants/default_tenant/databases/other", None, None
    yield "GET", "/api/v2/tenants/x/databases/y/collections", None, None
    yield "POST", "/api/v2/tenants", {"name": "default_tenant"}, None
    yield "GET", "/api/v2/nothing-here", None, None
    yield "GET", "/api/v3/heartbeat", None, None
    yield "GET", "/", None, None
    yield "GET", "/api/v1/heartbeat", None, None
    yield "POST", "/api/v1/collections", {"name": "abc"}, None
    yield "DELETE", "/api/v2/heartbeat", None, None
    yield "POST", "/api/v2/version", {}, None
    yield "PATCH", f"{one}/add", {}, None
    yield "GET", f"{one}/add", None, None
    yield "BREW", "/api/v2/heartbeat", None, None
    yield "POST", "/api/v2/reset", None, None
    yield "GET", f"{one}/count?read_level=everything", None, None
    yield "GET", f"{BASE}/collections?limit=-1", None, None
    yield "GET", f"{BASE}/collections?limit=abc&offset=2", None, None
    # wrong content types and sizes
    payload = json.dumps({"ids": ["a"], "embeddings": [[1, 2, 3]]})
    for content_type in (
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "image/png",
    ):
        yield "POST", f"{one}/add", payload, {"Content-Type": content_type}
    yield "POST", f"{one}/add", b"x" * (LIMIT + 1), None
    yield "POST", f"{one}/add", json.dumps({"ids": ["a" * (LIMIT + 10)], "embeddings": [[1, 2, 3]]}), None
    yield "POST", f"{one}/get", b"{}", {"Content-Length": str(10 * LIMIT)}


def test_hostile_requests_get_4xx_and_the_server_survives(hostile: tuple[Server, Path]) -> None:
    server, root = hostile
    status, body = call(server, "POST", f"{BASE}/collections", {"name": "target", "metadata": {"k": 1}})
    assert status == 200, body
    uuid = json.loads(body)["id"]
    status, body = call(
        server,
        "POST",
        f"{BASE}/collections/{uuid}/add",
        {"ids": ["keep1", "keep2"], "embeddings": [[1, 0, 0], [0, 1, 0]], "documents": ["d1", "d2"]},
    )
    assert status == 201, body
    outside_before = files_under(root) - {p for p in files_under(root) if p.startswith("data")}

    requests = list(hostile_requests(uuid))
    assert len(requests) >= 200
    wrong = []
    for method, path, payload, headers in requests:
        status, answer = call(server, method, path, payload, headers)
        if not 400 <= status < 500:
            wrong.append((status, method, path, repr(payload)[:120], answer[:200]))
        elif answer:  # every error answer that has a body is Chroma's JSON error shape
            parsed = json.loads(answer)
            assert set(parsed) == {"error", "message"}, (method, path, parsed)
    assert not wrong, "\n".join(map(str, wrong))

    # requests http.client will not form: bad request lines, bad headers, bad lengths
    for data in (
        b"GARBAGE\r\n\r\n",
        b"GET /api/v2/heartbeat HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /api/v2/reset HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ):
        answer = raw(server, data)
        assert answer == b"" or not answer.split(b" ", 2)[1].startswith(b"5"), answer[:200]

    # odd but well-formed values: accepted or refused, never a 5xx, and readable afterwards
    for body in (
        {"ids": ["nul\x00id"], "embeddings": [[1, 1, 0]], "documents": ["doc\x00with nul"]},
        '{"ids": ["lone\\ud800surrogate"], "embeddings": [[1, 1, 0]]}',
        '{"ids": ["ok-id"], "embeddings": [[1, 1, 0]], "documents": ["lone \\udfff"]}',
        {"ids": ["h" * 200_000], "embeddings": [[1, 1, 0]]},
        {"ids": ["'; DROP TABLE collections; --"], "embeddings": [[1, 1, 1]], "metadatas": [{"k'--": "v'--"}]},
        {"ids": [f"many{i}" for i in range(3000)], "embeddings": [[1, 0, 1]] * 3000},
    ):
        status, answer = call(server, "POST", f"{BASE}/collections/{uuid}/upsert", body)
        assert status < 500, (status, answer[:300])
    status, body = call(server, "POST", f"{BASE}/collections/{uuid}/get", {"include": ["documents", "metadatas"]})
    assert status == 200, body
    assert json.loads(body)["ids"][:2] == ["keep1", "keep2"]
    ids = json.loads(body)["ids"]
    status, body = call(server, "POST", f"{BASE}/collections/{uuid}/delete", {"ids": ids[2:]})
    assert status == 200, body

    # the search route (Chroma's cloud-only one, served by vecduck) checks its body like the others
    status, body = call(server, "POST", f"{BASE}/collections/{uuid}/search", {})
    assert status == 422 and json.loads(body)["error"] == "ChromaError", body
    status, body = call(server, "POST", f"{BASE}/collections/{uuid}/search", {"searches": []})
    assert status == 200 and json.loads(body)["ids"] == [], body

    # SQL in filter values is just data; nothing was dropped or changed
    for where in ({"k' OR 1=1 --": "x"}, {"k": "'; DROP TABLE collections; --"}):
        status, body = call(server, "POST", f"{BASE}/collections/{uuid}/get", {"where": where})
        assert status == 200 and json.loads(body)["ids"] == [], body
    status, body = call(
        server, "POST", f"{BASE}/collections/{uuid}/get", {"where_document": {"$contains": "' OR '1'='1"}}
    )
    assert status == 200 and json.loads(body)["ids"] == [], body

    assert server.alive()
    status, body = call(server, "POST", f"{BASE}/collections/{uuid}/get", {"include": ["documents"]})
    assert status == 200 and json.loads(body)["ids"] == ["keep1", "keep2"], body
    status, body = call(server, "GET", f"{BASE}/collections")
    assert [c["name"] for c in json.loads(body)] == ["target"]
    assert (root / "data").is_dir()
    outside_after = files_under(root) - {p for p in files_under(root) if p.startswith("data")}
    assert outside_after == outside_before
    assert not os.listdir(root / "cwd")
