"""`vecduck run` on a shared lake, as processes that behave like separate machines.

Each server gets the AWS_* variables of the test (its bucket) and its OWN cache folder
(VECDUCK_CACHE), so no two servers share derived files except through the bucket, as two
machines would. `LakeServers` starts them and stops every one it started, even after a
failed test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# Variables of the test process that would change what a server serves.
SCRUBBED = ("VECDUCK_AUTH_TOKEN", "VECDUCK_AUTH_FILE", "VECDUCK_PATH", "VECDUCK_DATA_PATH", "VECDUCK_CACHE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LakeServer:
    """One `python -m vecduck.cli run --path <catalog> --data-path <data>` process.

    `cache` is its VECDUCK_CACHE (empty at first start unless the caller filled it);
    `start()` returns once its heartbeat answers, `kill()` is SIGKILL, `stop()` SIGTERM.
    """

    def __init__(self, name: str, catalog: str, data_path: str, folder: Path) -> None:
        self.name = name
        self.catalog = catalog
        self.data_path = data_path
        self.cache = folder / f"{name}-cache"
        self.log_path = folder / f"{name}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> LakeServer:
        """Start on a free port; returns once GET /api/v2/heartbeat answers 200."""
        if self.process is not None:
            raise RuntimeError(f"server {self.name} is running already")
        self.cache.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [sys.executable, "-m", "vecduck.cli", "run", "--path", self.catalog,
                   "--data-path", self.data_path, "--host", HOST, "--port", str(self.port)]
        env = {key: value for key, value in os.environ.items() if key not in SCRUBBED}
        env.update(PYTHONUNBUFFERED="1", VECDUCK_CACHE=str(self.cache))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the process, closed in _reap()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self._reap()
                raise RuntimeError(f"server {self.name} exited with {code}:\n{self.log()[-4000:]}")
            if self.alive():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server {self.name} did not answer heartbeat in {START_TIMEOUT}s:\n{self.log()[-4000:]}")

    def alive(self) -> bool:
        """Whether the heartbeat answers 200 right now."""
        try:
            return httpx.get(self.url + "/api/v2/heartbeat", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> Any:
        """chromadb's official HTTP client for this server (a `chromadb.api.ClientAPI`)."""
        return chromadb.HttpClient(host=HOST, port=self.port,
                                   settings=chromadb.Settings(anonymized_telemetry=False))

    def kill(self) -> None:
        """SIGKILL, as a machine that loses power or an OOM kill: nothing is flushed."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            self._reap()

    def stop(self) -> int:
        """SIGTERM and wait (the server flushes and publishes); its exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        code = process.returncode
        self._reap()
        return code

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def index_marker(self, collection_id: str) -> dict[str, Any] | None:
        """The marker (`<id>.usearch.json`) of the collection's index in this server's cache."""
        found = sorted(self.cache.glob(f"*/index/{collection_id}.usearch.json"))
        return json.loads(found[0].read_text()) if found else None


class LakeServers:
    """The servers of one test on one shared lake; `close()` stops every one still running."""

    def __init__(self, catalog: str, data_path: str, folder: Path) -> None:
        self.catalog = catalog
        self.data_path = data_path
        self.folder = folder
        self.started: list[LakeServer] = []

    def start(self, name: str) -> LakeServer:
        server = LakeServer(name, self.catalog, self.data_path, self.folder)
        self.started.append(server)
        return server.start()

    def close(self) -> list[str]:
        """Stop every server still running; the names of those that did not exit with 0."""
        failed = []
        for server in self.started:
            if server.running() and server.stop() != 0:
                failed.append(server.name)
        return failed

    def logs(self) -> str:
        """The last lines of every server's log, for a failure message."""
        return "\n".join(f"--- {s.name} ---\n{s.log()[-3000:]}" for s in self.started)


@contextlib.contextmanager
def lake_servers(catalog: str, data_path: str, folder: Path) -> Iterator[LakeServers]:
    servers = LakeServers(catalog, data_path, folder)
    try:
        yield servers
    finally:
        servers.close()
