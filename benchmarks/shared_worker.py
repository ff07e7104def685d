"""One workload of the shared-lake benchmark in this process (benchmarks/shared.py starts it).

    python benchmarks/shared_worker.py ingest     PATH [--data-path D] --rows N [--batch N]
    python benchmarks/shared_worker.py query      PATH [--data-path D] --rows N [--items N]  (over stdin)
    python benchmarks/shared_worker.py loop       --servers NAME=HOST:PORT ... --items N --round R
    python benchmarks/shared_worker.py visibility --pairs NAME=HOST:PORT,HOST:PORT ... --writes N
    python benchmarks/shared_worker.py floor      --like HOST:PORT --port P   (a server, until stopped)

PATH is a folder (the local baseline) or a PostgreSQL URL with an s3:// --data-path (a shared
lake); the S3 credentials and endpoint come from the AWS_* variables, the local cache from
$VECDUCK_CACHE. One-shot workloads print their figures as one JSON line on stdout.
`query` answers the driver line by line, so that two processes (local and shared) can take
turns query by query: `q I` runs query I and answers its time in seconds, `a I` adds row I
alone to a second collection (the embedded add loop), `r 0` times one PostgreSQL round trip
(psycopg, `SELECT 1`; shared lake only); `end` closes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import dataset as ds
import numpy as np
import pyarrow as pa

NAME = "bench"
CONFIG = {"hnsw": {"space": "cosine"}}
META_COLUMNS = ["category", "year", "score", "flag"]
HEARTBEATS = 200  # HTTP round trips through the client before the add loop: the floor under one add
FLOOR = "floor"  # the add loop's reference server that stores nothing (phase_floor)


def emit(figures: dict[str, Any]) -> None:
    print(json.dumps(figures), flush=True)


def open_client(path: str, data_path: str | None) -> Any:
    import vecduck

    return vecduck.PersistentClient(path=path, data_path=data_path)


def rows_of(batch: pa.RecordBatch) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """ids, metadatas and documents of a batch of the data set."""
    metas = batch.select(META_COLUMNS).to_pylist()
    return batch["id"].to_pylist(), metas, batch["document"].to_pylist()


# -- embedded ---------------------------------------------------------------------------------------
def phase_ingest(args: argparse.Namespace) -> None:
    """`collection.add` in batches, from opening the client to closing it (close flushes and publishes)."""
    data = ds.clustered(args.rows)
    batches = [(rows_of(batch), vectors) for batch, vectors in data.batches(args.batch)]  # read before the clock
    start = time.perf_counter()
    client = open_client(args.path, args.data_path)
    col = client.create_collection(NAME, embedding_function=None, configuration=CONFIG)
    opened = time.perf_counter()
    for (ids, metas, documents), vectors in batches:
        col.add(ids=ids, embeddings=vectors, metadatas=metas, documents=documents)
    added = time.perf_counter()
    client.close()
    end = time.perf_counter()
    emit(
        {
            "rows_per_s": data.rows / (end - start),
            "open_s": opened - start,
            "add_s": added - opened,
            "close_s": end - added,
            "total_s": end - start,
        }
    )


def phase_query(args: argparse.Namespace) -> None:
    """Open the collection, answer every query once (recall, warm-up), then time queries on demand."""
    data = ds.clustered(args.rows)
    queries, truth = data.queries(), data.truth()["all"]
    start = time.perf_counter()
    client = open_client(args.path, args.data_path)
    col = client.get_collection(NAME, embedding_function=None)
    col.query(query_embeddings=[queries[0]], n_results=ds.K)
    first = time.perf_counter() - start
    hits = 0
    for q, true in zip(queries, truth, strict=True):
        found = col.query(query_embeddings=[q], n_results=ds.K)["ids"][0]
        hits += len({int(i[2:]) for i in found} & set(true.tolist()))
    emit({"open_first_ms": 1e3 * first, "recall": hits / truth.size, "count": col.count()})
    loop: Any = None
    round_trip: Any = None
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "end":
            break
        i = int(command[1])
        if command[0] == "q":
            q = queries[i % len(queries)]
            started = time.perf_counter()
            col.query(query_embeddings=[q], n_results=ds.K)
        elif command[0] == "r":  # one PostgreSQL round trip on a connection of its own (a shared lake only)
            if round_trip is None:
                import psycopg

                round_trip = psycopg.connect(args.path, autocommit=True)
                round_trip.execute("SELECT 1").fetchone()
            started = time.perf_counter()
            round_trip.execute("SELECT 1").fetchone()
        else:  # "a I": add row I of the data set, alone, to a collection of its own
            if loop is None:
                batch, vectors = next(data.batches(args.items + 1))
                loop = (
                    client.create_collection("loop", embedding_function=None, configuration=CONFIG),
                    *rows_of(batch),
                    vectors,
                )
            loop_col, ids, metas, documents, vectors = loop
            started = time.perf_counter()
            loop_col.add(ids=[ids[i]], embeddings=[vectors[i]], metadatas=[metas[i]], documents=[documents[i]])
        print(time.perf_counter() - started, flush=True)
    client.close()
    if round_trip is not None:
        round_trip.close()


# -- through servers, with chromadb's HttpClient ----------------------------------------------------------
def http_client(address: str) -> Any:
    import chromadb

    host, port = address.rsplit(":", 1)
    return chromadb.HttpClient(host=host, port=int(port), settings=chromadb.Settings(anonymized_telemetry=False))


def named(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def phase_loop(args: argparse.Namespace) -> None:
    """Single-item adds, one server per system, taking turns item by item; items/s from the
    summed time of each system's own adds. The first add of each is timed apart."""
    servers = named(args.servers)
    data = ds.clustered(args.rows)
    batch, vectors = next(data.batches(args.items + 1))
    ids, metas, documents = rows_of(batch)
    cols = {}
    first: dict[str, float] = {}
    heartbeat: dict[str, float] = {}
    for name, address in servers.items():
        client = http_client(address)
        beats = []
        for _ in range(HEARTBEATS):
            start = time.perf_counter()
            client.heartbeat()
            beats.append(time.perf_counter() - start)
        heartbeat[name] = float(np.percentile(beats, 50))
        # a name per system: the floor server creates its collection on the local server
        cols[name] = client.create_collection(f"loop{args.round}-{name}", embedding_function=None, configuration=CONFIG)
        start = time.perf_counter()
        cols[name].add(ids=[ids[-1]], embeddings=[vectors[-1]], metadatas=[metas[-1]], documents=[documents[-1]])
        first[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in servers}
    order = list(servers)
    for row in range(args.items):
        for name in order if row % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            cols[name].add(
                ids=[ids[row]], embeddings=[vectors[row]], metadatas=[metas[row]], documents=[documents[row]]
            )
            times[name].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    for name, seconds in times.items():
        if name != FLOOR:  # the floor server stores nothing
            assert cols[name].count() == args.items + 1, (name, cols[name].count())
        out[name] = {
            "items_per_s": len(seconds) / sum(seconds),
            "first_add_ms": 1e3 * first[name],
            "add_p50_ms": 1e3 * float(np.percentile(seconds, 50)),
            "add_p99_ms": 1e3 * float(np.percentile(seconds, 99)),
            "heartbeat_p50_ms": 1e3 * heartbeat[name],
        }
    emit(out)


def phase_floor(args: argparse.Namespace) -> None:
    """The client's own floor under one add: a server that answers every add at once with
    Chroma's 201 and stores nothing, and passes every other call (create the collection,
    heartbeat) to the real server at `--like`. The add loop through it times chromadb's
    client, the loopback and uvicorn, and no database."""
    import http.client

    import uvicorn

    host, port = args.like.rsplit(":", 1)
    real = http.client.HTTPConnection(host, int(port))

    def forward(scope: dict, body: bytes) -> tuple[int, bytes]:
        path = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.lower() != b"host"}
        for attempt in (1, 2):  # the real server closes an idle kept-alive connection (between rounds)
            try:
                real.request(scope["method"], path, body=body or None, headers=headers)
                answer = real.getresponse()
                return answer.status, answer.read()
            except (http.client.HTTPException, OSError):
                real.close()  # the next request opens a new connection
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def app(scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"].endswith("/add"):
            status, answer = 201, b"{}"
        else:
            status, answer = forward(scope, body)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host=host, port=args.port, log_level="warning", http="h11", lifespan="off")


def phase_visibility(args: argparse.Namespace) -> None:
    """Per pair of servers: add one record through the first, then `get(ids=[id])` through
    the second until it is there; the time from the add's acknowledgment to the first read
    that returns it. Pairs take turns write by write."""
    pairs = {name: value.split(",") for name, value in named(args.pairs).items()}
    data = ds.clustered(args.rows)
    batch, vectors = next(data.batches(args.writes))
    ids, metas, documents = rows_of(batch)
    sides: dict[str, tuple[Any, Any]] = {}
    for name, (writer, reader) in pairs.items():
        written = http_client(writer).create_collection("visible", embedding_function=None, configuration=CONFIG)
        deadline = time.monotonic() + 30
        while True:  # the reader's server sees the new collection (its next call catches up)
            try:
                read = http_client(reader).get_collection("visible", embedding_function=None)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        written.add(ids=["warm"], embeddings=[vectors[0]])  # first write and read of each, not timed
        read.get(ids=["warm"])
        sides[name] = (written, read)
    lag: dict[str, list[float]] = {name: [] for name in pairs}
    ack: dict[str, list[float]] = {name: [] for name in pairs}
    polls: dict[str, list[int]] = {name: [] for name in pairs}
    order = list(pairs)
    for row in range(args.writes):
        for name in order if row % 2 == 0 else order[::-1]:
            written, read = sides[name]
            start = time.perf_counter()
            written.add(ids=[ids[row]], embeddings=[vectors[row]], metadatas=[metas[row]], documents=[documents[row]])
            acknowledged = time.perf_counter()
            tries = 0
            while True:
                tries += 1
                if read.get(ids=[ids[row]])["ids"]:
                    break
                if time.perf_counter() - acknowledged > 30:
                    raise TimeoutError(f"{name}: {ids[row]} not visible after 30 s")
            lag[name].append(time.perf_counter() - acknowledged)
            ack[name].append(acknowledged - start)
            polls[name].append(tries)
    out: dict[str, Any] = {}
    for name in pairs:
        seconds = lag[name]
        out[name] = {
            "lag_p50_ms": 1e3 * float(np.percentile(seconds, 50)),
            "lag_p99_ms": 1e3 * float(np.percentile(seconds, 99)),
            "lag_max_ms": 1e3 * max(seconds),
            "add_p50_ms": 1e3 * float(np.percentile(ack[name], 50)),
            "first_read_share": sum(t == 1 for t in polls[name]) / len(polls[name]),
            "max_reads": max(polls[name]),
            "writes": len(seconds),
        }
    emit(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["ingest", "query", "loop", "visibility", "floor"])
    parser.add_argument("path", nargs="?", default=None, help="folder or PostgreSQL URL (ingest, query)")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--rows", type=int, default=100_000, help="the data set (benchmarks/dataset.py)")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--servers", nargs="*", default=[], help="NAME=HOST:PORT (loop)")
    parser.add_argument("--pairs", nargs="*", default=[], help="NAME=WRITER_HOST:PORT,READER_HOST:PORT (visibility)")
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--like", default=None, help="HOST:PORT of the real server (floor)")
    parser.add_argument("--port", type=int, default=0, help="the floor server's port (floor)")
    args = parser.parse_args()
    phases = {"ingest": phase_ingest, "query": phase_query, "loop": phase_loop, "visibility": phase_visibility}
    phases["floor"] = phase_floor
    phases[args.phase](args)


if __name__ == "__main__":
    main()
