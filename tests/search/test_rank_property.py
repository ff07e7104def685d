"""Random rank expressions (hypothesis) against the reference evaluator, on every client.

Expressions mix Knn (dense and sparse, with and without `default` and `return_rank`,
various limits), `Val`, sums, differences, products, quotients, max, min, abs, negation,
exp and `Rrf`, under a random filter, grouping (MinK / MaxK) and page. The expected ranking comes from
search_reference.evaluate_rank; examples whose answer hangs on a float32 near tie inside
a Knn (membership at its limit, or its ranks) are skipped.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import search_reference as ref
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st
from search_backends import QUERIES, SPACES, DataSet, expected_ranking
from search_reference import FILTER_BY_NAME, KnnSpec

# VECDUCK_SEARCH_EXAMPLES=N runs more examples; VECDUCK_SEARCH_RANDOM=1 draws new ones each run
EXAMPLES = int(os.environ.get("VECDUCK_SEARCH_EXAMPLES", "40"))
DERANDOMIZE = not os.environ.get("VECDUCK_SEARCH_RANDOM")
# the default run does not shrink a failure (that can take minutes): set VECDUCK_SEARCH_RANDOM
PHASES = (Phase.explicit, Phase.generate) if DERANDOMIZE else tuple(Phase)
MAX_MAGNITUDE = 1e6  # keep float32 error (relative to the values met) meaningful

knn_specs = st.builds(
    KnnSpec,
    query=st.sampled_from(sorted(QUERIES)),
    limit=st.sampled_from([None, 1, 3, 8, 25, 60]),
    default=st.sampled_from([None, None, 0.0, 1.5, 10.0]),
    return_rank=st.booleans(),
)
leaves = st.one_of(
    knn_specs.map(lambda spec: ("knn", spec)),
    st.sampled_from([-1.0, 0.5, 2.0]).map(lambda c: ("val", c)),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    pairs = st.tuples(children, children)
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda cs: ("sum", cs)),
        st.lists(children, min_size=2, max_size=3).map(lambda cs: ("mul", cs)),
        pairs.map(lambda p: ("sub", *p)),
        st.tuples(children, st.sampled_from([0.5, 2.0, -4.0])).map(lambda p: ("div", p[0], ("val", p[1]))),
        pairs.map(lambda p: ("max", *p)),
        pairs.map(lambda p: ("min", *p)),
        children.map(lambda c: ("abs", c)),
        children.map(lambda c: ("neg", c)),
        children.map(lambda c: ("exp", ("mul", [c, ("val", 0.1)]))),
    )


arithmetic = st.recursive(leaves, _extend, max_leaves=6)
rrfs = st.builds(
    lambda specs, k, weights, normalize: (
        "rrf",
        [("knn", dataclasses.replace(spec, return_rank=True)) for spec in specs],
        k,
        None if weights is None else weights[: len(specs)],
        normalize,
    ),
    st.lists(knn_specs, min_size=1, max_size=3),
    st.sampled_from([1, 10, 60]),
    st.one_of(st.none(), st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=3, max_size=3)),
    st.booleans(),
)
ranks = st.one_of(
    arithmetic,
    rrfs,
    st.tuples(rrfs, arithmetic).map(lambda p: ("sum", list(p))),
).filter(lambda node: bool(ref.knn_specs(node)))
filters = st.sampled_from([None, "int_gte", "str_in", "or", "doc_not_contains", "str_array_not_contains"])
pages = st.one_of(st.none(), st.tuples(st.integers(1, 20), st.integers(0, 30)))
groupings = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from([["cat"], ["flag"], ["cat", "flag"], ["n"]]),
        st.sampled_from(["min", "max"]),
        st.sampled_from([["#score"], ["x"], ["n", "#score"], ["flag", "x"]]),
        st.integers(1, 3),
    ),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    phases=PHASES,
)
@given(node=ranks, space=st.sampled_from(SPACES), filter_name=filters, page=pages, grouping=groupings)
def test_random_rank_expressions(
    dataset: DataSet, node: Any, space: str, filter_name: str | None, page: Any, grouping: Any
) -> None:
    case = None if filter_name is None else FILTER_BY_NAME[filter_name]
    expected = expected_ranking(dataset, node, space, case)
    assume(not expected.ambiguous)
    assume(all(tol < 2e-5 * MAX_MAGNITUDE for _id, _score, tol in expected.ranked))
    ranked = expected.ranked
    if grouping is not None:
        by_position = [(dataset.position[i], s, t) for i, s, t in ranked]
        assume(not ref.group_ambiguous(by_position, dataset.records, *grouping))
        kept = ref.group_ranked(by_position, dataset.records, *grouping)
        ranked = [(dataset.records[p].id, s, t) for p, s, t in kept]
    api = dataset.backend.api
    search = api.Search().rank(ref.build_rank(node, api, QUERIES)).select(api.K.SCORE)
    if case is not None:
        search = search.where(case.build(api))
    if grouping is not None:
        group_keys, kind, sort_keys, k = grouping
        aggregate = api.MinK if kind == "min" else api.MaxK
        keys = [api.K.SCORE if key == "#score" else api.K(key) for key in sort_keys]
        group = api.GroupBy(keys=[api.K(key) for key in group_keys], aggregate=aggregate(keys=keys, k=k))
        search = search.group_by(group)
    if page is not None:
        search = search.limit(*page)
    result = dataset.collection(space).search(search)
    limit, offset = page if page is not None else (None, 0)
    event("hits: " + ("none" if not result["ids"][0] else "1-4" if len(result["ids"][0]) < 5 else "5+"))
    what = f"{node} grouped by {grouping}"
    problems = ref.check_page(result["ids"][0], result["scores"][0], ranked, offset, limit, what)
    assert not problems, "\n".join(problems[:20])
