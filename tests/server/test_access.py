"""`vecduck run --auth-file`: each token reaches only its tenants, read-write or read-only.

Through chromadb's official Python client (its token header), vecduck's HttpClient, raw
HTTP, and a hypothesis fuzz of requests across tenants: a request outside its grant gets
403 and no data, whatever the path spelling."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import chromadb.errors
import httpx
import pytest
from conftest import Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecduck
import vecduck.errors

ADMIN, TEAM_A, TEAM_B = "admin-token-0001", "team-a-token-0001", "team-b-token-0001"
AUTH_FILE = textwrap.dedent(
    f"""
    [[token]]
    token = "{ADMIN}"
    admin = true

    [[token]]
    token = "{TEAM_A}"
    label = "team a"
    tenants = {{ team_a = "read-write", shared = "read-only" }}

    [[token]]
    token = "{TEAM_B}"
    tenants = {{ team_b = "read-write" }}
    """
)
SECRET = "team-b's secret document"


def chroma(server: Server, token: str, tenant: str = "default_tenant", database: str = "default_database") -> Any:
    settings = chromadb.Settings(
        chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
        chroma_client_auth_credentials=token,
        chroma_auth_token_transport_header="X-Chroma-Token",
    )
    return chromadb.HttpClient(host="127.0.0.1", port=server.port, settings=settings, tenant=tenant, database=database)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with three tenants (team_a, team_b, shared), a collection in each."""
    folder = tmp_path_factory.mktemp("access")
    auth = folder / "tokens.toml"
    auth.write_text(AUTH_FILE)
    server = Server(folder / "data", "--auth-file", str(auth), token=ADMIN).start()
    admin = chromadb.AdminClient(
        chromadb.Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host="127.0.0.1",
            chroma_server_http_port=server.port,
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=ADMIN,
        )
    )
    ids = {}
    for tenant in ("team_a", "team_b", "shared"):
        admin.create_tenant(tenant)
        admin.create_database("main", tenant=tenant)
        collection = chroma(server, ADMIN, tenant, "main").create_collection("docs", embedding_function=None)
        document = SECRET if tenant == "team_b" else f"{tenant} document"
        collection.add(ids=["d1"], embeddings=[[1.0, 0.0]], documents=[document])
        ids[tenant] = str(collection.id)
    yield server, ids
    assert server.stop() == 0, server.log()


def test_a_token_reads_and_writes_its_tenant(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ids = guarded
    team_a = chroma(server, TEAM_A, "team_a", "main")
    docs = team_a.get_collection("docs", embedding_function=None)
    docs.add(ids=["d2"], embeddings=[[0.0, 1.0]], documents=["added by team a"])
    assert sorted(docs.get()["ids"]) == ["d1", "d2"]
    team_a.create_collection("more", embedding_function=None).add(ids=["x"], embeddings=[[1.0, 1.0]])
    assert sorted(c.name for c in team_a.list_collections()) == ["docs", "more"]
    team_a.delete_collection("more")


def test_read_only_grant_reads_but_never_writes(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ids = guarded
    shared = chroma(server, TEAM_A, "shared", "main")
    docs = shared.get_collection("docs", embedding_function=None)
    assert docs.get()["documents"] == ["shared document"]
    assert docs.query(query_embeddings=[[1.0, 0.0]], n_results=1)["ids"] == [["d1"]]
    assert docs.search(chromadb.Search().rank(chromadb.Knn(query=[1.0, 0.0])))["ids"] == [["d1"]]
    for write in (
        lambda: docs.add(ids=["nope"], embeddings=[[1.0, 1.0]]),
        lambda: docs.update(ids=["d1"], metadatas=[{"changed": True}]),
        lambda: docs.delete(ids=["d1"]),
        lambda: docs.modify(name="renamed"),
        lambda: docs.fork("forked"),
        lambda: shared.create_collection("new", embedding_function=None),
        lambda: shared.delete_collection("docs"),
    ):
        with pytest.raises(chromadb.errors.ChromaError) as refused:
            write()
        assert "Forbidden" in str(refused.value)
    assert docs.get(include=["documents"])["documents"] == ["shared document"]  # nothing changed


def test_other_tenants_are_invisible(guarded: tuple[Server, dict[str, str]]) -> None:
    server, ids = guarded
    with pytest.raises(chromadb.errors.ChromaError, match="Forbidden"):
        chroma(server, TEAM_A, "team_b", "main")  # the client checks its tenant: refused
    base = f"{server.url}/api/v2"
    headers = {"Authorization": f"Bearer {TEAM_A}"}
    for method, path, body in (
        ("GET", "/tenants/team_b", None),
        ("GET", "/tenants/team_b/databases", None),
        ("GET", "/tenants/team_b/databases/main/collections", None),
        ("GET", f"/tenants/team_b/databases/main/collections/by-id/{ids['team_b']}", None),
        ("POST", f"/tenants/team_b/databases/main/collections/{ids['team_b']}/get", {}),
        ("POST", f"/tenants/team_b/databases/main/collections/{ids['team_b']}/query", {"query_embeddings": [[1, 0]]}),
        ("POST", "/tenants", {"name": "new_tenant"}),
        ("POST", "/reset", None),
    ):
        answer = httpx.request(method, base + path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert SECRET not in answer.text
    # a collection id of team_b under team_a's tenant is not found, not served
    answer = httpx.post(
        f"{base}/tenants/team_a/databases/main/collections/{ids['team_b']}/get", json={}, headers=headers
    )
    assert answer.status_code == 404 and SECRET not in answer.text


def test_listing_shows_only_what_a_token_may_see(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ids = guarded
    base = f"{server.url}/api/v2"
    headers = {"X-Chroma-Token": TEAM_B}
    assert [d["name"] for d in httpx.get(f"{base}/tenants/team_b/databases", headers=headers).json()] == ["main"]
    assert httpx.get(f"{base}/tenants/team_a/databases", headers=headers).status_code == 403
    identity = httpx.get(f"{base}/auth/identity", headers=headers).json()
    assert identity["tenant"] == "team_b"


def test_unknown_or_missing_tokens_get_401(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ids = guarded
    for headers in ({}, {"X-Chroma-Token": "not-a-token"}, {"Authorization": "Bearer " + TEAM_A[:-1]}):
        answer = httpx.get(f"{server.url}/api/v2/heartbeat", headers=headers)
        assert answer.status_code == 401
    with pytest.raises(vecduck.errors.ChromaError):
        vecduck.HttpClient(port=server.port, headers={"X-Chroma-Token": "wrong-token-123"})


def test_vecduck_http_client_honours_grants(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ids = guarded
    client = vecduck.HttpClient(port=server.port, headers={"X-Chroma-Token": TEAM_B}, tenant="team_b", database="main")
    assert client.get_collection("docs", embedding_function=None).get()["documents"] == [SECRET]
    with pytest.raises(vecduck.errors.AuthorizationError):
        client.set_tenant("shared", "main")


SEGMENTS = st.sampled_from(
    ["team_b", "team_b%2F..", "%74eam_b", "TEAM_B", "team_b/", "team_b%00", "..", "team_a/../team_b", "team_b%252F"]
)
TAILS = st.sampled_from(
    [
        "",
        "/databases",
        "/databases/main",
        "/databases/main/collections",
        "/databases/main/collections/docs",
        "/databases/main/collections_count",
        "/databases/main/collections/{id}/get",
        "/databases/main/collections/{id}/add",
        "/databases/main/collections/{id}/search",
        "/databases/main/collections/{id}/fork",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    tenant=SEGMENTS,
    tail=TAILS,
    body=st.sampled_from([None, {}, {"ids": ["x"], "embeddings": [[1, 1]]}, {"new_name": "stolen"}]),
)
def test_fuzz_across_tenants_never_leaks(
    guarded: tuple[Server, dict[str, str]], method: str, tenant: str, tail: str, body: Any
) -> None:
    """team_a's token against team_b in many spellings: never 2xx, never team_b's data."""
    server, ids = guarded
    path = f"/api/v2/tenants/{tenant}{tail.replace('{id}', ids['team_b'])}"
    answer = httpx.request(
        method, server.url + path, json=body, headers={"Authorization": f"Bearer {TEAM_A}"}, timeout=30
    )
    sent = answer.request.url.path  # httpx resolves dot segments: `tenants/..` is sent as `/api/v2`
    if sent.startswith("/api/v2/tenants/"):
        assert answer.status_code in (401, 403, 404, 405, 400, 422), (method, path, answer.status_code, answer.text)
    else:  # a server-wide route (heartbeat, version, ...), which any known token may read
        assert not sent.startswith("/api/v2/tenants"), (method, path, sent)
    assert answer.status_code < 500
    assert SECRET not in answer.text


def test_team_b_data_is_intact_after_the_fuzz(guarded: tuple[Server, dict[str, str]]) -> None:
    server, _ids = guarded
    docs = chroma(server, TEAM_B, "team_b", "main").get_collection("docs", embedding_function=None)
    assert docs.get(include=["documents"])["documents"] == [SECRET]


def test_a_bad_auth_file_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    for text in (
        "[[token]]\ntoken = 'short'\n",
        "[[token]]\ntoken = 'long-enough-1'\ntenants = { a = 'write' }\n",
        "x",
    ):
        bad.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "vecduck.cli", "run", "--path", str(tmp_path / "d"), "--auth-file", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "auth file" in done.stderr


def test_javascript_client_token_and_tenants(guarded: tuple[Server, dict[str, str]]) -> None:
    import json
    import subprocess

    from test_js_client import JS, installed_client

    server, _ids = guarded
    installed_client()
    done = subprocess.run(
        ["node", "access.mjs", str(server.port), TEAM_A], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["own_list"] == {"ok": True, "value": ["docs"]}
    assert answer["own_add"]["ok"] and answer["own_add"]["value"] >= 2
    assert answer["shared_read"] == {"ok": True, "value": ["shared document"]}
    refused = answer["shared_write"]
    assert not refused["ok"] and "permission" in refused["message"], refused  # the JS client's 403 message
    assert not answer["other_list"]["ok"] and SECRET not in json.dumps(answer["other_list"])
