"""Token auth: without the token nothing is served (401), with it every client works."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import chromadb
import chromadb.errors
import httpx
import pytest
from conftest import Server

from vecduck.http_client import HttpClient

TOKEN = "s3cret-token"
BASE = "/api/v2/tenants/default_tenant/databases/default_database"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("auth") / "data", "--auth-token", TOKEN, token=TOKEN).start()
    yield running
    assert running.stop() == 0, running.log()


def test_requests_without_the_token_get_401_and_no_data(secured: Server) -> None:
    with httpx.Client(base_url=secured.url) as http:
        made = http.post(f"{BASE}/collections", json={"name": "secret-docs"}, headers={"X-Chroma-Token": TOKEN})
        assert made.status_code == 200
        refused = [
            http.get("/api/v2/heartbeat"),
            http.get(f"{BASE}/collections"),
            http.get(f"{BASE}/collections/secret-docs"),
            http.post(f"{BASE}/collections", json={"name": "intruder"}),
            http.get(f"{BASE}/collections", headers={"X-Chroma-Token": "wrong"}),
            http.get(f"{BASE}/collections", headers={"Authorization": f"Bearer {TOKEN}x"}),
            http.get(f"{BASE}/collections", headers={"Authorization": f"Basic {TOKEN}"}),
            http.get("/api/v2/no-such-route"),
            http.post("/api/v2/reset"),
        ]
        for answer in refused:
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"] == "AuthorizationError"
            assert "secret-docs" not in answer.text
        allowed = [
            http.get(f"{BASE}/collections", headers={"x-chroma-token": TOKEN}),
            http.get(f"{BASE}/collections", headers={"AUTHORIZATION": f"bearer {TOKEN}"}),
        ]
        for answer in allowed:
            assert answer.status_code == 200
            assert [c["name"] for c in answer.json()] == ["secret-docs"]
        http.delete(f"{BASE}/collections/secret-docs", headers={"X-Chroma-Token": TOKEN})


def test_python_clients_with_the_token(secured: Server) -> None:
    with pytest.raises(Exception, match=r"(?i)unauthori|401|Could not connect"):
        chromadb.HttpClient(host="127.0.0.1", port=secured.port)
    by_settings = chromadb.HttpClient(
        host="127.0.0.1",
        port=secured.port,
        settings=chromadb.Settings(
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=TOKEN,
        ),
    )
    col = by_settings.create_collection("auth-py", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1, 2, 3]])
    by_header = chromadb.HttpClient(
        host="127.0.0.1",
        port=secured.port,
        settings=chromadb.Settings(
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=TOKEN,
            chroma_auth_token_transport_header="X-Chroma-Token",
        ),
    )
    assert by_header.get_collection("auth-py", embedding_function=None).count() == 1
    by_headers_arg = chromadb.HttpClient(host="127.0.0.1", port=secured.port, headers={"X-Chroma-Token": TOKEN})
    assert by_headers_arg.count_collections() == 1
    ours = HttpClient(host="127.0.0.1", port=secured.port, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ours.get_collection("auth-py").get()["ids"] == ["a"]
    ours.delete_collection("auth-py")


def test_token_from_the_environment() -> None:
    """VECDUCK_AUTH_TOKEN is the default of --auth-token."""
    code = "import vecduck.cli as c; print(c.parser().parse_args(['run']).auth_token)"
    env = dict(os.environ, VECDUCK_AUTH_TOKEN="from-env")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "from-env"
