"""A shared lake served by several processes at once, against real services (no mocks).

The catalog and vecduck's registry are in the fixture's PostgreSQL, the Parquet files and
published index snapshots in the fixture's moto bucket. The processes are `vecduck run`
servers (each with its own cache folder, like separate machines), reached through
chromadb's official HTTP client or raw httpx, and an embedded `vecduck.PersistentClient`
in the test process. Every expectation is computed by the test itself, with NumPy, from
what it wrote and had acknowledged: exact L2 nearest neighbours, counts, stored vectors.

VECDUCK_LONG=1 runs the concurrent scenarios for longer.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chromadb.errors
import duckdb
import httpx
import numpy as np
import pytest
import xxhash
from lake_servers import LakeServer, LakeServers, lake_servers

import vecduck
import vecduck.errors
from vecduck.engine.shared_registry import WRITER_LOCK

if TYPE_CHECKING:  # annotations only: several test folders have a conftest module
    from conftest import Bucket, PostgresServer

psycopg = pytest.importorskip("psycopg", reason="psycopg is in the `shared` extra (the `dev` extra installs it)")

LONG = os.environ.get("VECDUCK_LONG") == "1"
DIM = 16
NOT_FOUND = (chromadb.errors.NotFoundError, vecduck.errors.NotFoundError)
API = "/api/v2/tenants/default_tenant/databases/default_database/collections"


# -- the lake, its processes and what the test wrote ------------------------------------------


@dataclass
class Lake:
    """One shared lake of this test: its catalog URL, data path, bucket, servers and the
    embedded client of the test process (opened on demand, closed at teardown)."""

    url: str
    data_path: str
    bucket: Bucket
    servers: LakeServers
    folder: Path
    clients: list[Any] = field(default_factory=list)

    def embedded(self) -> Any:
        """A `vecduck.PersistentClient` on the lake (the test process is one more machine)."""
        client = vecduck.PersistentClient(self.url, data_path=self.data_path)
        self.clients.append(client)
        return client

    def published(self, name: str) -> bytes:
        """A published derived file under `<data_path>vecduck-index/`, read with boto3."""
        prefix = self.data_path.removeprefix(f"s3://{self.bucket.name}/")
        answer = self.bucket.client().get_object(Bucket=self.bucket.name, Key=f"{prefix}vecduck-index/{name}")
        return answer["Body"].read()


@pytest.fixture
def lake(fresh_postgres_url: str, s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    """A new shared lake (fresh database, fresh bucket); every server started on it is
    stopped at teardown and must exit cleanly, and embedded clients are closed."""
    monkeypatch.setenv("VECDUCK_CACHE", str(tmp_path / "embedded-cache"))
    data_path = f"s3://{s3_bucket.name}/lake/"
    with lake_servers(fresh_postgres_url, data_path, tmp_path) as servers:
        state = Lake(fresh_postgres_url, data_path, s3_bucket, servers, tmp_path)
        try:
            yield state
        finally:
            for client in state.clients:
                client.close()
        failed = servers.close()
        assert not failed, f"servers {failed} did not stop cleanly:\n{servers.logs()}"


@dataclass
class Peer:
    """One process's view of the lake: chromadb's client of a server, or the embedded client."""

    name: str
    client: Any

    def collection(self, name: str) -> Any:
        return self.client.get_collection(name, embedding_function=None)


def peers(lake: Lake, *servers: LakeServer) -> list[Peer]:
    return [*(Peer(s.name, s.client()) for s in servers), Peer("embedded", lake.embedded())]


def vectors(rng: np.random.Generator, count: int, dim: int = DIM) -> np.ndarray:
    return rng.standard_normal((count, dim)).astype(np.float32)


def nearest(matrix: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row numbers of the exact L2 nearest neighbour of each query (NumPy, float64)."""
    m = matrix.astype(np.float64)
    q = queries.astype(np.float64)
    squared = (q * q).sum(1)[:, None] + (m * m).sum(1)[None, :] - 2.0 * q @ m.T
    return np.argmin(squared, axis=1)


def near_copies(rng: np.random.Generator, vecs: np.ndarray) -> np.ndarray:
    """Queries a hair away from `vecs`, so that each one's nearest neighbour is the vector
    it came from (checked with `nearest` by the caller) but is not found by equality."""
    return (vecs + 1e-3 * rng.standard_normal(vecs.shape)).astype(np.float32)


class Model:
    """The acknowledged state of one collection: id -> vector, document and metadata,
    under chromadb's rules (add skips existing ids, update skips missing ones)."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.documents: dict[str, str] = {}
        self.metadatas: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.vectors)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self.vectors

    def write(self, mode: str, ids: Sequence[str], vecs: np.ndarray, documents: Sequence[str],
              metadatas: Sequence[dict[str, Any]]) -> None:
        for record_id, vec, document, metadata in zip(ids, vecs, documents, metadatas, strict=True):
            if (mode == "add" and record_id in self) or (mode == "update" and record_id not in self):
                continue
            self.vectors[record_id] = vec
            self.documents[record_id] = document
            self.metadatas[record_id] = metadata  # always the same keys: merging equals replacing

    def delete(self, ids: Sequence[str]) -> None:
        for record_id in ids:
            self.vectors.pop(record_id, None)
            self.documents.pop(record_id, None)
            self.metadatas.pop(record_id, None)

    def nearest_ids(self, queries: np.ndarray) -> list[str]:
        ids = list(self.vectors)
        return [ids[i] for i in nearest(np.stack([self.vectors[i] for i in ids]), queries)]


def check_records(where: str, collection: Any, expected: dict[str, np.ndarray], absent: Sequence[str] = (),
                  documents: dict[str, str] | None = None, chunk: int = 5_000) -> None:
    """`get` by ids returns each id of `expected` exactly once with its vector (and document),
    and none of `absent`."""
    asked = list(expected) + list(absent)
    seen: list[str] = []
    for start in range(0, len(asked), chunk):
        part = asked[start:start + chunk]
        got = collection.get(ids=part, include=["embeddings", "documents"])
        seen += got["ids"]
        for record_id, vec, document in zip(got["ids"], got["embeddings"], got["documents"], strict=True):
            assert record_id in expected, f"{where}: get returned {record_id}, which must be absent"
            np.testing.assert_array_equal(np.asarray(vec, np.float32), expected[record_id],
                                          err_msg=f"{where}: stored vector of {record_id}")
            if documents is not None:
                assert document == documents[record_id], f"{where}: document of {record_id}"
    duplicates = [i for i, n in collections.Counter(seen).items() if n > 1]
    assert not duplicates, f"{where}: ids returned more than once: {duplicates[:5]}"
    missing = set(expected) - set(seen)
    assert not missing, f"{where}: {len(missing)} acknowledged ids missing, e.g. {sorted(missing)[:5]}"


# HNSW's misses allowed (each still found by an exact query): 1% of the probes, at least 3
# (usearch's concurrent inserts leave about 0.03-0.3% of nodes unreachable, unum-cloud/USearch#735,
# so a few hundred probes see 0 to 2 of them)
HNSW_MISS_RATE = 0.01
HNSW_MISS_FLOOR = 3


def check_nearest(where: str, collection: Any, rng: np.random.Generator, expected: dict[str, np.ndarray],
                  ids: Sequence[str], universe: np.ndarray | None = None) -> None:
    """A query a hair away from each vector of `ids` returns that id first; NumPy confirms
    beforehand that it is the exact nearest neighbour among `universe` (default: `expected`)."""
    misses = nearest_misses(collection, rng, expected, ids, universe)
    if misses:
        raise AssertionError(f"{where}: {len(misses)} of {len(ids)} queries missed their nearest neighbour:\n"
                             + "\n".join(misses[:5]))


def nearest_misses(collection: Any, rng: np.random.Generator, expected: dict[str, np.ndarray],
                   ids: Sequence[str], universe: np.ndarray | None = None, chunk: int = 500) -> list[str]:
    """`check_nearest`'s queries; an explanation of each one whose first hit was not its id."""
    matrix = np.stack(list(expected.values())) if universe is None else universe
    known = list(expected) if universe is None else None
    misses: list[str] = []
    graph: list[str] = []
    for start in range(0, len(ids), chunk):
        part = list(ids[start:start + chunk])
        base = np.stack([expected[i] for i in part])
        queries = near_copies(rng, base)
        rows = nearest(matrix, queries)
        if known is not None:
            assert [known[r] for r in rows] == part, "test bug: a near copy's nearest neighbour is another vector"
        else:
            assert np.array_equal(matrix[rows], base), "test bug: a near copy's nearest neighbour is another vector"
        answer = collection.query(query_embeddings=queries, n_results=3, include=["distances"])
        firsts = [hits[0] if hits else None for hits in answer["ids"]]
        for n, (want, got) in enumerate(zip(part, firsts, strict=True)):
            if want == got:
                continue
            explained = explain_miss(collection, want, queries[n], answer["ids"][n], answer["distances"][n])
            exact = collection.query(query_embeddings=queries[n:n + 1], n_results=1, ids=[want])
            (graph if exact["ids"][0] == [want] else misses).append(explained)
    # HNSW is approximate (usearch can leave a node unreachable: unum-cloud/USearch#735); such
    # a record must still be stored and found by an exact query, which `graph` holds
    if len(graph) > max(HNSW_MISS_FLOOR, int(len(ids) * HNSW_MISS_RATE)):
        misses += [f"{line} (found by an exact query: missed by HNSW)" for line in graph]
    return misses


def explain_miss(collection: Any, wanted: str, query: np.ndarray, hits: list[str], distances: list[float]) -> str:
    """What a missed nearest neighbour looks like: is the record there, with its vector?
    (A record that get returns whole but no query finds is missing from the index's graph.)"""
    stored = collection.get(ids=[wanted], include=["embeddings"])
    if not stored["ids"]:
        return f"  {wanted}: absent (get returns nothing); the query returned {hits}"
    vec = np.asarray(stored["embeddings"][0], np.float64)
    own = float(((vec - query) ** 2).sum())
    return (f"  {wanted}: stored with its vector (squared L2 to the query {own:.2e}),"
            f" yet the query returned {[(hit, round(float(d), 4)) for hit, d in zip(hits, distances, strict=True)]}")


# -- scenario 1: writes through every process, seen by every process at once ------------------


def test_every_write_is_seen_by_every_process_at_its_next_call(lake: Lake) -> None:
    """Two servers and the embedded client write in turn (add, upsert, update, delete, in
    small batches and batches of >= 5,000 rows, which go straight to the lake); after each
    write all three answer get, count and a nearest-neighbour query as of that write."""
    a, b = lake.servers.start("a"), lake.servers.start("b")
    views = peers(lake, a, b)
    views[2].client.create_collection("writes", embedding_function=None)
    handles = {peer.name: peer.collection("writes") for peer in views}
    rng = np.random.default_rng(1)
    model = Model()
    counter = iter(range(10**9))

    def new_ids(count: int) -> list[str]:
        return [f"r{next(counter)}" for _ in range(count)]

    def existing(count: int) -> list[str]:
        return rng.choice(sorted(model.vectors), size=count, replace=False).tolist()

    steps: list[tuple[str, str, Callable[[], list[str]]]] = [
        ("a", "add", lambda: new_ids(10)),
        ("b", "add", lambda: new_ids(5_000)),
        ("embedded", "upsert", lambda: existing(10) + new_ids(10)),
        ("a", "update", lambda: [*existing(10), "never-added"]),
        ("b", "delete", lambda: existing(10)),
        ("a", "upsert", lambda: existing(2_500) + new_ids(3_000)),
        ("b", "update", lambda: existing(5_000)),
        ("embedded", "delete", lambda: existing(5_000)),
        ("a", "delete", lambda: existing(7)),
        ("b", "upsert", lambda: existing(3) + new_ids(4)),
        ("embedded", "add", lambda: new_ids(6)),
        ("embedded", "update", lambda: existing(12)),
    ]
    first_reads: list[str] = []  # how long each process's first call after a write took
    for number, (writer, mode, choose) in enumerate(steps):
        ids = choose()
        where = f"step {number} ({mode} of {len(ids)} by {writer})"
        if mode == "delete":
            gone = np.stack([model.vectors[i] for i in ids])
            handles[writer].delete(ids=ids)
            model.delete(ids)
            written: list[str] = []
            deleted = ids
        else:
            vecs = vectors(rng, len(ids))
            documents = [f"{record_id} v{number}" for record_id in ids]
            metadatas = [{"step": number, "by": writer} for _ in ids]
            getattr(handles[writer], mode)(ids=ids, embeddings=vecs, documents=documents, metadatas=metadatas)
            model.write(mode, ids, vecs, documents, metadatas)
            written = [record_id for record_id in ids if record_id in model]
            deleted = []
        sample = rng.choice(written, size=min(300, len(written)), replace=False).tolist() if written else []
        probes = sample[:3]
        latencies = []
        for peer in views:
            seen_by = f"{where}, read by {peer.name}"
            collection = handles[peer.name]
            began = time.perf_counter()
            assert collection.count() == len(model), seen_by
            latencies.append(f"{peer.name} {time.perf_counter() - began:.2f}s")
            check_records(seen_by, collection, {i: model.vectors[i] for i in sample}, deleted[:50], model.documents)
            if probes:
                check_nearest(seen_by, collection, rng, model.vectors, probes)
            if deleted:  # queried right where they were, deleted records are never found
                hits = collection.query(query_embeddings=near_copies(rng, gone[:20]), n_results=10)["ids"]
                found = set(deleted) & {record_id for row in hits for record_id in row}
                assert not found, f"{seen_by}: deleted ids came back from a query: {sorted(found)[:5]}"
        first_reads.append(f"  {where}: {', '.join(latencies)}")
    print("\n[first call after each write]\n" + "\n".join(first_reads))
    for peer in views:  # metadata, finally: every record's, from every process
        got = handles[peer.name].get(include=["metadatas"])
        assert dict(zip(got["ids"], got["metadatas"], strict=True)) == model.metadatas, peer.name


def test_a_query_right_after_a_write_elsewhere_sees_it(lake: Lake) -> None:
    """An embedded query on a shared lake searches its read model while its one catalog
    round trip (has anyone committed?) is on the way, and keeps that answer only when
    nobody had. So the first call after another process's add, move (upsert) or delete,
    a query with or without a filter, answers as of that write, every time."""
    a = lake.servers.start("a")
    embedded = lake.embedded().create_collection("overlap", embedding_function=None)
    rng = np.random.default_rng(7)
    base = vectors(rng, 400)
    embedded.add(ids=[f"b{i}" for i in range(len(base))], embeddings=base,
                 metadatas=[{"part": i % 2} for i in range(len(base))])
    remote = a.client().get_collection("overlap", embedding_function=None)
    embedded.query(query_embeddings=base[:1], n_results=1)  # the read model is open and caught up
    for step in range(12):
        target, moved = vectors(rng, 2)
        new_id = f"new{step}"
        remote.add(ids=[new_id], embeddings=[target], metadatas=[{"part": step % 2}])
        where = {"part": step % 2} if step % 3 == 0 else None
        assert embedded.query(query_embeddings=[target], n_results=1, where=where)["ids"] == [[new_id]], step
        remote.upsert(ids=[new_id], embeddings=[moved], metadatas=[{"part": step % 2}])
        hits = embedded.query(query_embeddings=[target, moved], n_results=1, include=["embeddings"])
        assert hits["ids"][0] != [new_id] and hits["ids"][1] == [new_id], step
        np.testing.assert_array_equal(hits["embeddings"][1][0], moved)
        remote.delete(ids=[new_id])
        after = embedded.query(query_embeddings=[moved], n_results=3, where=where)["ids"][0]
        assert new_id not in after, step
    # a wrong dimension is refused as before, and then the next write elsewhere is still seen
    with pytest.raises(vecduck.errors.InvalidArgumentError, match="dimension"):
        embedded.query(query_embeddings=[[0.0] * (DIM + 1)], n_results=1)
    last = vectors(rng, 1)
    remote.add(ids=["last"], embeddings=last)
    assert embedded.query(query_embeddings=last, n_results=1)["ids"] == [["last"]]


# -- concurrent writers and readers ------------------------------------------------------------


class Ledger:
    """What concurrent writers sent, and what was acknowledged: id -> its last vector.

    A write that failed may have landed or not, so `sent` bounds what a process may hold
    from above, and `acked` (taken before a read began) from below."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, np.ndarray] = {}
        self.acked: dict[str, np.ndarray] = {}
        self.versions: dict[str, list[np.ndarray]] = collections.defaultdict(list)  # every vector sent

    def sending(self, ids: Sequence[str], vecs: np.ndarray) -> None:
        with self.lock:
            self.sent.update(zip(ids, vecs, strict=True))
            for record_id, vec in zip(ids, vecs, strict=True):
                self.versions[record_id].append(vec)

    def current(self, record_id: str, acked: np.ndarray, vec: np.ndarray) -> bool:
        """Whether `vec` may be the stored vector of an id acknowledged with `acked`: that
        one, or one sent for the id since (a write in flight during the read)."""
        with self.lock:
            versions = self.versions[record_id]
        since = next((n for n, old in enumerate(versions) if np.array_equal(old, acked)), len(versions))
        return any(np.array_equal(vec, later) for later in versions[since:])

    def acknowledged(self, ids: Sequence[str], vecs: np.ndarray) -> None:
        with self.lock:
            self.acked.update(zip(ids, vecs, strict=True))

    def snapshot(self) -> dict[str, np.ndarray]:
        with self.lock:
            return dict(self.acked)

    def sent_vectors(self) -> tuple[list[str], np.ndarray]:
        with self.lock:
            return list(self.sent), np.stack(list(self.sent.values()))


class Workers:
    """Threads that loop until `stop` is set; what escapes one is kept, with its traceback."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.failures: list[str] = []

    def start(self, name: str, work: Callable[[threading.Event], None]) -> None:
        def run() -> None:
            try:
                work(self.stop)
            except BaseException:
                self.failures.append(f"{name}:\n{traceback.format_exc()}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def run_for(self, seconds: float) -> None:
        """Let the threads work for `seconds` (less if one fails)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.failures:
            time.sleep(0.05)

    def join(self, timeout: float = 120) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        assert not stuck, f"threads still running after {timeout}s: {stuck}"


def writer_loop(name: str, collection: Any, ledger: Ledger, seed: int, batch: tuple[int, int] = (1, 20),
                upserts: bool = True, outcomes: Outcomes | None = None) -> Callable[[threading.Event], None]:
    """Small batches of adds of new ids (and upserts of this writer's own ids with new vectors),
    each recorded in `ledger` when acknowledged. With `outcomes`, a failed write is counted
    there and the loop goes on; without, it ends the thread (and so fails the test).
    Failures are only tolerated without upserts: an id whose write failed may have landed,
    so it must never be written again with another vector."""
    assert not (upserts and outcomes), "with failures tolerated, ids are written once"

    def work(stop: threading.Event) -> None:
        rng = np.random.default_rng(seed)
        mine: list[str] = []
        while not stop.is_set():
            size = int(rng.integers(batch[0], batch[1] + 1))
            if upserts and mine and rng.random() < 0.5:
                again = rng.choice(mine, size=min(len(mine), max(1, size // 2)), replace=False).tolist()
                fresh = [f"{name}-{len(mine) + j}" for j in range(size - len(again))]
                ids, mode = again + fresh, "upsert"
            else:
                fresh = [f"{name}-{len(mine) + j}" for j in range(size)]
                ids, mode = fresh, "add"
            vecs = vectors(rng, len(ids))
            ledger.sending(ids, vecs)
            try:
                getattr(collection, mode)(ids=ids, embeddings=vecs)
            except Exception as exc:
                if outcomes is None:
                    raise
                outcomes.failed(f"{name} {mode}", exc)
            else:
                ledger.acknowledged(ids, vecs)
                if outcomes is not None:
                    outcomes.ok(f"{name} {mode}")
            mine += fresh

    return work


class Outcomes:
    """How each kind of request ended (counts by outcome), every wrong answer, and each
    query whose nearest neighbour was not first (HNSW is approximate: see `wrong_answers`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.wrong: list[str] = []
        self.queries = 0
        self.misses: list[tuple[str, str, np.ndarray, list[str]]] = []

    def queried(self, where: str, probe: str, query: np.ndarray, hits: list[str]) -> None:
        with self.lock:
            self.queries += 1
            if not hits or hits[0] != probe:
                self.misses.append((where, probe, query, hits))

    def ok(self, what: str) -> None:
        with self.lock:
            self.counts[(what, "ok")] += 1

    def failed(self, what: str, exc: BaseException) -> None:
        first_line = (str(exc).splitlines() or [""])[0][:100]
        with self.lock:
            self.counts[(what, f"{type(exc).__module__}.{type(exc).__name__}: {first_line}")] += 1

    def status(self, what: str, code: int, body: str) -> None:
        with self.lock:
            self.counts[(what, f"HTTP {code} {body[:100]}")] += 1

    def mistake(self, text: str) -> None:
        with self.lock:
            self.wrong.append(text)

    def failures(self) -> dict[tuple[str, str], int]:
        return {key: n for key, n in self.counts.items() if key[1] != "ok"}

    def summary(self) -> str:
        return "\n".join(f"  {what:<28} {outcome}: {n}" for (what, outcome), n in sorted(self.counts.items()))


def reader_loop(name: str, collection: Any, ledger: Ledger, outcomes: Outcomes, seed: int,
                tolerate_errors: bool) -> Callable[[threading.Event], None]:
    """count, get and query through chromadb's client, each checked against the ledger:
    nothing acknowledged before the call may be missing, nothing never sent may appear.
    An exception is counted (`tolerate_errors`) or is a wrong answer."""

    def work(stop: threading.Event) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            before = ledger.snapshot()
            sample = rng.choice(list(before), size=min(20, len(before)), replace=False).tolist()
            probe = sample[0]
            query = near_copies(rng, before[probe][None, :])
            for what in ("count", "get", "query"):
                try:
                    if what == "count":
                        answer: Any = collection.count()
                    elif what == "get":
                        answer = collection.get(ids=sample, include=["embeddings"])
                    else:
                        answer = collection.query(query_embeddings=query, n_results=3, include=["distances"])
                except Exception as exc:
                    outcomes.failed(f"{name} {what}", exc)
                    if not tolerate_errors:
                        outcomes.mistake(f"{name} {what} raised {exc!r}")
                    continue
                outcomes.ok(f"{name} {what}")
                judge(f"{name} {what}", what, answer, before, sample, probe, query, ledger, outcomes)

    return work


def judge(where: str, what: str, answer: Any, before: dict[str, np.ndarray], sample: list[str], probe: str,
          query: np.ndarray, ledger: Ledger, outcomes: Outcomes) -> None:
    """Check one read's answer (chromadb's result shapes) against the ledger."""
    if what == "count":
        upper = len(ledger.sent)
        if not len(before) <= answer <= upper:
            outcomes.mistake(f"{where}: {answer} records, but {len(before)} were acknowledged and {upper} sent")
    elif what == "get":
        ids = list(answer["ids"])
        if sorted(ids) != sorted(sample):
            outcomes.mistake(f"{where}: asked {len(sample)} acknowledged ids, got {len(ids)}"
                             f" (missing {sorted(set(sample) - set(ids))[:3]})")
        for record_id, vec in zip(ids, answer["embeddings"], strict=True):
            if record_id in before and not ledger.current(record_id, before[record_id], np.asarray(vec, np.float32)):
                outcomes.mistake(f"{where}: a wrong vector for {record_id}")
    else:
        names, matrix = ledger.sent_vectors()
        if not np.array_equal(matrix[names.index(probe)], before[probe]):
            return  # the probe was written again (a new vector) since the read began: no nearest to expect
        expected = names[int(nearest(matrix, query)[0])]
        if expected != probe:
            outcomes.mistake(f"{where}: test bug, the near copy of {probe} is nearest to {expected}")
        else:
            outcomes.queried(where, probe, query, answer["ids"][0])


def wrong_answers(outcomes: Outcomes, collection: Any) -> list[str]:
    """The wrong answers, with the readers' query misses: each missed record must be found
    by an exact query (restricted to its id) through `collection`, and no more than
    HNSW_MISS_RATE of the queries (at least HNSW_MISS_FLOOR) may miss."""
    wrong = list(outcomes.wrong)
    for where, probe, query, hits in outcomes.misses:
        exact = collection.query(query_embeddings=query, n_results=1, ids=[probe])
        if exact["ids"][0] != [probe]:
            wrong.append(f"{where}: query near {probe} returned {hits[:3]}, and an exact query nothing")
    if len(outcomes.misses) > max(HNSW_MISS_FLOOR, int(outcomes.queries * HNSW_MISS_RATE)):
        wrong += [f"{where}: query near {probe} returned {hits[:3]} (one of {len(outcomes.misses)} misses"
                  f" in {outcomes.queries} queries)" for where, probe, _, hits in outcomes.misses]
    return wrong


def httpx_reader_loop(name: str, server: LakeServer, collection_id: str, ledger: Ledger, outcomes: Outcomes,
                      seed: int) -> Callable[[threading.Event], None]:
    """The same reads as `reader_loop` over raw HTTP, to see the status codes themselves."""
    base = f"{server.url}{API}/{collection_id}"

    def work(stop: threading.Event) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                before = ledger.snapshot()
                sample = rng.choice(list(before), size=min(20, len(before)), replace=False).tolist()
                probe = sample[0]
                query = near_copies(rng, before[probe][None, :])
                requests = {
                    "count": lambda: http.get(base + "/count"),
                    "get": lambda sample=sample: http.post(base + "/get",
                                                           json={"ids": sample, "include": ["embeddings"]}),
                    "query": lambda query=query: http.post(base + "/query", json={
                        "query_embeddings": query.tolist(), "n_results": 3, "include": ["distances"]}),
                }
                for what, send in requests.items():
                    try:
                        response = send()
                    except httpx.HTTPError as exc:
                        outcomes.failed(f"{name} {what}", exc)
                        continue
                    if response.status_code != 200:
                        outcomes.status(f"{name} {what}", response.status_code, response.text)
                        if response.status_code < 500:
                            outcomes.mistake(f"{name} {what}: HTTP {response.status_code} {response.text[:200]}")
                        continue
                    outcomes.ok(f"{name} {what}")
                    judge(f"{name} {what}", what, response.json(), before, sample, probe, query, ledger, outcomes)

    return work


def check_final(where: str, collection: Any, ledger: Ledger, rng: np.random.Generator, probes: int = 300) -> None:
    """After the writers stopped: every acknowledged id once, with its last vector; nothing
    never sent; a count between the two; and (`probes` of them) nearest-neighbour queries right."""
    acked = ledger.snapshot()
    count = collection.count()
    assert len(acked) <= count <= len(ledger.sent), f"{where}: count {count}, acked {len(acked)}"
    check_records(where, collection, acked)
    if probes:
        some = rng.choice(list(acked), size=min(probes, len(acked)), replace=False).tolist()
        _names, matrix = ledger.sent_vectors()
        check_nearest(where, collection, rng, acked, some, universe=matrix)


# -- scenario 2: concurrent writers on every process -------------------------------------------


def test_concurrent_writers_on_three_processes_lose_nothing(lake: Lake) -> None:
    """Four threads add and upsert their own ids in small batches through the two servers
    and the embedded client for a few seconds; afterwards each process holds every
    acknowledged id exactly once, with its last acknowledged vector, and finds it by query."""
    a, b = lake.servers.start("a"), lake.servers.start("b")
    views = peers(lake, a, b)
    views[2].client.create_collection("concurrent", embedding_function=None)
    ledger = Ledger()
    workers = Workers()
    for number in range(4):
        peer = views[number % 3]
        workers.start(f"w{number}", writer_loop(f"w{number}", peer.collection("concurrent"), ledger, seed=number))
    workers.run_for(60.0 if LONG else 4.0)
    workers.join()
    assert not workers.failures, "\n".join(workers.failures) + lake.servers.logs()
    assert len(ledger.acked) >= 20, "the writers wrote almost nothing"
    assert ledger.acked.keys() == ledger.sent.keys()
    rng = np.random.default_rng(2)
    for peer in views:
        collection = peer.collection("concurrent")
        assert collection.count() == len(ledger.acked), peer.name
        check_records(peer.name, collection, ledger.acked)
    misses = {peer.name: nearest_misses(peer.collection("concurrent"), rng, ledger.acked, list(ledger.acked))
              for peer in views}
    if any(misses.values()):
        raise AssertionError(f"of {len(ledger.acked)} queries, each for an acknowledged vector:\n" + "\n".join(
            f"{name}: {len(found)} missed their nearest neighbour\n" + "\n".join(found[:5])
            for name, found in misses.items() if found))


# -- scenario 3: SIGKILL of a server in the middle of a large write ---------------------------

KILLED_ROWS = 30_000


def writer_lock_held(url: str) -> bool:
    """Whether some session holds vecduck's writer lock (an advisory lock of this database)."""
    with psycopg.connect(url, autocommit=True) as con:
        return bool(con.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid::bigint = %s AND objid::bigint = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (WRITER_LOCK >> 32, WRITER_LOCK & 0xFFFFFFFF)).fetchone()[0])


def lake_commit_running(url: str, collection_id: str) -> bool:
    """Whether the collection's lake commit has begun and not ended (its intent is ahead)."""
    with psycopg.connect(url, autocommit=True) as con:
        row = con.execute("SELECT lake_intent > lake_seq FROM vecduck.collections WHERE id = %s",
                          (collection_id,)).fetchone()
        return bool(row and row[0])


@contextlib.contextmanager
def registry_row_held(url: str, collection_id: str) -> Iterator[bool]:
    """Hold the collection's registry row locked (SELECT ... FOR UPDATE in an open
    transaction): a writer that has begun its lake commit then finishes it, but waits to
    record it. Yields whether the commit was still unrecorded when the lock was taken."""
    with psycopg.connect(url) as con:
        row = con.execute("SELECT lake_intent > lake_seq FROM vecduck.collections WHERE id = %s FOR UPDATE",
                          (collection_id,)).fetchone()
        try:
            yield bool(row and row[0])
        finally:
            con.rollback()


def lake_commit_landed(url: str, rows: int) -> bool:
    """Whether DuckLake's catalog lists live data files of at least `rows` rows (the lake
    commit is done) while the registry has not yet recorded it (its intent is still ahead)."""
    with psycopg.connect(url, autocommit=True) as con:
        exists = con.execute("SELECT to_regclass('ducklake.ducklake_data_file') IS NOT NULL").fetchone()[0]
        if not exists:
            return False
        in_files = con.execute("SELECT coalesce(sum(record_count), 0) FROM ducklake.ducklake_data_file"
                               " WHERE end_snapshot IS NULL").fetchone()[0]
        ahead = con.execute("SELECT bool_or(lake_intent > lake_seq) FROM vecduck.collections").fetchone()[0]
        return in_files >= rows and bool(ahead)


def finishes(seconds: float, action: Callable[[], Any]) -> Any:
    """`action()`'s result, failing the test when it takes longer than `seconds` (a call
    that waits on a lock nobody releases would otherwise hang the test)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = action()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call did not finish in {seconds}s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize("kill_at", [
    # the writer lock is held at every kill point; killed before the lake work, on long runs only
    pytest.param("writer-lock", marks=pytest.mark.skipif(not LONG, reason="VECDUCK_LONG=1 runs it")),
    "lake-commit",
    "lake-committed",
])
def test_sigkill_during_a_large_write_leaves_it_whole_or_absent(lake: Lake, kill_at: str) -> None:
    """Server a is killed (SIGKILL) while a 30,000-row add sent to it is in flight: once it
    holds the writer lock, during its lake commit, or once the lake commit is done and not
    yet recorded in the registry (its rows in the lake are then orphans). Server b and the embedded client keep
    reading and writing (the lock died with a's session), the add is whole or absent on all
    of them, and a restarted a and plain DuckDB agree."""
    a, b = lake.servers.start("a"), lake.servers.start("b")
    views = peers(lake, a, b)
    embedded = views[2]
    created = embedded.client.create_collection("killed", embedding_function=None)
    collection_id = str(created.id)
    rng = np.random.default_rng(3)
    model: dict[str, np.ndarray] = {}
    base_ids = [f"base{i}" for i in range(2_000)]
    base = vectors(rng, len(base_ids))
    created.add(ids=base_ids, embeddings=base)
    model.update(zip(base_ids, base, strict=True))
    big_ids = [f"big{i}" for i in range(KILLED_ROWS)]
    big = vectors(rng, KILLED_ROWS)
    handles = {peer.name: peer.collection("killed") for peer in views}
    for name, handle in handles.items():
        assert handle.count() == len(model), name
    outcome: dict[str, str] = {}

    def send() -> None:
        try:
            handles["a"].add(ids=big_ids, embeddings=big)
            outcome["acked"] = "yes"
        except Exception as exc:
            outcome["error"] = repr(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 120
    reached = False
    with contextlib.ExitStack() as held:
        while sender.is_alive() and time.monotonic() < deadline:
            if kill_at == "writer-lock":
                reached = writer_lock_held(lake.url)
            else:
                reached = lake_commit_running(lake.url, collection_id)
            if reached and kill_at == "lake-committed":
                # the window between the lake commit and its record is one round trip:
                # hold the record back, then wait for the lake commit itself
                assert held.enter_context(registry_row_held(lake.url, collection_id)), "the commit was recorded first"
                while not lake_commit_landed(lake.url, KILLED_ROWS) and time.monotonic() < deadline:
                    time.sleep(0.05)
                reached = lake_commit_landed(lake.url, KILLED_ROWS)
            if reached:
                break
        assert reached, f"the write ended ({outcome}) before the kill point {kill_at} was seen"
        a.kill()
    sender.join(60)
    assert not sender.is_alive(), "the client did not notice the killed server"
    assert "acked" not in outcome, "the write was acknowledged: the kill came too late"
    survivors = {name: handles[name] for name in ("b", "embedded")}

    # the survivors read at once, and the add is whole or absent, the same on both
    sample = rng.choice(big_ids, size=200, replace=False).tolist()
    landed = None
    for name, handle in survivors.items():
        found = finishes(30, lambda handle=handle: handle.get(ids=sample)["ids"])
        assert len(found) in (0, len(sample)), f"{name}: {len(found)} of {len(sample)} sampled ids of the add"
        landed = bool(found) if landed is None else landed
        assert bool(found) == landed, f"{name} disagrees on whether the add landed"
    if landed:
        model.update(zip(big_ids, big, strict=True))
    for name, handle in survivors.items():
        assert handle.count() == len(model), name
        check_nearest(name, handle, rng, model, rng.choice(list(model), size=20, replace=False).tolist())

    # ... and write: a small batch through b, a batch for the lake through the embedded client
    for name, count, prefix in (("b", 10, "after-b"), ("embedded", 6_000, "after-e")):
        ids = [f"{prefix}{i}" for i in range(count)]
        vecs = vectors(rng, count)
        finishes(60, lambda name=name, ids=ids, vecs=vecs: survivors[name].add(ids=ids, embeddings=vecs))
        model.update(zip(ids, vecs, strict=True))
    for name, handle in survivors.items():
        assert handle.count() == len(model), name
        check_records(name, handle, {i: model[i] for i in rng.choice(list(model), size=500, replace=False)})
        check_nearest(name, handle, rng, model, ["after-b3", "after-e17", "base5"])

    # a restarted a (its own cache, as the machine left it) and plain DuckDB agree
    a.start()
    restarted = a.client().get_collection("killed", embedding_function=None)
    assert restarted.count() == len(model)
    assert len(restarted.get(ids=sample)["ids"]) == (len(sample) if landed else 0)
    probes = ["after-b3", "after-e17", "base5", "big7" if landed else "base9"]
    check_nearest("restarted a", restarted, rng, model, probes)
    embedded.client.flush()
    con = vecduck.duckdb_connect(lake.url, lake.data_path)
    try:
        total, big_rows = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE id LIKE 'big%') FROM killed").fetchone()
    finally:
        con.close()
    assert (total, big_rows) == (len(model), KILLED_ROWS if landed else 0)
    print(f"\n[kill at {kill_at}] the add {'landed' if landed else 'was absent'}; client saw {outcome}")


# -- scenario 4: a new server joins a large collection ----------------------------------------

JOIN_ROWS = 100_000
JOIN_DIM = 32
JOIN_BATCH = 10_000
FIRST_QUERY_SECONDS = 2.0


def test_a_new_server_starts_from_the_published_index(lake: Lake) -> None:
    """A third server with an empty cache joins a 100,000-row collection: it takes the
    published rows snapshot and index (its local marker equals the published one, and its
    index file is the one that marker describes) and answers its first query right within
    2 s of its heartbeat."""
    a, b = lake.servers.start("a"), lake.servers.start("b")
    client = lake.embedded()
    created = client.create_collection("joined", embedding_function=None)
    collection_id = str(created.id)
    rng = np.random.default_rng(4)
    ids = [f"j{i}" for i in range(JOIN_ROWS)]
    vecs = vectors(rng, JOIN_ROWS, JOIN_DIM)
    began = time.perf_counter()
    for start in range(0, JOIN_ROWS, JOIN_BATCH):
        created.add(ids=ids[start:start + JOIN_BATCH], embeddings=vecs[start:start + JOIN_BATCH])
    client.flush()
    ingest = time.perf_counter() - began
    probes = rng.choice(JOIN_ROWS, size=3, replace=False)
    queries = near_copies(rng, vecs[probes])
    assert np.array_equal(nearest(vecs, queries), probes)
    expected = [ids[i] for i in probes]

    c = lake.servers.start("c")  # heartbeat answered: the clock starts
    began = time.perf_counter()
    assert c.index_marker(collection_id) is None, "server c's cache was not empty"
    joined = c.client().get_collection("joined", embedding_function=None)
    opened = time.perf_counter() - began
    answer = joined.query(query_embeddings=queries, n_results=5, include=["distances"])
    first_query = time.perf_counter() - began
    print(f"\n[join] ingest {JOIN_ROWS} rows {ingest:.1f}s; server c: get_collection {opened:.2f}s,"
          f" first query done {first_query:.2f}s after its heartbeat")
    assert [hits[0] for hits in answer["ids"]] == expected
    published = json.loads(lake.published(f"{collection_id}.usearch.json"))
    local = c.index_marker(collection_id)
    assert local is not None, f"server c has no index marker in its cache:\n{c.log()[-3000:]}"
    assert local == published, "server c's index is not the published one: it rebuilt (or re-saved) it"
    assert published["count"] == JOIN_ROWS
    [index_file] = c.cache.glob(f"*/index/{collection_id}.usearch")
    data = index_file.read_bytes()
    assert (len(data), xxhash.xxh3_64(data).hexdigest()) == (local["bytes"], local["xxh3"])
    assert first_query <= FIRST_QUERY_SECONDS, \
        f"server c's first query took {first_query:.2f}s (> {FIRST_QUERY_SECONDS}s):\n{c.log()[-3000:]}"
    for server in (a, b):  # the servers that were there all along catch up too
        handle = server.client().get_collection("joined", embedding_function=None)
        assert handle.count() == JOIN_ROWS, server.name
        answer = handle.query(query_embeddings=queries, n_results=1)
        assert [hits[0] for hits in answer["ids"]] == expected, server.name
    assert joined.count() == JOIN_ROWS


# -- scenario 5: PostgreSQL restarted under load ----------------------------------------------

OUTAGE_SECONDS = 10.0 if LONG else 3.0
LOAD_SECONDS = 10.0 if LONG else 1.5
RECOVERY_SECONDS = 10.0


def test_postgres_restart_under_load(lake: Lake, restart_postgres: PostgresServer) -> None:
    """Writers and readers on both servers while PostgreSQL stops for a few seconds and
    starts again: every answer is right or a clear error (an exception from chromadb's
    client; a 5xx or a dropped connection over raw HTTP), never a wrong one; the servers
    recover by themselves, and every acknowledged write is there afterwards."""
    a, b = lake.servers.start("a"), lake.servers.start("b")
    client = lake.embedded()
    created = client.create_collection("outage", embedding_function=None)
    collection_id = str(created.id)
    rng = np.random.default_rng(5)
    ledger = Ledger()
    seed_ids = [f"seed{i}" for i in range(500)]
    seed = vectors(rng, len(seed_ids))
    ledger.sending(seed_ids, seed)
    created.add(ids=seed_ids, embeddings=seed)
    ledger.acknowledged(seed_ids, seed)
    a_client, b_client = a.client(), b.client()
    handles = {s.name: s.client().get_collection("outage", embedding_function=None) for s in (a, b)}
    outcomes = Outcomes()
    workers = Workers()
    # one writer small batches, one large ones, so that the write buffer reaches the lake meanwhile
    workers.start("writer a", writer_loop("wa", handles["a"], ledger, 51, (5, 20), False, outcomes))
    workers.start("writer b", writer_loop("wb", handles["b"], ledger, 52, (300, 500), False, outcomes))
    workers.start("reader a", reader_loop("reader a", handles["a"], ledger, outcomes, 53, tolerate_errors=True))
    workers.start("reader b", httpx_reader_loop("http b", b, collection_id, ledger, outcomes, 54))
    workers.run_for(LOAD_SECONDS)
    before_outage = outcomes.failures()
    restart_postgres.stop()
    workers.run_for(OUTAGE_SECONDS)
    restart_postgres.start()
    back = time.monotonic()
    recovered: dict[str, float] = {}
    probe = 0
    while len(recovered) < 2 and time.monotonic() - back < 60:
        for name, api in (("a", a_client), ("b", b_client)):
            if name in recovered:
                continue
            try:  # a write and a read of its own, through the server's own client
                handle = api.get_collection("outage", embedding_function=None)
                vec = vectors(rng, 1)
                ledger.sending([f"probe{probe}"], vec)
                handle.add(ids=[f"probe{probe}"], embeddings=vec)
                ledger.acknowledged([f"probe{probe}"], vec)
                handle.count()
                recovered[name] = time.monotonic() - back
            except Exception:
                time.sleep(0.1)
            probe += 1
    workers.run_for(LOAD_SECONDS)
    # a write large enough to go straight to the lake, through each server: DuckLake's own
    # catalog connection must have recovered too
    lake_writes: dict[str, int] = {}
    for name, handle in handles.items():
        ids = [f"lake-{name}{i}" for i in range(5_000)]
        vecs = vectors(rng, len(ids))
        ledger.sending(ids, vecs)
        attempts = 0

        def lake_write(handle: Any = handle, ids: list[str] = ids, vecs: np.ndarray = vecs) -> None:
            nonlocal attempts
            attempts += 1
            handle.add(ids=ids, embeddings=vecs)

        eventually(lake_write)
        ledger.acknowledged(ids, vecs)
        lake_writes[name] = attempts
    workers.join()
    print(f"\n[postgres restart] recovered after {recovered} s; attempts of a lake write after it: {lake_writes};"
          f" outcomes:\n{outcomes.summary()}")
    assert not workers.failures, "\n".join(workers.failures)
    assert not before_outage, f"failures before the outage: {before_outage}"
    wrong = wrong_answers(outcomes, handles["a"])  # a server shown to have recovered
    assert not wrong, "wrong answers:\n" + "\n".join(wrong[:20])
    assert all(a_process.running() for a_process in (a, b)), lake.servers.logs()
    assert set(recovered) == {"a", "b"}, f"not recovered in 60 s: {recovered}\n{lake.servers.logs()}"
    assert max(recovered.values()) <= RECOVERY_SECONDS, f"slow recovery: {recovered}"
    assert outcomes.failures(), "no request met the outage"
    assert lake_writes == {"a": 1, "b": 1}, f"a lake write after the recovery failed first: {lake_writes}"
    for name in ("a", "b"):
        check_final(name, handles[name], ledger, rng)
    check_final("embedded", eventually(lambda: client.get_collection("outage", embedding_function=None)), ledger, rng)


def eventually(action: Callable[[], Any], seconds: float = RECOVERY_SECONDS) -> Any:
    """`action()`'s result, retried while it raises, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_an_idle_process_answers_its_first_call_after_postgres_returns(
        lake: Lake, restart_postgres: PostgresServer) -> None:
    """A process that made no call during a PostgreSQL restart answers its next call once
    PostgreSQL is back (its broken connection is the engine's to replace, not the user's)."""
    a = lake.servers.start("a")
    client = lake.embedded()
    created = client.create_collection("idle", embedding_function=None)
    vecs = vectors(np.random.default_rng(6), 10)
    created.add(ids=[f"i{n}" for n in range(10)], embeddings=vecs)
    over_http = a.client().get_collection("idle", embedding_function=None)
    assert over_http.count() == created.count() == 10
    restart_postgres.stop()
    restart_postgres.start()
    with psycopg.connect(lake.url) as con:  # PostgreSQL is back, for anyone who connects now
        assert con.execute("SELECT count(*) FROM vecduck.collections").fetchone() == (1,)
    failures = []
    for name, handle in (("embedded", created), ("server a", over_http)):
        try:
            assert handle.count() == 10
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failures, "first call after PostgreSQL came back failed:\n" + "\n".join(failures)


# -- scenario 6: compaction while servers work; delete and rename seen everywhere --------------


def test_compaction_while_servers_work_then_delete_and_rename(lake: Lake) -> None:
    """The embedded client compacts the lake (merging files, rewriting those with deleted
    rows, expiring every old snapshot and deleting unused files) while both servers read
    and write; every read stays right. Then a collection deleted through one process and
    one renamed through another are seen so by all three at their next call."""
    a, b = lake.servers.start("a"), lake.servers.start("b")
    views = peers(lake, a, b)
    embedded = views[2].client
    created = embedded.create_collection("compacted", embedding_function=None)
    doomed = embedded.create_collection("doomed", embedding_function=None)
    doomed.add(ids=["d1", "d2"], embeddings=vectors(np.random.default_rng(7), 2))
    rng = np.random.default_rng(8)
    ledger = Ledger()

    def write(mode: str, ids: list[str]) -> None:
        vecs = vectors(rng, len(ids))
        ledger.sending(ids, vecs)
        getattr(created, mode)(ids=ids, embeddings=vecs)
        ledger.acknowledged(ids, vecs)

    for batch in range(2):  # two files, then upserts that delete a third of the rows of each
        write("add", [f"c{batch}-{i}" for i in range(5_000)])
    write("upsert", [f"c{batch}-{i}" for batch in range(2) for i in range(0, 5_000, 3)])
    for batch in range(3):  # and small writes, each moved to the lake by a flush
        write("add", [f"small{batch}-{i}" for i in range(40)])
        embedded.flush()
    handles = {peer.name: peer.collection("compacted") for peer in views}
    for handle in handles.values():  # every process has the collection open before the compaction
        assert handle.count() == len(ledger.acked)
    outcomes = Outcomes()
    workers = Workers()
    for number, name in enumerate(("a", "b")):
        workers.start(f"writer {name}", writer_loop(f"w{name}", handles[name], ledger, 80 + number))
        workers.start(f"reader {name}", reader_loop(f"reader {name}", handles[name], ledger, outcomes, 90 + number,
                                                    tolerate_errors=False))
    workers.run_for(5.0 if LONG else 0.5)
    reads_before = sum(n for (what, outcome), n in outcomes.counts.items() if outcome == "ok")
    began = time.perf_counter()
    report = created.compact(retention=0)
    took = time.perf_counter() - began
    reads_during = sum(n for (what, outcome), n in outcomes.counts.items() if outcome == "ok") - reads_before
    workers.run_for(5.0 if LONG else 0.5)
    workers.join()
    print(f"\n[compaction] {took:.2f}s, {reads_during} reads answered meanwhile; {report}\n{outcomes.summary()}")
    assert not workers.failures, "\n".join(workers.failures) + lake.servers.logs()
    assert report.files_after < report.files_before, report
    for peer in views:  # every record once, with its vector (queries are checked last, see below)
        check_final(peer.name, handles[peer.name], ledger, rng, probes=0)
    embedded.flush()
    con = vecduck.duckdb_connect(lake.url, lake.data_path)
    try:
        in_lake = {row[0] for row in con.execute("SELECT id FROM compacted").fetchall()}
    finally:
        con.close()
    assert in_lake == set(ledger.acked)

    # delete through server a, rename through server b
    doomed_handles = {peer.name: peer.collection("doomed") for peer in views}
    views[0].client.delete_collection("doomed")
    handles["b"].modify(name="compacted-renamed")
    for peer in views:
        for gone in ("doomed", "compacted"):
            with pytest.raises(NOT_FOUND):
                peer.collection(gone)
        with pytest.raises(NOT_FOUND):
            doomed_handles[peer.name].count()
        renamed = peer.collection("compacted-renamed")
        assert str(renamed.id) == str(created.id), peer.name
        assert renamed.count() == len(ledger.acked), peer.name
        assert handles[peer.name].count() == len(ledger.acked), f"{peer.name}: a handle of the old name"
        assert [c.name for c in peer.client.list_collections()] == ["compacted-renamed"], peer.name
    con = vecduck.duckdb_connect(lake.url, lake.data_path)
    try:
        views_in_lake = {row[0] for row in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = 'lake' AND NOT internal").fetchall()}
        renamed_rows = con.execute('SELECT count(*) FROM "compacted-renamed"').fetchone()[0]
    finally:
        con.close()
    assert views_in_lake == {"compacted-renamed"}
    assert renamed_rows == len(ledger.acked)

    # last, what depends on the vector index's recall: the readers' answers during the
    # compaction, and nearest-neighbour queries on every process
    wrong = wrong_answers(outcomes, views[0].collection("compacted-renamed"))
    assert not wrong, "wrong answers:\n" + "\n".join(wrong[:20])
    for peer in views:
        check_final(peer.name, peer.collection("compacted-renamed"), ledger, rng)


# -- scenario 7: plain DuckDB and client.sql on the shared lake --------------------------------


def test_duckdb_connect_and_client_sql_read_what_was_written(lake: Lake) -> None:
    """After a flush, `vecduck.duckdb_connect` (read-only DuckDB on the lake) and the embedded
    client's `sql` return exactly what the test wrote through a server and the embedded client."""
    a = lake.servers.start("a")
    client = lake.embedded()
    client.create_collection("tabular", embedding_function=None)
    handles = {"a": a.client().get_collection("tabular", embedding_function=None),
               "embedded": client.get_collection("tabular", embedding_function=None)}
    rng = np.random.default_rng(9)
    model = Model()
    counter = iter(range(10**9))
    steps = [("a", "add", 6_000), ("embedded", "add", 300), ("a", "upsert", 50), ("embedded", "delete", 20),
             ("a", "update", 30)]
    for number, (writer, mode, count) in enumerate(steps):
        if mode == "add":
            ids = [f"t{next(counter):06d}" for _ in range(count)]
        else:
            ids = rng.choice(sorted(model.vectors), size=count, replace=False).tolist()
        if mode == "delete":
            handles[writer].delete(ids=ids)
            model.delete(ids)
            continue
        vecs = vectors(rng, len(ids))
        documents = [f"doc {record_id} {number}" for record_id in ids]
        metadatas = [{"step": number, "by": writer} for _ in ids]
        getattr(handles[writer], mode)(ids=ids, embeddings=vecs, documents=documents, metadatas=metadatas)
        model.write(mode, ids, vecs, documents, metadatas)
    client.flush()
    expected_steps = sum(m["step"] for m in model.metadatas.values())

    def check(rows: list[tuple[Any, ...]], aggregate: tuple[Any, ...], where: str) -> None:
        assert aggregate == (len(model), expected_steps), where
        assert [row[0] for row in rows] == sorted(model.vectors), where
        for record_id, document, embedding, step, by in rows:
            assert document == model.documents[record_id], f"{where}: {record_id}"
            assert (step, by) == (model.metadatas[record_id]["step"], model.metadatas[record_id]["by"]), where
            np.testing.assert_array_equal(np.asarray(embedding, np.float32), model.vectors[record_id])

    select = 'SELECT id, document, embedding, step, "by" FROM tabular ORDER BY id'
    totals = "SELECT count(*), sum(step) FROM tabular"
    con = vecduck.duckdb_connect(lake.url, lake.data_path)
    try:
        check(con.execute(select).fetchall(), con.execute(totals).fetchone(), "duckdb_connect")
        with pytest.raises(duckdb.Error):  # attached read-only
            con.execute("DELETE FROM tabular")
    finally:
        con.close()
    check(client.sql(select).fetchall(), client.sql(totals).fetchone(), "client.sql")
    # a later write through the server reaches both after the next flush
    vecs = vectors(rng, 5)
    handles["a"].add(ids=[f"late{i}" for i in range(5)], embeddings=vecs, documents=["late"] * 5,
                     metadatas=[{"step": 99, "by": "a"}] * 5)
    model.write("add", [f"late{i}" for i in range(5)], vecs, ["late"] * 5, [{"step": 99, "by": "a"}] * 5)
    expected_steps += 99 * 5
    client.flush()
    con = vecduck.duckdb_connect(lake.url, lake.data_path)
    try:
        check(con.execute(select).fetchall(), con.execute(totals).fetchone(), "duckdb_connect after a later write")
    finally:
        con.close()
    check(client.sql(select).fetchall(), client.sql(totals).fetchone(), "client.sql after a later write")
