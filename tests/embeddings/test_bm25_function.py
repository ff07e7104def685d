"""vecduck's ChromaBm25EmbeddingFunction against chromadb's: same indices, values, labels and config.

Every expected value comes from chromadb 1.5.9's class run on the same input; both sides
compute in Python floats, so values are compared exactly.
"""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction as ChromaBm25
from chromadb.utils.embedding_functions.chroma_bm25_embedding_function import (
    DEFAULT_CHROMA_BM25_STOPWORDS as CHROMA_STOPWORDS,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecduck.api.types import SparseVector
from vecduck.embeddings import bm25, build_embedding_function, embedding_function_config
from vecduck.utils.embedding_functions import ChromaBm25EmbeddingFunction

LONG = os.environ.get("VECDUCK_LONG") == "1"
EXAMPLES = 2000 if LONG else 200
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the working directory
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Words that exercise each tokenizer step: stopwords (any case), apostrophes and
# underscores, stemming, Unicode case mapping that changes length, CJK, digits, and
# tokens at and past the default 40-character limit.
SPECIAL_WORDS = [
    *CHROMA_STOPWORDS[::7],
    "The",
    "AND",
    "Don't",
    "it's",
    "Bolt's",
    "shouldn't've",
    "running",
    "Runs",
    "RAN",
    "generously",
    "happiness",
    "caresses",
    "ponies",
    "snake_case",
    "__init__",
    "_",
    "___",
    "Ünïcödé",
    "naïve",
    "café",
    "İstanbul",
    "STRASSE",
    "straße",
    "ﬁle",
    "Σίσυφος",
    "ΟΔΟΣ",  # final sigma: lowercasing depends on the neighbours
    "\u0391Σ'\u0391",
    "cafe\u0301",  # a combining accent is not a word character
    "\u02b0Σ\u0391",  # a modifier letter (case-ignorable, but a word character)
    "ǅemal",
    "東京タワー",
    "数据库",
    "한국어",
    "١٢٣",
    "27.8",
    "km/h",
    "e-mail",
    "x" * 39,
    "y" * 40,
    "z" * 41,
    "w" * 200,
    "İ" * 25,  # 25 characters that lowercase to 50
    "757",
    "4904",  # abs(mmh3) collides with "757" (hashes of opposite sign)
    "29517",
    "87960",  # mmh3 collides with "29517" exactly
]
SEPARATORS = [" ", "  ", "\t", "\n", ", ", ". ", "-", "'", "_", "", "\u3000", "\u00a0", "...", "/", "(", ")"]

fragments = st.one_of(
    st.sampled_from(SPECIAL_WORDS),
    st.text(max_size=12),
    st.text(alphabet=string.ascii_letters + string.digits + "_'", max_size=50),
    st.sampled_from(SPECIAL_WORDS).map(str.upper),
)
texts = st.one_of(
    st.lists(st.tuples(fragments, st.sampled_from(SEPARATORS)), max_size=40).map(
        lambda parts: "".join(word + sep for word, sep in parts)
    ),
    st.text(),
    st.sampled_from(["", " ", "\t\n ", "\u3000", "...", "the a an", "!!! ???"]),
)
documents = st.lists(texts, min_size=1, max_size=6)  # chromadb refuses an empty list

params = st.fixed_dictionaries(
    {},
    optional={
        "k": st.floats(min_value=0.0, max_value=5.0),
        "b": st.floats(min_value=0.0, max_value=1.0),
        "avg_doc_length": st.floats(min_value=0.5, max_value=2000.0),
        "token_max_length": st.integers(min_value=0, max_value=60),
        "stopwords": st.lists(st.sampled_from([*SPECIAL_WORDS, "THE", "Running", "run", ""]), max_size=12),
        "include_tokens": st.booleans(),
    },
)


def assert_same(ours: list[Any], theirs: list[Any]) -> None:
    """Equal vectors: exact indices, values (floats compared with ==) and labels."""
    assert len(ours) == len(theirs)
    for i, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
        assert isinstance(mine, SparseVector), i
        assert mine.indices == expected.indices, i
        assert [type(v) for v in mine.values] == [type(v) for v in expected.values], i
        assert mine.values == expected.values, i
        assert mine.labels == expected.labels, i


def assert_batch_same(ef: ChromaBm25EmbeddingFunction, docs: list[str | None], theirs: list[Any]) -> None:
    """``ef.encode_batch(docs)`` holds chromadb's vectors (``theirs``) as CSR rows."""
    offsets, indices, values = ef.encode_batch(docs)
    assert offsets.dtype == np.int64 and offsets.shape == (len(docs) + 1,)
    assert indices.dtype in (np.uint32, np.int64) and values.dtype in (np.float32, np.float64)
    assert offsets[0] == 0 and offsets[-1] == len(indices) == len(values)
    for i, expected in enumerate(theirs):
        lo, hi = offsets[i], offsets[i + 1]
        assert indices[lo:hi].tolist() == expected.indices, i
        assert values[lo:hi].tolist() == expected.values, i


# -- side by side on generated text ------------------------------------------------------


@SETTINGS
@given(docs=documents)
def test_default_parameters_match_chromadb(docs: list[str]) -> None:
    expected = ChromaBm25()(docs)
    assert_same(ChromaBm25EmbeddingFunction()(docs), expected)


@SETTINGS
@given(docs=documents, kwargs=params)
def test_custom_parameters_match_chromadb(docs: list[str], kwargs: dict[str, Any]) -> None:
    expected = ChromaBm25(**kwargs)(docs)
    ours = ChromaBm25EmbeddingFunction(**kwargs)
    assert_same(ours(docs), expected)
    assert_same(ours.embed_query(docs), expected)
    assert_batch_same(ours, docs, expected)


@SETTINGS
@given(docs=documents)
def test_labels_match_chromadb(docs: list[str]) -> None:
    expected = ChromaBm25(include_tokens=True)(docs)
    assert_same(ChromaBm25EmbeddingFunction(include_tokens=True)(docs), expected)


@SETTINGS
@given(docs=st.lists(st.one_of(st.none(), texts), max_size=8))
def test_encode_batch_matches_chromadb_with_none_rows(docs: list[str | None]) -> None:
    expected = ChromaBm25()([doc or "" for doc in docs]) if docs else []
    ef = ChromaBm25EmbeddingFunction()
    assert_batch_same(ef, docs, expected)
    if docs:  # and equal to our own per-document vectors
        offsets, indices, values = ef.encode_batch(docs)
        for i, vector in enumerate(ef([doc or "" for doc in docs])):
            assert indices[offsets[i] : offsets[i + 1]].tolist() == vector.indices
            assert values[offsets[i] : offsets[i + 1]].tolist() == vector.values


# -- chosen cases ------------------------------------------------------------------------

CASES = [
    "Usain Bolt's top speed reached ~27.8 mph (44.72 km/h)",
    "The   space-time   continuum   WARPS   near   massive   objects...",
    "running runs RAN ran runner Running",
    "Ünïcödé naïve café İstanbul STRASSE straße ﬁle Σίσυφος 東京タワー 数据库",
    "ΟΔΟΣ. \u0391Σ'\u0391 Σ\u0391Σ_Σ cafe\u0301 \u02b0Σ\u02b0 x\u200by",
    "snake_case __init__ _ ___ don't it's shouldn't've",
    "757 4904 4904 757 757",  # two stems, one index (abs of opposite-sign hashes)
    "87960 29517 29517",  # two stems, one index (equal hashes): the first one seen labels it
    " ".join(["a" * 40, "b" * 41, "İ" * 20, "İ" * 21]),
    "",
    "   \t\n",
    "the and of to",
    # ASCII separators Python's split knows (\x1c-\x1f), controls and DEL, in the batch's byte table
    "unit\x1fsep\x1erec\x1dgrp\x1cfile tab\tvt\x0bff\x0cnul\x00del\x7fend ~`!@#$%^&*()-+={}[]|\\:;\"'<>,.?/ Zz09_",
]


@pytest.mark.parametrize("include_tokens", [False, True])
def test_chosen_cases_match_chromadb(include_tokens: bool) -> None:
    expected = ChromaBm25(include_tokens=include_tokens)(CASES)
    ef = ChromaBm25EmbeddingFunction(include_tokens=include_tokens)
    assert_same(ef(CASES), expected)
    assert_batch_same(ef, CASES, expected)
    assert len(expected[6].indices) == len(expected[7].indices) == 1  # the hash collisions happened


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0.0},
        {"b": 0.0},
        {"b": 1.0, "avg_doc_length": 3.0},
        {"k": 2.5, "b": 0.3, "avg_doc_length": 7.0},
        {"token_max_length": 0},
        {"token_max_length": 4},
        {"token_max_length": 41},
        {"stopwords": []},
        {"stopwords": ["RUNNING", "Bolt", "km"]},
        {"stopwords": ("run", "h"), "include_tokens": True},
        {"k": 1, "b": 1, "avg_doc_length": 1, "token_max_length": 40.0},
    ],
)
def test_chosen_parameters_match_chromadb(kwargs: dict[str, Any]) -> None:
    expected = ChromaBm25(**kwargs)(CASES)
    ef = ChromaBm25EmbeddingFunction(**kwargs)
    assert_same(ef(CASES), expected)
    assert_batch_same(ef, CASES, expected)


def test_zero_average_length_fails_as_chromadb_does() -> None:
    with pytest.raises(ZeroDivisionError):
        ChromaBm25(avg_doc_length=0)(["words here"])
    ef = ChromaBm25EmbeddingFunction(avg_doc_length=0)
    with pytest.raises(ZeroDivisionError):
        ef(["words here"])
    with pytest.raises(ZeroDivisionError):
        ef.encode_batch(["words here"])
    assert_same(ef(["", "the"]), ChromaBm25(avg_doc_length=0)(["", "the"]))


def test_default_stopwords_are_chromadbs() -> None:
    assert list(bm25.DEFAULT_CHROMA_BM25_STOPWORDS) == list(CHROMA_STOPWORDS)


def test_concurrent_calls_match_chromadb() -> None:
    """Threads share one stemmer; words unseen before make them stem at the same time."""
    rng = random.Random(7)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 12))) + "ing" for _ in range(4000)]
    docs = [" ".join(words[i : i + 20]) for i in range(0, len(words), 20)]
    expected = ChromaBm25(include_tokens=True)(docs)
    ef = ChromaBm25EmbeddingFunction(include_tokens=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        ours = list(pool.map(lambda doc: ef([doc])[0], docs))
    assert_same(ours, expected)


def test_small_caches_still_match_chromadb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token caches restart when full; results must not depend on them."""
    monkeypatch.setattr(bm25, "_CACHE_LIMIT", 3)
    expected = ChromaBm25(include_tokens=True)(CASES)
    ef = ChromaBm25EmbeddingFunction(include_tokens=True)
    assert_same(ef(CASES), expected)
    assert_same(ef(CASES), expected)
    assert_batch_same(ef, CASES, expected)


def test_encode_batch_of_nothing() -> None:
    offsets, indices, values = ChromaBm25EmbeddingFunction().encode_batch([])
    assert offsets.tolist() == [0] and indices.size == 0 and values.size == 0
    offsets, indices, values = ChromaBm25EmbeddingFunction().encode_batch([None, "", "the"])
    assert offsets.tolist() == [0, 0, 0, 0] and indices.size == 0 and values.size == 0


# -- config ------------------------------------------------------------------------------

CUSTOM = {
    "k": 1.7,
    "b": 0.5,
    "avg_doc_length": 100,
    "token_max_length": 12,
    "stopwords": ["Foo", "bar"],
    "include_tokens": True,
}


def test_name_is_chromadbs() -> None:
    assert ChromaBm25EmbeddingFunction.name() == ChromaBm25.name() == "chroma_bm25"
    assert ChromaBm25EmbeddingFunction().is_legacy() is False


@pytest.mark.parametrize("kwargs", [{}, CUSTOM, {"stopwords": []}, {"k": 2, "token_max_length": 7.0}])
def test_get_config_is_chromadbs(kwargs: dict[str, Any]) -> None:
    theirs = ChromaBm25(**kwargs).get_config()
    ours = ChromaBm25EmbeddingFunction(**kwargs).get_config()
    assert ours == theirs
    assert [type(v) for v in ours.values()] == [type(v) for v in theirs.values()]
    assert list(ours) == list(theirs)


@pytest.mark.parametrize("kwargs", [{}, CUSTOM])
def test_config_round_trips_both_ways(kwargs: dict[str, Any]) -> None:
    chroma_ef = ChromaBm25(**kwargs)
    ours = ChromaBm25EmbeddingFunction.build_from_config(chroma_ef.get_config())
    assert isinstance(ours, ChromaBm25EmbeddingFunction)
    assert ours == ChromaBm25EmbeddingFunction(**kwargs)
    assert ours.get_config() == chroma_ef.get_config()
    assert_same(ours(CASES), chroma_ef(CASES))

    theirs = ChromaBm25.build_from_config(ours.get_config())
    assert theirs.get_config() == chroma_ef.get_config()
    assert_same(ours(CASES), theirs(CASES))
    ChromaBm25.validate_config(ours.get_config())  # chromadb's JSON schema accepts our config


def test_build_from_partial_config_uses_defaults() -> None:
    for config in ({}, {"k": 2.0}, {"stopwords": ["x"]}):
        assert ChromaBm25EmbeddingFunction.build_from_config(config).get_config() == (
            ChromaBm25.build_from_config(config).get_config()
        )


def test_validate_config_update_is_chromadbs() -> None:
    ours, theirs = ChromaBm25EmbeddingFunction(), ChromaBm25()
    ours.validate_config_update(ours.get_config(), {"k": 1.1, "stopwords": ["custom"], "include_tokens": True})
    for update in ({"unknown": 123}, {"k": 1.0, "model": "x"}):
        with pytest.raises(ValueError) as expected:
            theirs.validate_config_update(theirs.get_config(), update)
        with pytest.raises(ValueError) as raised:
            ours.validate_config_update(ours.get_config(), update)
        assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"k": 1, "b": 0.5, "avg_doc_length": 10, "token_max_length": 40.0, "stopwords": [], "include_tokens": False},
        CUSTOM,
    ],
)
def test_validate_config_accepts_what_chromadb_accepts(config: dict[str, Any]) -> None:
    ChromaBm25.validate_config(config)
    ChromaBm25EmbeddingFunction.validate_config(config)


@pytest.mark.parametrize(
    "config",
    [
        {"unknown": 1},
        {"k": "1.2"},
        {"k": True},
        {"b": None},
        {"avg_doc_length": [256]},
        {"token_max_length": "40"},
        {"include_tokens": 1},
        {"stopwords": "the"},
        {"stopwords": ["the", 3]},
        {"k": 1.0, "model_name": "x"},
    ],
)
def test_validate_config_rejects_what_chromadb_rejects(config: dict[str, Any]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - chromadb raises jsonschema's ValidationError
        ChromaBm25.validate_config(config)
    with pytest.raises(ValueError):
        ChromaBm25EmbeddingFunction.validate_config(config)


@pytest.mark.parametrize("kwargs", [{}, CUSTOM])
def test_collection_record_round_trip(kwargs: dict[str, Any]) -> None:
    chroma_ef = ChromaBm25(**kwargs)
    record = embedding_function_config(ChromaBm25EmbeddingFunction(**kwargs))
    assert record == {"name": "chroma_bm25", "type": "known", "config": chroma_ef.get_config()}
    assert record == embedding_function_config(chroma_ef)
    rebuilt = build_embedding_function(record)
    assert type(rebuilt) is ChromaBm25EmbeddingFunction
    assert embedding_function_config(rebuilt) == record
    assert_same(rebuilt(CASES), chroma_ef(CASES))  # type: ignore[misc]


def test_chromadb_schema_persists_ours_as_its_own() -> None:
    from chromadb.api.types import Schema, SparseVectorIndexConfig

    def persisted(ef: Any) -> dict[str, Any]:
        config = SparseVectorIndexConfig(embedding_function=ef, source_key="#document")
        return Schema().create_index(config=config, key="sparse").serialize_to_json()

    assert persisted(ChromaBm25EmbeddingFunction(**CUSTOM)) == persisted(ChromaBm25(**CUSTOM))
    record = persisted(ChromaBm25EmbeddingFunction())["keys"]["sparse"]["sparse_vector"]["sparse_vector_index"]
    assert build_embedding_function(record["config"]["embedding_function"]) == ChromaBm25EmbeddingFunction()


def test_importing_does_not_import_chromadb() -> None:
    code = (
        "import sys\n"
        "from vecduck.embeddings.bm25 import ChromaBm25EmbeddingFunction as F\n"
        "ef = F(include_tokens=True)\n"
        "assert ef(['Hello worlds'])[0].labels == ['world', 'hello']\n"
        "ef.encode_batch(['Hello worlds', None])\n"
        "import vecduck.utils.embedding_functions\n"
        "from vecduck.embeddings import build_embedding_function\n"
        "build_embedding_function({'name': 'chroma_bm25', 'type': 'known', 'config': {}})\n"
        "bad = sorted(m for m in sys.modules if m == 'chromadb' or m.startswith('chromadb.'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
