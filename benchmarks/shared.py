"""Shared lake against the local folder: the same workloads on both, side by side, in one run.

    python benchmarks/shared.py --rows 20000                          # a first look (~4 min)
    python benchmarks/shared.py --out benchmarks/RESULTS.md           # 100,000 rows (~15 min)

The shared lake is a real PostgreSQL (Debian's binaries, a throwaway cluster initialised
into a temporary folder; as the `postgres` OS user when run as root) and moto's S3 server,
both started by this script on 127.0.0.1 and stopped at the end. Measured, local folder
(`PersistentClient(path=folder)`) against shared lake (`PersistentClient(path=postgresql://...,
data_path=s3://...)`), each in processes of its own (benchmarks/shared_worker.py):

1. single-query p50 / p95 at `--rows` rows (embedded, warm), the two processes taking
   turns query by query;
2. a single-item add loop with chromadb's HttpClient through one `vecduck run` server per
   system, the two servers taking turns item by item;
3. bulk ingest (`collection.add` in batches of 10,000, open to close), rounds alternating;
4. visibility: add through one server, `get` through a second one on the same data until
   the record is there, for two servers on the lake and two on one folder.

`--out FILE` writes the report into FILE's shared.py section (between its markers), leaving
the rest of the file as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import pwd
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import dataset as ds
from tqdm import tqdm

HERE = Path(__file__).parent
START, END = "<!-- shared.py: start -->", "<!-- shared.py: end -->"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
OS_USER = "postgres"  # initdb refuses to run as root; Debian's package creates this user
SYSTEMS = ("local", "shared")

# targets: query p50 shared <= 1.2x local; add loop >= 300 items/s; bulk ingest >= 0.7x local
QUERY_RATIO, LOOP_ITEMS_S, INGEST_RATIO = 1.2, 300.0, 0.7


SOURCE: dict[str, str] = {}  # {"path": ..., "commit": ...} when vecduck runs from an exported commit


def export_head(work: Path) -> None:
    """Put the committed tree's `vecduck/` (git archive HEAD) under `work` and run every worker
    and server on it: edits in progress in the checkout cannot change a run half-way."""
    target = work / "vecduck-head"
    target.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "HEAD", "vecduck"], capture_output=True, cwd=HERE.parent, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    SOURCE.update(path=str(target), commit=commit)


# -- services -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path:
    """Debian's /usr/lib/postgresql/<highest version>/bin, else the folder of `initdb` on PATH."""
    versions = []
    for path in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        with contextlib.suppress(ValueError):
            versions.append((float(path.parent.parent.name), path.parent))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    if not initdb:
        raise SystemExit("no PostgreSQL server binaries (Debian's `postgresql` package)")
    return Path(initdb).resolve().parent


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (the approach of the tests' fixture):
    role `vecduck` owns one new database per lake; pg_stat_statements counts statements."""

    user = "vecduck"

    def __init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="vecduck-pg-"))  # readable by `postgres`, which runs the server
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.admin_password, self.password = secrets.token_hex(16), secrets.token_hex(16)
        if self.as_root:
            account = pwd.getpwnam(OS_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if self.as_root:
            argv = (
                ["runuser", "-u", OS_USER, "--", *argv]
                if shutil.which("runuser")
                else ["su", OS_USER, "-s", "/bin/sh", "-c", subprocess.list2cmdline(argv)]
            )
        done = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{log}")
        return done

    def start(self) -> None:
        password_file = self.root / "pw"
        password_file.write_text(self.admin_password + "\n")
        if self.as_root:
            account = pwd.getpwnam(OS_USER)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                f"--pwfile={password_file}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
        finally:
            password_file.unlink()
        # fsync off: the cluster is thrown away (a deployed server would fsync its commits)
        options = (
            f"-h {HOST} -p {self.port} -k {self.root} -c fsync=off -c max_connections=200 "
            "-c shared_preload_libraries=pg_stat_statements"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-t", "60", "-w", "start")
        self.admin(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
        self.admin("CREATE EXTENSION pg_stat_statements")

    def admin(self, sql: str, database: str = "postgres") -> list[tuple]:
        import psycopg

        url = f"postgresql://postgres:{self.admin_password}@{HOST}:{self.port}/{database}"
        with psycopg.connect(url, autocommit=True) as con:
            cursor = con.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def version(self) -> str:
        return str(self.admin("SHOW server_version")[0][0])

    def create_database(self, name: str) -> str:
        """A new empty database owned by `vecduck`; returns its URL."""
        self.admin(f"CREATE DATABASE {name} OWNER {self.user}")
        return f"postgresql://{self.user}:{self.password}@{HOST}:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def statements(self, name: str) -> dict[str, float]:
        """Statements run in database `name` so far (pg_stat_statements) and their execution time."""
        calls, ms = self.admin(
            "SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements "
            f"JOIN pg_database d ON d.oid = dbid WHERE d.datname = '{name}'"
        )[0]
        return {"statements": float(calls), "pg_exec_ms": float(ms)}

    def top_statements(self, name: str, n: int = 6) -> list[tuple[int, float, str]]:
        """The most-called statements in database `name`: (calls, mean ms, text)."""
        rows = self.admin(
            "SELECT calls, mean_exec_time, query FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid "
            f"WHERE d.datname = '{name}' ORDER BY calls DESC LIMIT {n}"
        )
        return [(int(c), float(m), " ".join(str(q).split())) for c, m, q in rows]

    def close(self) -> None:
        if self.data.exists() and self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_http(url: str, process: subprocess.Popen, what: str, log: Path) -> None:
    """Return once `url` answers with any HTTP status; fail if the process exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Moto:
    """moto's standalone S3 server on 127.0.0.1, one bucket; every request is a line of its log."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self.log = work / "moto.log"
        self.bucket = f"vecduck-{secrets.token_hex(4)}"
        self.key_id, self.secret = f"AKIA{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30)
        self.env = {
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_http(self.endpoint, self.process, "moto_server", self.log)
        self.client().create_bucket(Bucket=self.bucket)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )

    def requests(self) -> float:
        """S3 requests served so far (lines of the server's request log)."""
        text = self.log.read_text(errors="replace")
        return float(len(re.findall(r'"(?:GET|PUT|POST|HEAD|DELETE) /', text)))

    def prefix_bytes(self, prefix: str) -> int:
        """Bytes stored under `prefix`, listed by boto3."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(item["Size"] for page in pages for item in page.get("Contents", []))

    def delete_prefix(self, prefix: str) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def close(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# -- the two systems --------------------------------------------------------------------------------------
@dataclass
class Backend:
    """Where one system's data lives: a folder (local) or a database and an S3 prefix (shared)."""

    kind: str
    name: str
    path: str
    data_path: str | None = None

    def args(self) -> list[str]:
        return [self.path] + (["--data-path", self.data_path] if self.data_path else [])

    def server_args(self) -> list[str]:
        return ["--path", self.path] + (["--data-path", self.data_path] if self.data_path else [])


class Bench:
    """The services, the scratch folder, and the workers' processes."""

    def __init__(self, work: Path, rows: int, postgres: Postgres, moto: Moto) -> None:
        self.work, self.rows, self.pg, self.moto = work, rows, postgres, moto
        self.serial = 0
        self.backends: list[Backend] = []

    def new(self, kind: str, label: str) -> Backend:
        self.serial += 1
        name = f"{label}_{self.serial}"
        if kind == "local":
            backend = Backend(kind, name, str(self.work / name))
        else:
            url = self.pg.create_database(name)
            backend = Backend(kind, name, url, f"s3://{self.moto.bucket}/{name}/")
        self.backends.append(backend)
        return backend

    def drop(self, backend: Backend) -> None:
        if backend.kind == "local":
            shutil.rmtree(backend.path, ignore_errors=True)
        else:
            self.pg.drop_database(backend.name)
            self.moto.delete_prefix(backend.name + "/")
        self.backends.remove(backend)

    def counters(self, backend: Backend) -> dict[str, float]:
        """PostgreSQL statements and S3 requests so far, for a shared lake (empty for a folder)."""
        if backend.kind == "local":
            return {}
        return {**self.pg.statements(backend.name), "s3_requests": self.moto.requests()}

    def env(self, cache: str) -> dict[str, str]:
        env = {
            **os.environ,
            **self.moto.env,
            "VECDUCK_PROGRESS": "0",
            "ANONYMIZED_TELEMETRY": "False",
            "PYTHONUNBUFFERED": "1",
            "VECDUCK_CACHE": str(self.work / "cache" / cache),
        }
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        if SOURCE:  # ahead of the editable install (its finder comes after the path entries)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE["path"], env.get("PYTHONPATH")]))
        return env

    def command(self, phase: str, *args: str) -> list[str]:
        return [sys.executable, str(HERE / "shared_worker.py"), phase, *args, "--rows", str(self.rows)]

    def run(self, phase: str, *args: str, cache: str = "client") -> dict:
        """One worker process to its end; its JSON line."""
        os.sync()  # the last workload's files reach the disk first
        done = subprocess.run(self.command(phase, *args), capture_output=True, text=True, env=self.env(cache), cwd=HERE)
        if done.returncode != 0:
            raise RuntimeError(f"worker {phase} failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    @contextlib.contextmanager
    def server(self, backend: Backend, cache: str) -> Iterator[str]:
        """`vecduck run` on `backend` on a free port; yields HOST:PORT, stops it after."""
        port = free_port()
        log_path = self.work / f"server-{cache}.log"
        command = [
            sys.executable,
            "-m",
            "vecduck.cli",
            "run",
            *backend.server_args(),
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        with serving(command, port, f"vecduck run ({cache})", log_path, self.work, self.env(cache)) as address:
            yield address


@contextlib.contextmanager
def serving(
    command: list[str], port: int, what: str, log_path: Path, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A Chroma-API server process answering heartbeats on `port`; yields HOST:PORT, stops it after."""
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd
        )
    try:
        wait_http(f"http://{HOST}:{port}/api/v2/heartbeat", process, what, log_path)
        yield f"{HOST}:{port}"
    finally:
        stop_process(process)


@contextlib.contextmanager
def chroma_server(work: Path) -> Iterator[str | None]:
    """chromadb's own server (`chroma run`, from the chromadb package) on a new folder, as
    the add loop's reference; yields HOST:PORT, or None when the command is not installed."""
    command = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if command is None:
        yield None
        return
    port = free_port()
    folder = work / f"chroma-{port}"
    try:
        run = [command, "run", "--path", str(folder), "--host", HOST, "--port", str(port)]
        with serving(run, port, "chroma run", work / f"chroma-{port}.log", work) as address:
            yield address
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class QueryProcess:
    """A query worker driven line by line: `time(i)` runs query i there and returns its seconds."""

    def __init__(self, bench: Bench, backend: Backend, cache: str, items: int) -> None:
        command = bench.command("query", *backend.args(), "--items", str(items))
        self.log = bench.work / f"worker-{cache}.log"
        with open(self.log, "w") as log:  # a file, not a pipe: a full pipe would block the worker
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=bench.env(cache),
                cwd=HERE,
            )
        self.ready = json.loads(self._line())

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"query worker failed:\n{self.log.read_text(errors='replace')[-4000:]}")
        return line

    def time(self, i: int, command: str = "q") -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command} {i}\n")
        self.process.stdin.flush()
        return float(self._line())

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.process.stdin is not None
            self.process.stdin.write("end\n")
            self.process.stdin.close()
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


# -- workloads ------------------------------------------------------------------------------------
def bench_ingest(bench: Bench, rounds: int) -> tuple[dict[str, dict], dict[str, Backend]]:
    """`rounds` bulk ingests per system, alternating which goes first; keeps the last lake of each."""
    runs: dict[str, list[dict]] = {s: [] for s in SYSTEMS}
    kept: dict[str, Backend] = {}
    with tqdm(total=2 * rounds, desc="3. bulk ingest", unit="run", file=sys.stderr) as bar:
        for r in range(rounds):
            for system in SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]:
                backend = bench.new(system, f"ingest_{system}")
                before = bench.counters(backend)
                figures = bench.run("ingest", *backend.args(), "--batch", str(BATCH), cache=f"ingest-{r}-{system}")
                figures.update(delta(bench.counters(backend), before))
                runs[system].append(figures)
                if system in kept:
                    bench.drop(kept[system])
                    shutil.rmtree(bench.work / "cache" / f"ingest-{r - 1}-{system}", ignore_errors=True)
                kept[system] = backend
                bar.update()
    return {s: median_merge(got) for s, got in runs.items()}, kept


def bench_queries(bench: Bench, kept: dict[str, Backend], n_queries: int, rounds: int, items: int) -> dict[str, dict]:
    """Both systems' query processes, taking turns query by query; p50 / p95 per round, medians.
    Then the same processes take turns adding `items` single records (embedded, no server)."""
    procs: dict[str, QueryProcess] = {}
    before = bench.counters(kept["shared"])
    out: dict[str, dict] = {s: {} for s in SYSTEMS}
    name = kept["shared"].name
    out["shared"]["s3_mib"] = bench.moto.prefix_bytes(f"{name}/") / 2**20
    out["shared"]["published_mib"] = bench.moto.prefix_bytes(f"{name}/vecduck-index/") / 2**20
    try:
        for system in SYSTEMS:  # shared: an empty cache, so it downloads the published derived files
            procs[system] = QueryProcess(bench, kept[system], cache=f"query-{system}", items=items)
            out[system].update(procs[system].ready)
        opened = bench.counters(kept["shared"])
        p50s: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        p95s: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        trips: list[float] = []
        with tqdm(total=rounds * n_queries, desc="1. queries", unit="pair", file=sys.stderr) as bar:
            for _ in range(rounds):
                times: dict[str, list[float]] = {s: [] for s in SYSTEMS}
                for i in range(n_queries):
                    for system in SYSTEMS if i % 2 == 0 else SYSTEMS[::-1]:
                        times[system].append(procs[system].time(i))
                    if i % 4 == 0:  # a PostgreSQL round trip from the shared process, for reference
                        trips.append(procs["shared"].time(0, "r"))
                    bar.update()
                for system, seconds in times.items():
                    p50s[system].append(1e3 * percentile(seconds, 50))
                    p95s[system].append(1e3 * percentile(seconds, 95))
        for system in SYSTEMS:
            out[system]["p50_ms"] = statistics.median(p50s[system])
            out[system]["p95_ms"] = statistics.median(p95s[system])
            out[system]["p50_rounds"] = p50s[system]
        queried = bench.counters(kept["shared"])
        spent = delta(queried, opened)
        spent["statements"] -= len(trips) + 1  # the reference round trips
        out["shared"]["per_query"] = {k: v / (rounds * n_queries) for k, v in spent.items()}
        out["shared"]["round_trip_p50_ms"] = 1e3 * percentile(trips, 50)
        out["shared"]["round_trip_p95_ms"] = 1e3 * percentile(trips, 95)
        out["shared"]["open_counters"] = delta(opened, before)
        add_times: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        for system in SYSTEMS:
            procs[system].time(items, "a")  # the first add creates the collection: not timed
        added = bench.counters(kept["shared"])
        for i in tqdm(range(items), desc="2. embedded add loop", unit="pair", file=sys.stderr):
            for system in SYSTEMS if i % 2 == 0 else SYSTEMS[::-1]:
                add_times[system].append(procs[system].time(i, "a"))
        for system, seconds in add_times.items():
            out[system]["embedded_items_per_s"] = len(seconds) / sum(seconds)
            out[system]["embedded_add_p50_ms"] = 1e3 * percentile(seconds, 50)
        spent = delta(bench.counters(kept["shared"]), added)
        out["shared"]["per_embedded_add"] = {k: v / items for k, v in spent.items()}
    finally:
        for proc in procs.values():
            proc.close()
    return out


def bench_loop(bench: Bench, items: int, rounds: int) -> dict[str, dict]:
    """One server per system, and chromadb's own server as the reference; per round, a new
    collection on each and `items` single adds taking turns item by item (one client process)."""
    backends = {s: bench.new(s, f"loop_{s}") for s in SYSTEMS}
    out: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        addresses = {s: stack.enter_context(bench.server(b, cache=f"loop-{s}")) for s, b in backends.items()}
        reference = stack.enter_context(chroma_server(bench.work))
        if reference is not None:
            addresses["chromadb"] = reference
        port = free_port()
        floor = bench.command("floor", "--like", addresses["local"], "--port", str(port))
        addresses["floor"] = stack.enter_context(serving(floor, port, "floor server", bench.work / "floor.log", HERE))
        names = list(addresses)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        before = bench.counters(backends["shared"])
        for r in tqdm(range(rounds), desc="2. add loop", unit="round", file=sys.stderr):
            order = names if r % 2 == 0 else names[::-1]
            got = bench.run(
                "loop", "--servers", *(f"{s}={addresses[s]}" for s in order), "--items", str(items), "--round", str(r)
            )
            for name in names:
                runs[name].append(got[name])
        spent = delta(bench.counters(backends["shared"]), before)
        top = bench.pg.top_statements(backends["shared"].name)
    for name in names:
        out[name] = median_merge(runs[name])
    out["shared"]["per_add"] = {k: v / (rounds * (items + 1)) for k, v in spent.items()}
    out["shared"]["top_statements"] = top
    for backend in backends.values():
        bench.drop(backend)
    return out


def bench_visibility(bench: Bench, writes: int) -> dict[str, dict]:
    """Two servers on one lake, two on one folder; writes through the first, reads through the second."""
    backends = {s: bench.new(s, f"visible_{s}") for s in SYSTEMS}
    with contextlib.ExitStack() as stack:
        pairs = []
        for system, backend in backends.items():
            a = stack.enter_context(bench.server(backend, cache=f"visible-{system}-a"))
            b = stack.enter_context(bench.server(backend, cache=f"visible-{system}-b"))
            pairs.append(f"{system}={a},{b}")
        print(f"4. visibility: {writes} writes per system", file=sys.stderr, flush=True)
        out = bench.run("visibility", "--pairs", *pairs, "--writes", str(writes))
    for backend in backends.values():
        bench.drop(backend)
    return out


def median_merge(runs: list[dict]) -> dict:
    merged: dict = {}
    for key in {k for run in runs for k in run}:
        values = sorted(run[key] for run in runs if isinstance(run.get(key), int | float))
        if values:
            merged[key] = values[len(values) // 2]
    merged["runs"] = len(runs)
    merged["all"] = runs
    return merged


# -- the report ---------------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "n/a"
    if digits is not None:
        return f"{value:.{digits}f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def versions(postgres_version: str) -> str:
    out = []
    for name in (
        "duckdb",
        "duckdb-extension-ducklake",
        "duckdb-extension-postgres",
        "duckdb-extension-httpfs",
        "psycopg",
        "moto",
        "chromadb",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{name} {metadata.version(name)}")
    out.insert(1, f"PostgreSQL {postgres_version}")
    if SOURCE:
        out.insert(0, f"vecduck at {SOURCE['commit']} (its committed tree, run from a `git archive` copy)")
        return ", ".join(out)
    with contextlib.suppress(OSError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../vecduck"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
        out.insert(0, f"vecduck at {commit}" + (" (with uncommitted changes under vecduck/)" if dirty else ""))
    return ", ".join(out)


def machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = ""
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = f" ({found.group(1).strip()})" if found else ""
    return f"{os.cpu_count()} cores{cpu}, {ram:.0f} GiB RAM, {platform.machine()}, Python {platform.python_version()}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "missed")


def results_table(results: dict[str, dict], args: argparse.Namespace) -> list[str]:
    q, loop, ing, vis = (results.get(k, {}) for k in ("query", "loop", "ingest", "visibility"))

    def pick(part: dict, system: str, key: str) -> float | None:
        value = part.get(system, {}).get(key)
        return value if isinstance(value, int | float) else None

    rows: list[tuple[str, str, dict, str, str]] = [
        (f"1. query p50 ({args.rows:,} rows, top 10)", "ms", q, "p50_ms", f"<= {QUERY_RATIO}x"),
        ("1. query p95", "ms", q, "p95_ms", ""),
        ("1. recall@10 (both against exact)", "", q, "recall", ""),
        (
            "1. (a PostgreSQL round trip, psycopg `SELECT 1`, in turn with the queries: p50)",
            "ms",
            q,
            "round_trip_p50_ms",
            "",
        ),
        ("1. (the same round trip: p95)", "ms", q, "round_trip_p95_ms", ""),
        ("1. new process: open to first answer (shared: empty cache)", "ms", q, "open_first_ms", ""),
        (
            "2. single-item add loop, one server, HttpClient",
            "items/s",
            loop,
            "items_per_s",
            f">= {LOOP_ITEMS_S:.0f} items/s",
        ),
        ("2. add p50 (one add)", "ms", loop, "add_p50_ms", ""),
        ("2. add p99", "ms", loop, "add_p99_ms", ""),
        ("2. first add of the loop (untimed there)", "ms", loop, "first_add_ms", ""),
        ("2. (HTTP floor: heartbeat through the same client, p50)", "ms", loop, "heartbeat_p50_ms", ""),
        ("2. (the same loop embedded, no server: items/s)", "items/s", q, "embedded_items_per_s", ""),
        ("2. (embedded add p50)", "ms", q, "embedded_add_p50_ms", ""),
        (f"3. bulk ingest, batches of {BATCH:,}, open to close", "rows/s", ing, "rows_per_s", f">= {INGEST_RATIO}x"),
        ("3. of which: adds", "s", ing, "add_s", ""),
        ("3. of which: close (flush, publish)", "s", ing, "close_s", ""),
        ("4. visibility, ack on A to first read on B: p50", "ms", vis, "lag_p50_ms", ""),
        ("4. visibility p99", "ms", vis, "lag_p99_ms", ""),
        ("4. visibility max", "ms", vis, "lag_max_ms", ""),
        ("4. writes seen at B's first read", "%", vis, "first_read_share", ""),
        ("4. add through A, p50 (the write itself)", "ms", vis, "add_p50_ms", ""),
    ]
    lines = ["| measure | unit | local folder | shared lake | shared / local | target |", "|---|---|---|---|---|---|"]
    for label, unit, part, key, target in rows:
        local, shared = pick(part, "local", key), pick(part, "shared", key)
        if local is None and shared is None:
            continue
        if unit == "%":
            local, shared = (None if v is None else 100 * v for v in (local, shared))
        digits = 3 if unit == "" else None
        ratio = f"{shared / local:.2f}x" if local and shared and unit not in ("%", "") else ""
        lines.append(
            f"| {label} | {unit or 'recall'} | {fmt(local, digits)} | {fmt(shared, digits)} | {ratio} | {target} |"
        )
    return lines


def reference_lines(results: dict[str, dict]) -> list[str]:
    """The add loop against chromadb's own server, when it ran."""
    chroma = results.get("loop", {}).get("chromadb")
    if not chroma:
        return []
    return [
        "",
        "The same add loop against chromadb's own server (`chroma run` on a local folder; its version "
        "above), with the same client, in turn with the two above: "
        f"{fmt(chroma.get('items_per_s'))} items/s, add p50 {fmt(chroma.get('add_p50_ms'))} ms, "
        f"heartbeat p50 {fmt(chroma.get('heartbeat_p50_ms'))} ms.",
    ]


def floor_lines(results: dict[str, dict]) -> list[str]:
    """The add loop against a server that stores nothing: what the client and HTTP cost alone."""
    floor = results.get("loop", {}).get("floor")
    if not floor:
        return []
    return [
        "",
        "The client's own floor: the same loop, in turn with the others, against a server that answers "
        "every add at once and stores nothing (`shared_worker.py floor`, uvicorn with h11 like `vecduck run`): "
        f"{fmt(floor.get('items_per_s'))} items/s, add p50 {fmt(floor.get('add_p50_ms'))} ms. "
        f"A {LOOP_ITEMS_S:.0f} items/s loop has {1e3 / LOOP_ITEMS_S:.2f} ms an add; this much of it goes "
        "to chromadb's client, the loopback and the HTTP server before any database work.",
    ]


def targets_table(results: dict[str, dict]) -> list[str]:
    q, loop, ing = results.get("query", {}), results.get("loop", {}), results.get("ingest", {})
    rows = []
    local, shared = q.get("local", {}).get("p50_ms"), q.get("shared", {}).get("p50_ms")
    got = shared / local if local and shared else None
    rows.append(
        (
            f"query p50: shared <= {QUERY_RATIO}x local",
            f"{fmt(shared)} vs {fmt(local)} ms: {got:.2f}x" if got else "n/a",
            verdict(None if got is None else got <= QUERY_RATIO),
        )
    )
    rate = loop.get("shared", {}).get("items_per_s")
    rows.append(
        (
            f"add loop through one shared-lake server >= {LOOP_ITEMS_S:.0f} items/s",
            f"{fmt(rate)} items/s (local folder {fmt(loop.get('local', {}).get('items_per_s'))})",
            verdict(None if rate is None else rate >= LOOP_ITEMS_S),
        )
    )
    local, shared = ing.get("local", {}).get("rows_per_s"), ing.get("shared", {}).get("rows_per_s")
    got = shared / local if local and shared else None
    rows.append(
        (
            f"bulk ingest: shared >= {INGEST_RATIO}x local",
            f"{fmt(shared)} vs {fmt(local)} rows/s: {got:.2f}x" if got else "n/a",
            verdict(None if got is None else got >= INGEST_RATIO),
        )
    )
    return ["| target | measured | |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]


def costs_section(results: dict[str, dict]) -> list[str]:
    """What the shared lake's calls cost in PostgreSQL statements and S3 requests."""
    q = results.get("query", {}).get("shared", {})
    loop = results.get("loop", {}).get("shared", {})
    ing = results.get("ingest", {}).get("shared", {})
    lines = []
    per = q.get("per_query")
    if per:
        lines.append(
            f"- Per warm query: {per['statements']:.2f} PostgreSQL statements ({per['pg_exec_ms']:.3f} ms "
            f"of execution in the server), {per['s3_requests']:.2f} S3 requests."
        )
    local_p50 = results.get("query", {}).get("local", {}).get("p50_ms")
    if per and local_p50 and "round_trip_p50_ms" in q:
        lines.append(
            f"  The shared lake's query p50 is {q['p50_ms'] - local_p50:.2f} ms above the folder's; one "
            f"PostgreSQL round trip, timed in turn with the queries, has a p50 of "
            f"{q['round_trip_p50_ms']:.2f} ms (p95 {q['round_trip_p95_ms']:.2f} ms)."
        )
    opened = q.get("open_counters")
    if opened:
        lines.append(
            f"- Opening the lake in a new process with an empty cache (and the untimed recall pass): "
            f"{opened['statements']:.0f} statements, {opened['s3_requests']:.0f} S3 requests. The lake "
            f"holds {q.get('s3_mib', 0):.0f} MiB in S3, of which {q.get('published_mib', 0):.0f} MiB are "
            "the published derived files (index, rows snapshot) such a process downloads."
        )
    per = q.get("per_embedded_add")
    if per:
        lines.append(
            f"- Per single-item add, embedded: {per['statements']:.1f} PostgreSQL statements "
            f"({per['pg_exec_ms']:.3f} ms of execution), {per['s3_requests']:.2f} S3 requests."
        )
    per = loop.get("per_add")
    if per:
        lines.append(
            f"- Per single-item add through the server: {per['statements']:.1f} PostgreSQL statements "
            f"({per['pg_exec_ms']:.3f} ms of execution), {per['s3_requests']:.2f} S3 requests. "
            "Most called:"
        )
        for calls, mean_ms, text in loop.get("top_statements", [])[:6]:
            short = text if len(text) <= 110 else text[:107] + "..."
            lines.append(f"  - {calls:,} calls, {mean_ms:.3f} ms each: `{short.replace('`', chr(39))}`")
    if "statements" in ing:
        lines.append(
            f"- Per bulk ingest of {results.get('rows', 0):,} rows: {ing['statements']:,.0f} statements "
            f"({ing['pg_exec_ms']:.0f} ms of execution), {ing['s3_requests']:,.0f} S3 requests."
        )
    return lines


def report(results: dict[str, Any], facts: dict[str, Any], args: argparse.Namespace) -> str:
    load = max(facts["load_start"], facts["load_end"])
    lines = [
        START,
        "## Shared lake (`benchmarks/shared.py`)",
        "",
        f"{facts['date']}, {facts['machine']}; {facts['versions']}.",
        f"Command: `{facts['command']}` ({facts['minutes']:.1f} minutes). Load average (1 min) at the start "
        f"{facts['load_start']:.1f}, at the end {facts['load_end']:.1f}"
        + (
            ": other work shared the machine, so the figures are noisy and the latencies high; the ratios "
            "(both systems measured in alternation) are the steadier figures."
            if load > 1.5
            else "."
        ),
        "",
        f'Local folder: `PersistentClient(path=folder)`. Shared lake: `PersistentClient(path="postgresql://...", '
        'data_path="s3://bucket/prefix/")`, PostgreSQL and moto\'s S3 server on 127.0.0.1 (PostgreSQL with '
        "`fsync=off`, a throwaway cluster). Data: seeded clustered 384-d float32 unit vectors with metadata "
        "(benchmarks/dataset.py). Each system in processes of its own; queries: "
        f"{facts['queries']} queries x {args.query_rounds} rounds, the two processes taking turns query by "
        f"query, p50 / p95 per round, median over rounds; add loop: {args.items:,} adds x {args.loop_rounds} "
        "rounds, the servers taking turns item by item (chromadb's own too, as the reference; items/s from "
        "each server's own add times), "
        f"median over rounds; ingest: median of {args.ingest_rounds} runs each, alternating; visibility: "
        f'{args.writes} writes per system. See README.md ("Shared lake").',
        "",
        *results_table(results, args),
        *reference_lines(results),
        *floor_lines(results),
        "",
        "### Against the targets",
        "",
        *targets_table(results),
        "",
        "### What a shared-lake call costs (PostgreSQL statements, S3 requests)",
        "",
        *costs_section(results),
    ]
    vis = results.get("visibility", {})
    if vis and all(vis.get(s, {}).get("first_read_share") == 1 for s in SYSTEMS):
        lines.append(
            "- Every write was visible at B's first read (a server catches up at its next call, "
            "docs/deploy.md): the visibility latency is one `get` through B, catch-up included."
        )
    for note in facts.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", END]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    path.write_text(text)


BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the collection (ingest and queries)")
    parser.add_argument("--queries", type=int, default=200, help="queries per round (at most 200)")
    parser.add_argument("--query-rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=2_000, help="single-item adds per round of the add loop")
    parser.add_argument("--loop-rounds", type=int, default=3)
    parser.add_argument("--ingest-rounds", type=int, default=3, help="bulk ingests per system (median taken)")
    parser.add_argument("--writes", type=int, default=300, help="writes timed for visibility")
    parser.add_argument(
        "--parts",
        nargs="*",
        default=["ingest", "query", "loop", "visibility"],
        choices=["ingest", "query", "loop", "visibility"],
        help="query needs ingest",
    )
    parser.add_argument(
        "--vecduck-head",
        action="store_true",
        help="run vecduck from the last commit (git archive HEAD), not the files being edited",
    )
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", default=None, help="write the report into this Markdown file's shared.py section")
    parser.add_argument("--json", default=None, help="also write the raw figures to this JSON file")
    args = parser.parse_args()
    if "query" in args.parts and "ingest" not in args.parts:
        parser.error("the query part queries the collections the ingest part loaded")

    print("preparing data (cached after the first run)", file=sys.stderr, flush=True)
    data = ds.clustered(args.rows)
    n_queries = min(args.queries, len(data.queries()))
    facts: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/shared.py " + " ".join(sys.argv[1:]),
        "load_start": os.getloadavg()[0],
        "machine": machine(),
        "queries": n_queries,
        "notes": [],
    }
    work = Path(args.work or tempfile.mkdtemp(prefix="vecduck-shared-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.vecduck_head:
        export_head(work)
    started = time.perf_counter()
    results: dict[str, Any] = {"rows": args.rows}
    postgres, moto = Postgres(), Moto(work)
    try:
        postgres.start()
        moto.start()
        facts["versions"] = versions(postgres.version())
        bench = Bench(work, args.rows, postgres, moto)
        for part in [p for p in ("ingest", "query", "loop", "visibility") if p in args.parts]:
            phase_started = time.perf_counter()
            if part == "ingest":
                results["ingest"], kept = bench_ingest(bench, args.ingest_rounds)
            elif part == "query":
                results["query"] = bench_queries(bench, kept, n_queries, args.query_rounds, args.items)
                for backend in kept.values():
                    bench.drop(backend)
            elif part == "loop":
                results["loop"] = bench_loop(bench, args.items, args.loop_rounds)
            elif part == "visibility":
                results["visibility"] = bench_visibility(bench, args.writes)
            print(f"  {part}: {time.perf_counter() - phase_started:.0f} s", file=sys.stderr, flush=True)
    finally:
        moto.close()
        postgres.close()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    facts["minutes"] = (time.perf_counter() - started) / 60
    facts["load_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "facts": facts}, indent=1, default=str))
    section = report(results, facts, args)
    print(section)
    if args.out:
        write_section(Path(args.out), section)


if __name__ == "__main__":
    main()
