"""`vecduck run` as a real subprocess on a free 127.0.0.1 port, for the server tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """One `python -m vecduck.cli run` process; `start()` returns once heartbeat answers."""

    def __init__(self, path: Path, *args: str, token: str | None = None, cwd: Path | None = None) -> None:
        self.path = path
        self.args = list(args)
        self.token = token
        self.cwd = cwd
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.log_path = path.parent / f"{path.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"X-Chroma-Token": self.token} if self.token else {}

    def start(self) -> Server:
        self.port = free_port()
        command = [sys.executable, "-m", "vecduck.cli", "run", "--path", str(self.path)]
        command += ["--host", HOST, "--port", str(self.port), *self.args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("VECDUCK_AUTH_TOKEN", None)
        log = open(self.log_path, "a")  # noqa: SIM115 - handed to the process, closed in stop()
        self._log = log
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=env, text=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/v2/heartbeat", headers=self.headers(), timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer heartbeat in {START_TIMEOUT}s:\n{self.log()}")

    def alive(self) -> bool:
        try:
            answer = httpx.get(self.url + "/api/v2/heartbeat", headers=self.headers(), timeout=10)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and "nanosecond heartbeat" in answer.json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process and wait for it; returns its exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()
        self.process = None
        return process.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a fresh folder, shared by the session (reset allowed)."""
    folder = tmp_path_factory.mktemp("server") / "data"
    running = Server(folder, "--allow-reset").start()
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="session")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the defaults (reset disabled), shared by the session; tests clean up after themselves."""
    folder = tmp_path_factory.mktemp("strict") / "data"
    running = Server(folder).start()
    yield running
    assert running.stop() == 0, running.log()


def pytest_configure(config: pytest.Config) -> None:
    # the differential tests imported from tests/compat carry this marker
    config.addinivalue_line("markers", "differential: random differential test of vecduck against chromadb")
