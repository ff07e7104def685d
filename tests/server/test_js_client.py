"""The official chromadb JS client (npm `chromadb`, version pinned in js/package.json) against `vecduck run`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Server

JS = Path(__file__).parent / "js"


def installed_client() -> Path:
    """js/node_modules, installed on first use (`npm ci` from the committed lock file)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JS client test")
    package = JS / "node_modules" / "chromadb" / "package.json"
    if not package.exists():
        command = ["npm", "ci"] if (JS / "package-lock.json").exists() else ["npm", "install"]
        subprocess.run([*command, "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=600)
    pinned = json.loads((JS / "package.json").read_text())["dependencies"]["chromadb"]
    assert json.loads(package.read_text())["version"] == pinned
    return package


def test_js_cheatsheet(strict_server: Server) -> None:
    installed_client()
    done = subprocess.run(
        ["node", "cheatsheet.mjs", str(strict_server.port)], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ALL OK"), done.stdout + done.stderr
    assert done.stdout.count("\nok ") >= 20


def test_js_client_with_token(tmp_path: Path) -> None:
    installed_client()
    server = Server(tmp_path / "data", "--auth-token", "js-token", token="js-token").start()
    try:
        done = subprocess.run(
            ["node", "cheatsheet.mjs", str(server.port), "js-token"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and done.stdout.strip().endswith("ALL OK"), done.stdout + done.stderr
        refused = subprocess.run(
            ["node", "cheatsheet.mjs", str(server.port), "wrong-token"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 1 and "ChromaAuthError" in refused.stdout + refused.stderr
    finally:
        assert server.stop() == 0
