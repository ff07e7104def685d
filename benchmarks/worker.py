"""Run one workload of one system in this process and print its figures as one JSON line.

    python benchmarks/worker.py <phase> <system> <dataset> <folder> [--repeats N]

phase: ingest | frame | loop | query | cold | first. The driver (run.py) starts one process per
phase, so each system's peak RSS and cold open are its own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import resource
import shutil
import statistics
import sys
import time

import dataset as ds
import numpy as np
from systems import SYSTEMS, System, folder_bytes

BATCH = 5_000
LOOP_ITEMS = 2_000
FILTERED_QUERIES = 100
FILTERED_QUERIES_1M = 30  # chromadb takes up to a second for each at 1,000,000 rows
TARGET_RECALL = 0.99
MODULES = {"vecduck": "vecduck", "chromadb": "chromadb", "lancedb": "lancedb", "usearch": "usearch.index"}


def load(spec: str) -> ds.Dataset:
    return ds.load(spec)


def _status_bytes(field: str) -> int | None:
    """A memory figure of this process from /proc/self/status (None where there is none)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over from the parent (here the driver, which builds the data sets) across fork+exec."""
    peak = _status_bytes("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(row) & set(true.tolist())) for row, true in zip(found, truth, strict=True))
    return hits / truth.size


# A found row at most this far beyond the k-th true distance is an exact tie (float64 sums).
TIE_TOLERANCE = 1e-6


def recall_ties(found: list[list[int]], truth: np.ndarray, kth: np.ndarray, data: ds.Dataset,
                queries: np.ndarray) -> float:
    """Recall@k where a found row that is not in the true top k but lies exactly as close as
    the k-th one (a duplicate text, an equal vector) counts as a hit, as any top k may hold it."""
    hits = 0
    unit = queries.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    for row, true, q, limit in zip(found, truth, unit, kth, strict=True):
        true_set = set(true.tolist())
        others = [r for r in row if r not in true_set]
        hits += len(row) - len(others)
        for r in others:
            v = data.vectors(r, r + 1)[0].astype(np.float64)
            if 1.0 - float(q @ v) / float(np.linalg.norm(v)) <= limit + TIE_TOLERANCE:
                hits += 1
    return hits / truth.size


def ms(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": 1e3 * float(np.percentile(seconds, 50)), "p95_ms": 1e3 * float(np.percentile(seconds, 95))}


def current_rss_bytes() -> int:
    """This process's resident memory now (VmRSS): the baseline a load's peak is read against."""
    return _status_bytes("VmRSS") or 0


def timed(call, repeats: int) -> float:
    """Median wall time of `call` in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def phase_ingest(system: System, data: ds.Dataset) -> dict:
    shutil.rmtree(system.folder, ignore_errors=True)
    start = time.perf_counter()
    system.open(create=True)
    baseline = current_rss_bytes()  # the library imported, the collection created, no row yet
    for batch, vectors in data.batches(BATCH):
        system.ingest(batch, vectors)
    system.finish_ingest(data)
    system.close()
    elapsed = time.perf_counter() - start
    return {
        "rows_per_s": data.rows / elapsed,
        "peak_rss": peak_rss_bytes(),
        "rss_before_load": baseline,
        "disk_bytes": folder_bytes(system.folder),
    }


def phase_frame(system: System, data: ds.Dataset) -> dict:
    shutil.rmtree(system.folder, ignore_errors=True)
    system.open(create=True)
    start = time.perf_counter()
    system.upsert_frame(data)
    system.close()
    return {"frame_rows_per_s": data.rows / (time.perf_counter() - start), "frame_peak_rss": peak_rss_bytes()}


def phase_loop(system: System, data: ds.Dataset) -> dict:
    shutil.rmtree(system.folder, ignore_errors=True)
    system.open(create=True)
    batch, vectors = next(data.batches(LOOP_ITEMS))
    metas = batch.select(["category", "year", "score", "flag"]).to_pylist()
    documents = batch["document"].to_pylist()
    # One add first, timed on its own: one-time costs (lazy imports, first-write setup)
    # are not a per-item rate; the row reports them.
    start = time.perf_counter()
    system.add_one(LOOP_ITEMS, vectors[0], metas[0], documents[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for row in range(LOOP_ITEMS):
        system.add_one(row, vectors[row], metas[row], documents[row])
    elapsed = time.perf_counter() - start
    system.close()
    return {"loop_items_per_s": LOOP_ITEMS / elapsed, "loop_first_add_ms": 1e3 * first}


def phase_query(system: System, data: ds.Dataset, repeats: int) -> dict:
    system.open(create=False)
    queries, truth = data.queries(), data.truth()
    system.query(queries[:1], ds.K)  # first query: loads what it loads
    out: dict = {}
    for level in system.levels:
        system.tune(level)
        found = [system.query(q[None, :], ds.K)[0] for q in queries]
        out["recall"], out["level"] = recall(found, truth["all"]), level
        if "all_kth" in truth:
            out["recall_ties"] = recall_ties(found, truth["all"], truth["all_kth"], data, queries)
        if level == system.levels[0]:  # the default settings' answer
            out["default_recall"] = out.get("recall_ties", out["recall"])
        if out.get("recall_ties", out["recall"]) >= TARGET_RECALL:
            break
    p50s, p95s = [], []
    for _ in range(repeats):
        times = []
        for q in queries:
            start = time.perf_counter()
            system.query(q[None, :], ds.K)
            times.append(time.perf_counter() - start)
        figures = ms(times)
        p50s.append(figures["p50_ms"])
        p95s.append(figures["p95_ms"])
    out["query_p50_ms"], out["query_p95_ms"] = statistics.median(p50s), statistics.median(p95s)
    batch_ms = timed(lambda: system.query(queries, ds.K), repeats)
    out["batch_qps"] = len(queries) / (batch_ms / 1e3)
    filtered = FILTERED_QUERIES if data.rows < 1_000_000 else FILTERED_QUERIES_1M
    for name in ds.FILTERS:
        try:
            subset = queries[:filtered]
            found = [system.query(q[None, :], ds.K, name)[0] for q in subset]
            p50s = []
            for _ in range(repeats):
                times = []
                for q in subset:
                    start = time.perf_counter()
                    system.query(q[None, :], ds.K, name)
                    times.append(time.perf_counter() - start)
                p50s.append(ms(times)["p50_ms"])
            out[f"filter_{name}_p50_ms"] = statistics.median(p50s)
            out[f"filter_{name}_recall"] = recall(found, truth[name][:filtered])
            if f"{name}_kth" in truth:
                out[f"filter_{name}_recall_ties"] = recall_ties(
                    found, truth[name][:filtered], truth[f"{name}_kth"][:filtered], data, subset
                )
        except NotImplementedError:
            pass
    slow_runs = 5 if repeats > 1 else 1  # one at 1,000,000 rows: chromadb's take ~40 s each
    for label, call, n in [
        ("get_where", lambda: system.get_where(ds.GET_FILTER), slow_runs),
        ("count", system.count, 100),
        ("group_by", system.group_by, slow_runs),
    ]:
        try:
            call()
            out[f"{label}_ms"] = timed(call, n)
        except NotImplementedError:
            pass
        except Exception as exc:  # a peer's failure is a result, not the end of the run
            out[f"{label}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    with contextlib.suppress(Exception):
        out["get_where_rows"] = system.get_where(ds.GET_FILTER)
    system.close()
    return out


def phase_cold(system: System, data: ds.Dataset) -> dict:
    query = data.queries()[:1]
    start = time.perf_counter()
    module = MODULES.get(system.name)
    if module:
        importlib.import_module(module)
    imported = time.perf_counter()
    system.open(create=False)
    found = system.query(query, ds.K)
    done = time.perf_counter()
    assert len(found[0]) == ds.K
    return {"cold_import_ms": 1e3 * (imported - start), "cold_open_ms": 1e3 * (done - imported)}


def phase_first(system: System, data: ds.Dataset) -> dict:
    """A fresh process's first write: the import, then open a new folder and add one record
    (what a notebook's first cell pays). Nothing here touches pandas before the system does."""
    vector = np.asarray(data.vectors(0, 1)[0], np.float32)
    start = time.perf_counter()
    module = MODULES.get(system.name)
    if module:
        importlib.import_module(module)
    imported = time.perf_counter()
    shutil.rmtree(system.folder, ignore_errors=True)
    system.open(create=True)
    system.add_one(0, vector, {"category": "cat00", "year": 2000, "score": 0.5, "flag": True}, "a first document")
    done = time.perf_counter()
    out = {"first_import_ms": 1e3 * (imported - start), "first_write_ms": 1e3 * (done - imported)}
    out["first_write_pandas"] = int("pandas" in sys.modules)
    system.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["ingest", "frame", "loop", "query", "cold", "first"])
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("dataset")
    parser.add_argument("folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    system = SYSTEMS[args.system](args.folder)
    data = load(args.dataset)
    phases = {
        "ingest": lambda: phase_ingest(system, data),
        "frame": lambda: phase_frame(system, data),
        "loop": lambda: phase_loop(system, data),
        "query": lambda: phase_query(system, data, args.repeats),
        "cold": lambda: phase_cold(system, data),
        "first": lambda: phase_first(system, data),
    }
    try:
        result = phases[args.phase]()
    except NotImplementedError:
        result = {}
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
