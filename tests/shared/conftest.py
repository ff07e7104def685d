"""Real services for shared lakes: a PostgreSQL server (Debian's binaries) and moto's S3 server.

Both run on 127.0.0.1 on free ports, started once per session by these fixtures (nothing is
mocked, nothing is a system service). Each test gets its own empty database and bucket.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
OS_USER = "postgres"  # initdb refuses to run as root; Debian's package creates this user


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """Debian's /usr/lib/postgresql/<highest version>/bin, else the folder of `initdb` on PATH."""
    versions = []
    for path in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        with contextlib.suppress(ValueError):
            versions.append((float(path.parent.parent.name), path.parent))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """A throwaway PostgreSQL cluster: `initdb` into a temporary folder, served on 127.0.0.1:`port`.

    The superuser `postgres` and the role `vecduck` (owner of the test databases) log in with
    generated passwords over TCP (scram-sha-256), as a deployed server would ask.
    `stop()` and `start()` restart it on the same port and data, for restart scenarios.
    """

    user = "vecduck"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        # not under pytest's tmp_path: its root is private to root, and the server runs as `postgres`
        self.root = Path(tempfile.mkdtemp(prefix="vecduck-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.admin_password = secrets.token_hex(16)
        self.password = secrets.token_hex(16)
        if self.as_root:
            try:
                account = pwd.getpwnam(OS_USER)
            except KeyError:
                raise RuntimeError(f"running as root needs the OS user {OS_USER!r} to run PostgreSQL") from None
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program, as the `postgres` OS user when we are root."""
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if self.as_root:
            argv = ["runuser", "-u", OS_USER, "--", *argv] if shutil.which("runuser") else \
                   ["su", OS_USER, "-s", "/bin/sh", "-c", subprocess.list2cmdline(argv)]
        done = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{log}")
        return done

    def init(self) -> None:
        password_file = self.root / "pw"
        password_file.write_text(self.admin_password + "\n")
        if self.as_root:
            account = pwd.getpwnam(OS_USER)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={password_file}",
                      "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-locale", "--no-sync")
        finally:
            password_file.unlink()
        self.start()
        import psycopg

        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as con:
            con.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
            con.execute(f"CREATE DATABASE {self.user} OWNER {self.user}")

    def start(self) -> None:
        # fsync off: the cluster is thrown away, and a fast stop still checkpoints
        options = f"-h {HOST} -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-t", "60", "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def admin_url(self, database: str) -> str:
        return f"postgresql://postgres:{self.admin_password}@{HOST}:{self.port}/{database}"

    def url(self, database: str | None = None) -> str:
        """The URL the code under test gets: role `vecduck`, its password, one database."""
        return f"postgresql://{self.user}:{self.password}@{HOST}:{self.port}/{database or self.user}"

    def create_database(self) -> str:
        """A new empty database owned by `vecduck`; returns its URL."""
        import psycopg

        name = f"lake_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name} OWNER {self.user}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, started from Debian's binaries (skipped only if there are none)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian's `postgresql` package; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="psycopg is in the `shared` extra")
    server = PostgresServer(bin_dir)
    try:
        server.init()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the session's database `vecduck`, as `postgresql://vecduck:PASSWORD@127.0.0.1:PORT/vecduck`."""
    return postgres_server.url()


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a new empty database for this test alone, so tests never see each other's catalogs."""
    url = postgres_server.create_database()
    yield url
    if postgres_server.running():
        with contextlib.suppress(Exception):
            postgres_server.drop_database(url)


@pytest.fixture
def restart_postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server, for a test that stops and starts it (same port, same data);
    restarted afterwards if the test left it stopped."""
    yield postgres_server
    if not postgres_server.running():
        postgres_server.start()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a free 127.0.0.1 port; yields `http://127.0.0.1:PORT`."""
    pytest.importorskip("moto.server", reason="moto[server] is in the `dev` extra")
    port = free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"moto_server exited with {process.returncode}:\n{log.read()}")
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except urllib.error.HTTPError:
                    break  # an HTTP answer of any status: the server is up
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class Bucket:
    """A bucket on the moto server and the credentials that reach it."""

    name: str
    endpoint: str
    key_id: str
    secret: str
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client (its class is generated at run time, hence Any)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key_id,
                            aws_secret_access_key=self.secret, region_name=self.region)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`, listed by boto3 (not by the code under test)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new empty bucket for this test, with the standard AWS_* variables pointing at it."""
    bucket = Bucket(name=f"vecduck-{secrets.token_hex(6)}", endpoint=s3_endpoint,
                    key_id=f"AKIA{secrets.token_hex(8).upper()}", secret=secrets.token_urlsafe(30))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", bucket.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bucket.secret)
    monkeypatch.setenv("AWS_REGION", bucket.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", bucket.endpoint)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket
