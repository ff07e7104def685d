"""Chroma's Search API on every client kind, checked against the documented semantics.

The same scenarios run on `vecduck.Client()` (with vecduck's and with chromadb's expression
classes), `vecduck.PersistentClient` (also closed and reopened), the official
`chromadb.HttpClient` and `vecduck.HttpClient` against `vecduck run` (see conftest.py).
Expected answers come from tests/search/search_reference.py, never from vecduck.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import search_reference as ref
from search_backends import QUERIES, Backend, DataSet, expected_ranking, unique
from search_reference import FILTER_BY_NAME, FILTERS, knn, val

ALL = ("#document", "#embedding", "#metadata", "#score")  # select_all()


def search_with(api: Any, node: Any = None, case: ref.FilterCase | None = None, limit: Any = None) -> Any:
    search = api.Search()
    if case is not None:
        search = search.where(case.build(api))
    if node is not None:
        search = search.rank(ref.build_rank(node, api, QUERIES))
    if limit is not None:
        search = search.limit(*limit)
    return search.select(api.K.SCORE)


def check_all(problems: list[str]) -> None:
    assert not problems, "\n".join(problems[:40])


# -- filtering ------------------------------------------------------------------------------
def test_where_operators_without_rank(dataset: DataSet) -> None:
    """Every where operator (ids, documents, metadata, arrays, missing keys, and/or), one
    search each in one call: matches in insertion order, scores their page positions."""
    api = dataset.backend.api
    result = dataset.collection().search([api.Search().where(c.build(api)).select(api.K.SCORE) for c in FILTERS])
    problems = []
    for at, case in enumerate(FILTERS):
        want = [dataset.records[i].id for i in ref.matching(dataset.records, case)]
        if result["ids"][at] != want:
            missing = sorted(set(want) - set(result["ids"][at]))[:8]
            extra = sorted(set(result["ids"][at]) - set(want))[:8]
            problems.append(
                f"{case.name}: {len(result['ids'][at])} ids, expected {len(want)}; missing {missing}, "
                f"extra {extra}, order ok: {sorted(want) == sorted(result['ids'][at])}"
            )
        if result["scores"][at] != [float(i) for i in range(len(result["ids"][at]))]:
            problems.append(f"{case.name}: scores {result['scores'][at][:8]} are not the positions 0, 1, 2, ...")
    check_all(problems)


def test_where_operators_with_dense_knn(dataset: DataSet) -> None:
    """A filtered dense Knn is exact: the nearest among the matching records."""
    api = dataset.backend.api
    cases = [(node, case) for node in (knn("d0", limit=1000), knn("d2", limit=5)) for case in FILTERS]
    result = dataset.collection("cosine").search([search_with(api, node, case) for node, case in cases])
    problems = []
    for at, (node, case) in enumerate(cases):
        expected = expected_ranking(dataset, node, "cosine", case)
        assert not expected.ambiguous
        what = f"{case.name} limit={node[1].limit}"
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=what)
    check_all(problems)


# -- rank=None ---------------------------------------------------------------------------------
@pytest.mark.parametrize("filter_name", [None, "int_gte", "doc_not_contains"])
def test_rank_none_paging(dataset: DataSet, filter_name: str | None) -> None:
    api = dataset.backend.api
    case = None if filter_name is None else FILTER_BY_NAME[filter_name]
    want = [dataset.records[i].id for i in ref.matching(dataset.records, case)]
    pages = [(10, 0), (10, 5), (7, len(want) - 3), (5, len(want) + 10), (1, 0), (1000, 2)]
    searches = [search_with(api, None, case, (limit, offset)) for limit, offset in pages]
    searches.append(search_with(api, None, case))  # no limit: everything
    result = dataset.collection().search(searches)
    problems = []
    for at, (limit, offset) in enumerate([*pages, (None, 0)]):
        page = want[offset : None if limit is None else offset + limit]
        if result["ids"][at] != page:
            problems.append(f"limit={limit} offset={offset}: {result['ids'][at][:10]} != {page[:10]}")
        if result["scores"][at] != [float(i) for i in range(len(page))]:
            problems.append(f"limit={limit} offset={offset}: scores {result['scores'][at][:10]}")
    check_all(problems)


# -- Knn -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_dense_knn_scores_by_distance(dataset: DataSet, space: str) -> None:
    api = dataset.backend.api
    cases = [
        (knn("d0"), None),  # default limit: 16
        (knn("d1", limit=1), None),
        (knn("d2", limit=5), None),
        (knn("d0", limit=300), None),
        (knn("d1", limit=7), FILTER_BY_NAME["str_in"]),
        (knn("d2", limit=20), FILTER_BY_NAME["doc_contains"]),
        (knn("d0", limit=3), FILTER_BY_NAME["nothing"]),
        (knn("d1", limit=10, return_rank=True), FILTER_BY_NAME["int_lt"]),
    ]
    collection = dataset.collection(space)
    result = collection.search([search_with(api, node, case) for node, case in cases])
    problems = []
    for at, (node, case) in enumerate(cases):
        expected = expected_ranking(dataset, node, space, case)
        assert not expected.ambiguous
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=f"{space} {node}")
    check_all(problems)
    assert len(result["ids"][0]) == 16

    # the same numbers as query(where=...)
    where = {"cat": {"$in": ["a", "b"]}}
    query = np.asarray(QUERIES["d1"].vector, np.float32)
    answer = collection.query(query_embeddings=[query], n_results=7, where=where, include=["distances"])
    assert answer["ids"][0] == result["ids"][4]
    np.testing.assert_allclose(answer["distances"][0], result["scores"][4], rtol=1e-5, atol=1e-6)


def test_knn_limit_default_and_return_rank(dataset: DataSet) -> None:
    api = dataset.backend.api
    nodes = [
        knn("d0", limit=5, return_rank=True),
        ("sum", [knn("d1", limit=30), knn("d2", limit=30)]),  # both without default: found by both
        ("sum", [knn("d0", limit=10), knn("d1", limit=10, default=5.0)]),  # the d0 records
        ("sum", [knn("d0", limit=10, default=3.0), knn("d1", limit=10, default=3.0)]),  # found by either
        ("mul", [knn("d0", limit=12, default=2.0), knn("s0", limit=12, return_rank=True)]),
        ("sum", [knn("d2", limit=15, default=1.0, return_rank=True), knn("s1", limit=15, default=-1.0)]),
        ("sum", [knn("s2", limit=8), val(100.0)]),
        ("sub", knn("d1", limit=40, default=0.0), knn("d2", limit=40)),
    ]
    cases = [None, None, None, None, None, FILTER_BY_NAME["bool_ne"], None, FILTER_BY_NAME["int_array_not_contains"]]
    result = dataset.collection().search([search_with(api, n, c) for n, c in zip(nodes, cases, strict=True)])
    problems = []
    for at, (node, case) in enumerate(zip(nodes, cases, strict=True)):
        expected = expected_ranking(dataset, node, "l2", case)
        assert not expected.ambiguous, node
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=str(node))
    check_all(problems)
    assert result["scores"][0] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert 0 < len(result["ids"][1]) < 30


def test_sparse_knn_on_a_metadata_key(dataset: DataSet) -> None:
    """Sparse Knn on user-provided vectors (no schema): `1 - dot`, and only records sharing
    an index with the query are candidates."""
    api = dataset.backend.api
    nodes = [knn("s0", limit=1000), knn("s1"), knn("s2", limit=5), knn("s0", limit=9, return_rank=True)]
    cases = [None, None, FILTER_BY_NAME["or"], FILTER_BY_NAME["str_not_in"]]
    result = dataset.collection("cosine").search([search_with(api, n, c) for n, c in zip(nodes, cases, strict=True)])
    problems = []
    for at, (node, case) in enumerate(zip(nodes, cases, strict=True)):
        expected = expected_ranking(dataset, node, "cosine", case)
        assert not expected.ambiguous, node
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=str(node))
    check_all(problems)
    sharing = [r.id for r in dataset.records if r.sparse and set(r.sparse[0]) & set(QUERIES["s0"].indices)]
    assert sorted(result["ids"][0]) == sorted(sharing)
    assert len(sharing) < len(dataset.records)


def test_sparse_key_absent_from_some_records(backend: Backend) -> None:
    """Records without the sparse key next to records with it, whatever the write history:
    a record without it deleted before records with it come; records with it written out
    to the lake (flush, or close and reopen) before one without it comes."""
    api = backend.api
    vector = api.SparseVector
    search = api.Search().rank(api.Knn(query=vector([1], [1.0]), key=ref.SPARSE_KEY)).select(api.K.SCORE)
    first = backend.create(unique("sparse-after-delete"), space="l2")
    first.add(ids=["a"], embeddings=[[1.0, 2.0]], metadatas=[{"g": 0}])
    first.delete(ids=["a"])
    first.add(
        ids=["b", "c"],
        embeddings=[[1.0, 2.0], [2.0, 1.0]],
        metadatas=[{ref.SPARSE_KEY: vector([1], [0.5])}, {ref.SPARSE_KEY: vector([1, 2], [0.25, 1.0])}],
    )
    second = backend.create(unique("sparse-after-flush"), space="l2")
    second.add(ids=["a"], embeddings=[[1.0, 2.0]], metadatas=[{ref.SPARSE_KEY: vector([1], [0.5])}])
    if backend.reopen:  # written out to the lake (a flush of the shared in-memory store would take long)
        second = backend.settle(second)
        first = backend.get(first.name)
    elif backend.name == "persistent":
        backend.client.flush()
    second.add(ids=["b"], embeddings=[[1.0, 2.0]], metadatas=[{"g": 0}])
    problems = []
    for collection, want in ((first, [("b", 0.5), ("c", 0.75)]), (second, [("a", 0.5)])):
        try:
            result = collection.search(search)
        except Exception as error:  # the failure is the finding: report it with the others
            problems.append(f"{collection.name}: {type(error).__name__}: {error}")
            continue
        if result["ids"][0] != [i for i, _s in want] or result["scores"][0] != [s for _i, s in want]:
            problems.append(f"{collection.name}: {result['ids'][0]} {result['scores'][0]} != {want}")
    check_all(problems)


def test_sparse_knn_query_as_documented_dict(dataset: DataSet) -> None:
    """The docs' sparse query format `{"indices": [...], "values": [...]}` (no #type)."""
    api = dataset.backend.api
    query = QUERIES["s0"]
    as_dict = {"indices": list(query.indices), "values": list(query.values)}
    search = api.Search().rank(api.Knn(query=as_dict, key=ref.SPARSE_KEY, limit=10)).select(api.K.SCORE)
    result = dataset.collection().search(search)
    expected = expected_ranking(dataset, knn("s0", limit=10), "l2")
    check_all(ref.check_page(result["ids"][0], result["scores"][0], expected.ranked, what="dict sparse query"))


# -- combining -------------------------------------------------------------------------------------
def test_rrf_hybrid(dataset: DataSet) -> None:
    api = dataset.backend.api
    dense, sparse = knn("d0", limit=30, return_rank=True), knn("s0", limit=30, return_rank=True)
    dense_d = knn("d0", limit=30, return_rank=True, default=100.0)
    sparse_d = knn("s0", limit=30, return_rank=True, default=100.0)
    nodes = [
        ("rrf", [dense, sparse], 60, None, False),
        ("rrf", [dense_d, sparse_d], 60, [0.7, 0.3], False),
        ("rrf", [dense_d, sparse_d], 10, [3.0, 1.0], True),
        (
            "rrf",
            [dense_d, knn("s1", limit=20, return_rank=True, default=50.0), knn("d2", limit=25, return_rank=True)],
            60,
            [1.0, 2.0, 0.5],
            False,
        ),
        ("rrf", [dense_d], 1, None, False),
    ]
    result = dataset.collection("ip").search([search_with(api, node) for node in nodes])
    problems = []
    for at, node in enumerate(nodes):
        expected = expected_ranking(dataset, node, "ip")
        assert not expected.ambiguous, node
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=str(node)[:80])
    check_all(problems)
    assert all(score < 0 for score in result["scores"][1])


def test_arithmetic_and_functions(dataset: DataSet) -> None:
    api = dataset.backend.api
    near, far = knn("d1", limit=25, default=4.0), knn("d2", limit=25, default=6.0)
    nodes = [
        ("sum", [("mul", [near, val(0.7)]), ("mul", [far, val(0.3)])]),
        ("neg", near),
        ("abs", ("sub", near, far)),
        ("exp", ("mul", [near, val(0.1)])),
        ("log", ("sum", [near, val(1.0)])),
        ("max", near, val(2.0)),
        ("min", far, val(3.0)),
        ("div", near, ("sum", [far, val(1.0)])),
        ("div", ("sum", [near, far]), val(2.0)),
        ("sub", val(10.0), ("mul", [near, knn("s0", limit=25, default=1.0)])),
        ("max", ("min", near, far), ("mul", [knn("s1", limit=30, default=0.5), val(-1.0)])),
    ]
    result = dataset.collection().search([search_with(api, node) for node in nodes])
    problems = []
    for at, node in enumerate(nodes):
        expected = expected_ranking(dataset, node, "l2")
        assert not expected.ambiguous, node
        problems += ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, what=str(node)[:90])
    check_all(problems)


def test_ties_sort_by_insertion_order(backend: Backend) -> None:
    """Equal scores keep insertion order (exact ties: integer vectors on l2)."""
    api = backend.api
    points = {"A": [0.0, 0.0], "B": [1.0, 0.0], "C": [0.0, 2.0]}
    layout = ["B", "A", "C", "A", "B", "A", "C", "B", "A", "C"]
    collection = backend.create(unique("ties"), space="l2")
    collection.add(
        ids=[f"t{i}" for i in range(10)],
        embeddings=[points[p] for p in layout],
        metadatas=[{"p": p, "i": i} for i, p in enumerate(layout)],
    )
    collection = backend.settle(collection)
    by_point = sorted(range(10), key=lambda i: ({"A": 0, "B": 1, "C": 4}[layout[i]], i))
    searches = [
        api.Search().rank(api.Knn(query=[0.0, 0.0])).select(api.K.SCORE),
        api.Search().rank(api.Knn(query=[0.0, 0.0], return_rank=True) * 0 + 1).select(api.K.SCORE),
        api.Search().rank(api.Knn(query=[0.0, 0.0]) * 0).where(api.K("p") != "C").limit(3, offset=2),
    ]
    result = collection.search(searches)
    assert result["ids"][0] == [f"t{i}" for i in by_point]
    assert result["scores"][0] == [float({"A": 0, "B": 1, "C": 4}[layout[i]]) for i in by_point]
    assert result["ids"][1] == [f"t{i}" for i in range(10)]
    assert result["ids"][2] == [f"t{i}" for i in range(10) if layout[i] != "C"][2:5]


def test_rank_none_order_after_writes(backend: Backend) -> None:
    """Storage order is insertion order: an update or upsert keeps a record's place, a new
    record (also one re-added after deletion) comes last."""
    api = backend.api
    collection = backend.create(unique("order"), space="l2")
    collection.add(
        ids=[f"o{i}" for i in range(6)],
        embeddings=[[float(i), 1.0] for i in range(6)],
        metadatas=[{"i": i} for i in range(6)],
    )
    collection.update(ids=["o2"], metadatas=[{"i": 20}], embeddings=[[9.0, 9.0]])
    collection.upsert(ids=["o4", "o9"], metadatas=[{"i": 40}, {"i": 9}], embeddings=[[4.0, 4.0], [9.0, 1.0]])
    collection.delete(ids=["o1"])
    collection.add(ids=["o1"], embeddings=[[1.0, 1.0]], metadatas=[{"i": 1}])
    collection = backend.settle(collection)
    order = ["o0", "o2", "o3", "o4", "o5", "o9", "o1"]
    vectors = {"o0": [0, 1], "o2": [9, 9], "o3": [3, 1], "o4": [4, 4], "o5": [5, 1], "o9": [9, 1], "o1": [1, 1]}
    searches = [
        api.Search().select("i"),
        api.Search().rank(api.Knn(query=[8.5, 3.0], limit=4)).select(api.K.SCORE),
        api.Search().rank(api.Knn(query=[8.5, 3.0]) * 0).where(api.K("i") >= 3).select(api.K.SCORE),
    ]
    result = collection.search(searches)
    assert result["ids"][0] == order
    assert [m["i"] for m in result["metadatas"][0]] == [0, 20, 3, 40, 5, 9, 1]
    # the rewritten vectors are the ones searched, deleted ones are gone
    distances = {i: (8.5 - v[0]) ** 2 + (3.0 - v[1]) ** 2 for i, v in vectors.items()}
    nearest = sorted(order, key=lambda i: (distances[i], order.index(i)))[:4]
    assert result["ids"][1] == nearest
    np.testing.assert_allclose(result["scores"][1], [distances[i] for i in nearest], rtol=1e-6)
    assert result["ids"][2] == ["o2", "o3", "o4", "o5", "o9"]  # equal scores: storage order


# -- group by ------------------------------------------------------------------------------------
def test_group_by_min_k_and_max_k(dataset: DataSet) -> None:
    api = dataset.backend.api
    node = knn("d2", limit=80)
    cases = [
        (["cat"], "min", ["#score"], 2, None, None),
        (["cat", "flag"], "min", ["#score"], 1, None, None),
        (["cat"], "max", ["#score"], 2, None, None),
        (["cat"], "min", ["n", "#score"], 2, None, None),
        (["flag"], "max", ["n", "#score"], 3, None, None),
        (["cat"], "min", ["x"], 1, (3, 1), None),
        (["n"], "max", ["x", "#score"], 1, (5, 2), None),
        (["cat"], "min", ["#score"], 3, None, "int_gte"),
    ]

    def key_of(name: str) -> Any:
        return api.K.SCORE if name == "#score" else api.K(name)

    searches = []
    for group_keys, kind, sort_keys, k, page, filter_name in cases:
        aggregate_class = api.MinK if kind == "min" else api.MaxK
        sort = key_of(sort_keys[0]) if len(sort_keys) == 1 else [key_of(s) for s in sort_keys]
        group = api.K(group_keys[0]) if len(group_keys) == 1 else [api.K(g) for g in group_keys]
        search = api.Search().rank(ref.build_rank(node, api, QUERIES))
        if filter_name:
            search = search.where(FILTER_BY_NAME[filter_name].build(api))
        search = search.group_by(api.GroupBy(keys=group, aggregate=aggregate_class(keys=sort, k=k)))
        if page:
            search = search.limit(*page)
        searches.append(search.select(api.K.SCORE, *group_keys))
    result = dataset.collection().search(searches)
    problems = []
    for at, (group_keys, kind, sort_keys, k, page, filter_name) in enumerate(cases):
        case = FILTER_BY_NAME[filter_name] if filter_name else None
        expected = ref.evaluate_rank(
            node,
            ref.matching(dataset.records, case),
            lambda spec: dict(
                enumerate(ref.dense_distances(dataset.embeddings, QUERIES[spec.query].vector, "l2").tolist())
            ),
        )
        assert not expected.ambiguous
        assert ref.min_gap([s for _p, s, _t in expected.ranked]) > 1e-4
        kept = ref.group_ranked(expected.ranked, dataset.records, group_keys, kind, sort_keys, k)
        ranked = [(dataset.records[p].id, s, t) for p, s, t in kept]
        offset, limit = (page[1], page[0]) if page else (0, None)
        what = f"group {group_keys} {kind}{sort_keys} k={k} page={page} filter={filter_name}"
        problems += ref.check_page(result["ids"][at], result["scores"][at], ranked, offset, limit, what)
    check_all(problems)
    # a record lacking the group key forms the null group with the others lacking it
    assert any(m is None or "cat" not in m for m in result["metadatas"][0])


# -- select -------------------------------------------------------------------------------------
def test_select_variations(dataset: DataSet) -> None:
    api = dataset.backend.api
    rank = ref.build_rank(knn("d1", limit=12), api, QUERIES)
    selections: list[tuple[Any, ...]] = [
        (),
        (api.K.DOCUMENT,),
        (api.K.EMBEDDING,),
        (api.K.METADATA,),
        (api.K.SCORE, "n", "cat"),
        ("tags", "missing_key"),
        ("x", api.K.DOCUMENT, api.K.METADATA),
        (ref.SPARSE_KEY, "flag", api.K.EMBEDDING),
        ALL,
    ]
    searches = []
    for keys in selections:
        search = api.Search().rank(rank)
        searches.append(search.select_all() if keys is ALL else search.select(*keys) if keys else search)
    searches.append(api.Search().where(api.K("n") == 7).select_all())  # no rank
    result = dataset.collection().search(searches)
    expected_ids = [r[0] for r in expected_ranking(dataset, knn("d1", limit=12), "l2").ranked]
    no_rank_ids = [r.id for r in dataset.records if r.value("n") == 7]
    problems = []
    for at, keys in enumerate([*selections, ALL]):
        names = {getattr(k, "name", k) for k in keys}
        ids = result["ids"][at]
        want_ids = expected_ids if at < len(selections) else no_rank_ids
        if ids != want_ids:
            problems.append(f"{keys}: ids {ids} != {want_ids}")
            continue
        if list(result["select"][at]) != ref.select_order(names):
            problems.append(f"{keys}: select {result['select'][at]} != {ref.select_order(names)}")
        records = [dataset.records[dataset.position[i]] for i in ids]
        documents = result["documents"][at]
        if ("#document" in names) != (documents is not None):
            problems.append(f"{keys}: documents {documents!r:.60}")
        elif documents is not None and documents != [r.document for r in records]:
            problems.append(f"{keys}: documents differ")
        embeddings = result["embeddings"][at]
        if ("#embedding" in names) != (embeddings is not None):
            problems.append(f"{keys}: embeddings {embeddings!r:.60}")
        elif embeddings is not None:
            got = np.asarray([np.asarray(e, np.float32) for e in embeddings])
            if not np.allclose(got, np.stack([r.embedding for r in records]), atol=1e-6):
                problems.append(f"{keys}: embeddings differ")
        metadatas = result["metadatas"][at]
        fields = [n for n in names if not n.startswith("#")]
        if ("#metadata" in names or bool(fields)) != (metadatas is not None):
            problems.append(f"{keys}: metadatas {metadatas!r:.60}")
        elif metadatas is not None:
            wanted = [ref.expected_metadata(r, None if "#metadata" in names else fields) for r in records]
            got_metadata = [ref.normalize_metadata(m) for m in metadatas]
            if got_metadata != wanted:
                problems.append(f"{keys}: metadatas {got_metadata[:3]} != {wanted[:3]}")
        scores = result["scores"][at]
        if ("#score" in names) != (scores is not None):
            problems.append(f"{keys}: scores {scores!r:.60}")
    check_all(problems)
    # a named field no selected record has: metadata None for those records
    assert any(m is None for m in result["metadatas"][5])
    rows = result.rows()
    assert [row["id"] for row in rows[4]] == expected_ids
    for row, metadata, score in zip(rows[4], result["metadatas"][4], result["scores"][4], strict=True):
        assert row == {"id": row["id"], "score": score, **({} if metadata is None else {"metadata": metadata})}
    assert all(set(row) == {"id"} for row in rows[0])


# -- several searches, empty cases, dict payloads ----------------------------------------------------
def test_several_searches_in_one_call(dataset: DataSet) -> None:
    api = dataset.backend.api
    searches = [
        api.Search()
        .where(api.K("cat") == "b")
        .rank(ref.build_rank(knn("d0", limit=5), api, QUERIES))
        .select(api.K.DOCUMENT),
        api.Search().where(api.K("flag") == True).limit(4).select(api.K.SCORE, "flag"),  # noqa: E712
        api.Search().rank(ref.build_rank(knn("s2", limit=3), api, QUERIES)).select_all(),
        api.Search().where(api.K("cat") == "zzz"),
    ]
    collection = dataset.collection()
    result = collection.search(searches)
    for field in ("ids", "documents", "embeddings", "metadatas", "scores", "select"):
        assert len(result[field]) == 4, field
    separately = [collection.search(s) for s in searches]
    for at, alone in enumerate(separately):
        for field in ("ids", "documents", "metadatas", "scores", "select"):
            assert result[field][at] == alone[field][0], (at, field)
    assert result["documents"][1] is None and result["documents"][0] is not None
    assert result["scores"][0] is None and result["scores"][1] == [0.0, 1.0, 2.0, 3.0]
    assert result["ids"][3] == [] and result["select"][3] == []
    flagged = [r.id for r in dataset.records if r.value("flag") is True][:4]
    assert result["ids"][1] == flagged
    rows = result.rows()
    assert len(rows) == 4 and rows[3] == []


def test_empty_search_list(dataset: DataSet) -> None:
    result = dataset.collection().search([])
    assert result["ids"] == []


def test_empty_collection(backend: Backend) -> None:
    api = backend.api
    collection = backend.settle(backend.create(unique("empty"), space="cosine"))
    searches = [
        api.Search(),
        api.Search().rank(api.Knn(query=[1.0, 0.0, 0.0])).select_all(),
        api.Search().rank(api.Knn(query=api.SparseVector(indices=[1], values=[1.0]), key="sp")).select(api.K.SCORE),
        api.Search()
        .rank(api.Knn(query=[1.0, 0.0, 0.0], limit=5))
        .group_by(api.GroupBy(keys=api.K("cat"), aggregate=api.MinK(keys=api.K.SCORE, k=1)))
        .limit(3),
    ]
    result = collection.search(searches)
    assert result["ids"] == [[], [], [], []]
    assert result["documents"][1] == [] and result["scores"][1] == [] and result["scores"][2] == []


def test_filter_matching_nothing_with_rank(dataset: DataSet) -> None:
    api = dataset.backend.api
    nothing = FILTER_BY_NAME["nothing"]
    nodes = [
        knn("d0"),
        knn("s0"),
        ("rrf", [knn("d0", return_rank=True, default=9.0), knn("s0", return_rank=True, default=9.0)], 60, None, False),
    ]
    result = dataset.collection().search([search_with(api, node, nothing) for node in nodes])
    assert result["ids"] == [[], [], []]
    assert result["scores"] == [[], [], []]


def test_search_given_as_dict(dataset: DataSet) -> None:
    if dataset.backend.official:
        pytest.skip("chromadb's client takes Search objects only")
    api = dataset.backend.api
    query = QUERIES["d0"].vector
    built = (
        api.Search().where(api.K("n") >= 10).rank(api.Knn(query=query, limit=9)).limit(4, offset=1).select(api.K.SCORE)
    )
    written = {
        "filter": {"n": {"$gte": 10}},
        "rank": {"$knn": {"query": list(query), "key": "#embedding", "limit": 9}},
        "limit": {"offset": 1, "limit": 4},
        "select": {"keys": ["#score"]},
    }
    collection = dataset.collection()
    result = collection.search([built.to_dict(), written, built])
    expected = expected_ranking(dataset, knn("d0", limit=9), "l2", FILTER_BY_NAME["int_gte"])
    for at in range(3):
        check_all(ref.check_page(result["ids"][at], result["scores"][at], expected.ranked, 1, 4, what=f"#{at}"))
    assert collection.search(written)["ids"] == [result["ids"][0]]


def test_both_expression_classes_on_the_embedded_client(dataset: DataSet) -> None:
    """chromadb's expression objects and vecduck's give the same answers, even mixed in one call."""
    if dataset.backend.name != "embedded":
        pytest.skip("runs on the embedded client, which takes both kinds")
    from search_backends import chromadb_classes, vecduck_classes

    collection = dataset.collection()
    node = ("sum", [knn("d0", limit=20, default=2.0), ("mul", [knn("s1", limit=20), val(0.5)])])
    searches = []
    for api in (vecduck_classes(), chromadb_classes()):
        searches.append(
            api.Search()
            .where((api.K("n") >= 3) | api.K.DOCUMENT.contains("fox"))
            .rank(ref.build_rank(node, api, QUERIES))
            .group_by(api.GroupBy(keys=api.K("cat"), aggregate=api.MaxK(keys=[api.K("x"), api.K.SCORE], k=2)))
            .limit(6, offset=1)
            .select(api.K.SCORE, api.K.DOCUMENT, "cat")
        )
    mixed = collection.search(searches)
    assert mixed["ids"][0] == mixed["ids"][1] and mixed["ids"][0]
    assert mixed["scores"][0] == mixed["scores"][1]
    assert collection.search(searches[1]) == collection.search(searches[0])


def test_result_shape(dataset: DataSet) -> None:
    """SearchResult: column-major fields, `rows()`, and frames with one row per hit."""
    backend = dataset.backend
    api = backend.api
    searches = [
        api.Search().rank(ref.build_rank(knn("d0", limit=4), api, QUERIES)).select(api.K.SCORE, api.K.DOCUMENT, "cat"),
        api.Search().where(api.K("cat") == "zzz").select(api.K.SCORE),
        api.Search().where(api.K("n") == 7).limit(3).select(api.K.SCORE, "n", api.K.EMBEDDING),
    ]
    result = dataset.collection().search(searches)
    rows = result.rows()
    assert [len(r) for r in rows] == [4, 0, len(result["ids"][2])]
    first = rows[0][0]
    assert first["id"] == result["ids"][0][0] and first["score"] == result["scores"][0][0]
    assert first["document"] == result["documents"][0][0]
    if backend.official:
        return  # chromadb's SearchResult has no frames
    import vecduck

    assert isinstance(result, vecduck.SearchResult)
    assert result.ids == result["ids"]
    assert (result.documents, result.embeddings) == (result["documents"], result["embeddings"])
    assert (result.metadatas, result.scores) == (result["metadatas"], result["scores"])
    frame = result.to_pandas()
    total = sum(len(ids) for ids in result["ids"])
    assert len(frame) == total
    assert list(frame["search"]) == [0] * 4 + [2] * len(result["ids"][2])
    assert list(frame["id"]) == result["ids"][0] + result["ids"][2]
    np.testing.assert_allclose(frame["score"].to_numpy(), result["scores"][0] + result["scores"][2])

    def values(column: str) -> list[Any]:  # missing values as None (pandas may show NaN)
        return [None if not isinstance(v, str) and np.ndim(v) == 0 and v != v else v for v in frame[column]]

    assert values("document")[:4] == result["documents"][0]
    assert values("cat")[:4] == [(m or {}).get("cat") for m in result["metadatas"][0]]
    embeddings = frame["embedding"].tolist()
    assert all(e is None for e in embeddings[:4])
    for got, record_id in zip(embeddings[4:], result["ids"][2], strict=True):
        np.testing.assert_array_equal(got, dataset.records[dataset.position[record_id]].embedding)
    polars_frame = result.to_polars()
    assert polars_frame.height == total
    assert polars_frame["search"].to_list() == list(frame["search"])
    assert polars_frame["id"].to_list() == list(frame["id"])


def test_numpy_scalars_count_as_numbers(dataset: DataSet) -> None:
    """Limits, offsets, defaults and filter values given as NumPy scalars: what an HTTP
    client's JSON makes of them, so every client kind answers as with Python numbers."""
    api = dataset.backend.api
    query = np.asarray(QUERIES["d1"].vector, np.float32)
    ranked = (
        api.Search()
        .rank(api.Knn(query=query, limit=np.int64(6), default=np.float32(50.0)))
        .limit(np.int64(4), offset=np.int64(1))
        .select(api.K.SCORE)
    )
    grouped = (
        api.Search()
        .rank(api.Knn(query=query, limit=np.int64(30)))
        .group_by(api.GroupBy(keys=api.K("cat"), aggregate=api.MinK(keys=api.K.SCORE, k=np.int64(1))))
    )
    filtered = api.Search().where(api.K("n") == np.int64(7))
    result = dataset.collection().search([ranked, grouped, filtered])
    expected = expected_ranking(dataset, knn("d1", limit=6, default=50.0), "l2")
    check_all(ref.check_page(result["ids"][0], result["scores"][0], expected.ranked, offset=1, limit=4))
    categories = [dataset.records[dataset.position[i]].value("cat") for i in result["ids"][1]]
    assert len(categories) == len(set(categories)) > 1  # one per group
    assert result["ids"][2] == [r.id for r in dataset.records if r.value("n") == 7]


def test_group_by_needs_a_rank_and_metadata_keys(dataset: DataSet) -> None:
    """Chroma refuses a group_by without a rank expression, grouping by anything but
    metadata fields, and aggregating by anything but those and the score."""
    api = dataset.backend.api
    rank = api.Knn(query=np.asarray(QUERIES["d0"].vector, np.float32))
    refused = [
        api.Search().group_by(api.GroupBy(keys=api.K("cat"), aggregate=api.MinK(keys=api.K.SCORE, k=1))),
        api.Search().rank(rank).group_by(api.GroupBy(keys=api.K.SCORE, aggregate=api.MinK(keys=api.K.SCORE, k=1))),
        api.Search().rank(rank).group_by(api.GroupBy(keys=api.K("cat"), aggregate=api.MaxK(keys=api.K.DOCUMENT, k=1))),
    ]
    for search in refused:
        with pytest.raises(Exception, match=r"group_by|max_k"):
            dataset.collection().search(search)
    grouped = api.Search().rank(rank).group_by(api.GroupBy(keys=api.K("cat"), aggregate=api.MinK(keys="n", k=2)))
    assert dataset.collection().search(grouped)["ids"][0]


def test_non_finite_scores_are_none_without_warnings(dataset: DataSet) -> None:
    """log of a negative number and division by zero give scores of None (Chroma's JSON
    null), and no NumPy warning reaches the caller."""
    import warnings

    api = dataset.backend.api
    knn_d0 = api.Knn(query=np.asarray(QUERIES["d0"].vector, np.float32), limit=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = dataset.collection().search(
            [
                api.Search().rank((knn_d0 - 1e6).log()).select(api.K.SCORE),
                api.Search().rank(knn_d0 / 0).select(api.K.SCORE),
            ]
        )
    assert result["scores"] == [[None] * 3, [None] * 3]


def test_selecting_the_id_gives_a_metadata_column(dataset: DataSet) -> None:
    """Chroma reads `#id` in a select as a metadata field: a metadatas column of nulls."""
    api = dataset.backend.api
    knn_d0 = api.Knn(query=np.asarray(QUERIES["d0"].vector, np.float32), limit=4)
    result = dataset.collection().search(api.Search().rank(knn_d0).select(api.K.ID))
    assert result["metadatas"] == [[None] * 4]
    assert len(result["ids"][0]) == 4


def test_query_dimension_mismatch_is_an_error(dataset: DataSet) -> None:
    """Documented: a query vector of another dimension than the collection's is an error."""
    api = dataset.backend.api
    with pytest.raises(Exception, match=r"(?i)dimension"):
        dataset.collection().search(api.Search().rank(api.Knn(query=[0.5, 1.0, 2.0])))
