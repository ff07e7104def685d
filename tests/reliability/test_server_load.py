"""The server under load on loopback: several client processes (vecduck's and chromadb's
HttpClient) for a bounded time, mixed reads and writes; zero errors, zero lost writes.
Prints requests/s and p99 latency. Quick: 4 clients x 10 s; VECDUCK_LONG=1: 6 x 60 s."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import numpy as np
from harness import LONG, Server, spawn

import vecduck

CLIENTS = 6 if LONG else 4
SECONDS = 60 if LONG else 10

CLIENT = textwrap.dedent(
    """
    import json, random, sys, time, traceback, numpy as np
    port, c, start, end, kind = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    if kind == "chromadb":
        import chromadb
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
    else:
        import vecduck
        client = vecduck.HttpClient(host="127.0.0.1", port=port)
    col = client.get_or_create_collection("load", embedding_function=None)
    rng, nrng = random.Random(c), np.random.default_rng(c)
    acked, latencies, errors, n = [], [], [], 0
    time.sleep(max(0.0, start - time.time()))  # every client starts at once
    while time.time() < end:
        op = rng.choices(["add", "query", "get", "count", "upsert"], weights=[40, 25, 20, 5, 10])[0]
        started = time.perf_counter()
        try:
            if op == "add":
                ids = [f"c{c}-{n + i}" for i in range(rng.randint(1, 5))]
                col.add(ids=ids, embeddings=nrng.random((len(ids), 16), dtype=np.float32).tolist(),
                        metadatas=[{"c": c, "n": n + i} for i in range(len(ids))], documents=[f"doc {x}" for x in ids])
                n += len(ids)
                acked += ids
            elif op == "upsert" and acked:
                rid = rng.choice(acked)
                col.upsert(ids=[rid], embeddings=nrng.random((1, 16), dtype=np.float32).tolist(),
                           metadatas=[{"c": c, "n": int(rid.split("-")[1]), "u": True}])
            elif op == "query":
                col.query(query_embeddings=nrng.random((1, 16), dtype=np.float32).tolist(), n_results=5,
                          where={"c": rng.randrange(8)} if rng.random() < 0.5 else None)
            elif op == "get" and acked:
                want = rng.sample(acked, min(5, len(acked)))
                got = col.get(ids=want)
                if sorted(got["ids"]) != sorted(want):
                    errors.append(f"get {want} returned {got['ids']}")
            elif op == "count":
                col.count()
            else:
                continue
        except Exception:
            errors.append(traceback.format_exc())
        latencies.append(time.perf_counter() - started)
    print(json.dumps({"acked": acked, "latencies": latencies, "errors": errors}))
    """
)


def test_server_under_load(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    try:
        setup = vecduck.HttpClient(host="127.0.0.1", port=server.port)
        setup.create_collection("load", embedding_function=None)
        start = time.time() + 8  # clients take a few seconds to import and connect
        end = start + SECONDS
        kinds = ["chromadb" if c % 3 == 2 else "vecduck" for c in range(CLIENTS)]
        procs = [spawn(CLIENT, str(server.port), str(c), str(start), str(end), kinds[c]) for c in range(CLIENTS)]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=SECONDS + 180)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
        assert server.alive()
        errors = [e for r in results for e in r["errors"]]
        assert not errors, errors[:3]
        acked = [rid for r in results for rid in r["acked"]]
        col = setup.get_collection("load", embedding_function=None)
        assert col.count() == len(acked) == len(set(acked))
        found = []
        for i in range(0, len(acked), 1000):
            found += col.get(ids=acked[i : i + 1000])["ids"]
        assert sorted(found) == sorted(acked), "acknowledged writes are missing"
        latencies = np.asarray([t for r in results for t in r["latencies"]])
        rate = len(latencies) / SECONDS
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        print(
            f"\n{CLIENTS} clients ({kinds.count('vecduck')} vecduck, {kinds.count('chromadb')} chromadb)"
            f" for {SECONDS} s: {len(latencies)} requests, {rate:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
            f" {len(acked)} records written, 0 errors, 0 lost"
        )
        assert len(latencies) > CLIENTS * SECONDS, "the clients hardly ran"
    finally:
        code = server.stop()
    log = server.log()
    assert code == 0, log
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]
