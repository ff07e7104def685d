"""Collection: chromadb's collection API over the storage engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vecduck.api import validation as v
from vecduck.api.configuration import updated_configuration
from vecduck.api.embedding import embedding_function_config, is_default_function
from vecduck.api.indexing import reported_schema, sparse_index_configs
from vecduck.api.types import (
    GET_INCLUDE_DEFAULT,
    QUERY_INCLUDE_DEFAULT,
    GetResult,
    Include,
    IndexingStatus,
    QueryResult,
    SearchResult,
    Where,
    WhereDocument,
    empty_embeddings,
)
from vecduck.engine.registry import CollectionRecord
from vecduck.errors import InvalidArgumentError

if TYPE_CHECKING:
    from vecduck.api.client import Client

# The stored field behind each `include` entry that a query's hits fetch.
HIT_FIELDS_BY_INCLUDE = (("document", "documents"), ("uri", "uris"), ("metadata", "metadatas"))


class Collection:
    """A named set of records: ids, embeddings, documents, uris and metadata."""

    def __init__(
        self,
        client: Client,
        record: CollectionRecord,
        embedding_function: Any | None,
        data_loader: Any | None = None,
    ) -> None:
        self._client = client
        self._record = record
        self._embedding_function = embedding_function
        self._data_loader = data_loader

    # -- properties --------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record.name

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(self._record.id)

    @property
    def metadata(self) -> dict[str, Any] | None:
        return self._record.metadata

    @property
    def configuration(self) -> dict[str, Any]:
        """The configuration, as chromadb loads it: a "legacy" function record reads as None."""
        configuration = self._record.configuration
        if configuration.get("embedding_function") == {"type": "legacy"}:
            return {**configuration, "embedding_function": None}
        return configuration

    @property
    def configuration_json(self) -> dict[str, Any]:
        return self._record.configuration

    @property
    def schema(self) -> Any:
        """The collection's index schema (a `vecduck.Schema`): what it indexes and how."""
        from vecduck.api.schema import Schema

        return Schema.deserialize_from_json(reported_schema(self._record.configuration, self._record.schema))

    @property
    def tenant(self) -> str:
        return self._record.tenant

    @property
    def database(self) -> str:
        return self._record.database

    @property
    def embedding_function(self) -> Any | None:
        return self._embedding_function

    @property
    def dimension(self) -> int | None:
        return self._store.dimension(self._record.id)

    @property
    def _store(self) -> Any:
        return self._client._store_for_use()

    def __repr__(self) -> str:
        return f"Collection(name={self.name})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Collection):
            return NotImplemented
        return (
            self._record.id == other._record.id
            and self.name == other.name
            and self.metadata == other.metadata
            and self.tenant == other.tenant
            and self.database == other.database
        )

    def __hash__(self) -> int:
        return hash(self._record.id)

    # -- embedding ---------------------------------------------------------------------
    def _embed(self, texts: list[str], is_query: bool = False) -> list[np.ndarray]:
        ef = self._embedding_function or self._schema_embedding_function()
        if ef is None:
            raise ValueError(
                "You must provide an embedding function to compute embeddings."
                "https://docs.trychroma.com/guides/embeddings"
            )
        vectors = ef.embed_query(input=texts) if is_query and hasattr(ef, "embed_query") else ef(input=texts)
        return [np.asarray(vector, dtype=np.float32) for vector in vectors]

    def _schema_embedding_function(self) -> Any:
        """chromadb's fallback for a handle without a function: a collection created with
        `embedding_function=None` and no index configuration records no function, and its
        schema keeps the default one, which chromadb then embeds with; one created with an
        index configuration records "legacy", which embeds nothing."""
        recorded = self._record.configuration
        if "embedding_function" in recorded and recorded["embedding_function"] is None:
            from vecduck.api.embedding import default_embedding_function

            self._embedding_function = default_embedding_function()
            return self._embedding_function
        return None

    # -- writes ------------------------------------------------------------------------
    def _prepare_write(
        self,
        mode: str,
        ids: Any,
        embeddings: Any,
        metadatas: Any,
        documents: Any,
        images: Any,
        uris: Any,
    ) -> tuple[list[str], list[np.ndarray] | None, list[Any] | None, list[Any] | None, list[Any] | None]:
        """chromadb's client-side unpacking and checks, then embedding when needed."""
        vectors = v.normalize_embeddings(embeddings)
        metadata_list = v.one_or_many(metadatas)
        document_list = v.one_or_many(documents)
        uri_list = v.one_or_many(uris)
        image_list = v.one_or_many(images)
        if ids is None and mode == "add":
            ids = generated_ids([vectors, metadata_list, document_list, uri_list, image_list])
        id_list = one_or_many_ids(ids)
        v.validate_lengths(
            {
                "ids": id_list,
                "embeddings": vectors,
                "metadatas": metadata_list,
                "documents": document_list,
                "images": image_list,
                "uris": uri_list,
            }
        )
        if vectors is not None:
            v.validate_embedding_arrays(vectors)
        if document_list is not None:
            v.validate_documents(document_list, nullable=vectors is not None)
        v.validate_ids(id_list)
        if metadata_list is not None:
            v.validate_metadatas(metadata_list)
        if image_list is not None:
            raise ValueError("Images are not supported by vecduck; pass embeddings or documents")
        if vectors is None:
            if mode == "update" and document_list is None:
                return id_list, None, metadata_list, document_list, uri_list
            if document_list is None:
                embeddable = "documents, images" if mode != "add" else "documents, images, uris"
                raise ValueError(f"Exactly one of {embeddable} must be provided")
            vectors = self._embed(document_list)
        return id_list, vectors, metadata_list, document_list, uri_list

    def _write(
        self,
        mode: str,
        ids: list[str],
        embeddings: Sequence[Any] | None,
        metadatas: list[Any] | None,
        documents: list[Any] | None,
        uris: list[Any] | None,
    ) -> None:
        """The server-side checks and the engine write: shared by the Python API and HTTP."""
        v.check_record_ids(ids)
        v.check_lengths(ids, embeddings=embeddings, metadatas=metadatas, documents=documents, uris=uris)
        keep = None
        if embeddings is None:
            matrix = None
        elif mode == "update":
            matrix, keep = v.check_update_embeddings(embeddings)
        else:
            matrix = v.check_embeddings(embeddings)
        cleaned = (
            v.check_record_metadatas(metadatas, allow_none_values=mode != "add") if metadatas is not None else None
        )
        if documents is not None:
            v.check_documents(documents)
        for field, values in (("IDs", ids), ("documents", documents), ("uris", uris), ("metadatas", cleaned)):
            v.check_text(values, field)
        cleaned = self._with_sparse_vectors(len(ids), cleaned, documents)
        self._store.write(self._record.id, mode, ids, matrix, cleaned, documents, uris, keep)

    def add(
        self,
        ids: Any = None,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Add records; ids that already exist are left unchanged (as chromadb does).

        Without `ids` (unlike chromadb, which raises TypeError) each record gets a new
        uuid4 string id, readable back with `get()` like any other."""
        with v.in_method("add"):
            prepared = self._prepare_write("add", ids, embeddings, metadatas, documents, images, uris)
        self._write("add", *prepared)

    def upsert(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Insert new ids, update existing ones (metadata merged key by key)."""
        with v.in_method("upsert"):
            prepared = self._prepare_write("upsert", ids, embeddings, metadatas, documents, images, uris)
        self._write("upsert", *prepared)

    def update(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Change existing records; unknown ids are ignored."""
        with v.in_method("update"):
            prepared = self._prepare_write("update", ids, embeddings, metadatas, documents, images, uris)
        self._write("update", *prepared)

    def delete(
        self,
        ids: Any = None,
        where: Where | None = None,
        where_document: WhereDocument | None = None,
        limit: int | None = None,
    ) -> dict[str, int]:
        """Delete records by id and/or filter; returns {"deleted": n}."""
        with v.in_method("delete"):
            id_list = _prepare_delete(ids, where, where_document, limit)
        return {"deleted": self._delete(id_list, where, where_document, limit)}

    def _delete(self, ids: list[str] | None, where: Any, where_document: Any, limit: int | None) -> int:
        _check_selection_text(ids, where, where_document)
        return self._store.delete(self._record.id, ids, where, where_document, v.check_limit(limit))

    # -- reads -------------------------------------------------------------------------
    def count(self) -> int:
        """Number of records."""
        return self._store.count(self._record.id)

    def get(
        self,
        ids: Any = None,
        where: Where | None = None,
        limit: int | None = None,
        offset: int | None = None,
        where_document: WhereDocument | None = None,
        include: Include | None = None,
        as_of: int | str | Any = None,
    ) -> GetResult:
        """Records by id and/or filter, in storage order (`as_of`: at an earlier snapshot)."""
        include = list(GET_INCLUDE_DEFAULT) if include is None else include
        with v.in_method("get"):
            id_list = _prepare_get(ids, where, where_document, include)
        if as_of is not None:  # an earlier lake snapshot (vecduck.frames)
            from vecduck.frames import get_as_of

            return get_as_of(self, as_of, id_list, where, limit, offset, where_document, include)
        return self._get(id_list, where, limit, offset, where_document, include)

    def _get(
        self,
        ids: list[str] | None,
        where: Any,
        limit: Any,
        offset: Any,
        where_document: Any,
        include: Sequence[str],
    ) -> GetResult:
        limit = v.check_limit(limit)
        offset = v.check_limit(offset, "offset")
        _check_selection_text(ids, where, where_document)
        want_vectors = "embeddings" in include
        rows = self._store.select(self._record.id, ids, where, where_document, limit, offset, with_vectors=want_vectors)
        embeddings = None
        if want_vectors:
            embeddings = rows.vectors if len(rows.keys) else empty_embeddings(self._record.dimension)
        return GetResult(
            ids=rows.ids,
            embeddings=embeddings,
            documents=rows.documents if "documents" in include else None,
            uris=rows.uris if "uris" in include else None,
            included=list(include),
            data=None,
            metadatas=rows.metadatas if "metadatas" in include else None,
        )

    def peek(self, limit: int = 10) -> GetResult:
        """The first `limit` records, with their embeddings."""
        return self._get(None, None, limit, None, None, ["metadatas", "documents", "embeddings"])

    def query(
        self,
        query_embeddings: Any = None,
        query_texts: Any = None,
        query_images: Any = None,
        query_uris: Any = None,
        ids: Any = None,
        n_results: int = 10,
        where: Where | None = None,
        where_document: WhereDocument | None = None,
        include: Include | None = None,
    ) -> QueryResult:
        """The `n_results` nearest records to each query, among those matching the filters."""
        include = list(QUERY_INCLUDE_DEFAULT) if include is None else include
        with v.in_method("query"):
            vectors, id_list = self._prepare_query(
                query_embeddings, query_texts, query_images, query_uris, ids, n_results, where, where_document, include
            )
        return self._query(vectors, n_results, id_list, where, where_document, include)

    def _prepare_query(
        self,
        query_embeddings: Any,
        query_texts: Any,
        query_images: Any,
        query_uris: Any,
        ids: Any,
        n_results: Any,
        where: Any,
        where_document: Any,
        include: Any,
    ) -> tuple[list[np.ndarray], list[str] | None]:
        vectors = v.normalize_embeddings(query_embeddings)
        texts = v.one_or_many(query_texts)
        images = v.one_or_many(query_images)
        query_uri_list = v.one_or_many(query_uris)
        v.validate_lengths({"embeddings": vectors, "documents": texts, "images": images, "uris": query_uri_list})
        if vectors is not None:
            v.validate_embedding_arrays(vectors)
        if texts is not None:
            v.validate_documents(texts, nullable=vectors is not None)
        v.validate_filters(where, where_document)
        v.validate_include(include)
        v.validate_n_results(n_results)
        if vectors is None:
            given = [x for x in (texts, images, query_uri_list) if x is not None]
            if len(given) != 1:
                raise ValueError("Exactly one of documents, images, uris must be provided")
            if texts is None:
                raise ValueError("Only query_texts or query_embeddings are supported by vecduck")
            vectors = self._embed(texts, is_query=True)
        # given both, chromadb 1.5 queries with the embeddings and leaves the texts aside
        return vectors, v.one_or_many(ids)

    def _query(
        self,
        embeddings: Sequence[Any],
        n_results: int,
        ids: list[str] | None,
        where: Any,
        where_document: Any,
        include: Sequence[str],
    ) -> QueryResult:
        queries = v.check_embeddings(embeddings)
        _check_selection_text(ids, where, where_document)
        want_vectors = "embeddings" in include
        fields = [name for name, asked in HIT_FIELDS_BY_INCLUDE if asked in include]
        hits, position, rows = self._store.search(
            self._record.id, queries, n_results, ids, where, where_document, with_vectors=want_vectors, fields=fields
        )
        result: dict[str, Any] = {
            "ids": [],
            "embeddings": [] if want_vectors else None,
            "documents": [] if "documents" in include else None,
            "uris": [] if "uris" in include else None,
            "included": list(include),
            "data": None,
            "metadatas": [] if "metadatas" in include else None,
            "distances": [] if "distances" in include else None,
        }
        for keys, distances in hits:
            at = [position[key] for key in keys.tolist()]
            result["ids"].append([rows.ids[i] for i in at])
            if want_vectors:
                found = rows.vectors is not None and at
                result["embeddings"].append(rows.vectors[at] if found else empty_embeddings(queries.shape[1]))
            if result["documents"] is not None:
                result["documents"].append([rows.documents[i] for i in at])
            if result["uris"] is not None:
                result["uris"].append([rows.uris[i] for i in at])
            if result["metadatas"] is not None:
                result["metadatas"].append([rows.metadatas[i] for i in at])
            if result["distances"] is not None:
                result["distances"].append([float(d) for d in distances])
        return QueryResult(result)

    # -- the Search API (vecduck.api.search) -----------------------------------------------
    def search(self, searches: Any, read_level: Any = "index_and_wal") -> SearchResult:
        """Run one search or a list of them (Chroma's Search API: filter, rank with dense,
        sparse and BM25 Knn, RRF and arithmetic, group_by, limit, select); text queries are
        embedded with the collection's functions. Every read level reads every write."""
        from vecduck.api import search as s

        with v.in_method("search"):
            payloads = s.search_payloads(searches)
        dense = (
            None
            if self._embedding_function is None and self._schema_embedding_function() is None
            else (lambda text: self._embed([text], is_query=True)[0])
        )
        payloads = [s.embed_text_queries(p, dense, self._sparse_query) for p in payloads]
        return self._search(payloads, read_level, embedded=True)

    def _search(
        self, payloads: list[dict[str, Any]], read_level: Any = "index_and_wal", embedded: bool = False
    ) -> SearchResult:
        """The server side of a search: payloads checked and run (shared with HTTP, where
        sparse text queries are embedded here; `embedded`: they have been already)."""
        from vecduck.api import search as s

        s.read_level_value(read_level)
        if not isinstance(payloads, list):
            raise InvalidArgumentError("searches must be a list")
        if not embedded:
            payloads = [s.embed_text_queries(p, None, self._sparse_query) for p in payloads]
        parsed = [s.parse_payload(p) for p in payloads]
        if not parsed:
            return s.shape_result([], [])
        fields, with_vectors = s.row_fields([select for _plan, select in parsed])
        answers = self._store.run_search(
            self._record.id,
            [plan for plan, _select in parsed],
            self._bm25_keys(),
            fields=fields,
            with_vectors=with_vectors,
        )
        return s.shape_result(answers, [select for _plan, select in parsed])

    def _sparse_indexes(self) -> dict[str, dict[str, Any]]:
        """The sparse-vector indexes the collection's schema declares: key -> config."""
        return sparse_index_configs(self._record.schema)

    def _bm25_keys(self) -> set[str]:
        return {key for key, config in self._sparse_indexes().items() if config.get("bm25")}

    def _sparse_function(self, key: str) -> Any | None:
        """The sparse embedding function of the schema's index on `key` (cached), or None."""
        cache = self.__dict__.setdefault("_sparse_functions", {})
        if key not in cache:
            from vecduck.embeddings.config import build_embedding_function

            record = (self._sparse_indexes().get(key) or {}).get("embedding_function")
            known = isinstance(record, dict) and record.get("type") == "known"
            cache[key] = build_embedding_function(record) if known else None
        return cache[key]

    def _with_sparse_vectors(self, n: int, metadatas: list[Any] | None, documents: list[Any] | None) -> Any:
        """Checked metadatas with the sparse vectors the schema's indexes compute from a
        source (`#document` or a metadata key) added where the record does not carry one yet
        (checked in turn: an embedding function's output is input like any other)."""
        targets = [
            (key, config["source_key"], function)
            for key, config in self._sparse_indexes().items()
            if config.get("source_key") and (function := self._sparse_function(key)) is not None
        ]
        if not targets:
            return metadatas
        out = list(metadatas) if metadatas is not None else [None] * n
        for key, source, function in targets:
            texts, positions = [], []
            for i in range(n):
                metadata = out[i]
                if metadata is not None and (not isinstance(metadata, dict) or key in metadata):
                    continue  # it has one already (or is not a dict: the checks refuse it)
                text = documents[i] if source == "#document" and documents is not None else None
                if source != "#document" and metadata is not None:
                    text = metadata.get(source)
                if isinstance(text, str):
                    texts.append(text)
                    positions.append(i)
            if texts:
                what = f"the sparse vector computed for {key!r}"
                for i, vector in zip(positions, _sparse_vectors(function, texts, what), strict=True):
                    out[i] = {**(out[i] or {}), key: vector}
        return out

    def _sparse_query(self, key: str, text: str) -> Any | None:
        function = self._sparse_function(key)
        if function is None:
            return None
        embed = getattr(function, "embed_query", None) or function
        return embed(input=[text])[0]

    # -- forks and indexing ----------------------------------------------------------------
    def fork(self, new_name: str) -> Collection:
        """A copy of this collection named `new_name`, made in about the time of a flush:
        it shares this collection's files until either side changes, then the two are
        independent (Chroma's cloud-only copy-on-write fork, here on the lake)."""
        v.check_collection_name(new_name)
        record = self._fork(new_name)
        return type(self)(self._client, record, self._embedding_function, self._data_loader)

    def _fork(self, new_name: str) -> CollectionRecord:
        return self._store.fork_collection(self._record.id, new_name)

    def fork_count(self) -> int:
        """How many forks the tree this collection belongs to has seen (deleted ones too)."""
        return self._store.fork_count(self._record.id)

    def get_indexing_status(self) -> IndexingStatus:
        """Record operations written and how many of them the vector index holds yet
        (single adds wait for the next read or a background insert)."""
        total, unindexed = self._store.indexing_status(self._record.id)
        return IndexingStatus.of(total, unindexed)

    # -- data science hooks (vecduck.frames, vecduck.sql, vecduck.display) ----------------
    def add_df(self, data: Any, **options: Any) -> int:
        """Add the rows of a pandas / polars / Arrow frame, chunked; see `vecduck.frames.write_frame`."""
        from vecduck.frames import write_frame

        return write_frame(self, "add", data, **options)

    def upsert_df(self, data: Any, **options: Any) -> int:
        """Upsert the rows of a pandas / polars / Arrow frame, chunked; see `vecduck.frames.write_frame`."""
        from vecduck.frames import write_frame

        return write_frame(self, "upsert", data, **options)

    def update_df(self, data: Any, **options: Any) -> int:
        """Update existing records from a frame (unknown ids ignored); see `vecduck.frames.write_frame`."""
        from vecduck.frames import write_frame

        return write_frame(self, "update", data, **options)

    def add_parquet(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        id_column: str = "id",
        embedding_column: str = "embedding",
        document_column: str | None = None,
        uri_column: str | None = None,
        metadata_columns: Sequence[str] | None = None,
    ) -> int:
        """Add the rows of Parquet files written elsewhere (Spark, polars, DuckDB; local paths
        or, on a shared lake, `s3://` URLs and globs), copied by DuckDB without passing
        through Python, then indexed; ids already present are kept. Returns the rows added.
        Every column but the named ones becomes metadata (or only `metadata_columns`)."""
        from vecduck.engine.imports import import_parquet

        files = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        return import_parquet(
            self._store,
            self._record.id,
            files,
            id_column=id_column,
            embedding_column=embedding_column,
            document_column=document_column,
            uri_column=uri_column,
            metadata_columns=metadata_columns,
        )

    def to_arrow(self, **options: Any) -> Any:
        """Records as a pyarrow Table, metadata keys as typed columns; see `vecduck.frames.collection_to_arrow`."""
        from vecduck.frames import collection_to_arrow

        return collection_to_arrow(self, **options)

    def to_pandas(self, **options: Any) -> Any:
        """Records as a pandas DataFrame (same options as `to_arrow`)."""
        return self.to_arrow(**options).to_pandas()

    def to_polars(self, **options: Any) -> Any:
        """Records as a polars DataFrame (same options as `to_arrow`)."""
        from vecduck.frames import to_polars

        return to_polars(self.to_arrow(**options))

    def versions(self, rows: bool = True) -> list[Any]:
        """The lake snapshots that changed this collection, oldest first (see `vecduck.sql.versions`)."""
        from vecduck.sql import versions

        return versions(self, rows)

    def compact(self, retention: Any = None) -> Any:
        """Flush, merge small files, expire old snapshots, delete unused files (`vecduck.sql.compact`)."""
        from vecduck.sql import compact

        return compact(self._store, retention, self._record.id)

    def _repr_html_(self) -> str:
        from vecduck.display import collection_html

        return collection_html(self)

    # -- collection ----------------------------------------------------------------------
    def modify(
        self,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        configuration: dict[str, Any] | None = None,
    ) -> None:
        """Rename, replace the metadata, or change mutable HNSW settings."""
        with v.in_method("modify"):
            _prepare_modify(metadata)
        self._modify(name, metadata, configuration)

    def _modify(self, name: Any, metadata: Any, configuration: Any) -> None:
        if name is not None:
            v.check_collection_name(name)
        if isinstance(metadata, dict) and metadata and any(value is None for value in metadata.values()):
            # chromadb replaces the metadata and drops None values; nothing left reads back as None
            metadata = {key: value for key, value in metadata.items() if value is not None}
            if metadata:
                v.check_collection_metadata(metadata)
        elif metadata is not None:
            v.check_collection_metadata(metadata)
        function = (configuration or {}).get("embedding_function")
        if function is not None and not isinstance(function, dict):  # a function object, as chromadb takes it
            configuration = {**configuration, "embedding_function": embedding_function_config(function)}
            if self._embedding_function is None or is_default_function(self._embedding_function):
                self._embedding_function = function
        new_configuration = updated_configuration(self._record.configuration, configuration) if configuration else None
        self._record = self._store.modify_collection(
            self._record.id, name=name, metadata=metadata, configuration=new_configuration
        )


def generated_ids(fields: list[list[Any] | None]) -> list[str]:
    """One new uuid4 id per record, the records counted from the first field given."""
    given = next((field for field in fields if field is not None), None)
    if given is None:
        raise ValueError("Expected ids, or at least one of embeddings, metadatas, documents, uris to count the records")
    return [str(uuid.uuid4()) for _ in given]


def one_or_many_ids(ids: Any) -> Any:
    return v.one_or_many(ids)


def _prepare_delete(ids: Any, where: Any, where_document: Any, limit: Any) -> list[str] | None:
    if ids is None and where is None and where_document is None:
        raise ValueError("At least one of ids, where, or where_document must be provided")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError("limit must be a non-negative integer")
        if limit < 0:
            raise ValueError("limit must be a non-negative integer")
        if where is None and where_document is None:
            raise ValueError("limit can only be specified when a where or where_document clause is provided")
    id_list = v.one_or_many(ids)
    if id_list is not None:
        v.validate_ids(id_list)
    v.validate_filters(where, where_document)
    return id_list


def _prepare_get(ids: Any, where: Any, where_document: Any, include: Any) -> list[str] | None:
    id_list = v.one_or_many(ids)
    if id_list is not None:
        v.validate_ids(id_list)
    v.validate_filters(where, where_document)
    v.validate_include(include, disallowed=("distances",))
    if "data" in include:
        raise ValueError("You must set a data loader on the collection if loading from URIs.")
    return id_list


def _prepare_modify(metadata: Any) -> None:
    if metadata is not None:
        v.validate_metadata(metadata)
        if "hnsw:space" in metadata:
            raise ValueError(
                "Changing the distance function of a collection once it is created is not supported currently."
            )


def _check_selection_text(ids: list[str] | None, where: Any, where_document: Any) -> None:
    """Server-side: ids and filter values must be valid Unicode (they become SQL parameters)."""
    v.check_text(ids, "IDs")
    v.check_text(where, "where")
    v.check_text(where_document, "where_document")


def _sparse_vectors(function: Any, texts: list[str], what: str) -> list[Any]:
    """`function`'s checked sparse vectors of `texts`. vecduck's own BM25 encodes a batch as
    arrays, well formed by construction: only its values' finiteness is left to check."""
    from vecduck.embeddings.bm25 import ChromaBm25EmbeddingFunction

    if isinstance(function, ChromaBm25EmbeddingFunction) and not function.include_tokens:
        vectors, values = function.encode_vectors(texts)
        if not np.isfinite(values).all():
            raise InvalidArgumentError(f"Validation error: {what}: sparse vector values must be finite numbers")
        return vectors
    return [v.check_sparse_vector(vector, what) for vector in function(input=texts)]
