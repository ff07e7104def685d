"""Numbers in `where` against int and float fields, side by side with chromadb itself.

chromadb compares an int field with a float operand cast to an integer (toward zero):
`{"n": 2.5}` matches n=2 but not n=2.0. Every numeric operator is checked on both kinds
of field with integral, fractional, negative and huge operands."""

from __future__ import annotations

import contextlib
import itertools

import chromadb
import pytest

import vecduck

VALUES = [2, 2.0, 3, 2.5, -2, -2.5, 0, -0.5, 10**12, 1e300]
OPERANDS = [2, 2.5, 2.9, -2.5, -2, 0.5, -0.5, 0, 1e300, -1e300, 10**12, 10**12 + 0.5]
OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]


@pytest.fixture(scope="module")
def pair() -> tuple[object, object]:
    ids = [f"r{i}" for i in range(len(VALUES) + 1)]
    embeddings = [[float(i), 1.0] for i in range(len(ids))]
    metadatas = [{"n": value} for value in VALUES] + [{"other": 1}]  # the last lacks the key
    # the same settings as the differential test's reference: chromadb keeps one
    # in-memory instance per process and refuses another with different settings
    settings = chromadb.Settings(allow_reset=True, anonymized_telemetry=False)
    reference_client = chromadb.EphemeralClient(settings=settings)
    with contextlib.suppress(Exception):
        reference_client.delete_collection("numeric-filters")
    reference = reference_client.create_collection("numeric-filters")
    subject_client = vecduck.Client()
    with contextlib.suppress(Exception):
        subject_client.delete_collection("numeric-filters")
    subject = subject_client.create_collection("numeric-filters", embedding_function=None)
    for col in (reference, subject):
        col.add(ids=ids, embeddings=embeddings, metadatas=metadatas)
    return reference, subject


def matches(col: object, where: dict) -> tuple[list[str], list[str]]:
    got = sorted(col.get(where=where)["ids"])
    hits = col.query(query_embeddings=[[0.0, 1.0]], n_results=len(VALUES) + 1, where=where, include=[])
    return got, sorted(hits["ids"][0])


@pytest.mark.parametrize(("operator", "operand"), list(itertools.product(OPERATORS, OPERANDS)))
def test_comparisons_match_chromadb(pair: tuple[object, object], operator: str, operand: float) -> None:
    reference, subject = pair
    where = {"n": {operator: operand}}
    assert matches(subject, where) == matches(reference, where), where


LISTS = [[2.5], [2.9, -2.5], [2, 3], [0.5, 10**12 + 0.5], [float(i) + 0.5 for i in range(70)]]


@pytest.mark.parametrize("values", LISTS)
@pytest.mark.parametrize("operator", ["$in", "$nin"])
def test_lists_match_chromadb(pair: tuple[object, object], operator: str, values: list) -> None:
    reference, subject = pair
    where = {"n": {operator: values}}
    assert matches(subject, where) == matches(reference, where), where
