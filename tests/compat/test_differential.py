"""Differential test: random operation sequences run on chromadb and on vecduck, compared.

The reference is ``chromadb.EphemeralClient`` (reset before every example). Subjects:

* ``TestVsVecduckClient``      - ``vecduck.Client()``
* ``TestVsVecduckPersistent``  - ``vecduck.PersistentClient(path=tmp)``, closed and reopened
  on the same path mid-sequence by the ``reopen_subject`` rule;
* ``TestHarnessSelfCheck``     - ``chromadb.PersistentClient(path=tmp)`` against the reference;
  proves the harness itself is sound. Runs when ``VECDUCK_COMPAT_SELFCHECK=1``, or when the
  ``vecduck`` package is not importable at all.

What is tolerated between the two sides is decided in ``compat_judge.py`` only.
Budget and ``VECDUCK_LONG`` in ``compat_budget.py``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import chromadb
import chromadb.errors
import compat_budget
import compat_strategies as gen
import pytest
from compat_judge import (
    DiscrepancyError,
    Outcome,
    QueryContext,
    capture,
    distances_close,
    judge_collections,
    judge_equal,
    judge_errors,
    judge_get_results,
    judge_query_results,
)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

try:
    import vecduck  # noqa: F401

    VECDUCK_MISSING = False
except ModuleNotFoundError as missing:
    if missing.name != "vecduck":
        raise
    VECDUCK_MISSING = True

ALL_FIELDS = ["documents", "metadatas", "embeddings", "uris"]

# ----------------------------------------------------------------------------- clients

_reference_client: Any = None


def reference_client() -> Any:
    """chromadb's in-process client, emptied before every example."""
    global _reference_client
    if _reference_client is None:
        _reference_client = chromadb.EphemeralClient(
            settings=chromadb.Settings(allow_reset=True, anonymized_telemetry=False)
        )
    _reference_client.reset()
    return _reference_client


class Subject:
    """The client under test, as seen by the state machine."""

    name: ClassVar[str]
    reopenable: ClassVar[bool] = False
    errors: ModuleType
    client: Any

    def reopen(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class VecduckClientSubject(Subject):
    name = "vecduck.Client"

    def __init__(self) -> None:
        vecduck = importlib.import_module("vecduck")
        self.errors = importlib.import_module("vecduck.errors")
        self.client = vecduck.Client()
        for collection in self.client.list_collections():  # in case clients share a store
            self.client.delete_collection(collection.name)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


class _PersistentSubject(Subject):
    reopenable = True

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="vecduck-compat-")
        self.client = self._open()

    def _open(self) -> Any:
        raise NotImplementedError

    def reopen(self) -> None:
        self.client.close()
        self.client = self._open()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


class VecduckPersistentSubject(_PersistentSubject):
    name = "vecduck.PersistentClient"

    def __init__(self) -> None:
        self.errors = importlib.import_module("vecduck.errors")
        super().__init__()

    def _open(self) -> Any:
        return importlib.import_module("vecduck").PersistentClient(path=self.path)


class ChromaPersistentSubject(_PersistentSubject):
    name = "chromadb.PersistentClient (self-check)"
    errors = chromadb.errors

    def _open(self) -> Any:
        return chromadb.PersistentClient(path=self.path, settings=chromadb.Settings(anonymized_telemetry=False))


# ----------------------------------------------------------------------------- machine


@dataclass
class CollectionPair:
    """One collection, as a handle on each side. ``dim`` is what writes should use."""

    ref: Any
    subj: Any
    dim: int
    dimension_fixed: bool = False  # an accepted write with embeddings has fixed the dimension


class DifferentialMachine(RuleBasedStateMachine):
    """Every rule runs one operation on both sides and hands both outcomes to the judge.

    All rules take a single ``data`` argument: Hypothesis orders rules by argument count and
    then name, and favours the first ones, so uniform signatures keep the mix even.
    """

    subject_type: ClassVar[type[Subject]]
    full_compare_every = 12  # steps between two full comparisons of every record

    def __init__(self) -> None:
        super().__init__()
        self.ref_client = reference_client()
        self.subject = self.subject_type()
        self.pairs: dict[str, CollectionPair] = {}  # live collections, by current name
        self.stale: list[CollectionPair] = []  # handles of deleted collections
        # chromadb leaks array metadata across a collection delete (gen.write_arguments):
        # an example either writes list metadata or deletes collections, never both.
        self.deleted_any = False
        self.wrote_lists = False
        self.steps = 0
        compat_budget.EXAMPLE_COUNTS[self.subject.name] += 1

    def teardown(self) -> None:
        self.subject.close()

    # ------------------------------------------------------------------ plumbing

    def both(self, label: str, ref_call: Any, subj_call: Any) -> tuple[Outcome, Outcome]:
        reference = capture(ref_call)
        subject = capture(subj_call)
        operation = label.split("(")[0].rsplit(".", 1)[-1]
        outcome = f"{operation}: " + ("ok" if reference.ok else type(reference.error).__name__)
        event(outcome)
        compat_budget.OUTCOME_COUNTS[outcome] += 1
        judge_errors(label, reference, subject, self.subject.errors)
        return reference, subject

    def draw_pair(self, data: st.DataObject) -> CollectionPair:
        pairs = sorted(self.pairs.values(), key=lambda p: p.ref.name)
        return data.draw(st.sampled_from(pairs), label="collection")

    def register(self, ref: Any, subj: Any, data: st.DataObject) -> None:
        judge_collections(f"collection {ref.name!r}", ref, subj)
        existing = self.pairs.get(ref.name)
        if existing:
            self.pairs[ref.name] = CollectionPair(ref, subj, existing.dim, existing.dimension_fixed)
        else:
            self.pairs[ref.name] = CollectionPair(ref, subj, data.draw(st.integers(3, 8), label="dim"))

    def reference_ids(self, pair: CollectionPair) -> list[str]:
        return list(pair.ref.get(include=[])["ids"])

    def compare_everything(self) -> None:
        """Every collection, every record, every field."""
        self.list_and_count_collections()
        for name, pair in sorted(self.pairs.items()):
            ref, subj = self.both(
                f"get_collection({name!r}) [full compare]",
                lambda name=name: self.ref_client.get_collection(name, embedding_function=None),
                lambda name=name: self.subject.client.get_collection(name, embedding_function=None),
            )
            judge_collections(f"get_collection({name!r})", ref.value, subj.value)
            judge_equal(f"{name}.count()", pair.ref.count(), pair.subj.count())
            judge_get_results(
                f"{name}.get(include=all) [full compare]",
                pair.ref.get(include=ALL_FIELDS),
                pair.subj.get(include=ALL_FIELDS),
            )

    @invariant()
    def count_steps_and_compare_periodically(self) -> None:
        compat_budget.STEP_COUNTS[self.subject.name] += 1
        self.steps += 1
        if self.steps % self.full_compare_every == 0:
            self.compare_everything()

    # ------------------------------------------------------------------ client rules

    @initialize(data=st.data())
    def start_with_a_collection(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(gen.VALID_NAMES), label="name")
        metadata = data.draw(gen.collection_metadata(), label="metadata")
        self._create("create_collection", name, metadata, data)

    def _create(self, method: str, name: str, metadata: Any, data: st.DataObject) -> None:
        ref, subj = self.both(
            f"{method}({name!r}, metadata={metadata!r})",
            lambda: getattr(self.ref_client, method)(name, metadata=metadata, embedding_function=None),
            lambda: getattr(self.subject.client, method)(name, metadata=metadata, embedding_function=None),
        )
        if ref.ok:
            self.register(ref.value, subj.value, data)

    @rule(data=st.data())
    def create_collection(self, data: st.DataObject) -> None:
        name = data.draw(gen.collection_names, label="name")
        metadata = data.draw(gen.collection_metadata(), label="metadata")
        self._create("create_collection", name, metadata, data)

    @rule(data=st.data())
    def get_or_create_collection(self, data: st.DataObject) -> None:
        name = data.draw(gen.collection_names, label="name")
        metadata = data.draw(gen.collection_metadata(), label="metadata")
        self._create("get_or_create_collection", name, metadata, data)

    @rule(data=st.data())
    def get_collection(self, data: st.DataObject) -> None:
        name = data.draw(gen.collection_names, label="name")
        ref, subj = self.both(
            f"get_collection({name!r})",
            lambda: self.ref_client.get_collection(name, embedding_function=None),
            lambda: self.subject.client.get_collection(name, embedding_function=None),
        )
        if ref.ok:
            self.register(ref.value, subj.value, data)

    @precondition(lambda self: not self.wrote_lists)
    @rule(data=st.data())
    def delete_collection(self, data: st.DataObject) -> None:
        """Not after list metadata was written: chromadb leaks the deleted records' arrays into
        later records with the same ids, in any collection (see gen.write_arguments)."""
        name = data.draw(gen.collection_names, label="name")
        ref, subj = self.both(
            f"delete_collection({name!r})",
            lambda: self.ref_client.delete_collection(name),
            lambda: self.subject.client.delete_collection(name),
        )
        if ref.ok:
            judge_equal(f"delete_collection({name!r}) return", ref.value, subj.value)
            self.stale.append(self.pairs.pop(name))
            self.deleted_any = True

    @rule(data=st.data())
    def list_collections(self, data: st.DataObject) -> None:
        self.list_and_count_collections()

    def list_and_count_collections(self) -> None:
        ref, subj = self.both(
            "list_collections()",
            self.ref_client.list_collections,
            self.subject.client.list_collections,
        )
        ref_names = sorted(c.name for c in ref.value)
        judge_equal("list_collections() names", ref_names, sorted(c.name for c in subj.value))
        judge_equal("list_collections() vs the test's model", ref_names, sorted(self.pairs))
        by_name = {c.name: c for c in subj.value}
        for collection in ref.value:
            judge_collections(f"list_collections() {collection.name!r}", collection, by_name[collection.name])
        ref, subj = self.both(
            "count_collections()",
            self.ref_client.count_collections,
            self.subject.client.count_collections,
        )
        judge_equal("count_collections()", ref.value, subj.value)

    @precondition(lambda self: self.subject.reopenable)
    @rule(data=st.data())
    def reopen_subject(self, data: st.DataObject) -> None:
        """Close the subject client and open a new one on the same path; all must survive."""
        compat_budget.OUTCOME_COUNTS["(reopen_subject)"] += 1
        self.subject.reopen()
        self.stale.clear()  # handles from the closed client are gone
        for name, pair in self.pairs.items():
            pair.subj = self.subject.client.get_collection(name, embedding_function=None)
        self.compare_everything()

    # ------------------------------------------------------------------ collection rules

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def modify(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        kwargs: dict[str, Any] = {}
        if data.draw(st.booleans(), label="rename"):
            kwargs["name"] = data.draw(st.one_of(gen.collection_names, st.just(pair.ref.name)), label="name")
        if data.draw(st.booleans(), label="new metadata"):
            metadata = data.draw(gen.collection_metadata(for_modify=True), label="metadata")
            if metadata is not None and "k" in metadata and metadata["k"] is None:
                metadata = {}  # see compat_strategies: None values in modify are not generated
            kwargs["metadata"] = metadata
        old_name = pair.ref.name
        ref, _ = self.both(
            f"{old_name}.modify(**{kwargs!r})",
            lambda: pair.ref.modify(**kwargs),
            lambda: pair.subj.modify(**kwargs),
        )
        if ref.ok:
            self.pairs[pair.ref.name] = self.pairs.pop(old_name)
            judge_collections(f"{old_name}.modify(**{kwargs!r}) handle", pair.ref, pair.subj)

    def _write(self, operation: str, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        kwargs = data.draw(
            gen.write_arguments(pair.dim, operation, pair.dimension_fixed, allow_lists=not self.deleted_any),
            label="arguments",
        )
        metadatas = kwargs.get("metadatas")
        if isinstance(metadatas, dict):
            metadatas = [metadatas]
        if any(isinstance(m, dict) and any(isinstance(x, list) for x in m.values()) for m in metadatas or []):
            self.wrote_lists = True
        ref, subj = self.both(
            f"{pair.ref.name}.{operation}(**{kwargs!r})",
            lambda: getattr(pair.ref, operation)(**kwargs),
            lambda: getattr(pair.subj, operation)(**kwargs),
        )
        if ref.ok:
            judge_equal(f"{operation} return", ref.value, subj.value)
            embeddings = kwargs.get("embeddings")
            if embeddings is not None and len(embeddings):
                first = embeddings if isinstance(kwargs["ids"], str) else embeddings[0]
                pair.dim = len(first)  # a write that both accepted fixes the dimension
                pair.dimension_fixed = True

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        self._write("add", data)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        self._write("upsert", data)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        self._write("update", data)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        kwargs = data.draw(gen.get_arguments(), label="arguments")
        label = f"{pair.ref.name}.get(**{kwargs!r})"
        ref, subj = self.both(label, lambda: pair.ref.get(**kwargs), lambda: pair.subj.get(**kwargs))
        if ref.ok:
            judge_get_results(label, ref.value, subj.value)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def peek(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        limit = data.draw(st.one_of(st.none(), st.integers(1, 12)), label="limit")
        kwargs = {} if limit is None else {"limit": limit}
        label = f"{pair.ref.name}.peek(**{kwargs!r})"
        ref, subj = self.both(label, lambda: pair.ref.peek(**kwargs), lambda: pair.subj.peek(**kwargs))
        if ref.ok:
            judge_get_results(label, ref.value, subj.value)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def count(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        ref, subj = self.both(f"{pair.ref.name}.count()", pair.ref.count, pair.subj.count)
        judge_equal(f"{pair.ref.name}.count()", ref.value, subj.value)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def query(self, data: st.DataObject) -> None:
        self._query(data, filtered=False)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def query_with_filters(self, data: st.DataObject) -> None:
        self._query(data, filtered=True)

    def _query(self, data: st.DataObject, filtered: bool) -> None:
        pair = self.draw_pair(data)
        dim = pair.dim + (1 if gen.rarely(data.draw, 20) else 0)
        rows = data.draw(st.lists(gen.vectors(dim), min_size=1, max_size=3), label="queries")
        single = len(rows) == 1 and data.draw(st.booleans(), label="single form")
        kwargs: dict[str, Any] = {"query_embeddings": rows[0] if single else rows}
        n_results = data.draw(gen.mostly(st.one_of(st.none(), st.integers(1, 8)), st.just(0), 15), label="n_results")
        if n_results is not None:
            kwargs["n_results"] = n_results
        maybe = (lambda strategy: strategy) if filtered else gen.optional
        for name, strategy in (
            ("where", maybe(gen.where_filters())),
            ("where_document", gen.optional(gen.where_document_filters())),
            ("include", gen.includes(gen.QUERY_INCLUDABLE, [])),
        ):
            value = data.draw(strategy, label=name)
            if value is not None:
                kwargs[name] = value
        if gen.rarely(data.draw, 8):
            existing = self.reference_ids(pair)  # unknown ids: chromadb errors, vecduck ignores
            if existing:
                kwargs["ids"] = data.draw(
                    st.lists(st.sampled_from(existing), min_size=1, max_size=4, unique=True), label="ids"
                )
        label = f"{pair.ref.name}.query(**{kwargs!r})"
        ref, subj = self.both(label, lambda: pair.ref.query(**kwargs), lambda: pair.subj.query(**kwargs))
        if ref.ok:
            context = self.query_context(pair, kwargs, rows, n_results or 10)
            judge_query_results(label, ref.value, subj.value, context)

    def query_context(
        self, pair: CollectionPair, kwargs: dict[str, Any], rows: list[Any], n_results: int
    ) -> QueryContext:
        filters = {key: kwargs[key] for key in ("where", "where_document", "ids") if key in kwargs}

        def ask(row: int, n: int) -> dict[str, Any]:
            return pair.ref.query(query_embeddings=[rows[row]], n_results=n, include=["distances"], **filters)

        def reference_distances(row: int) -> list[float]:
            return list(ask(row, n_results)["distances"][0])

        def tied_candidates(row: int, distance: float) -> set[str]:
            everything = ask(row, max(1, pair.ref.count()))
            return {
                record_id
                for record_id, candidate in zip(everything["ids"][0], everything["distances"][0], strict=True)
                if distances_close(candidate, distance)
            }

        def reference_record(record_id: str) -> dict[str, Any]:
            found = pair.ref.get(ids=[record_id], include=ALL_FIELDS)
            return {field: found[field][0] for field in ALL_FIELDS}

        return QueryContext(n_results, reference_distances, tied_candidates, reference_record)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        kwargs: dict[str, Any] = {}
        selectors = st.sets(st.sampled_from(["ids", "where", "where_document"]), min_size=1)
        by = data.draw(gen.mostly(selectors, st.just(set()), 20), label="delete by")
        if "ids" in by:
            ids = data.draw(st.lists(st.sampled_from(gen.ID_POOL), min_size=1, max_size=4, unique=True))
            if gen.rarely(data.draw, 20):
                ids.append(ids[0])
            kwargs["ids"] = [] if gen.rarely(data.draw, 20) else ids
        if "where" in by:
            kwargs["where"] = data.draw(gen.where_filters(), label="where")
        if "where_document" in by:
            kwargs["where_document"] = data.draw(gen.where_document_filters(), label="where_document")
        # chromadb reports the number of ids *passed*; vecduck the number deleted. They agree
        # only when every id passed exists.
        all_ids_exist = set(kwargs.get("ids", [])) <= set(self.reference_ids(pair))
        label = f"{pair.ref.name}.delete(**{kwargs!r})"
        ref, subj = self.both(label, lambda: pair.ref.delete(**kwargs), lambda: pair.subj.delete(**kwargs))
        if ref.ok:
            if all_ids_exist:
                judge_equal(f"{label} return", ref.value, subj.value)
            elif not (isinstance(subj.value, dict) and set(subj.value) == {"deleted"}):
                raise DiscrepancyError(f"{label}: chromadb returned {ref.value!r}, subject {subj.value!r}")

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def use_deleted_collection(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.stale), label="deleted collection")
        operation = data.draw(st.sampled_from(["count", "get", "add", "modify"]), label="operation")
        calls = {
            "count": lambda c: c.count(),
            "get": lambda c: c.get(),
            "add": lambda c: c.add(ids=["id0"], embeddings=[[1.0] * pair.dim]),
            # modify(metadata=...) on a deleted collection succeeds in chromadb (see report)
            "modify": lambda c: c.modify(name="renamed"),
        }
        self.both(
            f"<deleted {pair.ref.name}>.{operation}",
            lambda: calls[operation](pair.ref),
            lambda: calls[operation](pair.subj),
        )


# ----------------------------------------------------------------------------- tests

SETTINGS = settings(
    max_examples=compat_budget.max_examples(),
    stateful_step_count=compat_budget.STATEFUL_STEP_COUNT,
    deadline=None,
    print_blob=True,
    report_multiple_bugs=False,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

_needs_vecduck = pytest.mark.skipif(VECDUCK_MISSING, reason="vecduck package not importable")
_self_check_enabled = VECDUCK_MISSING or os.environ.get("VECDUCK_COMPAT_SELFCHECK") == "1"


class VecduckClientMachine(DifferentialMachine):
    subject_type = VecduckClientSubject


class VecduckPersistentMachine(DifferentialMachine):
    subject_type = VecduckPersistentSubject


class HarnessSelfCheckMachine(DifferentialMachine):
    subject_type = ChromaPersistentSubject


TestVsVecduckClient = pytest.mark.differential(_needs_vecduck(VecduckClientMachine.TestCase))
TestVsVecduckClient.settings = SETTINGS

TestVsVecduckPersistent = pytest.mark.differential(_needs_vecduck(VecduckPersistentMachine.TestCase))
TestVsVecduckPersistent.settings = SETTINGS

TestHarnessSelfCheck = pytest.mark.differential(
    pytest.mark.skipif(
        not _self_check_enabled,
        reason="set VECDUCK_COMPAT_SELFCHECK=1 to check the harness",
    )(HarnessSelfCheckMachine.TestCase)
)
TestHarnessSelfCheck.settings = SETTINGS
