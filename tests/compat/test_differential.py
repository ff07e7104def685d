"""Differential test: random operation sequences run on chromadb and on vecduck, compared.

The reference is ``chromadb.EphemeralClient`` (reset before and after every example), with
``chromadb.AdminClient`` on the same in-memory instance. Subjects:

* ``TestVsVecduckClient``      - ``vecduck.Client()`` and ``vecduck.AdminClient()``;
* ``TestVsVecduckPersistent``  - ``vecduck.PersistentClient(path=tmp)`` and
  ``vecduck.AdminClient(Settings(is_persistent=True, persist_directory=tmp))``, all closed and
  reopened on the same path mid-sequence by the ``reopen_subject`` rule;
* ``TestHarnessSelfCheck``     - ``chromadb.PersistentClient(path=tmp)`` against the reference;
  proves the harness itself is sound. Runs when ``VECDUCK_COMPAT_SELFCHECK=1``, or when the
  ``vecduck`` package is not importable at all.

Besides collections and records, the machine creates tenants and databases, opens clients on
them and moves clients between them (``set_tenant``/``set_database``), so the same collection
name lives in several databases; every comparison of collections is per database, and a
deleted database takes its collections (handles kept, then used) and leaves its clients
pointing at nothing.

What is tolerated between the two sides is decided in ``compat_judge.py`` only; what is not
generated (chromadb accidents, and vecduck bugs not yet fixed) in ``compat_strategies.py``.
Budget and ``VECDUCK_LONG`` in ``compat_budget.py``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import chromadb
import chromadb.errors
import compat_budget
import compat_strategies as gen
import numpy as np
import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from compat_judge import (
    DiscrepancyError,
    Outcome,
    QueryContext,
    capture,
    distances_close,
    judge_collections,
    judge_databases,
    judge_equal,
    judge_errors,
    judge_get_results,
    judge_query_results,
)
from compat_strategies import DEFAULT_DATABASE, DEFAULT_TENANT
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
DEFAULT_SCOPE = (DEFAULT_TENANT, DEFAULT_DATABASE)
MAX_CLIENTS = 4  # clients the rules use at once (besides the machine's own inspectors)

Scope = tuple[str, str]

# ----------------------------------------------------------------------------- clients

# chromadb keeps one in-memory instance per process and refuses a second one with other
# settings: every reference client and admin uses these.
REFERENCE_SETTINGS = chromadb.Settings(allow_reset=True, anonymized_telemetry=False)

_reference_client: Any = None


def reference_client() -> Any:
    """chromadb's in-process client, emptied (tenants and databases too) before every example."""
    global _reference_client
    if _reference_client is None:
        _reference_client = chromadb.EphemeralClient(settings=REFERENCE_SETTINGS)
    reset_reference()
    return _reference_client


def reset_reference() -> None:
    if _reference_client is not None:
        _reference_client.reset()  # back to the default tenant and database only
        _reference_client.set_tenant(DEFAULT_TENANT, DEFAULT_DATABASE)


def reference_scoped_client(tenant: str, database: str) -> Any:
    return chromadb.EphemeralClient(settings=REFERENCE_SETTINGS, tenant=tenant, database=database)


def reference_admin() -> Any:
    return chromadb.AdminClient(REFERENCE_SETTINGS)


class ToyEmbedding(EmbeddingFunction[Documents]):
    """A deterministic embedding function for both sides: coarse values (ties), and the
    dimension the collection currently expects (the pair's ``dim``, read at each call)."""

    def __init__(self, pair: CollectionPair) -> None:
        self.pair = pair

    def __call__(self, input: Documents) -> Embeddings:
        dim = self.pair.dim
        return [
            np.array([float((len(doc) + i * (doc.count("p") + 1)) % 3) - 1.0 for i in range(dim)], dtype=np.float32)
            for doc in input
        ]


class Subject:
    """The clients under test, as seen by the state machine.

    ``open_client``/``open_admin`` open clients on the subject's store; the subject closes
    them all at ``reopen`` (then the machine opens again what it needs) and at ``close``.
    """

    name: ClassVar[str]
    reopenable: ClassVar[bool] = False
    errors: ModuleType
    # over HTTP: chromadb's HttpClient cannot carry an empty tenant or database name (it
    # becomes an empty URL path segment), see compat_strategies
    allow_empty_scope_names: ClassVar[bool] = True
    # the type of database ids the subject's client gives (see compat_judge.judge_databases)
    database_id_type: ClassVar[type] = uuid.UUID

    def __init__(self) -> None:
        self.opened: list[Any] = []

    def _open_client(self, tenant: str, database: str) -> Any:
        raise NotImplementedError

    def _open_admin(self) -> Any:
        raise NotImplementedError

    def open_client(self, tenant: str = DEFAULT_TENANT, database: str = DEFAULT_DATABASE) -> Any:
        client = self._open_client(tenant, database)
        self.opened.append(client)
        return client

    def open_admin(self) -> Any:
        admin = self._open_admin()
        self.opened.append(admin)
        return admin

    def close_all(self) -> None:
        opened, self.opened = self.opened, []
        for client in reversed(opened):
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def reopen(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.close_all()


class VecduckClientSubject(Subject):
    name = "vecduck.Client"

    def __init__(self) -> None:
        super().__init__()
        self.vecduck = importlib.import_module("vecduck")
        self.errors = importlib.import_module("vecduck.errors")
        # every vecduck.Client() of the process shares one in-memory store: emptied (tenants
        # and databases too) before and after every example
        self.resetter = self.vecduck.Client(self.vecduck.Settings(allow_reset=True))
        self.resetter.reset()

    def _open_client(self, tenant: str, database: str) -> Any:
        return self.vecduck.Client(tenant=tenant, database=database)

    def _open_admin(self) -> Any:
        return self.vecduck.AdminClient()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.resetter.reset()  # a client works on even after its database is deleted
            self.resetter.close()


class _PersistentSubject(Subject):
    reopenable = True

    def __init__(self) -> None:
        super().__init__()
        self.path = tempfile.mkdtemp(prefix="vecduck-compat-")

    def reopen(self) -> None:
        self.close_all()

    def close(self) -> None:
        try:
            super().close()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


class VecduckPersistentSubject(_PersistentSubject):
    name = "vecduck.PersistentClient"

    def __init__(self) -> None:
        self.vecduck = importlib.import_module("vecduck")
        self.errors = importlib.import_module("vecduck.errors")
        super().__init__()

    def _open_client(self, tenant: str, database: str) -> Any:
        return self.vecduck.PersistentClient(path=self.path, tenant=tenant, database=database)

    def _open_admin(self) -> Any:
        return self.vecduck.AdminClient(self.vecduck.Settings(is_persistent=True, persist_directory=self.path))


class ChromaPersistentSubject(_PersistentSubject):
    name = "chromadb.PersistentClient (self-check)"
    errors = chromadb.errors

    def __init__(self) -> None:
        super().__init__()
        self.settings = chromadb.Settings(is_persistent=True, persist_directory=self.path, anonymized_telemetry=False)

    def _open_client(self, tenant: str, database: str) -> Any:
        return chromadb.PersistentClient(path=self.path, settings=self.settings, tenant=tenant, database=database)

    def _open_admin(self) -> Any:
        return chromadb.AdminClient(self.settings)


# ----------------------------------------------------------------------------- machine


@dataclass
class ClientPair:
    """One client on each side, and the tenant and database the test expects them to use."""

    ref: Any
    subj: Any
    tenant: str
    database: str

    @property
    def scope(self) -> Scope:
        return (self.tenant, self.database)


@dataclass
class CollectionPair:
    """One collection, as a handle on each side. ``dim`` is what writes should use."""

    ref: Any
    subj: Any
    dim: int
    tenant: str = DEFAULT_TENANT
    database: str = DEFAULT_DATABASE
    dimension_fixed: bool = False  # an accepted write with embeddings has fixed the dimension

    @property
    def scope(self) -> Scope:
        return (self.tenant, self.database)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.tenant, self.database, self.ref.name)


def at(scope: Scope) -> str:
    """Where a call ran, for labels."""
    return f" @ {scope[0]}/{scope[1]}"


class DifferentialMachine(RuleBasedStateMachine):
    """Every rule runs one operation on both sides and hands both outcomes to the judge.

    All rules take a single ``data`` argument: Hypothesis orders rules by argument count and
    then name, and favours the first ones, so uniform signatures keep the mix even. Tenant,
    database and client operations are grouped in three rules (each drawing which operation)
    so that records and collections keep most of the steps.
    """

    subject_type: ClassVar[type[Subject]]
    full_compare_every = 12  # steps between two full comparisons of every record

    def __init__(self) -> None:
        super().__init__()
        self.subject = self.subject_type()
        self.ref_client = reference_client()
        self.ref_admin = reference_admin()
        self.subj_admin = self.subject.open_admin()
        self.clients = [ClientPair(self.ref_client, self.subject.open_client(), *DEFAULT_SCOPE)]
        self.inspectors: dict[Scope, ClientPair] = {}  # the machine's own clients, for comparisons
        self.tenants: set[str] = {DEFAULT_TENANT}
        self.databases: set[Scope] = {DEFAULT_SCOPE}
        self.database_ids: dict[Scope, tuple[Any, Any]] = {}  # ids seen (reference, subject)
        self.pairs: dict[tuple[str, str, str], CollectionPair] = {}  # live collections
        self.stale: list[CollectionPair] = []  # handles of deleted collections
        # chromadb leaks array metadata across a collection delete (gen.write_arguments):
        # an example either writes list metadata or deletes collections, never both.
        self.deleted_any = False
        self.wrote_lists = False
        self.steps = 0
        self.tenant_names = gen.scope_names(gen.TENANT_NAMES, self.subject.allow_empty_scope_names)
        self.database_names = gen.scope_names(gen.DATABASE_NAMES, self.subject.allow_empty_scope_names)
        compat_budget.EXAMPLE_COUNTS[self.subject.name] += 1

    def teardown(self) -> None:
        try:
            self.subject.close()
        finally:
            reset_reference()

    # ------------------------------------------------------------------ plumbing

    def both(self, label: str, ref_call: Any, subj_call: Any, counted: bool = True) -> tuple[Outcome, Outcome]:
        """Run one call on each side; the judge decides. ``counted``: tally chromadb's outcome
        (not for the machine's own bookkeeping calls)."""
        reference = capture(ref_call)
        subject = capture(subj_call)
        if counted:
            operation = label.split("(")[0].rsplit(".", 1)[-1]
            self.tally(f"{operation}: " + ("ok" if reference.ok else type(reference.error).__name__))
        judge_errors(label, reference, subject, self.subject.errors)
        return reference, subject

    @staticmethod
    def tally(outcome: str) -> None:
        event(outcome)
        compat_budget.OUTCOME_COUNTS[outcome] += 1

    def draw_pair(self, data: st.DataObject) -> CollectionPair:
        pairs = [self.pairs[key] for key in sorted(self.pairs)]
        return data.draw(st.sampled_from(pairs), label="collection")

    def draw_client(self, data: st.DataObject) -> ClientPair:
        """A client for a client-level call (its database may have been deleted since)."""
        client = data.draw(st.sampled_from(self.clients), label="client")
        if client.scope not in self.databases:
            self.tally("(client on a deleted database)")
        return client

    def draw_tenant(self, data: st.DataObject, label: str = "tenant") -> str:
        """Mostly a tenant that exists, sometimes any name."""
        if data.draw(st.integers(0, 2), label=f"{label}: any name") == 1:
            return data.draw(self.tenant_names, label=label)
        return data.draw(st.sampled_from(sorted(self.tenants)), label=label)

    def draw_scope(self, data: st.DataObject) -> Scope:
        """Mostly a database that exists, sometimes any pair of names."""
        if not self.databases or data.draw(st.integers(0, 3), label="scope: any names") == 2:
            return (data.draw(self.tenant_names, label="tenant"), data.draw(self.database_names, label="database"))
        return data.draw(st.sampled_from(sorted(self.databases)), label="scope")

    def pairs_in(self, scope: Scope) -> list[CollectionPair]:
        return [pair for key, pair in sorted(self.pairs.items()) if key[:2] == scope]

    def inspect(self, scope: Scope) -> ClientPair:
        """The machine's own client pair on ``scope`` (which exists), never moved."""
        assert scope in self.databases, scope
        inspector = self.inspectors.get(scope)
        if inspector is None:
            ref, subj = self.both(
                f"Client(tenant={scope[0]!r}, database={scope[1]!r}) [inspector]",
                lambda: reference_scoped_client(*scope),
                lambda: self.subject.open_client(*scope),
                counted=False,
            )
            assert ref.ok, ref.describe()
            inspector = self.inspectors[scope] = ClientPair(ref.value, subj.value, *scope)
        return inspector

    def register(self, ref: Any, subj: Any, scope: Scope, data: st.DataObject) -> None:
        judge_collections(f"collection {ref.name!r}{at(scope)}", ref, subj)
        key = (*scope, ref.name)
        existing = self.pairs.get(key)
        if existing:
            self.pairs[key] = CollectionPair(ref, subj, existing.dim, *scope, existing.dimension_fixed)
        else:
            self.pairs[key] = CollectionPair(ref, subj, data.draw(st.integers(3, 8), label="dim"), *scope)

    def reference_ids(self, pair: CollectionPair) -> list[str]:
        return list(pair.ref.get(include=[])["ids"])

    def compare_everything(self) -> None:
        """Every tenant's databases; every database's collections, records and fields."""
        for tenant in sorted(self.tenants):
            self.list_and_check_databases(tenant, None, None)
        for scope in sorted(self.databases):
            inspector = self.inspect(scope)
            self.list_and_count_collections(inspector)
            for pair in self.pairs_in(scope):
                name = pair.ref.name
                ref, subj = self.both(
                    f"get_collection({name!r}){at(scope)} [full compare]",
                    lambda name=name, client=inspector.ref: client.get_collection(name, embedding_function=None),
                    lambda name=name, client=inspector.subj: client.get_collection(name, embedding_function=None),
                )
                judge_collections(f"get_collection({name!r}){at(scope)}", ref.value, subj.value)
                judge_equal(f"{name}.count(){at(scope)}", pair.ref.count(), pair.subj.count())
                judge_get_results(
                    f"{name}.get(include=all){at(scope)} [full compare]",
                    pair.ref.get(include=ALL_FIELDS),
                    pair.subj.get(include=ALL_FIELDS),
                )

    @invariant()
    def count_steps_and_compare_periodically(self) -> None:
        compat_budget.STEP_COUNTS[self.subject.name] += 1
        self.steps += 1
        if self.steps % self.full_compare_every == 0:
            self.compare_everything()

    # ------------------------------------------------------------------ start

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """A collection in the default database; in half the examples also a second database
        (sometimes in a second tenant) with a client on it, often holding the same name."""
        if data.draw(st.booleans(), label="second database"):
            tenant = DEFAULT_TENANT
            if data.draw(st.booleans(), label="second tenant"):
                tenant = data.draw(st.sampled_from(gen.TENANT_NAMES[1:]), label="tenant")
                self._admin("create_tenant", tenant)
            database = data.draw(st.sampled_from(gen.DATABASE_NAMES[1:]), label="database")
            self._admin("create_database", database, tenant=tenant)
            self._open_client(tenant, database)
        name = data.draw(st.sampled_from(gen.VALID_NAMES), label="name")
        metadata = data.draw(gen.collection_metadata(), label="metadata")
        self._create("create_collection", self.clients[0], name, metadata, data)
        if len(self.clients) > 1 and data.draw(st.booleans(), label="same name in the second database"):
            metadata = data.draw(gen.collection_metadata(), label="metadata")
            self._create("create_collection", self.clients[1], name, metadata, data)

    # ------------------------------------------------------------------ tenants and databases

    def _admin(self, method: str, *args: Any, **kwargs: Any) -> tuple[Outcome, Outcome]:
        shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        ref, subj = self.both(
            f"{method}({shown})",
            lambda: getattr(self.ref_admin, method)(*args, **kwargs),
            lambda: getattr(self.subj_admin, method)(*args, **kwargs),
        )
        if ref.ok and method == "create_tenant":
            self.tenants.add(args[0])
        if ref.ok and method == "create_database":
            self.databases.add((kwargs.get("tenant", DEFAULT_TENANT), args[0]))
        return ref, subj

    @rule(data=st.data())
    def tenants_admin(self, data: st.DataObject) -> None:
        """create_tenant (a duplicate: chromadb's InternalError, vecduck's UniqueConstraintError),
        get_tenant."""
        operation = data.draw(st.sampled_from(["create_tenant", "create_tenant", "get_tenant"]), label="operation")
        name = data.draw(self.tenant_names, label="tenant")
        known = name in self.tenants
        ref, subj = self._admin(operation, name)
        expected_ok = known if operation == "get_tenant" else (not known and len(name) >= 3)
        judge_equal(f"{operation}({name!r}) succeeded vs the test's model", ref.ok, expected_ok)
        if ref.ok:
            judge_equal(f"{operation}({name!r}) return", ref.value, subj.value)

    @rule(data=st.data())
    def databases_admin(self, data: st.DataObject) -> None:
        """create_database, get_database, list_databases(limit, offset, tenant), delete_database
        (which deletes its collections: their handles become stale)."""
        operation = data.draw(
            st.sampled_from(
                ["create_database", "create_database", "get_database", "list_databases", "delete_database"]
            ),
            label="operation",
        )
        if operation == "list_databases":
            limit = data.draw(gen.list_bounds(), label="limit")
            offset = data.draw(gen.list_bounds(), label="offset")
            self.list_and_check_databases(self.draw_tenant(data), limit, offset)
            return
        if operation == "create_database":
            tenant, name = self.draw_tenant(data), data.draw(self.database_names, label="database")
        else:
            tenant, name = self.draw_scope(data)
        if operation == "create_database" and len(name) >= 3 and tenant not in self.tenants:
            # chromadb creates a database under a tenant that does not exist (see gen)
            tenant = data.draw(st.sampled_from(sorted(self.tenants)), label="existing tenant")
        if operation == "delete_database" and self.wrote_lists and self.pairs_in((tenant, name)):
            operation = "get_database"  # chromadb leaks arrays across deletes (see gen)
        scope = (tenant, name)
        existed = scope in self.databases
        ref, subj = self._admin(operation, name, tenant=tenant)
        label = f"{operation}({name!r}, tenant={tenant!r})"
        expected_ok = existed if operation != "create_database" else (not existed and len(name) >= 3)
        judge_equal(f"{label} succeeded vs the test's model", ref.ok, expected_ok)
        if not ref.ok:
            return
        if operation == "get_database":
            judge_databases(label, [ref.value], [subj.value], self.subject.database_id_type)
            self.check_database_ids([ref.value], [subj.value])
        else:
            judge_equal(f"{label} return", ref.value, subj.value)
        if operation == "delete_database":
            self.databases.discard(scope)
            self.database_ids.pop(scope, None)
            for pair in self.pairs_in(scope):
                self.stale.append(self.pairs.pop(pair.key))
                self.deleted_any = True
                self.tally("(collection deleted with its database)")

    def list_and_check_databases(self, tenant: str, limit: int | None, offset: int | None) -> None:
        kwargs: dict[str, Any] = {"tenant": tenant}
        if limit is not None:
            kwargs["limit"] = limit
        if offset is not None:
            kwargs["offset"] = offset
        label = f"list_databases(**{kwargs!r})"
        ref, subj = self.both(
            label, lambda: self.ref_admin.list_databases(**kwargs), lambda: self.subj_admin.list_databases(**kwargs)
        )
        if not ref.ok:
            return
        judge_databases(label, ref.value, subj.value, self.subject.database_id_type)
        names = sorted(name for owner, name in self.databases if owner == tenant)
        start = offset or 0
        expected = names[start:] if limit is None else names[start : start + limit]
        judge_equal(f"{label} vs the test's model", [d["name"] for d in ref.value], expected)
        self.check_database_ids(ref.value, subj.value)

    def check_database_ids(self, ref_found: list[Any], subj_found: list[Any]) -> None:
        """A database keeps its id (on each side) until it is deleted, across reopens too."""
        for ref_db, subj_db in zip(ref_found, subj_found, strict=True):
            scope = (ref_db["tenant"], ref_db["name"])
            seen = self.database_ids.setdefault(scope, (ref_db["id"], subj_db["id"]))
            if seen[1] != subj_db["id"] and seen[0] == ref_db["id"]:
                raise DiscrepancyError(f"database {scope}: id was {seen[1]!r}, now {subj_db['id']!r}")
            self.database_ids[scope] = (ref_db["id"], subj_db["id"])

    # ------------------------------------------------------------------ clients

    def _open_client(self, tenant: str, database: str) -> None:
        ref, subj = self.both(
            f"Client(tenant={tenant!r}, database={database!r})",
            lambda: reference_scoped_client(tenant, database),
            lambda: self.subject.open_client(tenant, database),
        )
        judge_equal(
            f"Client(tenant={tenant!r}, database={database!r}) succeeded vs the test's model",
            ref.ok,
            (tenant, database) in self.databases,
        )
        if ref.ok:
            self.clients.append(ClientPair(ref.value, subj.value, tenant, database))

    @rule(data=st.data())
    def clients_and_scopes(self, data: st.DataObject) -> None:
        """A client opened on a tenant and database, or moved with set_tenant/set_database
        (both must exist; a failed move leaves the client where it was)."""
        operation = data.draw(st.sampled_from(["open_client", "set_tenant", "set_database"]), label="operation")
        if operation == "open_client" or not self.clients:
            if len(self.clients) >= MAX_CLIENTS:
                self.clients.pop(data.draw(st.integers(0, len(self.clients) - 1), label="forget client"))
            self._open_client(*self.draw_scope(data))
            return
        client = data.draw(st.sampled_from(self.clients), label="client")
        if operation == "set_tenant":
            tenant, database = self.draw_scope(data)
            if data.draw(st.booleans(), label="database omitted"):
                args: tuple[str, ...] = (tenant,)
                database = DEFAULT_DATABASE
            else:
                args = (tenant, database)
            target = (tenant, database)
        else:
            siblings = sorted(name for owner, name in self.databases if owner == client.tenant)
            if siblings and data.draw(st.integers(0, 2), label="database: any name") != 1:
                database = data.draw(st.sampled_from(siblings), label="database")
            else:
                database = data.draw(self.database_names, label="database")
            args = (database,)
            target = (client.tenant, database)
        label = f"{operation}({', '.join(map(repr, args))}){at(client.scope)}"
        ref, _ = self.both(
            label,
            lambda: getattr(client.ref, operation)(*args),
            lambda: getattr(client.subj, operation)(*args),
        )
        judge_equal(f"{label} succeeded vs the test's model", ref.ok, target in self.databases)
        if ref.ok:
            client.tenant, client.database = target
        judge_equal(f"{label}: (tenant, database) after", (client.ref.tenant, client.ref.database), client.scope)
        judge_equal(
            f"{label}: (tenant, database) after",
            (client.ref.tenant, client.ref.database),
            (client.subj.tenant, client.subj.database),
        )

    # ------------------------------------------------------------------ client rules

    def _create(self, method: str, client: ClientPair, name: str, metadata: Any, data: st.DataObject) -> None:
        ref, subj = self.both(
            f"{method}({name!r}, metadata={metadata!r}){at(client.scope)}",
            lambda: getattr(client.ref, method)(name, metadata=metadata, embedding_function=None),
            lambda: getattr(client.subj, method)(name, metadata=metadata, embedding_function=None),
        )
        if ref.ok:
            self.register(ref.value, subj.value, client.scope, data)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def create_collection(self, data: st.DataObject) -> None:
        client = self.draw_client(data)
        name = data.draw(gen.collection_names, label="name")
        metadata = data.draw(gen.collection_metadata(), label="metadata")
        self._create("create_collection", client, name, metadata, data)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def get_or_create_collection(self, data: st.DataObject) -> None:
        client = self.draw_client(data)
        name = data.draw(gen.collection_names, label="name")
        metadata = data.draw(gen.collection_metadata(), label="metadata")
        self._create("get_or_create_collection", client, name, metadata, data)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def get_collection(self, data: st.DataObject) -> None:
        client = self.draw_client(data)
        name = data.draw(gen.collection_names, label="name")
        ref, subj = self.both(
            f"get_collection({name!r}){at(client.scope)}",
            lambda: client.ref.get_collection(name, embedding_function=None),
            lambda: client.subj.get_collection(name, embedding_function=None),
        )
        if ref.ok:
            self.register(ref.value, subj.value, client.scope, data)

    @precondition(lambda self: self.clients and not self.wrote_lists)
    @rule(data=st.data())
    def delete_collection(self, data: st.DataObject) -> None:
        """Not after list metadata was written: chromadb leaks the deleted records' arrays into
        later records with the same ids, in any collection (see gen.write_arguments)."""
        client = self.draw_client(data)
        name = data.draw(gen.collection_names, label="name")
        label = f"delete_collection({name!r}){at(client.scope)}"
        ref, subj = self.both(
            label, lambda: client.ref.delete_collection(name), lambda: client.subj.delete_collection(name)
        )
        if ref.ok:
            judge_equal(f"{label} return", ref.value, subj.value)
            self.stale.append(self.pairs.pop((*client.scope, name)))
            self.deleted_any = True

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def list_collections(self, data: st.DataObject) -> None:
        client = self.draw_client(data)
        if gen.rarely(data.draw, 4):
            self.list_collections_window(client, data)
        else:
            self.list_and_count_collections(client)

    def list_and_count_collections(self, client: ClientPair) -> None:
        """Names (vecduck lists in creation order: compared sorted), metadata, count; and only
        the collections of the client's database (none once it is deleted)."""
        label = f"list_collections(){at(client.scope)}"
        ref, subj = self.both(label, client.ref.list_collections, client.subj.list_collections)
        ref_names = sorted(c.name for c in ref.value)
        judge_equal(f"{label} names", ref_names, sorted(c.name for c in subj.value))
        judge_equal(f"{label} vs the test's model", ref_names, sorted(p.ref.name for p in self.pairs_in(client.scope)))
        by_name = {c.name: c for c in subj.value}
        for collection in ref.value:
            judge_collections(f"{label} {collection.name!r}", collection, by_name[collection.name])
        ref, subj = self.both(
            f"count_collections(){at(client.scope)}", client.ref.count_collections, client.subj.count_collections
        )
        judge_equal(f"count_collections(){at(client.scope)}", ref.value, subj.value)

    def list_collections_window(self, client: ClientPair, data: st.DataObject) -> None:
        """list_collections(limit, offset): the orders differ (deliberately), so the window is
        compared by size, and its names must be the database's."""
        kwargs = {"limit": data.draw(gen.list_bounds(), label="limit"), "offset": data.draw(gen.list_bounds())}
        label = f"list_collections(**{kwargs!r}){at(client.scope)}"
        ref, subj = self.both(
            label, lambda: client.ref.list_collections(**kwargs), lambda: client.subj.list_collections(**kwargs)
        )
        if ref.ok:
            judge_equal(f"{label} size", len(ref.value), len(subj.value))
            names = [c.name for c in subj.value]
            expected = {p.ref.name for p in self.pairs_in(client.scope)}
            if len(set(names)) != len(names) or not set(names) <= expected:
                raise DiscrepancyError(f"{label}: subject listed {names}, the database holds {sorted(expected)}")

    @precondition(lambda self: self.subject.reopenable)
    @rule(data=st.data())
    def reopen_subject(self, data: st.DataObject) -> None:
        """Close every subject client and open them again on the same path; all must survive.
        Clients whose database is gone cannot be opened again: forgotten on both sides."""
        self.tally("(reopen_subject)")
        self.subject.reopen()
        self.subj_admin = self.subject.open_admin()
        self.inspectors = {}
        self.stale.clear()  # handles from the closed clients are gone
        kept = []
        for client in self.clients:
            if client.scope in self.databases:
                client.subj = self.subject.open_client(*client.scope)
                kept.append(client)
        self.clients = kept
        for pair in self.pairs.values():
            pair.subj = self.inspect(pair.scope).subj.get_collection(pair.ref.name, embedding_function=None)
        self.compare_everything()

    # ------------------------------------------------------------------ collection rules

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def modify(self, data: st.DataObject) -> None:
        """Rename and/or new metadata; then the stored collection is compared too. With None
        values, chromadb's handle keeps them where the store drops them (see gen): the
        handles are not compared but replaced by fresh ones."""
        pair = self.draw_pair(data)
        kwargs: dict[str, Any] = {}
        if data.draw(st.booleans(), label="rename"):
            kwargs["name"] = data.draw(st.one_of(gen.collection_names, st.just(pair.ref.name)), label="name")
        if data.draw(st.booleans(), label="new metadata"):
            current = sorted(pair.ref.metadata or {})
            if current and gen.rarely(data.draw, 3):  # remove keys it has (None), maybe keep or add some
                removed = data.draw(st.lists(st.sampled_from(current), min_size=1, unique=True), label="removed keys")
                kept = data.draw(gen.collection_metadata(for_modify=True), label="metadata") or {}
                kwargs["metadata"] = {**kept, **dict.fromkeys(removed)}
            else:
                kwargs["metadata"] = data.draw(gen.collection_metadata(for_modify=True), label="metadata")
        old_key = pair.key
        label = f"{pair.ref.name}.modify(**{kwargs!r}){at(pair.scope)}"
        ref, _ = self.both(label, lambda: pair.ref.modify(**kwargs), lambda: pair.subj.modify(**kwargs))
        if not ref.ok:
            return
        self.pairs[pair.key] = self.pairs.pop(old_key)
        inspector = self.inspect(pair.scope)
        fresh_ref, fresh_subj = self.both(
            f"get_collection({pair.ref.name!r}){at(pair.scope)} [after modify]",
            lambda: inspector.ref.get_collection(pair.ref.name, embedding_function=None),
            lambda: inspector.subj.get_collection(pair.ref.name, embedding_function=None),
        )
        judge_collections(f"{label} stored", fresh_ref.value, fresh_subj.value)
        metadata = kwargs.get("metadata")
        if isinstance(metadata, dict) and None in metadata.values():
            self.tally("(modify metadata with None values)" + (" -> None" if fresh_ref.value.metadata is None else ""))
            pair.ref, pair.subj = fresh_ref.value, fresh_subj.value
        else:
            judge_collections(f"{label} handle", pair.ref, pair.subj)

    def embedding_handles(self, pair: CollectionPair) -> tuple[Any, Any]:
        """Handles on ``pair``'s collection that embed documents with ``ToyEmbedding``."""
        inspector = self.inspect(pair.scope)
        function = ToyEmbedding(pair)
        ref, subj = self.both(
            f"get_collection({pair.ref.name!r}, embedding_function=ToyEmbedding){at(pair.scope)}",
            lambda: inspector.ref.get_collection(pair.ref.name, embedding_function=function),
            lambda: inspector.subj.get_collection(pair.ref.name, embedding_function=function),
        )
        return ref.value, subj.value

    def ghost_missing_ids(self, pair: CollectionPair, ids: Any) -> Any:
        """An update carrying vectors names, for each id that does not exist, its ghost (see
        gen: chromadb would give the vector to a record added later under that id)."""
        existing = set(self.reference_ids(pair))
        rename = lambda record_id: record_id if record_id in existing else gen.GHOST_IDS.get(record_id, record_id)  # noqa: E731
        return rename(ids) if isinstance(ids, str) else [rename(record_id) for record_id in ids]

    def _write(self, operation: str, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        embed = gen.rarely(data.draw, 6)  # documents, embedded by ToyEmbedding
        kwargs = data.draw(
            gen.write_arguments(
                pair.dim, operation, pair.dimension_fixed, allow_lists=not self.deleted_any, embed_documents=embed
            ),
            label="arguments",
        )
        if operation == "update" and (embed or "embeddings" in kwargs):
            kwargs["ids"] = self.ghost_missing_ids(pair, kwargs["ids"])
        metadatas = kwargs.get("metadatas")
        if isinstance(metadatas, dict):
            metadatas = [metadatas]
        if any(isinstance(m, dict) and any(isinstance(x, list) for x in m.values()) for m in metadatas or []):
            self.wrote_lists = True
        ref_handle, subj_handle = self.embedding_handles(pair) if embed else (pair.ref, pair.subj)
        label = f"{pair.ref.name}.{operation}(**{kwargs!r}){' [ToyEmbedding]' if embed else ''}{at(pair.scope)}"
        ref, subj = self.both(
            label,
            lambda: getattr(ref_handle, operation)(**kwargs),
            lambda: getattr(subj_handle, operation)(**kwargs),
        )
        if not ref.ok:
            return
        judge_equal(f"{operation} return", ref.value, subj.value)
        embeddings = kwargs.get("embeddings")
        carried_vectors = embed or (embeddings is not None and len(embeddings) > 0)
        if operation == "update" and carried_vectors and not pair.dimension_fixed:
            self.tally("(update fixed the dimension)")
        if embed:
            self.tally(f"({operation} with ToyEmbedding)")
        if any(isinstance(m, dict) and m and all(v is None for v in m.values()) for m in metadatas or []):
            self.tally(f"({operation} with every metadata key None)")
        if embeddings is not None and len(embeddings):
            first = embeddings if isinstance(kwargs["ids"], str) else embeddings[0]
            pair.dim = len(first)  # a write that both accepted fixes the dimension
            pair.dimension_fixed = True
        elif embed:
            pair.dimension_fixed = True  # ToyEmbedding wrote pair.dim

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
        label = f"{pair.ref.name}.get(**{kwargs!r}){at(pair.scope)}"
        ref, subj = self.both(label, lambda: pair.ref.get(**kwargs), lambda: pair.subj.get(**kwargs))
        if ref.ok:
            judge_get_results(label, ref.value, subj.value)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def peek(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        limit = data.draw(st.one_of(st.none(), st.integers(1, 12)), label="limit")
        kwargs = {} if limit is None else {"limit": limit}
        label = f"{pair.ref.name}.peek(**{kwargs!r}){at(pair.scope)}"
        ref, subj = self.both(label, lambda: pair.ref.peek(**kwargs), lambda: pair.subj.peek(**kwargs))
        if ref.ok:
            judge_get_results(label, ref.value, subj.value)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def count(self, data: st.DataObject) -> None:
        pair = self.draw_pair(data)
        label = f"{pair.ref.name}.count(){at(pair.scope)}"
        ref, subj = self.both(label, pair.ref.count, pair.subj.count)
        judge_equal(label, ref.value, subj.value)

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
        label = f"{pair.ref.name}.query(**{kwargs!r}){at(pair.scope)}"
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
        label = f"{pair.ref.name}.delete(**{kwargs!r}){at(pair.scope)}"
        ref, subj = self.both(label, lambda: pair.ref.delete(**kwargs), lambda: pair.subj.delete(**kwargs))
        if ref.ok:
            if all_ids_exist:
                judge_equal(f"{label} return", ref.value, subj.value)
            elif not (isinstance(subj.value, dict) and set(subj.value) == {"deleted"}):
                raise DiscrepancyError(f"{label}: chromadb returned {ref.value!r}, subject {subj.value!r}")

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def use_deleted_collection(self, data: st.DataObject) -> None:
        """A handle of a collection deleted by delete_collection or with its database."""
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
            f"<deleted {pair.ref.name}{at(pair.scope)}>.{operation}",
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
