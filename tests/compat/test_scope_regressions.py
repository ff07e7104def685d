"""Tenant and database regressions the differential test found in vecduck, each reproduced
next to chromadb 1.5.9 (the server's and the HTTP clients' are in
tests/server/test_differential_server.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import chromadb
import chromadb.errors
import pytest
from test_differential import REFERENCE_SETTINGS

import vecduck
import vecduck.errors


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def vecduck_admin(path: Path) -> vecduck.AdminClient:
    return vecduck.AdminClient(vecduck.Settings(is_persistent=True, persist_directory=str(path)))


def test_admin_client_opens_while_the_default_database_is_deleted(tmp_path: Path) -> None:
    reference_path = tmp_path / "chromadb"
    settings = chromadb.Settings(is_persistent=True, persist_directory=str(reference_path), anonymized_telemetry=False)
    chromadb.AdminClient(settings).delete_database("default_database")
    chromadb.AdminClient(settings).create_database("default_database")  # chromadb: a new admin opens, recreates it

    admin = vecduck_admin(tmp_path / "vecduck")
    admin.delete_database("default_database")
    admin.close()
    admin = vecduck_admin(tmp_path / "vecduck")  # used to raise NotFoundError (no default database)
    admin.create_database("default_database")
    admin.close()


def test_delete_database_with_a_short_name_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(chromadb.errors.NotFoundError):
        chromadb.AdminClient(REFERENCE_SETTINGS).delete_database("ab")
    admin = vecduck_admin(tmp_path)
    try:
        with pytest.raises(vecduck.errors.NotFoundError):  # used to be InvalidArgumentError
            admin.delete_database("ab")
    finally:
        admin.close()


def test_create_collection_in_a_deleted_database(tmp_path: Path) -> None:
    database = unique("gone")
    chromadb.AdminClient(REFERENCE_SETTINGS).create_database(database)
    reference = chromadb.EphemeralClient(settings=REFERENCE_SETTINGS, database=database)
    chromadb.AdminClient(REFERENCE_SETTINGS).delete_database(database)
    with pytest.raises(chromadb.errors.InvalidArgumentError, match="does not exist"):
        reference.create_collection("alpha")
    with pytest.raises(chromadb.errors.InvalidArgumentError, match="does not exist"):
        reference.get_or_create_collection("alpha")

    admin = vecduck_admin(tmp_path)
    admin.create_database(database)
    client = vecduck.PersistentClient(path=tmp_path, database=database)
    admin.delete_database(database)
    try:
        with pytest.raises(vecduck.errors.InvalidArgumentError, match="does not exist"):  # was NotFoundError
            client.create_collection("alpha", embedding_function=None)
    finally:
        client.close()
        admin.close()


def test_numpy_integers_as_limit_and_offset() -> None:
    """chromadb takes NumPy integers (and bools) for get's limit and offset and peek's limit."""
    import numpy as np

    name = unique("np_limits")
    answers = []
    for client in (chromadb.EphemeralClient(REFERENCE_SETTINGS), vecduck.Client()):
        col = client.create_collection(name, embedding_function=None)
        col.add(ids=[f"r{i}" for i in range(6)], embeddings=np.eye(6, dtype=np.float32))
        answers.append(
            (
                col.get(limit=np.int64(2), offset=np.int32(1))["ids"],
                col.get(limit=True)["ids"],
                col.peek(np.uint8(3))["ids"],
            )
        )
    assert answers[0] == answers[1]
    assert answers[1][0] == ["r1", "r2"]


def test_unknown_hnsw_metadata_key_and_user_identity() -> None:
    """An `hnsw:` metadata key chromadb does not know is refused as chromadb refuses it;
    an embedded client's identity is chromadb's."""
    name = unique("hnsw_bogus")
    errors = []
    for client, module in ((chromadb.EphemeralClient(REFERENCE_SETTINGS), chromadb), (vecduck.Client(), vecduck)):
        with pytest.raises(module.errors.InvalidArgumentError) as refused:
            client.create_collection(name, metadata={"hnsw:bogus": 3}, embedding_function=None)
        errors.append(str(refused.value))
        assert client.create_collection(name, metadata={"hnsw:space": "ip"}, embedding_function=None).count() == 0
    assert errors[0] == errors[1]
    reference = chromadb.EphemeralClient(REFERENCE_SETTINGS).get_user_identity()
    mine = vecduck.Client().get_user_identity()
    assert (mine.user_id, mine.tenant, mine.databases) == (reference.user_id, reference.tenant, reference.databases)


REGEX_DOCUMENTS = ["naïve", "日本語", "plain", "١٢٣", "a\u00a0b", "café au", "snake_case", "x-y", "tab\there"]
REGEX_DOCUMENTS += ["ÉCOLE 42", "x\u2003y", "٣ apples"]
REGEX_PATTERNS = [
    r"^\w+$",
    r"\d",
    r"^\d+$",
    r"a\sb",
    r"\S+\s\S+",
    r"[\w]+_",
    r"^[\w-]+$",
    r"\W",
    r"^\D+$",
    r"[^\w\s]",
    r"^\w+\s\d+$",
    r"\p{L}",
    r"(?i)école",
    r"[[:alpha:]]+_",
]


@pytest.mark.parametrize("pattern", REGEX_PATTERNS)
def test_regex_classes_match_unicode_as_chromadb(pattern: str) -> None:
    """`\\w \\d \\s` and their negations match Unicode letters, digits and spaces, as in
    chromadb's Rust regex (DuckDB's RE2 alone matches ASCII with them)."""
    import numpy as np

    name = unique("regex")
    answers = []
    for client in (chromadb.EphemeralClient(REFERENCE_SETTINGS), vecduck.Client()):
        col = client.create_collection(name, embedding_function=None)
        col.add(
            ids=[str(i) for i in range(len(REGEX_DOCUMENTS))],
            embeddings=np.eye(len(REGEX_DOCUMENTS), dtype=np.float32),
            documents=REGEX_DOCUMENTS,
        )
        answers.append(
            [sorted(col.get(where_document={op: pattern})["ids"], key=int) for op in ("$regex", "$not_regex")]
        )
    assert answers[0] == answers[1]
