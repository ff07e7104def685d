"""Shared by the reliability tests: the long-run flag, child processes, a live server."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

#: VECDUCK_LONG=1 runs the long variants (more kills, longer runs, more examples).
LONG = os.environ.get("VECDUCK_LONG") == "1"

TESTS = Path(__file__).resolve().parent.parent


def _server_module() -> ModuleType:
    """tests/server/conftest.py under a name of its own (its `Server` starts `vecduck run`)."""
    spec = importlib.util.spec_from_file_location("vecduck_server_harness", TESTS / "server" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_server = _server_module()
Server = _server.Server
HOST: str = _server.HOST


def spawn(script: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """A Python child running `script` with `args`, stdout piped (one line per event)."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, VECDUCK_PROGRESS="0", PYTHONUNBUFFERED="1"),
    )


def files_under(root: Path) -> set[str]:
    """Every path under `root`, relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
