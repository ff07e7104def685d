"""The official chromadb JS client's Search API against `vecduck run` (js/search.mjs).

The npm packages `chromadb` and `@chroma-core/chroma-bm25` are pinned in js/package.json. The
script creates a plain collection, one with a sparse index and one with a BM25 index (through
the JS `Schema` classes), adds records and runs searches with the JS builders (`K`, `Knn`,
`Rrf`, `GroupBy`, ...). Here the answers are computed again with NumPy from Chroma's documented
rules, the same payloads are replayed through the official Python client (`chromadb.HttpClient`)
and must get the same answers, and the JS BM25 package is compared with vecduck's Python one.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Server

from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction

JS = Path(__file__).parent / "js"
PACKAGES = ("chromadb", "@chroma-core/chroma-bm25")
RTOL = 2e-5  # scores are float32

GENRES = ("news", "sport", "tech")
DENSE_DOCUMENTS = [
    "The river flows past the old mill",
    "Football season opens with a home win",
    "New chips make laptops faster",
    "Fishing on the river at dawn",
    "Election results announced tonight",
    "The marathon runner crossed the bridge",
    "A quiet river town hosts a festival",
    "Quantum computers solve a toy problem",
    "Tennis final goes to five sets",
    "Floods along the river close roads",
    "Open source database release",
    "Parliament debates the new budget",
]
RATINGS = [0.9, 0.2, 0.5, 0.7, 0.1, 0.65, 0.3, 0.8, 0.15, 0.45, 0.6, 0.35]
BM25_DOCUMENTS = [
    "The quick brown fox jumps over the lazy dog",
    "A river runs through the quiet valley",
    "Foxes are quick and clever animals",
    "Boats drift slowly down the river",
    "The dog sleeps by the river bank",
    "Quick thinking saves the day",
    "Jumping over fences is what horses do",
    "The bank raised interest rates",
]
# ASCII texts: the JS package and vecduck's Python function must agree on these
BM25_PROBES_ASCII = [
    "Usain Bolt's top speed reached ~27.8 mph (44.72 km/h)",
    "The   space-time   continuum   WARPS   near   massive   objects...",
    "running runners ran quickly; generously generous generation",
    "it's don't couldn't won't",
    "snake_case under_score __init__",
    "tabs\tand\nnewlines",
    "dying lying skies news inning outing proceed exceed succeed",
    "the a an of",
    "",
]
# where they disagree (see test_js_bm25_known_divergences)
BM25_PROBES_NON_ASCII = ["Café naïve résumé", "Straße München über", "日本語 テキスト", "Δέλτα привет мир"]
BM25_PROBES_STEMMER = ["added adding", "internal interval", "organization", "paste", "universal university"]


# -- setup --------------------------------------------------------------------------------------
def installed_packages() -> None:
    """js/node_modules with the pinned packages (`npm ci` from the committed lock file when not)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JS client test")
    pinned = json.loads((JS / "package.json").read_text())["dependencies"]

    def version(name: str) -> str | None:
        package = JS / "node_modules" / name / "package.json"
        return json.loads(package.read_text())["version"] if package.exists() else None

    if any(version(name) != pinned[name] for name in PACKAGES):
        command = ["npm", "ci"] if (JS / "package-lock.json").exists() else ["npm", "install"]
        subprocess.run([*command, "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=600)
    for name in PACKAGES:
        assert version(name) == pinned[name], name


def rounded(rng: np.random.Generator, shape: tuple[int, ...]) -> list[Any]:
    return np.round(rng.normal(size=shape), 3).tolist()


def dataset() -> dict[str, Any]:
    rng = np.random.default_rng(20240607)
    dense = {
        "name": "js-search-dense",
        "ids": [f"r{i:02d}" for i in range(12)],
        "embeddings": rounded(rng, (12, 8)),
        "documents": DENSE_DOCUMENTS,
        "metadatas": [
            {
                "genre": GENRES[i % 3],
                "year": 2015 + i,
                "rating": RATINGS[i],
                "tags": [GENRES[i % 3], ("even", "odd")[i % 2]],
            }
            for i in range(12)
        ],
    }
    sparse_key = "sparse_kw"
    sparse_metadatas = []
    for i in range(10):
        terms = sorted(rng.choice(np.arange(1, 13), size=3 + i % 2, replace=False).tolist())
        values = np.round(rng.uniform(0.1, 1.0, size=len(terms)), 2).tolist()
        sparse_metadatas.append({"n": i, sparse_key: {"indices": terms, "values": values}})
    sparse = {
        "name": "js-search-sparse",
        "key": sparse_key,
        "ids": [f"s{i:02d}" for i in range(10)],
        "embeddings": rounded(rng, (10, 4)),
        "documents": [f"sparse record {i}" for i in range(10)],
        "metadatas": sparse_metadatas,
    }
    bm25 = {
        "name": "js-search-bm25",
        "key": "sparse_embedding",
        "client_computed": 4,  # records added through the full JS collection; the rest through a handle
        "ids": [f"b{i:02d}" for i in range(8)],
        "embeddings": rounded(rng, (8, 4)),
        "documents": BM25_DOCUMENTS,
        "metadatas": [{"part": "js" if i < 4 else "server"} for i in range(8)],
    }
    # a copy of the collection where one document changes through the full JS collection and one
    # through a handle
    bm25["updated_name"] = "js-search-bm25-updated"
    bm25["updates"] = {
        "client": {"id": "b00", "document": "A fox crossed the river at night", "embedding": rounded(rng, (4,))},
        "server": {"id": "b05", "document": "Rain falls on the quiet river", "embedding": rounded(rng, (4,))},
    }
    queries = {
        "q1": rounded(rng, (8,)),
        "q2": rounded(rng, (8,)),
        "text": "a quiet river at dawn",
        "some_ids": ["r01", "r04", "r05", "r09", "r10"],
        "min_year": 2019,
        "sparse_query": {"indices": [2, 5, 7, 11], "values": [0.5, 1.0, 0.25, 0.8]},
        "sparse_dense": rounded(rng, (4,)),
        "bm25_dense": rounded(rng, (4,)),
        "bm25_text": "quick fox by the river",
        "bm25_text2": "river bank",
    }
    return {
        "collections": {"dense": dense, "sparse": sparse, "bm25": bm25},
        "queries": queries,
        "bm25_probes": BM25_PROBES_ASCII + BM25_PROBES_NON_ASCII + BM25_PROBES_STEMMER,
    }


@dataclass
class Run:
    server: Server
    data: dict[str, Any]
    out: dict[str, Any]
    stdout: str


@pytest.fixture(scope="module")
def js_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    installed_packages()
    folder = tmp_path_factory.mktemp("js-search")
    data = dataset()
    (folder / "input.json").write_text(json.dumps(data))
    server = Server(folder / "data").start()
    try:
        done = subprocess.run(
            ["node", "search.mjs", str(server.port), str(folder / "input.json")],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # a search the server refuses does not stop the script: the tests below report each one
        result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert result, done.stdout + done.stderr + server.log()
        yield Run(server, data, json.loads(result[0][len("RESULT ") :]), done.stdout + done.stderr)
    finally:
        assert server.stop() == 0, server.log()


# -- Chroma's rules, independently ------------------------------------------------------------
@dataclass
class Scores:
    """Scores of some records (position -> score) and the score of all others (None: they drop out)."""

    values: dict[int, float]
    default: float | None = None

    def map(self, op: Callable[[float], float]) -> Scores:
        return Scores({i: op(v) for i, v in self.values.items()}, None if self.default is None else op(self.default))

    def at(self, i: int) -> float:
        return self.values.get(i, self.default)  # type: ignore[return-value]


def val(value: float) -> Scores:
    return Scores({}, value)


def combine(op: Callable[[float, float], float], left: Scores, right: Scores) -> Scores:
    """A record missing from a side takes that side's default; without one, it drops out."""
    if left.default is not None and right.default is not None:
        keys = set(left.values) | set(right.values)
        default: float | None = op(left.default, right.default)
    elif left.default is not None:
        keys, default = set(right.values), None
    elif right.default is not None:
        keys, default = set(left.values), None
    else:
        keys, default = set(left.values) & set(right.values), None
    return Scores({i: op(left.at(i), right.at(i)) for i in keys}, default)


def fold(op: Callable[[float, float], float], *parts: Scores) -> Scores:
    result = parts[0]
    for part in parts[1:]:
        result = combine(op, result, part)
    return result


def add(*parts: Scores) -> Scores:
    return fold(lambda a, b: a + b, *parts)


def mul(*parts: Scores) -> Scores:
    return fold(lambda a, b: a * b, *parts)


def top(distances: dict[int, float], limit: int, return_rank: bool, default: float | None) -> Scores:
    """A Knn: its best `limit` records (ties by insertion order), scored or ranked from 0."""
    best = sorted(distances, key=lambda i: (distances[i], i))[:limit]
    return Scores({i: float(rank) if return_rank else distances[i] for rank, i in enumerate(best)}, default)


def dense_knn(
    vectors: list[list[float]],
    query: list[float],
    limit: int,
    candidates: list[int] | None = None,
    return_rank: bool = False,
    default: float | None = None,
) -> Scores:
    """Squared L2 distances (the default space), on float32 vectors as stored."""
    x = np.asarray(vectors, np.float32).astype(np.float64)
    q = np.asarray(query, np.float32).astype(np.float64)
    d = ((x - q) ** 2).sum(axis=1)
    keep = range(len(x)) if candidates is None else candidates
    return top({i: float(d[i]) for i in keep}, limit, return_rank, default)


def sparse_knn(
    vectors: list[dict[int, float]],
    query: dict[int, float],
    limit: int,
    candidates: list[int] | None = None,
    idf: dict[int, float] | None = None,
    return_rank: bool = False,
    default: float | None = None,
) -> Scores:
    """Score 1 - sum(q_t * idf_t * d_t) over shared terms (idf 1 without BM25); records sharing none drop out."""
    keep = range(len(vectors)) if candidates is None else candidates
    scores = {}
    for i in keep:
        shared = set(vectors[i]) & set(query)
        if shared:
            scores[i] = 1.0 - sum(query[t] * (idf or {}).get(t, 1.0) * vectors[i][t] for t in shared)
    return top(scores, limit, return_rank, default)


def bm25_idf(vectors: list[dict[int, float]], query: dict[int, float]) -> dict[int, float]:
    """idf(t) = ln(1 + (n - n_t + 0.5) / (n_t + 0.5)), n: all records, n_t: records holding t."""
    n = len(vectors)
    found = {t: sum(t in v for v in vectors) for t in query}
    return {t: math.log(1 + (n - n_t + 0.5) / (n_t + 0.5)) for t, n_t in found.items()}


def ranked(scores: Scores) -> list[tuple[int, float]]:
    return sorted(scores.values.items(), key=lambda item: (item[1], item[0]))


def group_by(
    hits: list[tuple[int, float]], group: Callable[[int], Any], order: Callable[[int, float], Any], k: int
) -> list[tuple[int, float]]:
    """Group ranked records, keep the first k of each by `order`, then all by score again."""
    groups: dict[Any, list[tuple[int, float]]] = {}
    for hit in hits:
        groups.setdefault(group(hit[0]), []).append(hit)
    kept = [hit for members in groups.values() for hit in sorted(members, key=lambda h: order(*h))[:k]]
    return sorted(kept, key=lambda item: (item[1], item[0]))


def toy_letters(text: str, dim: int = 8) -> list[float]:
    """search.mjs's ToyLetters embedding function."""
    vector = [0.0] * dim
    for ch in text.lower():
        if "a" <= ch <= "z":
            vector[(ord(ch) - 97) % dim] += 1
    return vector


def sparse_dict(vector: Any) -> dict[int, float]:
    if isinstance(vector, dict):
        return dict(zip(vector["indices"], vector["values"], strict=True))
    return dict(zip(list(vector.indices), list(vector.values), strict=True))


def answer(
    collection: dict[str, Any],
    hits: list[tuple[int, float]],
    select: list[str],
    offset: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """The columns a search answers, from its ranked hits and select keys."""
    page = hits[offset : None if limit is None else offset + limit]
    at = [i for i, _ in page]
    fields = [key for key in select if not key.startswith("#")]
    if "#metadata" in select:
        metadatas: list[Any] | None = [collection["metadatas"][i] for i in at]
    elif fields:
        metadatas = [{k: v for k, v in collection["metadatas"][i].items() if k in fields} or None for i in at]
    else:
        metadatas = None
    return {
        "ids": [collection["ids"][i] for i in at],
        "scores": [score for _, score in page] if "#score" in select else None,
        "documents": [collection["documents"][i] for i in at] if "#document" in select else None,
        "metadatas": metadatas,
        "embeddings": [collection["embeddings"][i] for i in at] if "#embedding" in select else None,
    }


def unranked(
    collection: dict[str, Any],
    keep: Callable[[int], bool],
    select: list[str],
    offset: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """rank=None: matching records in insertion order, scored by their position in the page."""
    found = [i for i in range(len(collection["ids"])) if keep(i)]
    page = found[offset : None if limit is None else offset + limit]
    return answer(collection, [(i, float(n)) for n, i in enumerate(page)], select)


def expected_answers(data: dict[str, Any], bm25_vectors: list[dict[int, float]]) -> dict[str, dict[str, Any]]:
    d, s, b = (data["collections"][name] for name in ("dense", "sparse", "bm25"))
    q = data["queries"]
    meta = d["metadatas"]
    x = d["embeddings"]
    expected: dict[str, dict[str, Any]] = {}

    expected["filter_in"] = unranked(
        d, lambda i: d["ids"][i] in q["some_ids"] and meta[i]["year"] >= q["min_year"], ["#document", "#score", "genre"]
    )
    expected["contains_page"] = unranked(
        d, lambda i: "river" in d["documents"][i], ["#document", "#score"], offset=1, limit=2
    )
    expected["or_metadata"] = unranked(
        d, lambda i: meta[i]["genre"] == "news" or meta[i]["rating"] < 0.25, ["#metadata"]
    )
    expected["nin_ne_no_select"] = unranked(
        d, lambda i: d["ids"][i] not in ("r00", "r11") and meta[i]["genre"] != "tech", [], limit=3
    )
    expected["knn_vector"] = answer(
        d, ranked(dense_knn(x, q["q1"], 5)), ["#document", "#score", "#metadata", "#embedding"], limit=3
    )
    expected["knn_text"] = answer(d, ranked(dense_knn(x, toy_letters(q["text"]), 128)), ["#score"], limit=4)
    not_sport = [i for i in range(12) if meta[i]["genre"] != "sport"]
    expected["knn_filtered"] = answer(d, ranked(dense_knn(x, q["q2"], 4, not_sport)), ["#score", "genre"])
    expected["arith_default"] = answer(
        d,
        ranked(add(mul(dense_knn(x, q["q1"], 6), val(0.7)), mul(dense_knn(x, q["q2"], 6, default=10), val(0.3)))),
        ["#score"],
        limit=5,
    )
    all1, all2 = dense_knn(x, q["q1"], 12), dense_knn(x, q["q2"], 12)
    expected["arith_ops"] = answer(
        d,
        ranked(
            add(
                fold(max, all1, val(1.5)),
                fold(min, combine(lambda a, b: a / b, all2, val(2)), val(3)),
                mul(combine(lambda a, b: a - b, all1, all2).map(abs), val(0.1)),
                mul(add(all2, val(1)).map(math.log), val(-0.2)),
                mul(all1, val(-0.05)).map(math.exp),
            )
        ),
        ["#score"],
    )
    expected["group_min_score"] = answer(
        d, group_by(ranked(all1), lambda i: meta[i]["genre"], lambda i, score: score, 2), ["#score", "genre"], limit=5
    )
    expected["group_max_year"] = answer(
        d,
        group_by(ranked(all2), lambda i: meta[i]["genre"], lambda i, score: -meta[i]["year"], 1),
        ["#score", "genre", "year"],
    )
    expected["select_all"] = unranked(d, lambda i: True, ["#document", "#embedding", "#metadata", "#score"], limit=2)
    expected["document_regex"] = unranked(
        d,
        lambda i: re.match(r"^[A-P][a-z]+ ", d["documents"][i]) is not None and "river" not in d["documents"][i],
        ["#document"],
    )
    expected["tags_contains"] = unranked(
        d, lambda i: "even" in meta[i]["tags"] and meta[i]["year"] < 2023, ["tags", "#score"]
    )
    expected["plain_object"] = answer(
        d,
        ranked(dense_knn(x, q["q1"], 3, [i for i in range(12) if meta[i]["genre"] == "tech"])),
        ["#score", "year"],
        limit=2,
    )

    # explicit sparse vectors
    vectors = [sparse_dict(m[s["key"]]) for m in s["metadatas"]]
    sq = sparse_dict(q["sparse_query"])
    expected["sparse_knn"] = answer(s, ranked(sparse_knn(vectors, sq, 4)), ["#score", s["key"]])

    def rrf(ranks: list[Scores], weights: list[float], k: int) -> Scores:
        terms = [combine(lambda a, b: a / b, val(w), add(rank, val(k))) for rank, w in zip(ranks, weights, strict=True)]
        return mul(add(*terms), val(-1))

    expected["rrf_weights"] = answer(
        s,
        ranked(
            rrf(
                [
                    dense_knn(s["embeddings"], q["sparse_dense"], 6, return_rank=True),
                    sparse_knn(vectors, sq, 6, return_rank=True),
                ],
                [0.7, 0.3],
                60,
            )
        ),
        ["#score"],
        limit=5,
    )
    expected["rrf_defaults"] = answer(
        s,
        ranked(
            rrf(
                [
                    dense_knn(s["embeddings"], q["sparse_dense"], 4, return_rank=True, default=1000),
                    sparse_knn(vectors, sq, 4, return_rank=True, default=1000),
                ],
                [0.25, 0.75],  # weights [1, 3], normalized
                10,
            )
        ),
        ["#score", "#document"],
    )

    # BM25, with vecduck's Python BM25 function for the query
    bm25 = ChromaBm25EmbeddingFunction()

    def bm25_query(text: str) -> tuple[dict[int, float], dict[int, float]]:
        query = sparse_dict(bm25([text])[0])
        return query, bm25_idf(bm25_vectors, query)

    text, idf = bm25_query(q["bm25_text"])
    expected["bm25_text"] = answer(b, ranked(sparse_knn(bm25_vectors, text, 5, idf=idf)), ["#score", "#document"])
    text2, idf2 = bm25_query(q["bm25_text2"])
    server_part = [i for i in range(8) if b["metadatas"][i]["part"] == "server"]
    expected["bm25_filtered"] = answer(
        b, ranked(sparse_knn(bm25_vectors, text2, 128, server_part, idf=idf2)), ["#score"]
    )
    expected["bm25_hybrid"] = answer(
        b,
        ranked(
            rrf(
                [
                    dense_knn(b["embeddings"], q["bm25_dense"], 8, return_rank=True, default=100),
                    sparse_knn(bm25_vectors, text, 8, idf=idf, return_rank=True, default=100),
                ],
                [0.4, 0.6],
                10,
            )
        ),
        ["#score", "part"],
        limit=6,
    )
    # after the updates: new documents, so new vectors and other inverse document frequencies
    after = dict(b, documents=list(b["documents"]), embeddings=list(b["embeddings"]))
    for update in b["updates"].values():
        at = b["ids"].index(update["id"])
        after["documents"][at], after["embeddings"][at] = update["document"], update["embedding"]
    vectors_after = [sparse_dict(v) for v in bm25(after["documents"])]
    expected["bm25_after_update"] = answer(
        after, ranked(sparse_knn(vectors_after, text, 5, idf=bm25_idf(vectors_after, text))), ["#score", "#document"]
    )
    return expected


# -- comparing ------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """JSON-like: numpy arrays and chromadb's SparseVector as lists and {indices, values}."""
    if hasattr(value, "indices") and hasattr(value, "values") and not isinstance(value, dict):
        return {"indices": [int(i) for i in value.indices], "values": [float(v) for v in value.values]}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def close(actual: Any, expected: Any, what: str) -> None:
    """Equal, numbers within float32 precision."""
    actual, expected = plain(actual), plain(expected)
    if isinstance(expected, float) or isinstance(actual, float):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{what}: {actual!r} != {expected!r}"
        assert math.isclose(actual, expected, rel_tol=RTOL, abs_tol=RTOL), f"{what}: {actual!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{what}: {actual!r} != {expected!r}"
        for key in expected:
            close(actual[key], expected[key], f"{what}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{what}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            close(a, e, f"{what}[{i}]")
    else:
        assert actual == expected, f"{what}: {actual!r} != {expected!r}"


def stored_bm25_vectors(run: Run) -> list[dict[int, float]]:
    return [sparse_dict(run.out["bm25"]["stored"][i]) for i in run.data["collections"]["bm25"]["ids"]]


# -- tests ----------------------------------------------------------------------------------------
def test_js_search_script(js_run: Run) -> None:
    assert js_run.stdout.strip().endswith("ALL OK"), js_run.stdout
    assert js_run.stdout.count("\nok ") >= 20
    searches = js_run.out["searches"]
    assert len(searches) == 22
    for name, result in searches.items():
        if "error" not in result:
            assert [row["id"] for row in result["rows"]] == result["ids"], name


def test_js_search_answers(js_run: Run) -> None:
    """Each JS search's answer is the one NumPy computes (all failures listed at once)."""
    expected = expected_answers(js_run.data, stored_bm25_vectors(js_run))
    assert set(expected) == set(js_run.out["searches"])
    failures = []
    for name, want in expected.items():
        got = js_run.out["searches"][name]
        if "error" in got:
            failures.append(f"{name}: the server refused {json.dumps(got['payload'])}: {got['error']}")
            continue
        try:
            for field, value in want.items():
                close(got[field], value, f"{name}.{field}")
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, "\n".join(failures)


def test_js_search_rows(js_run: Run) -> None:
    """SearchResult.rows(): one dict per hit with the selected fields only."""
    result = js_run.out["searches"]["knn_vector"]
    assert [sorted(row) for row in result["rows"]] == [["document", "embedding", "id", "metadata", "score"]] * 3
    for i, row in enumerate(result["rows"]):
        assert (row["document"], row["metadata"], row["score"]) == (
            result["documents"][i],
            result["metadatas"][i],
            result["scores"][i],
        )
    assert [sorted(row) for row in js_run.out["searches"]["nin_ne_no_select"]["rows"]] == [["id"]] * 3


def test_js_search_wire_format(js_run: Run) -> None:
    """What the JS client sends: `{searches: [...], read_level?}`, Chroma's payload JSON."""
    searches = js_run.out["searches"]
    body = next(w["body"] for w in js_run.out["wire"] if w["path"].endswith("/search"))
    assert set(body) == {"searches"}  # read_level left out unless asked for
    assert js_run.out["batches"]["read_level"]["body"]["read_level"] == "index_only"
    assert searches["plain_object"]["payload"] == {
        "limit": {"offset": 0, "limit": 2},
        "select": {"keys": ["#score", "year"]},
        "filter": {"genre": {"$eq": "tech"}},
        "rank": {"$knn": {"query": js_run.data["queries"]["q1"], "limit": 3}},  # raw JSON, sent as given
    }
    assert searches["filter_in"]["payload"] == {
        "limit": {"offset": 0},
        "select": {"keys": ["#document", "#score", "genre"]},
        "filter": {"$and": [{"#id": {"$in": ["r01", "r04", "r05", "r09", "r10"]}}, {"year": {"$gte": 2019}}]},
    }
    assert searches["contains_page"]["payload"]["limit"] == {"offset": 1, "limit": 2}
    assert searches["contains_page"]["payload"]["filter"] == {"#document": {"$contains": "river"}}
    knn = searches["knn_text"]["payload"]["rank"]["$knn"]
    assert knn["key"] == "#embedding" and knn["limit"] == 128  # the JS client's default Knn limit
    assert knn["query"] == toy_letters(js_run.data["queries"]["text"])  # embedded client-side
    bm25 = searches["bm25_text"]["payload"]["rank"]["$knn"]
    assert bm25["key"] == "sparse_embedding" and set(bm25["query"]) == {"indices", "values"}
    assert searches["group_min_score"]["payload"]["group_by"] == {
        "keys": ["genre"],
        "aggregate": {"$min_k": {"keys": ["#score"], "k": 2}},
    }
    rrf = searches["rrf_weights"]["payload"]["rank"]
    assert rrf["$mul"][1] == {"$val": -1} and len(rrf["$mul"][0]["$sum"]) == 2
    batch = js_run.out["batches"]["dense"]
    assert batch["body"]["searches"] == [searches[name]["payload"] for name in batch["names"]]


def canonical(node: Any) -> Any:
    """A payload with what only one client sends dropped: the Python client sends `filter: null`,
    `rank: null`, `group_by: {}`, select keys in set order, dense queries as float32 and sparse
    ones tagged `#type`; the JS client leaves those out and sends numbers as given."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if (key in ("filter", "rank") and value is None) or (key == "group_by" and value == {}):
                continue
            if key == "#type" and value == "sparse_vector":
                continue
            if key == "return_rank" and value is False:
                continue
            if key == "$knn" and isinstance(value, dict):
                value = {"key": "#embedding", **value}  # the server's default; the Python client writes it
            if key == "query" and isinstance(value, list):
                value = np.asarray(value, np.float32).tolist()  # the Python client sends float32 values
            out[key] = canonical(value)
        if "keys" in out and set(out) == {"keys"} and all(isinstance(k, str) for k in out["keys"]):
            out["keys"] = sorted(out["keys"])  # select keys (a set in Python)
        return out
    if isinstance(node, list):
        return [canonical(item) for item in node]
    return node


def sort_commutative(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: sorted((sort_commutative(v) for v in value), key=json.dumps)
            if key in ("$sum", "$mul", "$max", "$min") and isinstance(value, list)
            else sort_commutative(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [sort_commutative(item) for item in node]
    return node


def tagged(node: Any) -> Any:
    """Sparse Knn queries tagged `#type: sparse_vector`: the JS client sends `{indices, values}`,
    which chromadb's Python `Knn.from_dict` refuses (Chroma's server takes both)."""
    if isinstance(node, dict):
        knn = node.get("$knn")
        if len(node) == 1 and isinstance(knn, dict) and isinstance(knn.get("query"), dict):
            return {"$knn": {**knn, "query": {"#type": "sparse_vector", **knn["query"]}}}
        return {key: tagged(value) for key, value in node.items()}
    if isinstance(node, list):
        return [tagged(item) for item in node]
    return node


def python_search(payload: dict[str, Any]) -> Any:
    from chromadb.execution.expression import Search

    return Search(
        where=payload.get("filter"),
        rank=tagged(payload.get("rank")),
        group_by=payload.get("group_by"),
        limit=payload.get("limit"),
        select=payload.get("select"),
    )


@pytest.fixture(scope="module")
def python_answers(js_run: Run) -> dict[str, Any]:
    """Each payload the JS client sent, read by the Python client's Search classes and sent again
    by `chromadb.HttpClient` (collections got with `embedding_function=None`): name -> answer
    columns, or the error; "#batch" is the JS client's batch sent as one request."""
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=js_run.server.port)
    collections: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    for name, result in js_run.out["searches"].items():
        if result["collection"] not in collections:
            collections[result["collection"]] = client.get_collection(result["collection"], embedding_function=None)
        try:
            got = collections[result["collection"]].search(python_search(result["payload"]))
        except Exception as error:  # reported by the tests
            answers[name] = {"error": repr(error)}
            continue
        answers[name] = {
            field: plain(got[field][0]) for field in ("ids", "scores", "documents", "metadatas", "embeddings")
        }
        answers[name]["select"] = list(got["select"][0])
    batch = js_run.out["batches"]["dense"]
    got = collections["js-search-dense"].search([python_search(p) for p in batch["body"]["searches"]])
    answers["#batch"] = {"ids": got["ids"]}
    return answers


def test_python_client_reads_js_payloads(js_run: Run) -> None:
    """The Python client's Search classes take every JS payload and give back the same JSON."""
    for name, result in js_run.out["searches"].items():
        assert canonical(python_search(result["payload"]).to_dict()) == canonical(result["payload"]), name


def test_python_client_same_answers(js_run: Run, python_answers: dict[str, Any]) -> None:
    """The same payloads from the Python client get the same answers as from the JS client."""
    failures = []
    for name, result in js_run.out["searches"].items():
        got = python_answers[name]
        if "error" in got or "error" in result:
            python_got = got["error"] if "error" in got else got["ids"]
            js_got = result["error"] if "error" in result else result["ids"]
            failures.append(f"{name}: the Python client got {python_got}, the JS client {js_got}")
            continue
        for field in ("ids", "scores", "documents", "metadatas", "embeddings", "select"):
            if got[field] != result[field]:
                failures.append(f"{name}.{field}: Python {got[field]!r} != JS {result[field]!r}")
    batch = js_run.out["batches"]["dense"]
    assert python_answers["#batch"]["ids"] == [js_run.out["searches"][name]["ids"] for name in batch["names"]]
    assert not failures, "\n".join(failures)


def test_python_client_answers(js_run: Run, python_answers: dict[str, Any]) -> None:
    """The Python client's answers to the JS payloads are the expected ones too (this covers the
    searches the server refuses from the JS client, see test_js_search_answers)."""
    expected = expected_answers(js_run.data, stored_bm25_vectors(js_run))
    failures = []
    for name, want in expected.items():
        got = python_answers[name]
        if "error" in got:
            failures.append(f"{name}: {got['error']}")
            continue
        try:
            for field, value in want.items():
                close(got[field], value, f"{name}.{field}")
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, "\n".join(failures)


def test_python_builders_send_the_same_payloads(js_run: Run) -> None:
    """The same searches built with chromadb's Python classes serialize like the JS ones."""
    from chromadb.execution.expression import GroupBy, K, Knn, MinK, Rrf, Search

    q = js_run.data["queries"]
    searches = js_run.out["searches"]
    sparse_key = js_run.data["collections"]["sparse"]["key"]
    sq = q["sparse_query"]
    built = {
        "filter_in": Search()
        .where(K.ID.is_in(q["some_ids"]) & (K("year") >= q["min_year"]))
        .select(K.DOCUMENT, K.SCORE, "genre"),
        "contains_page": Search().where(K.DOCUMENT.contains("river")).limit(2, offset=1).select(K.DOCUMENT, K.SCORE),
        "or_metadata": Search().where((K("genre") == "news") | (K("rating") < 0.25)).select(K.METADATA),
        "knn_vector": Search()
        .rank(Knn(query=q["q1"], limit=5))
        .limit(3)
        .select(K.DOCUMENT, K.SCORE, K.METADATA, K.EMBEDDING),
        "arith_default": Search()
        .rank(Knn(query=q["q1"], limit=6) * 0.7 + Knn(query=q["q2"], limit=6, default=10) * 0.3)
        .limit(5)
        .select(K.SCORE),
        "group_min_score": Search()
        .rank(Knn(query=q["q1"], limit=12))
        .group_by(GroupBy(keys=[K("genre")], aggregate=MinK(keys=[K.SCORE], k=2)))
        .limit(5)
        .select(K.SCORE, "genre"),
        "sparse_knn": Search().rank(Knn(query=sq, key=sparse_key, limit=4)).select(K.SCORE, sparse_key),
        "rrf_weights": Search()
        .rank(
            Rrf(
                [
                    Knn(query=q["sparse_dense"], return_rank=True, limit=6),
                    Knn(query=sq, key=sparse_key, return_rank=True, limit=6),
                ],
                weights=[0.7, 0.3],
            )
        )
        .limit(5)
        .select(K.SCORE),
    }
    for name, search in built.items():
        python_payload = sort_commutative(canonical(search.to_dict()))
        js_payload = sort_commutative(canonical(searches[name]["payload"]))
        assert python_payload == js_payload, name


def test_js_schema_round_trip(js_run: Run) -> None:
    """create_collection with a JS Schema: the BM25 index goes out and comes back unchanged."""
    import chromadb

    create = js_run.out["collections"]["bm25"]["create"]
    assert set(create) == {"name", "configuration", "get_or_create", "schema"}  # no metadata: left out
    assert create["configuration"] == {} and create["get_or_create"] is False
    sent = create["schema"]["keys"]["sparse_embedding"]["sparse_vector"]["sparse_vector_index"]
    assert sent == {
        "enabled": True,
        "config": {
            "embedding_function": {
                "type": "known",
                "name": "chroma_bm25",
                "config": {"k": 1.2, "b": 0.75, "avg_doc_length": 256, "token_max_length": 40},
            },
            "source_key": "#document",
            "bm25": True,
        },
    }
    for answer in (js_run.out["collections"]["bm25"]["answer"]["schema"], js_run.out["schemas"]["bm25"]["answer"]):
        index = answer["keys"]["sparse_embedding"]["sparse_vector"]["sparse_vector_index"]
        assert index["enabled"] is True
        assert index["config"]["bm25"] is True and index["config"]["source_key"] == "#document"
        assert index["config"]["embedding_function"]["name"] == "chroma_bm25"
        assert index["config"]["embedding_function"]["type"] == "known"
    # the JS client's Schema, rebuilt from the answer and serialized again, keeps the index
    again = js_run.out["schemas"]["bm25"]["client"]["keys"]["sparse_embedding"]["sparse_vector"]["sparse_vector_index"]
    assert again["enabled"] is True and again["config"]["bm25"] is True
    assert again["config"]["embedding_function"]["name"] == "chroma_bm25"
    sparse = js_run.out["schemas"]["sparse"]["answer"]["keys"]["sparse_kw"]["sparse_vector"]["sparse_vector_index"]
    assert sparse["enabled"] is True and not sparse["config"].get("bm25")
    # the Python client reads the same schema
    client = chromadb.HttpClient(host="127.0.0.1", port=js_run.server.port)
    schema = client.get_collection("js-search-bm25", embedding_function=None).schema
    assert schema is not None
    index = schema.keys["sparse_embedding"].sparse_vector.sparse_vector_index
    assert index.enabled and index.config.bm25 and index.config.source_key == "#document"
    assert index.config.embedding_function is not None and index.config.embedding_function.name() == "chroma_bm25"


def test_js_bm25_matches_python(js_run: Run) -> None:
    """@chroma-core/chroma-bm25 and vecduck's ChromaBm25EmbeddingFunction agree on ASCII text:
    the vectors the JS client sent, those the server computed, and the probe texts."""
    python = ChromaBm25EmbeddingFunction()
    b = js_run.data["collections"]["bm25"]
    assert js_run.out["bm25"]["config"] == {"k": 1.2, "b": 0.75, "avg_doc_length": 256, "token_max_length": 40}
    sent = [m["sparse_embedding"] for m in js_run.out["bm25"]["client_add_body"]["metadatas"]]
    for text, vector in zip(b["documents"][: b["client_computed"]], sent, strict=True):
        want = python([text])[0]
        assert vector["indices"] == list(want.indices) and vector["values"] == list(want.values), text
    for id_, text in zip(b["ids"], b["documents"], strict=True):
        stored = sparse_dict(js_run.out["bm25"]["stored"][id_])
        want = sparse_dict(python([text])[0])
        assert set(stored) == set(want), id_
        for term, value in want.items():
            assert math.isclose(stored[term], value, rel_tol=1e-6), id_
    for update in b["updates"].values():
        stored = sparse_dict(js_run.out["bm25"]["updated"][update["id"]])
        want = sparse_dict(python([update["document"]])[0])
        assert set(stored) == set(want), update
        for term, value in want.items():
            assert math.isclose(stored[term], value, rel_tol=1e-6), update
    probes = js_run.out["bm25"]["probes"][: len(BM25_PROBES_ASCII)]
    for text, vector in zip(BM25_PROBES_ASCII, probes, strict=True):
        want = python([text])[0]
        assert vector["indices"] == list(want.indices) and vector["values"] == list(want.values), text


@pytest.mark.xfail(strict=True, reason="@chroma-core/chroma-bm25 0.1.10 differs from chromadb's Python BM25")
@pytest.mark.parametrize("kind", ["non-ascii", "stemmer"])
def test_js_bm25_known_divergences(js_run: Run, kind: str) -> None:
    """The JS package hashes the low byte of each UTF-16 unit (Python: UTF-8 bytes), so every
    non-ASCII token gets another index; and its Snowball English stemmer (snowball-stemmers 0.6)
    is older than Python's snowballstemmer 3 (e.g. "added" -> "ad", "university" -> "univers")."""
    python = ChromaBm25EmbeddingFunction()
    start = len(BM25_PROBES_ASCII) + (0 if kind == "non-ascii" else len(BM25_PROBES_NON_ASCII))
    texts = BM25_PROBES_NON_ASCII if kind == "non-ascii" else BM25_PROBES_STEMMER
    probes = js_run.out["bm25"]["probes"][start : start + len(texts)]
    differ = [
        text for text, vector in zip(texts, probes, strict=True) if vector["indices"] != list(python([text])[0].indices)
    ]
    assert differ == []
