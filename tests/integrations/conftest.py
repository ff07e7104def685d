"""Clients for the framework integration tests: vecduck's embedded clients and both HTTP clients
(`vecduck.HttpClient`, `chromadb.HttpClient`) of one `vecduck run` server shared by the session."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import chromadb
import pytest

import vecduck

TESTS = Path(__file__).resolve().parent.parent


def _server_module() -> ModuleType:
    """tests/server/conftest.py under a name of its own (its `Server` starts `vecduck run`)."""
    spec = importlib.util.spec_from_file_location("vecduck_integrations_server", TESTS / "server" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_server = _server_module()
Server = _server.Server
HOST: str = _server.HOST

#: every client a user may hand to a framework's Chroma store
CLIENT_KINDS = ("embedded", "persistent", "vecduck-http", "chromadb-http")
#: the kinds whose collections are vecduck's own classes (chromadb.HttpClient's are chromadb's)
VECDUCK_KINDS = ("embedded", "persistent", "vecduck-http")


@pytest.fixture(scope="session")
def integration_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `vecduck run` over a fresh folder; each test uses collections of its own."""
    running = Server(tmp_path_factory.mktemp("integrations") / "data").start()
    yield running
    assert running.stop() == 0, running.log()


class Connector:
    """Opens clients of one kind (a second call is a second client of the same data); closes them all."""

    def __init__(self, kind: str, folder: Path, server: Server | None) -> None:
        self.kind = kind
        self.folder = folder
        self.server = server
        self.opened: list[Any] = []

    def __call__(self) -> Any:
        if self.kind == "embedded":
            client: Any = vecduck.Client()
        elif self.kind == "persistent":
            client = vecduck.PersistentClient(self.folder)
        elif self.kind == "vecduck-http":
            assert self.server is not None
            client = vecduck.HttpClient(host=HOST, port=self.server.port)
        else:
            assert self.server is not None
            settings = chromadb.Settings(anonymized_telemetry=False)
            client = chromadb.HttpClient(host=HOST, port=self.server.port, settings=settings)
        self.opened.append(client)
        return client

    def close(self) -> None:
        for client in reversed(self.opened):
            close = getattr(client, "close", None)  # chromadb's clients have none
            if close is not None:
                close()
        self.opened.clear()


@pytest.fixture(params=CLIENT_KINDS)
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connector]:
    kind = request.param
    server = request.getfixturevalue("integration_server") if kind.endswith("-http") else None
    connector = Connector(kind, tmp_path / "data", server)
    yield connector
    connector.close()


@pytest.fixture
def client(connect: Connector) -> Any:
    """A vecduck client, or chromadb.HttpClient on a vecduck server, to pass to a framework's store."""
    return connect()


@pytest.fixture
def collection_name(client: Any) -> Iterator[str]:
    """A fresh collection name (the in-memory store and the server are shared); dropped afterwards."""
    name = f"it-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(Exception):  # the test may have dropped it already
        client.delete_collection(name)
