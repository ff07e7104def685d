"""The differential test of tests/compat with servers as subjects: chromadb's in-process client
is the reference; the subjects are `vecduck run` seen through chromadb's own `HttpClient` and
through `vecduck.HttpClient`.

The state machine, the strategies and the judge are tests/compat's (imported, unchanged).
One server (reset allowed) serves all examples; each example starts from `reset()`.
"""

from __future__ import annotations

import atexit
import os
import sys
import types
from pathlib import Path
from typing import Any

import chromadb
import chromadb.errors
import pytest
from conftest import Server
from hypothesis import Phase, settings

sys.path.insert(0, str(Path(__file__).parents[1] / "compat"))
import test_differential as diff

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


class ChromaHttpSubject(diff.Subject):
    name = "chromadb.HttpClient -> vecduck run"
    errors = _chromadb_http_errors()

    def __init__(self) -> None:
        assert _server is not None
        self.client = chromadb.HttpClient(
            host="127.0.0.1", port=_server.port, settings=chromadb.Settings(anonymized_telemetry=False)
        )
        self.client.reset()


class VecduckHttpSubject(diff.Subject):
    name = "vecduck.HttpClient -> vecduck run"
    errors = vecduck.errors

    def __init__(self) -> None:
        assert _server is not None
        self.client = HttpClient(host="127.0.0.1", port=_server.port)
        self.client.reset()

    def close(self) -> None:
        self.client.close()


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
