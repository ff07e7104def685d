"""The official chromadb JS client (npm `chromadb`, pinned in js/package.json) against `vecduck run`:
AdminClient, tenant/database-scoped ChromaClients, fork, forkCount and getIndexingStatus
(js/admin_fork.mjs prints what it saw as JSON; checked here, then read back with chromadb's
Python client)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import chromadb
import chromadb.errors
import pytest
from conftest import HOST, Server

JS = Path(__file__).parent / "js"
TENANT = "js-admin-tenant"


def installed_client() -> None:
    """js/node_modules, installed on first use (`npm ci` from the committed lock file)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JS client test")
    package = JS / "node_modules" / "chromadb" / "package.json"
    if not package.exists():
        command = ["npm", "ci"] if (JS / "package-lock.json").exists() else ["npm", "install"]
        subprocess.run([*command, "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=600)
    pinned = json.loads((JS / "package.json").read_text())["dependencies"]["chromadb"]
    assert json.loads(package.read_text())["version"] == pinned


def run_script(server: Server) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "admin_fork.mjs", str(server.port)], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_js_admin_fork_and_indexing_status(tmp_path: Path) -> None:
    installed_client()
    server = Server(tmp_path / "data").start()
    try:
        seen = run_script(server)

        # tenants and databases
        assert seen["tenant"] == TENANT
        assert seen["tenantAgain"] == "ChromaUniqueError"
        assert seen["tenantMissing"] == "ChromaNotFoundError"
        databases = seen["databases"]
        assert [d["name"] for d in databases] == ["js-db-a", "js-db-b", "js-db-c"]
        assert all(d["tenant"] == TENANT and uuid.UUID(d["id"]) for d in databases)
        assert len({d["id"] for d in databases}) == 3
        assert seen["databaseA"] == databases[0]
        assert seen["databasePages"] == [["js-db-a", "js-db-b"], ["js-db-c"], []]
        assert seen["databaseAgain"] == "ChromaUniqueError"
        assert seen["databaseMissing"] == seen["databaseNoTenant"] == seen["deleteMissing"] == "ChromaNotFoundError"

        # same-named collections in two databases are two collections
        assert seen["isolation"] == {
            "sameId": False,
            "namesA": ["same-name"],
            "namesB": ["b-only", "same-name"],
            "countA": 1,
            "countB": 2,
            "metadataA": {"db": "a"},
            "metadataB": {"db": "b"},
            "docA": ["a-x"],
            "docB": ["b-x"],
            "bOnlyFromA": "ChromaNotFoundError",
            "bOnlyFromDefault": "ChromaNotFoundError",
        }
        assert seen["afterDelete"] == {
            "databases": ["js-db-b", "js-db-c"],
            "listA": [],
            "countInA": "ChromaNotFoundError",
            "newClientA": [],
            "createInA": "ChromaClientError",  # the JS client's name for a 400
            "docB": ["b-x"],
            "countB": 2,
        }

        # fork
        assert seen["forkCountBefore"] == 0
        fork = seen["fork"]
        assert fork["name"] == "fork-dst" and fork["sameId"] is False
        assert fork["copy"] == fork["source"]
        assert fork["source"]["ids"] == ["r1", "r2", "r3", "r4"]
        assert fork["source"]["embeddings"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
        assert fork["queryFork"] == fork["querySource"] == [["r1", "r4"]]
        assert fork["countSource"] == fork["countFork"] == 1
        assert seen["independent"] == {
            "source": ["r1", "r2", "r3", "r4", "s-new"],
            "fork": ["r1", "r3", "r4", "f-new"],
            "sourceR1": [{"k": 10}],
            "forkR1": [{"k": 1}],
        }
        assert seen["grandchild"] == {"ids": ["r1", "r3", "r4", "f-new"], "counts": [2, 2, 2]}
        assert seen["forkTaken"] == "ChromaUniqueError"
        assert seen["afterSourceDeleted"] == {"ids": ["r1", "r3", "r4", "f-new"], "query": [["f-new"]], "forkCount": 2}

        # indexing status: 3 adds + 2 upserts + 1 delete; all indexed after a read
        assert seen["statusEmpty"] == {
            "num_indexed_ops": 0,
            "num_unindexed_ops": 0,
            "total_ops": 0,
            "op_indexing_progress": 1,
        }
        written = seen["statusWritten"]
        assert written["total_ops"] == 6
        assert written["num_indexed_ops"] + written["num_unindexed_ops"] == 6
        assert seen["statusRead"] == {
            "num_indexed_ops": 6,
            "num_unindexed_ops": 0,
            "total_ops": 6,
            "op_indexing_progress": 1,
        }

        # what the JS client made, read back with chromadb's Python client
        python = chromadb.HttpClient(
            host=HOST,
            port=server.port,
            tenant=TENANT,
            database="js-db-b",
            settings=chromadb.Settings(anonymized_telemetry=False),
        )
        assert sorted(c.name for c in python.list_collections()) == [
            "b-only",
            "fork-dst",
            "fork-dst-2",
            "indexed",
            "same-name",
        ]
        copied = python.get_collection("fork-dst-2", embedding_function=None)
        got = copied.get(include=["documents", "metadatas"])
        assert got["ids"] == ["r1", "r3", "r4", "f-new"]
        assert got["documents"] == ["one", "three", "four", None]
        assert got["metadatas"] == [{"k": 1}, {"k": 3}, {"k": 4}, None]
        assert copied.fork_count() == 2
        assert python.get_collection("indexed", embedding_function=None).get_indexing_status().total_ops == 6
        with pytest.raises(chromadb.errors.NotFoundError):
            chromadb.HttpClient(
                host=HOST,
                port=server.port,
                tenant=TENANT,
                database="js-db-a",
                settings=chromadb.Settings(anonymized_telemetry=False),
            )
        # and the default database saw none of it
        default = chromadb.HttpClient(
            host=HOST, port=server.port, settings=chromadb.Settings(anonymized_telemetry=False)
        )
        assert default.count_collections() == 0
    finally:
        assert server.stop() == 0, server.log()
