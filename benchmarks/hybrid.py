"""Hybrid search: retrieval quality on real text with known answers, and speed at 100,000 documents.

    python benchmarks/hybrid.py --docs 20000 --queries 200              # a first look (~7 min)
    python benchmarks/hybrid.py --docs 100000 --vecduck-head --out benchmarks/RESULTS.md   # ~20 min

1. Quality: docstring summaries find their docstring's body, package summaries their
   description (benchmarks/hybrid_data.py), on one corpus embedded with vecduck's default
   function; recall@10 and MRR@10 of dense, BM25 and Rrf rankings through vecduck's
   `collection.search`, and of LanceDB's FTS, vector and hybrid (RRF reranker) searches
   and DuckDB's fts extension on the same data, for reference.
2. Speed: `--docs` real documents with synthetic vectors; single-query p50 / p95 of BM25
   and hybrid searches in vecduck, LanceDB and DuckDB fts, the add rate of a BM25
   collection against the same add without the schema, and each system's BM25 index build.

Each workload of each system runs in a process of its own (benchmarks/hybrid_worker.py).
`--out FILE` writes the report into FILE's "Hybrid search" section (between its markers),
leaving the rest of the file as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import hybrid_data as hd

HERE = Path(__file__).parent
START, END = "<!-- hybrid.py: start -->", "<!-- hybrid.py: end -->"
PEERS = ["lancedb", "duckdb"]

# targets: BM25 p50 <= 2 ms, hybrid p50 <= 3 ms, both >= 5x faster than LanceDB's, BM25 add >= 0.7x plain
BM25_P50_MS, HYBRID_P50_MS, VS_LANCE, ADD_RATIO = 2.0, 3.0, 5.0, 0.7


SOURCE: dict[str, str] = {}  # {"path": ..., "commit": ...} when vecduck runs from an exported commit


def export_head(work: Path) -> None:
    """Put the committed tree's `vecduck/` (git archive HEAD) under `work` and run the
    workers on it: edits in progress in the checkout cannot change a run half-way."""
    target = work / "vecduck-head"
    target.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "HEAD", "vecduck"], capture_output=True, cwd=HERE.parent, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    SOURCE.update(path=str(target), commit=commit)


def worker(phase: str, system: str, folder: Path, *options: str) -> dict:
    command = [sys.executable, str(HERE / "hybrid_worker.py"), phase, system, str(folder), *options]
    env = {**os.environ, "VECDUCK_PROGRESS": "0", "ANONYMIZED_TELEMETRY": "False"}
    if SOURCE:  # the workers' first path entry is benchmarks/, then this: it wins over the editable install
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE["path"], env.get("PYTHONPATH")]))
    os.sync()  # the last workload's files reach the disk first
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE)
    print(f"  {phase} {system}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if done.returncode != 0:
        print(f"  {system} {phase} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"error": done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_merge(runs: list[dict]) -> dict:
    merged: dict = {}
    for key in {k for run in runs for k in run}:
        values = sorted(run[key] for run in runs if isinstance(run.get(key), int | float))
        merged[key] = values[len(values) // 2] if values else next(run[key] for run in runs if key in run)
    merged["runs"] = len(runs)
    return merged


def fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "n/a"
    if digits is not None:
        return f"{value:.{digits}f}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


# -- quality ------------------------------------------------------------------------------------
QUALITY_ROWS = [
    ("vecduck", "dense", "vecduck: dense Knn (HNSW)"),
    ("vecduck", "dense_exact", "(exact dense ranking, NumPy: the HNSW's loss)"),
    ("vecduck", "bm25", "vecduck: BM25 Knn"),
    ("vecduck", "rrf", "vecduck: Rrf, equal weights (100 a side; only records both found)"),
    ("vecduck", "rrf_union", f"vecduck: Rrf, equal weights, union (a missing side counts rank {1_000:,})"),
    ("vecduck", "rrf_dense7", "vecduck: Rrf, weights 0.7 dense / 0.3 BM25"),
    ("vecduck", "rrf_bm25_7", "vecduck: Rrf, weights 0.3 dense / 0.7 BM25"),
    ("vecduck", "bm25_avgdl", "vecduck: BM25 Knn, avg_doc_length = the corpus mean (see below)"),
    ("vecduck", "rrf_union_avgdl", "vecduck: Rrf union, equal weights, with that BM25"),
    ("lancedb", "dense", "LanceDB: vector search (exact)"),
    ("lancedb", "bm25", "LanceDB: FTS (native index)"),
    ("lancedb", "rrf_lance10", "LanceDB: hybrid, RRF reranker (its default: 10 a side)"),
    ("lancedb", "rrf_lance100", "LanceDB: hybrid, RRF reranker, 100 a side"),
    ("duckdb", "bm25", "DuckDB fts: match_bm25"),
]


def quality_section(results: dict[str, dict]) -> list[str]:
    sets = [s for s in ("A", "B") if s in results.get("vecduck", {})]
    lines = []
    vd = results.get("vecduck", {})
    if "corpus" in vd:
        lines += [
            f"Corpus: {vd['corpus']:,} documents (digest of its texts {vd.get('digest')}), embedded with vecduck's "
            "default function (all-MiniLM-L6-v2, 256 tokens).",
            *(
                f"- Set {s}, {vd[s].get('what', '')}: {vd[s]['queries']:,} queries, one relevant document each."
                for s in sets
            ),
            "",
        ]
    head = ["ranking", *(f"set {s} {m}" for s in sets for m in ("recall@10", "MRR@10"))]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system, variant, label in QUALITY_ROWS:
        cells = [label]
        for s in sets:
            figures = results.get(system, {}).get(s, {})
            got = figures.get(variant)
            if got is None:
                failed = f"{variant}_error" in figures or "error" in results.get(system, {})
                cells += ["failed" if failed else "n/a"] * 2
            else:
                cells += [fmt(got["recall"], 3), fmt(got["mrr"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for s in sets:
        figures = results["vecduck"][s]
        dense, bm25 = figures.get("dense"), figures.get("bm25")
        if not dense or not bm25:
            continue
        for variant, what in [("rrf", "Rrf (equal weights)"), ("rrf_union", "Rrf union (equal weights)")]:
            hybrid = figures.get(variant)
            if not hybrid:
                continue
            parts = []
            for metric, name in [("recall", "recall@10"), ("mrr", "MRR@10")]:
                best = max(dense[metric], bm25[metric])
                which = "dense" if dense[metric] >= bm25[metric] else "BM25"
                gain = hybrid[metric] - best
                parts.append(
                    f"{name} {hybrid[metric]:.3f} vs {best:.3f} ({which}): {gain:+.3f} ({100 * gain / best:+.1f}%)"
                    if best
                    else f"{name}: n/a"
                )
            beats = all(figures[variant][m] > max(dense[m], bm25[m]) for m in ("recall", "mrr"))
            lines.append(
                f"- Set {s}, vecduck {what} against the better of dense and BM25: "
                + "; ".join(parts)
                + (" - beats both." if beats else ".")
            )
    mean = results.get("vecduck", {}).get("mean_doc_length")
    if mean:
        lines.append(
            f"- vecduck's BM25 is Chroma's: `ChromaBm25EmbeddingFunction` normalises document length by a "
            f"fixed `avg_doc_length` of 256 words; this corpus's mean is {mean:g} (words less stop words, "
            'as the function counts them). The rows "avg_doc_length = the corpus mean" use a second '
            f"collection whose schema's function has `avg_doc_length={mean:g}`."
        )
    for system in ("vecduck", *PEERS):
        for key, text in sorted(results.get(system, {}).items()):
            if key == "error" or (isinstance(text, dict) and any(k.endswith("_error") for k in text)):
                errors = {key: text} if key == "error" else {k: v for k, v in text.items() if k.endswith("_error")}
                lines.append(f"- {system} failed: `{errors}`")
    return lines


# -- speed --------------------------------------------------------------------------------------
def ratio(ours: float | None, theirs: float | None, higher_better: bool = False) -> str:
    if not ours or not theirs:
        return ""
    return f"{(ours / theirs if higher_better else theirs / ours):.1f}x"


def speed_section(speed: dict[str, dict], ingest: dict[str, dict]) -> list[str]:
    vd, lance, duck = speed.get("vecduck", {}), speed.get("lancedb", {}), speed.get("duckdb", {})
    vi, li, di, plain = (ingest.get(s, {}) for s in ("vecduck", "lancedb", "duckdb", "vecduck-plain"))
    rows = [
        ("BM25 p50", "ms", vd.get("bm25_p50_ms"), lance.get("bm25_p50_ms"), duck.get("bm25_p50_ms"), False),
        ("BM25 p95", "ms", vd.get("bm25_p95_ms"), lance.get("bm25_p95_ms"), duck.get("bm25_p95_ms"), False),
        (
            "hybrid p50 (Rrf of 100 a side, top 10)",
            "ms",
            vd.get("hybrid_p50_ms"),
            lance.get("hybrid_p50_ms"),
            None,
            False,
        ),
        ("hybrid p95", "ms", vd.get("hybrid_p95_ms"), lance.get("hybrid_p95_ms"), None, False),
        ("hybrid p50, union (vecduck: default rank 1,000)", "ms", vd.get("hybrid_union_p50_ms"), None, None, False),
        (
            "hybrid p50, LanceDB's default depth (10 a side)",
            "ms",
            None,
            lance.get("hybrid_lance10_p50_ms"),
            None,
            False,
        ),
        ("hybrid p50, exact vector search", "ms", None, lance.get("hybrid_exact_p50_ms"), None, False),
        ("dense p50", "ms", vd.get("dense_p50_ms"), lance.get("dense_p50_ms"), None, False),
        ("dense p50, exact", "ms", None, lance.get("dense_exact_p50_ms"), None, False),
        ("dense recall@10 against exact", "", vd.get("dense_recall"), lance.get("dense_recall"), None, True),
        (
            "first BM25 query of a new process (open included)",
            "ms",
            vd.get("first_bm25_ms"),
            lance.get("first_bm25_ms"),
            duck.get("first_bm25_ms"),
            False,
        ),
        (
            "add, batches of 5,000 (open to close)",
            "rows/s",
            vi.get("add_rows_per_s"),
            li.get("add_rows_per_s"),
            di.get("add_rows_per_s"),
            True,
        ),
        (
            "BM25 index build",
            "s",
            _seconds(vi.get("first_bm25_build_ms")),
            li.get("fts_index_s"),
            di.get("fts_index_s"),
            False,
        ),
        ("vector index build (LanceDB IVF_HNSW_SQ)", "s", None, li.get("vector_index_s"), None, False),
        ("disk", "MB", vi.get("disk_mb"), li.get("disk_mb"), di.get("disk_mb"), False),
    ]
    head = ["measure", "unit", "vecduck", "LanceDB", "DuckDB fts", "vecduck vs LanceDB", "vecduck vs DuckDB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, unit, ours, theirs, duck_value, higher in rows:
        if ours is None and theirs is None and duck_value is None:
            continue
        digits = 3 if unit == "" else None
        cells = [label, unit or "recall", fmt(ours, digits), fmt(theirs, digits), fmt(duck_value, digits)]
        if unit in ("", "MB", "rows/s") or "build" in label:  # adds: LanceDB and DuckDB build indexes after
            cells += ["", ""]
        else:
            cells += [ratio(ours, theirs, higher), ratio(ours, duck_value, higher)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if plain.get("add_rows_per_s") and vi.get("add_rows_per_s"):
        lines.append(
            f"- vecduck add without the schema (no BM25): {fmt(plain['add_rows_per_s'])} rows/s; with it "
            f"{fmt(vi['add_rows_per_s'])}: {vi['add_rows_per_s'] / plain['add_rows_per_s']:.2f}x "
            f"(median of {vi.get('runs', 1)} runs each, in alternation)."
        )
    if vi.get("first_bm25_build_ms") is not None:
        saved = vi.get("sparse_index_saved")
        lines.append(
            "- vecduck builds its BM25 (sparse) index at a collection's first BM25 search, from the stored "
            "sparse vectors: the build row is that first search after reopening the folder "
            f"({fmt(vi['first_bm25_build_ms'])} ms). "
            + (
                "It was saved at the close that followed, and loaded by the query process."
                if saved
                else "It was not saved at the close that followed (nothing had been written since "
                "the last save), so every new process builds it again at its first BM25 search: that is in "
                'the "first BM25 query of a new process" row.'
            )
            + " LanceDB and DuckDB build theirs with an explicit call after the rows are in; their add "
            "rates do not include it (nor LanceDB's vector index), vecduck's includes its HNSW build."
        )
    for system, figures in [*speed.items(), *ingest.items()]:
        if "error" in figures:
            lines.append(f"- {system} failed: `{figures['error']}`")
    return lines


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1e3


def targets_section(speed: dict[str, dict], ingest: dict[str, dict]) -> list[str]:
    vd, lance = speed.get("vecduck", {}), speed.get("lancedb", {})
    rows = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "missed")

    bm25, hybrid = vd.get("bm25_p50_ms"), vd.get("hybrid_p50_ms")
    rows.append(("BM25 p50 <= 2 ms", f"{fmt(bm25)} ms", verdict(None if bm25 is None else bm25 <= BM25_P50_MS)))
    rows.append(
        ("hybrid p50 <= 3 ms", f"{fmt(hybrid)} ms", verdict(None if hybrid is None else hybrid <= HYBRID_P50_MS))
    )
    for label, ours, key in [("BM25", bm25, "bm25_p50_ms"), ("hybrid", hybrid, "hybrid_p50_ms")]:
        theirs = lance.get(key)
        got = theirs / ours if ours and theirs else None
        text = f"{fmt(ours)} vs {fmt(theirs)} ms: {got:.1f}x" if got else "n/a"
        if key == "hybrid_p50_ms" and lance.get("hybrid_lance10_p50_ms") and ours:
            text += f" (LanceDB at its default 10 a side: {lance['hybrid_lance10_p50_ms'] / ours:.1f}x)"
        rows.append(
            (f"{label} >= 5x faster than LanceDB's (p50)", text, verdict(None if got is None else got >= VS_LANCE))
        )
    plain, with_bm25 = (
        ingest.get("vecduck-plain", {}).get("add_rows_per_s"),
        ingest.get("vecduck", {}).get("add_rows_per_s"),
    )
    got = with_bm25 / plain if plain and with_bm25 else None
    rows.append(
        (
            "BM25 add rate >= 0.7x the plain add",
            f"{fmt(with_bm25)} vs {fmt(plain)} rows/s: {got:.2f}x" if got else "n/a",
            verdict(None if got is None else got >= ADD_RATIO),
        )
    )
    return ["| target | measured | |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]


# -- the report -----------------------------------------------------------------------------------
def versions() -> str:
    out = []
    for name in ("lancedb", "duckdb", "duckdb-extension-fts", "usearch", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{name} {metadata.version(name)}")
    if SOURCE:
        out.insert(0, f"vecduck at {SOURCE['commit']} (its committed tree, run from a `git archive` copy)")
        return ", ".join(out)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../vecduck"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
        out.insert(0, f"vecduck at {commit}" + (" (with uncommitted changes under vecduck/)" if dirty else ""))
    except OSError:
        pass
    return ", ".join(out)


def report(args: argparse.Namespace, quality: dict, speed: dict, ingest: dict, facts: dict) -> str:
    docs = facts.get("docs", args.docs)
    n_queries, repeats = facts.get("speed_queries", args.speed_queries), facts.get("repeats", args.repeats)
    command = facts.get("command") or "python benchmarks/hybrid.py " + " ".join(sys.argv[1:])
    lines = [
        START,
        "## Hybrid search (`benchmarks/hybrid.py`)",
        "",
        f"{facts.get('date') or datetime.date.today().isoformat()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}; {versions()}.",
        f"Command: `{command}` ({facts['minutes']:.0f} minutes, the data caches already built). "
        f"Load average (1 min) at the start {facts['load_start']:.1f}, at the end {facts['load_end']:.1f}"
        + (
            ": other work shared the machine, so the latencies are high and noisy."
            if max(facts["load_start"], facts["load_end"]) > 1.5
            else "."
        ),
        'See README.md ("Hybrid search") for what is measured and how.',
        "",
    ]
    if quality:
        lines += ["### Retrieval quality (real queries, known answers)", "", *quality_section(quality), ""]
    if speed or ingest:
        origin = speed.get("vecduck", {}).get("origin") or hd.speed(docs, 1).origin
        lines += [
            f"### Speed at {docs:,} documents",
            "",
            f"Documents: {origin}; dense vectors synthetic (seeded, clustered 384-d unit vectors). Queries: "
            f"{n_queries} docstring summaries (BM25 text) with synthetic vectors. Latencies: single "
            f"queries after {20} warm-up ones, p50 / p95 per round, median of {repeats} rounds (the variants "
            "take turns query by query); each system's queries in a process of its own. LanceDB: native FTS "
            "index, IVF_HNSW_SQ vector index (rows marked exact bypass it), RRFReranker (k = 60). DuckDB: "
            "`PRAGMA create_fts_index` (Porter stemmer, English stop words), `match_bm25` over the table.",
            "",
            *speed_section(speed, ingest),
            "",
            "### Against the targets",
            "",
            *targets_section(speed, ingest),
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the speed run")
    parser.add_argument("--queries", type=int, default=hd.QUERIES_A, help="set A queries for quality (at most 1,000)")
    parser.add_argument("--speed-queries", type=int, default=200, help="queries timed in the speed run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of timed queries (median taken)")
    parser.add_argument(
        "--ingest-repeats",
        type=int,
        default=3,
        help="vecduck add runs, with and without BM25, in alternation (median taken); peers: one",
    )
    parser.add_argument("--parts", nargs="*", default=["quality", "speed"], choices=["quality", "speed"])
    parser.add_argument(
        "--vecduck-head",
        action="store_true",
        help="run vecduck from the last commit (git archive HEAD), not the checkout's files being edited",
    )
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="write the report into this Markdown file's hybrid section")
    parser.add_argument("--json", default=None, help="also write the raw figures to this JSON file")
    parser.add_argument("--report-from", default=None, help="run nothing: write the report of a --json file")
    args = parser.parse_args()
    if args.report_from:
        raw = json.loads(Path(args.report_from).read_text())
        SOURCE.update(raw.get("source") or {})
        section = report(args, raw["quality"], raw["speed"], raw["ingest"], raw["facts"])
        print(section)
        if args.out:
            write_section(Path(args.out), section)
        return

    print("preparing data (cached after the first run)", file=sys.stderr)
    if "quality" in args.parts:
        hd.quality(args.queries)
    if "speed" in args.parts:
        hd.speed(args.docs, args.speed_queries)
    work = Path(args.work or tempfile.mkdtemp(prefix="vecduck-hybrid-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.vecduck_head:
        export_head(work)
    facts: dict = {
        "load_start": os.getloadavg()[0],
        "command": "python benchmarks/hybrid.py " + " ".join(sys.argv[1:]),
        "docs": args.docs,
        "speed_queries": args.speed_queries,
        "repeats": args.repeats,
        "date": datetime.date.today().isoformat(),
    }
    started = time.perf_counter()
    quality: dict[str, dict] = {}
    speed: dict[str, dict] = {}
    ingest: dict[str, dict] = {}
    try:
        if "quality" in args.parts:
            for system in ("vecduck", *PEERS):
                quality[system] = worker("quality", system, work / f"quality-{system}", "--queries", str(args.queries))
                shutil.rmtree(work / f"quality-{system}", ignore_errors=True)
        if "speed" in args.parts:
            docs = ["--docs", str(args.docs)]
            runs: dict[str, list[dict]] = {"vecduck": [], "vecduck-plain": []}
            for _ in range(args.ingest_repeats):
                for system in runs:
                    runs[system].append(worker("ingest", system, work / f"speed-{system}", *docs))
            ingest = {system: median_merge(got) for system, got in runs.items()}
            shutil.rmtree(work / "speed-vecduck-plain", ignore_errors=True)
            for system in PEERS:
                ingest[system] = worker("ingest", system, work / f"speed-{system}", *docs)
            for system in ("vecduck", *PEERS):
                speed[system] = worker(
                    "query",
                    system,
                    work / f"speed-{system}",
                    *docs,
                    "--queries",
                    str(args.speed_queries),
                    "--repeats",
                    str(args.repeats),
                )
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    facts["minutes"] = (time.perf_counter() - started) / 60
    facts["load_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"quality": quality, "ingest": ingest, "speed": speed, "facts": facts, "source": SOURCE}, indent=1
            )
        )
    section = report(args, quality, speed, ingest, facts)
    print(section)
    if args.out:
        write_section(Path(args.out), section)


if __name__ == "__main__":
    main()
