"""Hypothesis strategies for the differential test: names, metadata, records, filters.

Pools are small on purpose so that random operations collide: ids repeat, keys exist in some
records and not others, values of different kinds (int, float, bool, str, lists) meet the
same key, embeddings on a coarse grid produce tied distances, and a handful of tenant and
database names make the same collection name live in several databases.

Not generated, because chromadb itself misbehaves there (see the report in test_differential):
list metadata values once a collection (or a database holding collections) was deleted in
the example (chromadb leaks the deleted records' arrays into new records with the same ids),
list values in *collection* metadata (Rust panic), documents without embeddings on a handle
without an embedding function (chromadb then downloads its default embedding model; the
test's own ``ToyEmbedding`` handles do embed documents), ints beyond 64 bits (silently
stored as float), an empty id before the collection's dimension is fixed (chromadb fixes the
dimension from the write it then rejects), an update carrying vectors for an id that does
not exist (chromadb keeps the vector and gives it to a record added later under that id,
when no read came in between: the machine renames such ids to ``GHOST_IDS``, never added).

Tenants and databases, chromadb 1.5.9 accidents that vecduck deliberately does not copy:
chromadb creates a database under a tenant that does not exist (vecduck: NotFoundError), so
a database is only created under a tenant that exists; chromadb accepts "/" (and
NUL) in tenant and database names, which vecduck refuses (they are URL path segments), so
the pools hold none. Over HTTP, chromadb's own HttpClient puts an empty tenant or database
name into the URL as an empty path segment ("No route"), so the server subjects get no
empty names (``allow_empty_scope_names``).

``None`` values in ``modify(metadata=...)`` are generated: chromadb stores the metadata
without them (``None`` when nothing is left), but its local handle keeps them, so the machine
compares a fresh ``get_collection`` after such a modify, not the handles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

VALID_NAMES = ["alpha", "beta", "gamma", "d_3", "Mixed.Case-9"]
INVALID_NAMES = [
    "",
    "ab",
    "-abc",
    "abc-",
    "a..b",
    "1.2.3.4",
    "has space",
    "_ok_",
    "x" * 513,
    "\u00e9\u00e9\u00e9",
]
SPACES = ["l2", "cosine", "ip"]
ID_POOL = [f"id{i}" for i in range(10)]
# what an update carrying vectors names instead of an id that does not exist (see the top)
GHOST_IDS = {record_id: f"ghost{record_id[2:]}" for record_id in ID_POOL}
METADATA_KEYS = ["a", "b", "c", "tags"]
DOCUMENTS = [
    "apple pie",
    "Apple",
    "banana split",
    "cherry pie",
    "pie",
    "",
    "a b c",
    "xyz 123",
    "Banana",
]
DOC_SUBSTRINGS = ["pie", "apple", "Apple", "an", " ", "p", "123"]
DOC_REGEXES = [
    "^a",
    "pie$",
    "[Aa]pple",
    "an+",
    "^$",
    ".",
    "b.n",
    "(?i)APPLE",
    "[0-9]+",
    "^[a-c]",
]


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws.

    Tests ``== one_in // 2`` rather than ``== 0``: Hypothesis favours 0 (its shrink target),
    so ``== 0`` fires far more often than intended, and shrinking should lead to the common case.
    """
    return draw(st.integers(0, one_in - 1)) == one_in // 2


@st.composite
def mostly(draw: st.DrawFn, common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int) -> Any:
    """``common``, and ``rare`` about once in ``one_in`` draws."""
    return draw(rare) if rarely(draw, one_in) else draw(common)


collection_names = mostly(st.sampled_from(VALID_NAMES), st.sampled_from(INVALID_NAMES), 5)

# ----------------------------------------------------------------------------- tenants, databases

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
# a space and non-ASCII letters: URL path segments a client must quote (once)
TENANT_NAMES = [DEFAULT_TENANT, "acme", "Zeta team"]
DATABASE_NAMES = [DEFAULT_DATABASE, "db_one", "Db-Two", "donn\u00e9es"]
SHORT_SCOPE_NAMES = ["", "ab", "\u00e9"]  # fewer than 3 characters: InvalidArgumentError on create


def scope_names(pool: list[str], allow_empty: bool = True) -> st.SearchStrategy[str]:
    """Tenant or database names: mostly from ``pool``, now and then too short.

    ``allow_empty``: False for the server subjects (see the top).
    """
    short = [name for name in SHORT_SCOPE_NAMES if name or allow_empty]
    return mostly(st.sampled_from(pool), st.sampled_from(short), 12)


def list_bounds() -> st.SearchStrategy[int | None]:
    """``limit``/``offset`` of a listing: None, small, or (rarely) negative."""
    return st.one_of(st.none(), mostly(st.integers(0, 4), st.just(-1), 15))


ints = st.integers(min_value=-2, max_value=3)
floats = st.sampled_from([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 2.5])
bools = st.booleans()
strings = st.sampled_from(["", "x", "y", "xy", "1", "apple"])
scalars = st.one_of(ints, floats, bools, strings)
homogeneous_lists = st.one_of(
    st.lists(ints, min_size=1, max_size=3),
    st.lists(floats, min_size=1, max_size=3),
    st.lists(bools, min_size=1, max_size=3),
    st.lists(strings, min_size=1, max_size=3),
)
record_values = st.one_of(scalars, scalars, homogeneous_lists)


def record_metadata(allow_none_values: bool, allow_lists: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    plain = record_values if allow_lists else scalars
    values = st.one_of(plain, st.none()) if allow_none_values else plain
    return st.dictionaries(st.sampled_from(METADATA_KEYS), values, min_size=1, max_size=3)


INVALID_RECORD_METADATA: list[dict[str, Any]] = [
    {},
    {"a": [1, "x"]},
    {"a": []},
    {"$a": 1},
    {"chroma:document": "x"},
    {"a": {"nested": 1}},
]


@st.composite
def collection_metadata(draw: st.DrawFn, for_modify: bool = False) -> dict[str, Any] | None:
    if rarely(draw, 10):
        return draw(st.sampled_from([{}, {"hnsw:space": "foo"}, {"k": None}]))
    kinds = ["none", "space", "plain", "plain"] if for_modify else ["none", "space", "plain"]
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    # modify: None removes a key (chromadb stores what remains, None when nothing does)
    values = mostly(scalars, st.none(), 3) if for_modify else scalars
    metadata: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["k", "owner", "n"]), values, min_size=1, max_size=2)
    )
    if kind == "space" or (for_modify and rarely(draw, 10)):
        metadata["hnsw:space"] = draw(st.sampled_from(SPACES))
    return metadata


def embedding_values() -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]),
        st.sampled_from([-1, 0, 1, 2]),
        st.floats(min_value=-2, max_value=2, width=32, allow_subnormal=False),
    )


def vectors(dim: int) -> st.SearchStrategy[list[float]]:
    return st.lists(embedding_values(), min_size=dim, max_size=dim)


@st.composite
def write_arguments(
    draw: st.DrawFn,
    dim: int,
    operation: str,
    dimension_fixed: bool,
    allow_lists: bool = True,
    embed_documents: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for add/upsert/update, valid most of the time.

    ``dimension_fixed``: whether an accepted write has already fixed the collection's
    dimension. Until then, no empty ids: chromadb fixes the dimension even from a write it
    rejects for an empty id; vecduck does not. An update carrying vectors may come first: it
    fixes the dimension on both sides even when no id exists (the machine renames ids that
    do not exist to ``GHOST_IDS``, see the top).

    ``allow_lists``: False once a collection was deleted in this example: chromadb then leaks
    array metadata of the deleted collection's records into new records with the same ids.

    ``embed_documents``: for a handle with an embedding function: documents instead of
    embeddings, embedded by the function.
    """
    size = draw(st.integers(min_value=1, max_value=4))
    ids = draw(st.lists(st.sampled_from(ID_POOL), min_size=size, max_size=size, unique=True))
    if rarely(draw, 20):  # duplicate ids
        ids.append(ids[0])
    if dimension_fixed and rarely(draw, 40):
        ids[0] = ""
    count = len(ids)
    wrong_dim = rarely(draw, 15)
    write_dim = dim + draw(st.sampled_from([-1, 1])) if wrong_dim else dim

    with_embeddings = not embed_documents and (operation in ("add", "upsert") or draw(st.booleans()))
    if operation in ("add", "upsert") and not embed_documents and rarely(draw, 40):
        with_embeddings = False  # chromadb: "Exactly one of ... must be provided"
    kwargs: dict[str, Any] = {"ids": ids}
    if with_embeddings:
        embeddings = [draw(vectors(dim)) for _ in range(count)]
        if wrong_dim:
            which = draw(st.sampled_from(["all", "one"]))
            embeddings = [
                draw(vectors(write_dim)) if which == "all" or i == 0 else emb for i, emb in enumerate(embeddings)
            ]
        if rarely(draw, 5) and len({len(row) for row in embeddings}) == 1:
            kwargs["embeddings"] = np.asarray(embeddings, dtype=np.float32)
        else:
            kwargs["embeddings"] = embeddings
    if embed_documents:
        kwargs["documents"] = [draw(st.sampled_from(DOCUMENTS)) for _ in range(count)]
    # otherwise documents only together with embeddings: without them chromadb runs its
    # default embedding function, which downloads a model.
    elif with_embeddings and draw(st.booleans()):
        doc = st.sampled_from(DOCUMENTS)
        if operation != "update":
            doc = st.one_of(doc, doc, doc, st.none())
        elif rarely(draw, 20):
            doc = st.one_of(doc, st.none())
        kwargs["documents"] = [draw(doc) for _ in range(count)]
    if draw(st.booleans()):
        metadata = record_metadata(allow_none_values=operation != "add", allow_lists=allow_lists)
        entry = st.one_of(metadata, metadata, metadata, st.none())
        metadatas = [draw(entry) for _ in range(count)]
        if operation != "add" and rarely(draw, 6):
            # every key None: an updated record is left without metadata (reads None)
            metadatas[draw(st.integers(0, count - 1))] = dict.fromkeys(METADATA_KEYS)
        if rarely(draw, 15):
            metadatas[0] = draw(st.sampled_from([*INVALID_RECORD_METADATA, {"a": None}]))
        kwargs["metadatas"] = metadatas
    if rarely(draw, 30) and "embeddings" in kwargs:  # length mismatch
        kwargs["embeddings"] = list(kwargs["embeddings"])[:-1] or []
    if count == 1 and rarely(draw, 4):  # the single-item forms
        single: dict[str, Any] = {"ids": ids[0]}
        if "embeddings" in kwargs:
            rows = kwargs["embeddings"]
            single["embeddings"] = rows[0] if len(rows) == 1 else rows
        for field in ("documents", "metadatas"):
            if field in kwargs and kwargs[field][0] is not None:
                single[field] = kwargs[field][0]
        kwargs = single
    return kwargs


# ----------------------------------------------------------------------------- filters

WHERE_KEYS = [*METADATA_KEYS, "missing"]
COMPARISONS = ["$gt", "$gte", "$lt", "$lte"]

numbers = st.one_of(ints, floats)
in_lists = st.one_of(
    st.lists(ints, min_size=1, max_size=3),
    st.lists(floats, min_size=1, max_size=3),
    st.lists(bools, min_size=1, max_size=2),
    st.lists(strings, min_size=1, max_size=3),
)


@st.composite
def where_leaf(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(WHERE_KEYS))
    form = draw(st.sampled_from(["shorthand", "eq", "ne", "compare", "in", "nin", "contains"]))
    if form == "shorthand":
        return {key: draw(scalars)}
    if form in ("eq", "ne"):
        return {key: {f"${form}": draw(scalars)}}
    if form == "compare":
        return {key: {draw(st.sampled_from(COMPARISONS)): draw(numbers)}}
    if form in ("in", "nin"):
        return {key: {f"${form}": draw(in_lists)}}
    operator = draw(st.sampled_from(["$contains", "$not_contains"]))
    return {key: {operator: draw(scalars)}}


INVALID_WHERE: list[Any] = [
    {},
    {"a": 1, "b": 2},
    {"$and": [{"a": 1}]},
    {"$or": []},
    {"a": {"$foo": 1}},
    {"a": {"$in": []}},
    {"a": {"$in": [1, "x"]}},
    {"a": {"$in": 1}},
    {"a": None},
    {"a": [1]},
    {"a": {"$gt": "x"}},
    {"a": {"$gt": True}},
    {"a": {"$gt": 1, "$lt": 3}},
    {"$foo": 1},
    {"tags": {"$contains": [1]}},
]


def where_filters() -> st.SearchStrategy[dict[str, Any]]:
    valid = st.recursive(
        where_leaf(),
        lambda children: st.builds(
            lambda op, parts: {op: parts},
            st.sampled_from(["$and", "$or"]),
            st.lists(children, min_size=2, max_size=3),
        ),
        max_leaves=4,
    )
    return mostly(valid, st.sampled_from(INVALID_WHERE), 10)


@st.composite
def where_document_leaf(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(["$contains", "$not_contains", "$regex", "$not_regex"]))
    if operator in ("$contains", "$not_contains"):
        return {operator: draw(st.sampled_from(DOC_SUBSTRINGS))}
    return {operator: draw(st.sampled_from(DOC_REGEXES))}


INVALID_WHERE_DOCUMENT: list[Any] = [
    {},
    {"$contains": ""},
    {"$regex": "("},
    {"$foo": "x"},
    {"$contains": 1},
    {"$and": [{"$contains": "p"}]},
    {"$contains": "a", "$regex": "b"},
]


def where_document_filters() -> st.SearchStrategy[dict[str, Any]]:
    valid = st.recursive(
        where_document_leaf(),
        lambda children: st.builds(
            lambda op, parts: {op: parts},
            st.sampled_from(["$and", "$or"]),
            st.lists(children, min_size=2, max_size=3),
        ),
        max_leaves=3,
    )
    return mostly(valid, st.sampled_from(INVALID_WHERE_DOCUMENT), 10)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.none(), strategy)


GET_INCLUDABLE = ["documents", "metadatas", "embeddings", "uris"]
QUERY_INCLUDABLE = [*GET_INCLUDABLE, "distances"]


def includes(fields: list[str], invalid: list[str]) -> st.SearchStrategy[list[str] | None]:
    valid = st.lists(st.sampled_from(fields), unique=True, max_size=len(fields))
    bad = st.sampled_from([[field] for field in invalid])
    return mostly(st.one_of(st.none(), valid), bad, 12) if invalid else st.one_of(st.none(), valid)


@st.composite
def get_arguments(draw: st.DrawFn) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if rarely(draw, 4):
        ids = draw(st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=4, unique=True))
        if rarely(draw, 20):
            ids.append(ids[0])
        kwargs["ids"] = ids[0] if len(ids) == 1 and draw(st.booleans()) else ids
    for name, strategy in (
        ("where", optional(where_filters())),
        ("where_document", optional(where_document_filters())),
        ("limit", optional(mostly(st.integers(0, 6), st.just(-1), 15))),
        ("offset", optional(mostly(st.integers(0, 6), st.just(-1), 15))),
        ("include", includes(GET_INCLUDABLE, ["distances"])),
    ):
        value = draw(strategy)
        if value is not None:
            kwargs[name] = value
    return kwargs
