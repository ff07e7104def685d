"""The judge of the differential test: what counts as "vecduck answered like chromadb".

Everything the differential test tolerates is written down here and nowhere else:

* ``judge_errors``  - which exception from the subject is accepted for chromadb's exception.
* ``judge_get_results`` / ``judge_query_results`` / ``judge_collections`` /
  ``judge_databases`` - how results are compared (float tolerances, ties between equal
  distances, each side's own database ids, ...).

The reference is always chromadb's in-process client; the subject is vecduck (or, for the
harness self-check, a second chromadb client).
"""

from __future__ import annotations

import math
import os
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import chromadb.errors
import numpy as np

# Embeddings are stored as float32 on both sides; answers are compared after a float32 round trip.
EMBEDDING_RTOL = 1e-6
EMBEDDING_ATOL = 1e-6
# Distances: relative 1e-4, with an absolute floor of 1e-4 for values below 1 (cosine/ip near 0).
DISTANCE_RTOL = 1e-4

# chromadb's in-process client runs server-side checks in its Rust binding; an error that the
# binding raises as a bare builtin (not a ChromaError) surfaces from this file.
_RUST_BINDING_FRAME = os.path.join("chromadb", "api", "rust.py")
_BINDING_BUILTIN_ERRORS = (TypeError, OverflowError)


class DiscrepancyError(AssertionError):
    """The subject answered differently from chromadb."""


@dataclass
class Outcome:
    """What one call returned or raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.error is None:
            return f"returned {self.value!r:.600}"
        return f"raised {type(self.error).__module__}.{type(self.error).__name__}: {self.error}"


def capture(call: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(value=call())
    except Exception as error:
        return Outcome(error=error)


def raised_by_rust_binding(error: BaseException) -> bool:
    """True when chromadb's error came out of its Rust binding (a server-side check)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.endswith(_RUST_BINDING_FRAME)


def judge_errors(label: str, reference: Outcome, subject: Outcome, subject_errors: ModuleType) -> None:
    """Both sides must fail together; the subject's exception must be compatible.

    Tolerated, and nothing else:
    1. chromadb raises a ``chromadb.errors.X``: the subject must raise an instance of
       ``subject_errors.X`` (so vecduck's ``UniqueConstraintError``, a subclass of
       ``InternalError``, is accepted where chromadb raises ``InternalError`` for a duplicate
       collection name on create or rename, and for a tenant or database that already exists).
    2. chromadb's Rust binding raises a bare ``TypeError``/``OverflowError`` (server-side
       check, e.g. ``None`` metadata value, negative limit/offset): the subject may raise the
       same builtin or ``subject_errors.InvalidArgumentError``.
    3. Any other chromadb error (client-side validation: ``ValueError``, ``TypeError``...):
       the subject must raise exactly the same class.
    """
    if reference.ok and subject.ok:
        return
    if reference.ok != subject.ok:
        raise DiscrepancyError(f"{label}: chromadb {reference.describe()}, but subject {subject.describe()}")
    ref_error, subj_error = reference.error, subject.error
    assert ref_error is not None and subj_error is not None
    mismatch = f"{label}: chromadb {reference.describe()}, subject {subject.describe()}"
    if isinstance(ref_error, chromadb.errors.ChromaError):
        expected = getattr(subject_errors, type(ref_error).__name__, None)
        if expected is None:
            raise DiscrepancyError(f"{mismatch} (subject has no errors.{type(ref_error).__name__})")
        if not isinstance(subj_error, expected):
            raise DiscrepancyError(mismatch)
        return
    if isinstance(ref_error, _BINDING_BUILTIN_ERRORS) and raised_by_rust_binding(ref_error):
        if isinstance(subj_error, (type(ref_error), subject_errors.InvalidArgumentError)):
            return
        raise DiscrepancyError(mismatch)
    if type(subj_error) is not type(ref_error):
        raise DiscrepancyError(mismatch)


# ----------------------------------------------------------------------------- values


def typed(value: Any) -> Any:
    """A comparable form that keeps bool, int, float and str apart (1 != 1.0 != True)."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return ("list", tuple(typed(item) for item in value))
    return (type(value).__name__, value)


def distances_close(a: float, b: float) -> bool:
    return abs(a - b) <= DISTANCE_RTOL * max(1.0, abs(a), abs(b))


def _embedding_rows(rows: Any, count: int) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float64)
    if count == 0:
        return array.reshape(0, 0)
    return array.reshape(count, -1)


def _same_embeddings(ref_rows: Any, subj_rows: Any, count: int) -> bool:
    ref = _embedding_rows(ref_rows, count)
    subj = _embedding_rows(subj_rows, count)
    if ref.shape != subj.shape:
        return False
    return bool(np.allclose(ref, subj, rtol=EMBEDDING_RTOL, atol=EMBEDDING_ATOL))


def _check_keys(label: str, reference: dict, subject: dict) -> None:
    if set(reference) != set(subject):
        raise DiscrepancyError(f"{label}: result keys {sorted(reference)} != subject {sorted(subject)}")
    if list(reference["included"]) != list(subject["included"]):
        raise DiscrepancyError(f"{label}: included {reference['included']} != subject {subject['included']}")


# ----------------------------------------------------------------------------- get


def judge_get_results(label: str, reference: dict, subject: dict) -> None:
    """GetResult: same keys, same ids in the same (storage) order, same fields."""
    _check_keys(label, reference, subject)
    if list(reference["ids"]) != list(subject["ids"]):
        raise DiscrepancyError(f"{label}: ids {reference['ids']} != subject {subject['ids']}")
    count = len(reference["ids"])
    for field in ("documents", "uris", "data"):
        if reference[field] != subject[field]:
            raise DiscrepancyError(f"{label}: {field} {reference[field]!r} != subject {subject[field]!r}")
    ref_meta, subj_meta = reference["metadatas"], subject["metadatas"]
    if (ref_meta is None) != (subj_meta is None) or (
        ref_meta is not None and typed(list(ref_meta)) != typed(list(subj_meta))
    ):
        raise DiscrepancyError(f"{label}: metadatas {ref_meta!r} != subject {subj_meta!r}")
    ref_emb, subj_emb = reference["embeddings"], subject["embeddings"]
    if (ref_emb is None) != (subj_emb is None):
        raise DiscrepancyError(f"{label}: embeddings {ref_emb!r} != subject {subj_emb!r}")
    if ref_emb is not None:
        if isinstance(ref_emb, np.ndarray) and not isinstance(subj_emb, np.ndarray):
            raise DiscrepancyError(f"{label}: embeddings is a numpy array in chromadb, subject gave {type(subj_emb)}")
        if not _same_embeddings(ref_emb, subj_emb, count):
            raise DiscrepancyError(f"{label}: embeddings {ref_emb!r} != subject {subj_emb!r}")


# ----------------------------------------------------------------------------- query


@dataclass
class QueryContext:
    """What the judge needs to settle ties between equal distances.

    ``reference_distances(row)``: chromadb's distances for that query row (asked again with
    ``include=["distances"]`` when the original call did not include them).
    ``tied_candidates(row, distance)``: every id chromadb would rank at that distance for that
    row, without the ``n_results`` cut.
    ``reference_record(id)``: chromadb's stored record ``{field: value}`` for one id.
    """

    n_results: int
    reference_distances: Callable[[int], list[float]]
    tied_candidates: Callable[[int, float], set[str]]
    reference_record: Callable[[str], dict[str, Any]]


def tie_groups(distances: Sequence[float]) -> list[tuple[int, int]]:
    """[start, end) runs of positions whose distances tie within the tolerance."""
    groups: list[tuple[int, int]] = []
    start = 0
    for position in range(1, len(distances) + 1):
        if position == len(distances) or not distances_close(distances[start], distances[position]):
            groups.append((start, position))
            start = position
    return groups


_ROW_FIELDS = ("documents", "metadatas", "uris", "embeddings")


def judge_query_results(label: str, reference: dict, subject: dict, context: QueryContext) -> None:
    """QueryResult, row by row.

    * same number of ids per row; distances equal position by position within the tolerance;
    * ids equal as sets within each run of tied distances; in a tied run cut by ``n_results``
      the subject may pick any of the tied records;
    * documents/metadatas/uris/embeddings compared per id, against chromadb's record.
    """
    _check_keys(label, reference, subject)
    for field in ("distances", *_ROW_FIELDS):
        if (reference[field] is None) != (subject[field] is None):
            raise DiscrepancyError(f"{label}: {field} {reference[field]!r} != subject {subject[field]!r}")
    if len(reference["ids"]) != len(subject["ids"]):
        raise DiscrepancyError(f"{label}: {len(reference['ids'])} rows != subject {len(subject['ids'])}")
    for row, (ref_ids, subj_ids) in enumerate(zip(reference["ids"], subject["ids"], strict=True)):
        row_label = f"{label} row {row}"
        ref_ids, subj_ids = list(ref_ids), list(subj_ids)
        if len(ref_ids) != len(subj_ids):
            raise DiscrepancyError(f"{row_label}: ids {ref_ids} != subject {subj_ids}")
        if len(set(subj_ids)) != len(subj_ids):
            raise DiscrepancyError(f"{row_label}: subject repeats ids {subj_ids}")
        ref_distances = (
            list(reference["distances"][row])
            if reference["distances"] is not None
            else context.reference_distances(row)
        )
        if subject["distances"] is not None:
            subj_distances = list(subject["distances"][row])
            if len(subj_distances) != len(ref_distances) or not all(
                distances_close(a, b) for a, b in zip(ref_distances, subj_distances, strict=True)
            ):
                raise DiscrepancyError(
                    f"{row_label}: distances {ref_distances} (ids {ref_ids}) != subject "
                    f"{subj_distances} (ids {subj_ids})"
                )
        truncated = len(ref_ids) == context.n_results
        for start, end in tie_groups(ref_distances):
            ref_group, subj_group = set(ref_ids[start:end]), set(subj_ids[start:end])
            if ref_group == subj_group:
                continue
            if truncated and end == len(ref_ids):
                allowed = context.tied_candidates(row, ref_distances[start])
                if subj_group <= allowed:
                    continue
            raise DiscrepancyError(f"{row_label}: ids {ref_ids} (distances {ref_distances}) != subject {subj_ids}")
        _judge_query_row_fields(row_label, reference, subject, row, context)


def _judge_query_row_fields(label: str, reference: dict, subject: dict, row: int, context: QueryContext) -> None:
    ref_ids, subj_ids = list(reference["ids"][row]), list(subject["ids"][row])
    for field in _ROW_FIELDS:
        if reference[field] is None:
            continue
        ref_values = dict(zip(ref_ids, list(reference[field][row]), strict=True))
        subj_row = subject[field][row]
        if (
            field == "embeddings"
            and len(subj_ids)
            and isinstance(reference[field][row], np.ndarray)
            and not isinstance(subj_row, np.ndarray)
        ):
            raise DiscrepancyError(f"{label}: embeddings row is {type(subj_row)}, not numpy array")
        subj_values = list(subj_row)
        if len(subj_values) != len(subj_ids):
            raise DiscrepancyError(f"{label}: {field} has {len(subj_values)} entries for {subj_ids}")
        for record_id, subj_value in zip(subj_ids, subj_values, strict=True):
            expected = ref_values[record_id] if record_id in ref_values else context.reference_record(record_id)[field]
            if field == "embeddings":
                same = _same_embeddings([expected], [subj_value], 1)
            else:
                same = typed(expected) == typed(subj_value)
            if not same:
                raise DiscrepancyError(f"{label}: {field} of {record_id!r}: {expected!r} != subject {subj_value!r}")


# ----------------------------------------------------------------------------- collections


def judge_collections(label: str, reference: Any, subject: Any) -> None:
    """Collection handles: same name and same metadata (typed)."""
    if reference.name != subject.name:
        raise DiscrepancyError(f"{label}: name {reference.name!r} != subject {subject.name!r}")
    if typed(reference.metadata) != typed(subject.metadata):
        raise DiscrepancyError(f"{label}: metadata {reference.metadata!r} != subject {subject.metadata!r}")


def judge_databases(label: str, reference: list[Any], subject: list[Any], id_type: type = uuid.UUID) -> None:
    """Databases (list_databases, get_database): the same names and tenants in the same order
    (by name), the same keys; ids are each side's own (random), distinct, of type ``id_type``:
    ``uuid.UUID`` as chromadb's in-process client gives them, but ``str`` through chromadb's
    own HttpClient (which hands on the JSON string, whatever the server)."""
    ref_rows = [(found["name"], found["tenant"]) for found in reference]
    subj_rows = [(found["name"], found["tenant"]) for found in subject]
    if ref_rows != subj_rows:
        raise DiscrepancyError(f"{label}: (name, tenant) {ref_rows} != subject {subj_rows}")
    for ref_db, subj_db in zip(reference, subject, strict=True):
        if sorted(ref_db) != sorted(subj_db):
            raise DiscrepancyError(f"{label}: keys {sorted(ref_db)} != subject {sorted(subj_db)}")
        if type(subj_db["id"]) is not id_type:
            raise DiscrepancyError(f"{label}: subject's id {subj_db['id']!r} is not a {id_type.__name__}")
        try:
            uuid.UUID(str(subj_db["id"]))
        except ValueError:
            raise DiscrepancyError(f"{label}: subject's id {subj_db['id']!r} is not a UUID") from None
    if len({str(found["id"]) for found in subject}) != len(subject):
        raise DiscrepancyError(f"{label}: subject repeats ids {subject!r}")


def judge_equal(label: str, reference: Any, subject: Any) -> None:
    if typed(reference) != typed(subject) and not (
        isinstance(reference, float) and isinstance(subject, float) and math.isclose(reference, subject)
    ):
        raise DiscrepancyError(f"{label}: chromadb {reference!r} != subject {subject!r}")
