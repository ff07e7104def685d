"""Fixtures of the Search API tests: the session's `vecduck run` server, one session-scoped
client per backend kind (see search_backends.py) and the main data set on it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_reference as ref
from search_backends import BACKENDS, DATA_SEED, SPACES, Backend, DataSet, open_backend, server_class, unique


@pytest.fixture(scope="session")
def search_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("search-server") / "data"
    server = server_class()(folder).start()
    yield server
    server.stop(signal.SIGKILL)  # its data is thrown away: no need to wait for the final flush


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    opened = open_backend(request.param, request, tmp_path_factory.mktemp(request.param))
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def dataset(backend: Backend) -> DataSet:
    records = ref.make_records(DATA_SEED)
    data = DataSet(backend, records)
    last = None
    for space in SPACES:
        name = unique(f"main-{space}")
        collection = backend.create(name, space=space)
        backend.add_records(collection, records)
        data.names[space] = name
        last = collection
    backend.settle(last)
    return data
