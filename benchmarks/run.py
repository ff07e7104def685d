"""The side-by-side benchmark: vecduck, chromadb, lancedb, usearch alone and NumPy brute force.

    python benchmarks/run.py                      # 100,000 rows + 10,000 real sentences
    python benchmarks/run.py --rows 100000 1000000 --out benchmarks/RESULTS.md

Each workload of each system runs in a process of its own (benchmarks/worker.py) on the
same cached data (benchmarks/dataset.py); the table shows every figure and vecduck's
ratio to chromadb and to usearch. Repeated workloads report the median.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dataset as ds

HERE = Path(__file__).parent
ALL = ["vecduck", "chromadb", "lancedb", "usearch", "numpy"]

# (key, label, unit, higher is better)
METRICS = [
    ("rows_per_s", "1. ingest, batches of 5,000", "rows/s", True),
    ("peak_rss", "1. ingest peak RSS", "MB", False),
    ("load_rss_ratio", "1. ingest peak RSS above the process's before the load, / raw vector bytes", "x", False),
    ("disk_bytes", "1. disk per vector", "bytes", False),
    ("frame_rows_per_s", "1. one DataFrame upsert", "rows/s", True),
    ("loop_first_add_ms", "2. first add of the loop (untimed there)", "ms", False),
    ("loop_items_per_s", "2. single-item add loop (2,000)", "items/s", True),
    ("default_recall", "3. recall@10 at default settings (ties counted where known)", "", True),
    ("recall", "3. recall@10 (unfiltered)", "", True),
    ("recall_ties", "3. recall@10, exact ties counted as hits", "", True),
    ("query_p50_ms", "3. query p50", "ms", False),
    ("query_p95_ms", "3. query p95", "ms", False),
    ("batch_qps", "3. batch of 200 queries", "queries/s", True),
    ("filter_1%_p50_ms", "4. filter 1%: p50", "ms", False),
    ("filter_1%_recall", "4. filter 1%: recall@10", "", True),
    ("filter_1%_recall_ties", "4. filter 1%: recall@10, ties counted", "", True),
    ("filter_15%_p50_ms", "4. filter 15%: p50", "ms", False),
    ("filter_15%_recall", "4. filter 15%: recall@10", "", True),
    ("filter_15%_recall_ties", "4. filter 15%: recall@10, ties counted", "", True),
    ("filter_50%_p50_ms", "4. filter 50%: p50", "ms", False),
    ("filter_50%_recall", "4. filter 50%: recall@10", "", True),
    ("filter_50%_recall_ties", "4. filter 50%: recall@10, ties counted", "", True),
    ("get_where_ms", "5. get(where) 15%", "ms", False),
    ("count_ms", "5. count()", "ms", False),
    ("group_by_ms", "5. GROUP BY category", "ms", False),
    ("cold_open_ms", "6. cold open to first answer", "ms", False),
    ("cold_import_ms", "6. (import of the library)", "ms", False),
    ("first_write_ms", "7. first write of a fresh process (open + one add, after the import)", "ms", False),
    ("first_import_ms", "7. (import of the library)", "ms", False),
]


def worker(phase: str, system: str, spec: str, folder: Path, repeats: int) -> dict:
    command = [sys.executable, str(HERE / "worker.py"), phase, system, spec, str(folder), "--repeats", str(repeats)]
    env = {**os.environ, "VECDUCK_PROGRESS": "0", "ANONYMIZED_TELEMETRY": "False"}
    os.sync()  # the last phase's files reach the disk first: no phase pays for another's writeback
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE)
    if done.returncode != 0:
        print(f"  {system} {phase} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_merge(runs: list[dict]) -> dict:
    keys = {key for run in runs for key in run}
    merged = {}
    for key in keys:
        values = sorted(run[key] for run in runs if key in run and isinstance(run[key], int | float))
        if values:
            merged[key] = values[len(values) // 2]
        elif key.endswith("_error"):
            merged[key] = next(run[key] for run in runs if key in run)
    return merged


def bench_dataset(spec: str, systems: list[str], work: Path, repeats: int, ingest_repeats: int,
                  phases: list[str]) -> dict[str, dict]:
    data = load(spec)
    results: dict[str, dict] = {}
    for system in systems:
        folder = work / f"{spec}-{system}"
        figures: dict = {}
        started = time.perf_counter()
        for phase in phases:
            runs = ingest_repeats if phase in ("ingest", "frame", "loop") else (1 if phase == "query" else repeats)
            scratch = work / f"{spec}-{system}-{phase}" if phase in ("frame", "loop", "first") else folder
            got = [worker(phase, system, spec, scratch, repeats) for _ in range(runs)]
            figures.update(median_merge(got))
            if scratch != folder:
                shutil.rmtree(scratch, ignore_errors=True)
        if system == "numpy":
            figures.pop("rows_per_s", None)  # its "ingest" is a file copy
        if "disk_bytes" in figures:
            figures["disk_bytes"] = figures["disk_bytes"] / data.rows
        if "peak_rss" in figures and "rss_before_load" in figures:
            raw_bytes = data.rows * ds.DIM * 4
            figures["load_rss_ratio"] = (figures["peak_rss"] - figures.pop("rss_before_load")) / raw_bytes
        if "peak_rss" in figures:
            figures["peak_rss"] = figures["peak_rss"] / 2**20
        figures.pop("frame_peak_rss", None)
        results[system] = figures
        print(f"  {spec} {system}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    return results


def load(spec: str) -> ds.Dataset:
    return ds.load(spec)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "":
        return f"{value:.3f}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(ours: float | None, theirs: float | None, higher: bool) -> str:
    """How many times better vecduck is (>1 is better, whichever way the unit goes)."""
    if not ours or not theirs:
        return ""
    return f"{(ours / theirs if higher else theirs / ours):.2f}x"


def table(spec: str, results: dict[str, dict], systems: list[str]) -> str:
    head = ["workload", "unit", *systems, "vecduck vs chromadb", "vecduck vs usearch"]
    lines = [f"### {spec}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, higher in METRICS:
        values = [results.get(s, {}).get(key) for s in systems]
        error_key = key.removesuffix("_ms") + "_error"
        failed = [error_key in results.get(s, {}) for s in systems]
        if all(v is None for v in values) and not any(failed):
            continue
        ours = results.get("vecduck", {}).get(key)
        unit_cell = "recall" if "recall" in key else unit
        cells = [label, unit_cell, *("failed" if f else fmt(v, unit) for v, f in zip(values, failed, strict=True))]
        if "recall" in key or key in ("cold_import_ms", "first_import_ms"):
            cells += ["", ""]
        else:
            cells += [ratio(ours, results.get("chromadb", {}).get(key), higher),
                      ratio(ours, results.get("usearch", {}).get(key), higher)]
        lines.append("| " + " | ".join(cells) + " |")
    levels = {s: results[s].get("level") for s in systems if results.get(s, {}).get("level") is not None}
    if levels:
        lines += ["", "Search knob reached for recall@10 >= 0.99: "
                  + ", ".join(f"{s} {v}" for s, v in levels.items())]
    for s in systems:
        for key, text in sorted(results.get(s, {}).items()):
            if key.endswith("_error"):
                lines += ["", f"{s} {key.removesuffix('_error')} failed: `{text}`"]
    info = load(spec).folder / "info.json"
    if info.exists():
        sel = json.loads(info.read_text())["selectivity"]
        lines += ["", "Filter selectivity: " + ", ".join(f"{k} = {100 * v:.1f}% of rows" for k, v in sel.items())]
    return "\n".join(lines)


def parse_table(markdown: str, spec: str) -> dict[str, dict]:
    """The figures of one data set's table in a report this script wrote."""
    labels = {label: key for key, label, _unit, _higher in METRICS}
    lines = markdown.split(f"### {spec}", 1)[1].strip().splitlines()
    systems = [c.strip() for c in lines[0].strip("|").split("|")][2:-2]
    results: dict[str, dict] = {s: {} for s in systems}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        key = labels.get(cells[0])
        for system, cell in zip(systems, cells[2 : 2 + len(systems)], strict=True):
            if key and cell not in ("n/a", "failed", ""):
                results[system][key] = float(cell.replace(",", ""))
    knobs = markdown.split(f"### {spec}", 1)[1].split("Search knob reached for recall@10 >= 0.99: ", 1)
    if len(knobs) == 2:
        for system, level in re.findall(r"(\w+) (\([^)]*\)|[^,\s]+)", knobs[1].splitlines()[0]):
            if system in results:
                results[system]["level"] = level
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000], help="clustered data set sizes")
    parser.add_argument("--sentences", type=int, default=10_000, help="real sentences (0 to skip)")
    parser.add_argument(
        "--descriptions", type=int, default=0, help="real one-line descriptions (0 to skip; e.g. 61666)"
    )
    parser.add_argument("--systems", nargs="*", default=ALL, choices=ALL)
    parser.add_argument("--phases", nargs="*", default=["ingest", "frame", "loop", "query", "cold", "first"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingest-repeats", type=int, default=None,
                        help="ingest runs per system (default 3, 1 from 1,000,000 rows)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="also write the report to this Markdown file")
    parser.add_argument("--json", default=None, help="also write the raw figures to this JSON file")
    args = parser.parse_args()

    specs = [f"clustered-{n}" for n in args.rows] + ([f"sentences-{args.sentences}"] if args.sentences else [])
    specs += [f"descriptions-{args.descriptions}"] if args.descriptions else []
    work = Path(args.work or tempfile.mkdtemp(prefix="vecduck-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sections = []
    raw: dict[str, dict] = {}
    try:
        for spec in specs:
            print(f"{spec}: preparing data", file=sys.stderr)
            data = load(spec)
            big = data.rows >= 1_000_000
            ingest_repeats = args.ingest_repeats or (1 if big else 3)
            phases = args.phases
            if not spec.startswith("clustered") or big:
                # the add loop does not depend on the collection's size; at 1,000,000 rows
                # the DataFrame upsert repeats the batch ingest's work, for an hour more
                # of chromadb (run when chromadb is not among the systems)
                skip = ("loop", "frame") if big and "chromadb" in args.systems else ("loop",)
                phases = [p for p in phases if p not in skip]
            repeats = 1 if big else args.repeats
            results = bench_dataset(spec, args.systems, work, repeats, ingest_repeats, phases)
            raw[spec] = results
            if args.json:
                Path(args.json).write_text(json.dumps(raw, indent=1))
            sections.append(table(spec, results, args.systems))
            print(sections[-1] + "\n", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report = "\n".join([
        "# Benchmark results",
        "",
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}. Command: `python benchmarks/{' '.join(sys.argv)}`" .replace(
            "benchmarks/benchmarks/", "benchmarks/"),
        "",
        "Ratios are how many times better vecduck is (above 1: vecduck leads). Each workload runs",
        "in its own process per system. Latencies are medians over 200 queries (100 filtered, 30 at",
        "1,000,000 rows),",
        f"the median of {args.repeats} runs below 1,000,000 rows, one run at 1,000,000 (where the",
        "add loop and the DataFrame upsert are not repeated). Ingest: median of 3 runs below",
        "1,000,000 rows, one above.",
        "",
        *[s + "\n" for s in sections],
    ])
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
