"""The differential test of tests/compat with servers as subjects: chromadb's in-process client
is the reference; the subjects are `vecduck run` seen through chromadb's own `HttpClient` and
`AdminClient(Settings(chroma_api_impl="chromadb.api.fastapi.FastAPI", ...))`, and through
`vecduck.HttpClient` and `vecduck.AdminClient(Settings(chroma_server_host=..., ...))`:
tenants, databases, clients on them and collections in them, as in tests/compat.

The state machine, the strategies and the judge are tests/compat's (imported, unchanged).
One server (reset allowed) serves all examples; each example starts and ends with `reset()`.

At the end, regressions the machine found on the server and the HTTP clients (tenants and
databases), each reproduced next to chromadb 1.5.9.
"""

from __future__ import annotations

import atexit
import os
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import chromadb
import chromadb.errors
import pytest
from conftest import Server
from hypothesis import Phase, settings

sys.path.insert(0, str(Path(__file__).parents[1] / "compat"))
import test_differential as diff

import vecduck
import vecduck.errors
from vecduck.http_client import HttpClient

EXAMPLES = int(os.environ.get("VECDUCK_SERVER_DIFF_EXAMPLES", "8"))


def _chromadb_http_errors() -> types.ModuleType:
    """chromadb's error classes as its HTTP client raises them.

    One documented difference of chromadb itself: over HTTP an existing collection name is
    a 409 that its client raises as the base `ChromaError`, where in process it raises
    `InternalError` (compat reference 1.5). Everything else is judged by the same names.
    """
    module = types.ModuleType("chromadb_http_errors")
    for name in dir(chromadb.errors):
        setattr(module, name, getattr(chromadb.errors, name))
    module.InternalError = chromadb.errors.ChromaError  # type: ignore[attr-defined]
    return module


_server: Server | None = None


def shared_server(tmp_root: Path) -> Server:
    global _server
    if _server is None:
        _server = Server(tmp_root / "data", "--allow-reset").start()
        atexit.register(_server.stop)
    return _server


@pytest.fixture(scope="module", autouse=True)
def differential_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    global _server
    server = shared_server(tmp_path_factory.mktemp("differential"))
    yield server
    assert server.stop() == 0, server.log()
    _server = None


def chromadb_http_admin(port: int) -> Any:
    """chromadb's own AdminClient against a server."""
    return chromadb.AdminClient(
        chromadb.Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host="127.0.0.1",
            chroma_server_http_port=port,
            anonymized_telemetry=False,
        )
    )


class _ServerSubject(diff.Subject):
    """`vecduck run` behind an HTTP client; each example starts and ends with `reset()`
    (which also drops every tenant and database but the defaults)."""

    allow_empty_scope_names = False  # chromadb's HttpClient: an empty URL path segment

    def __init__(self) -> None:
        super().__init__()
        assert _server is not None
        self.port = _server.port
        # opened while the default database exists (the previous example ended with a reset),
        # kept to reset after this example, whatever it deleted
        self.resetter = self._open_client(diff.DEFAULT_TENANT, diff.DEFAULT_DATABASE)
        self.resetter.reset()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.resetter.reset()
            close = getattr(self.resetter, "close", None)
            if close is not None:
                close()


class ChromaHttpSubject(_ServerSubject):
    name = "chromadb.HttpClient -> vecduck run"
    errors = _chromadb_http_errors()
    database_id_type = str  # chromadb's HttpClient hands on the JSON string

    def _open_client(self, tenant: str, database: str) -> Any:
        return chromadb.HttpClient(
            host="127.0.0.1",
            port=self.port,
            settings=chromadb.Settings(anonymized_telemetry=False),
            tenant=tenant,
            database=database,
        )

    def _open_admin(self) -> Any:
        return chromadb_http_admin(self.port)

    def close_all(self) -> None:
        # chromadb's HTTP clients share one System per settings; closing the last one stops
        # it under the others (the resetter): they are left open, as chromadb users do
        self.opened.clear()


class VecduckHttpSubject(_ServerSubject):
    name = "vecduck.HttpClient -> vecduck run"
    errors = vecduck.errors

    def _open_client(self, tenant: str, database: str) -> Any:
        return HttpClient(host="127.0.0.1", port=self.port, tenant=tenant, database=database)

    def _open_admin(self) -> Any:
        return vecduck.AdminClient(vecduck.Settings(chroma_server_host="127.0.0.1", chroma_server_http_port=self.port))


class ChromaHttpMachine(diff.DifferentialMachine):
    subject_type = ChromaHttpSubject


class VecduckHttpMachine(diff.DifferentialMachine):
    subject_type = VecduckHttpSubject


# No shrinking by default: a failing sequence is reported as found, within the time budget of the suite.
SETTINGS = settings(
    diff.SETTINGS,
    max_examples=EXAMPLES * max(1, diff.compat_budget.long_factor()),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

TestChromaHttpClientVsServer = pytest.mark.differential(ChromaHttpMachine.TestCase)
TestChromaHttpClientVsServer.settings = SETTINGS

TestVecduckHttpClientVsServer = pytest.mark.differential(VecduckHttpMachine.TestCase)
TestVecduckHttpClientVsServer.settings = SETTINGS


# ----------------------------------------------------------------------------- regressions


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _chromadb_http_admin() -> Any:
    assert _server is not None
    return chromadb_http_admin(_server.port)


def test_server_answers_a_client_of_a_deleted_database_like_chromadb() -> None:
    """chromadb lists nothing in a database that is gone (vecduck run used to answer 404
    "Database [x] not found" to every request of such a client)."""
    assert _server is not None
    database = _unique("gone")
    reference_admin = diff.reference_admin()
    reference_admin.create_database(database)
    reference = diff.reference_scoped_client(diff.DEFAULT_TENANT, database)
    reference_admin.delete_database(database)
    assert reference.list_collections() == []
    assert reference.count_collections() == 0

    admin = _chromadb_http_admin()
    admin.create_database(database)
    client = chromadb.HttpClient(
        host="127.0.0.1", port=_server.port, settings=chromadb.Settings(anonymized_telemetry=False), database=database
    )
    admin.delete_database(database)
    assert client.list_collections() == []
    assert client.count_collections() == 0


def test_vecduck_http_client_quotes_a_tenant_name_once() -> None:
    """A tenant named with a space: quoted once in URLs (vecduck.HttpClient's admin used to
    quote it twice: the server looked for "Zeta%20team")."""
    assert _server is not None
    name = _unique("Zeta team")
    admin = _chromadb_http_admin()
    admin.create_tenant(name)
    assert admin.get_tenant(name) == {"name": name}

    settings = vecduck.Settings(chroma_server_host="127.0.0.1", chroma_server_http_port=_server.port)
    with vecduck.AdminClient(settings) as ours:
        assert ours.get_tenant(name) == {"name": name}


def test_vecduck_http_admin_opens_while_the_default_database_is_deleted() -> None:
    assert _server is not None
    admin = _chromadb_http_admin()
    admin.delete_database(diff.DEFAULT_DATABASE)
    try:
        assert _chromadb_http_admin().list_databases() == []  # chromadb's admin opens without it
        settings = vecduck.Settings(chroma_server_host="127.0.0.1", chroma_server_http_port=_server.port)
        with vecduck.AdminClient(settings) as ours:  # used to need the default database
            assert ours.list_databases() == []
    finally:
        admin.create_database(diff.DEFAULT_DATABASE)


def test_vecduck_http_collection_keeps_its_database_when_the_client_moves() -> None:
    """A collection handle addresses its own database, not the client's current one."""
    assert _server is not None
    database = _unique("db")
    _chromadb_http_admin().create_database(database)
    results = []
    for client in (
        chromadb.HttpClient(
            host="127.0.0.1", port=_server.port, settings=chromadb.Settings(anonymized_telemetry=False)
        ),
        HttpClient(host="127.0.0.1", port=_server.port),
    ):
        client.set_database(database)
        collection = client.get_or_create_collection("alpha", embedding_function=None)
        collection.upsert(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
        client.set_database(diff.DEFAULT_DATABASE)
        results.append(collection.get()["ids"])
    assert results == [["a"], ["a"]]


def test_server_checks_a_database_name_before_its_tenant() -> None:
    """get_database("ab", missing tenant): the name is refused first, as in chromadb."""
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        diff.reference_admin().get_database("ab", tenant=_unique("missing"))
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        _chromadb_http_admin().get_database("ab", tenant=_unique("missing"))
