"""Where a store keeps its state: a local folder, or a shared lake.

A `Location` answers the few questions that differ between the two: which registry
(collections, counters, write buffer, writer lock), how DuckDB attaches the lake, where
the derived files (vector index, rows snapshot, sparse indexes) live, and how a new
process gets them without rebuilding. Everything else in the engine is the same code.

- `LocalFolder(path)`: today's layout, all in one folder (SQLite registry and catalog,
  Parquet under `data/`, derived files under `index/`).
- `SharedLake(catalog, data)`: DuckLake's catalog and vecduck's registry in one
  PostgreSQL database (the registry in a `vecduck` schema), Parquet in object storage
  (`s3://bucket/prefix/`) or a shared folder; derived files in a local cache, with
  snapshots of them published beside the data so a new server starts warm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

import duckdb

from vecduck.engine import lake as lakes
from vecduck.errors import InvalidArgumentError

if TYPE_CHECKING:
    from vecduck.engine.registry import Registry

log = logging.getLogger("vecduck.lake")
# Where index snapshots are published, under a shared lake's data path.
SNAPSHOT_PREFIX = "vecduck-index/"


class Location(ABC):
    """The storage backend of one store (see the module docstring): the three abstract
    methods every backend defines, and defaults that suit a local folder for the rest."""

    shared: bool = False
    # what identifies the location in this process (one Store per key)
    key: str
    # the local folder of derived files: vector index, rows snapshot, sparse indexes
    index_folder: str

    @abstractmethod
    def open_registry(self, durability: str) -> Registry:
        """The registry of collections, counters and the write buffer."""

    @abstractmethod
    def attach(self, con: duckdb.DuckDBPyConnection, options: str = "") -> None:
        """Attach the lake to `con` as `lake` (extensions loaded offline)."""

    @abstractmethod
    def describe(self) -> str:
        """The location as a person would name it (in messages and logs)."""

    def data_directories(self) -> list[str]:
        """What a sandboxed DuckDB may read besides the catalog (the lake's data)."""
        return []

    def check_data_files(self, collection_id: str) -> None:
        """Check a collection's data files are whole without reading them (when cheap);
        by default nothing is cheap to check, and the lake's own reads find damage."""
        return None

    def data_usage(self) -> tuple[int, int]:
        """(files, bytes) under the data path."""
        return 0, 0

    def link_folder(self, table: str) -> str | None:
        """A local folder where a fork may hard-link its parent's files, or None when the
        data are not on a local file system (the fork then copies its rows)."""
        return None

    def reachable(self) -> str | None:
        """None when the data path can be listed, else why not (for /healthcheck)."""
        return None

    def publish(self, path: str) -> None:
        """Make a derived file (and its marker) available to other machines; by default
        the derived files are already where every process looks."""
        return None

    def fetch(self, path: str, newer_than: int | None = None) -> bool:
        """Bring a published derived file to `path` (when none is there, or when the
        published one reflects more writes than `newer_than`); True if it came."""
        return False

    def unpublish(self, prefix: str) -> None:
        """Remove the published derived files whose names start with `prefix` (by default
        none are published)."""
        return None

    def settle(self) -> None:
        """Wait until what was published has gone up (by default nothing is uploaded)."""
        return None


class LocalFolder(Location):
    """Everything in one local folder (the folder format every version has used)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = os.path.abspath(os.fspath(folder))
        self.key = os.path.realpath(self.folder)
        self.index_folder = os.path.join(self.folder, "index")

    def open_registry(self, durability: str) -> Registry:
        from vecduck.engine.registry import Registry

        os.makedirs(self.index_folder, exist_ok=True)
        registry = Registry(os.path.join(self.folder, "vecduck.sqlite"), os.path.join(self.folder, "write.lock"))
        registry.set_durability(durability)
        return registry

    def attach(self, con: duckdb.DuckDBPyConnection, options: str = "") -> None:
        if "READ_ONLY" not in options:
            os.makedirs(os.path.join(self.folder, "data"), exist_ok=True)
            lakes.use_wal(os.path.join(self.folder, "lake.sqlite"))
        lakes.attach(con, self.folder, options)

    def describe(self) -> str:
        return self.folder

    def data_directories(self) -> list[str]:
        return [os.path.join(self.folder, "data") + os.sep]

    def reachable(self) -> str | None:
        return None if os.access(self.folder, os.R_OK | os.W_OK) else f"{self.folder} is not readable and writable"

    def check_data_files(self, collection_id: str) -> None:
        lakes.check_data_files(self.folder, collection_id)

    def data_usage(self) -> tuple[int, int]:
        return folder_usage(os.path.join(self.folder, "data"))

    def link_folder(self, table: str) -> str | None:
        return os.path.join(self.folder, "data", "main", table)


class SharedLake(Location):
    """A DuckLake with its catalog in PostgreSQL and its data in object storage.

    `catalog`: `postgresql://user:pass@host:port/db` (or `postgres://`), DuckLake's
    `ducklake:postgres:<libpq string>`, or a bare libpq `key=value` string. `data`:
    `s3://bucket/prefix/` (credentials and endpoint from the standard AWS variables) or
    a folder every process sees at the same path.
    """

    shared = True

    def __init__(self, catalog: str, data: str, cache: str | None = None) -> None:
        self.conninfo = postgres_conninfo(catalog)
        self.data = normalise_data_path(data)
        self.s3 = self.data.startswith("s3://")
        identity = hashlib.sha256(f"{self.conninfo}\0{self.data}".encode()).hexdigest()[:16]
        self.key = f"shared:{identity}"
        root = (
            cache
            or os.environ.get("VECDUCK_CACHE")
            or os.path.join(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "vecduck", "lakes")
        )
        self.index_folder = os.path.join(root, identity, "index")
        os.makedirs(self.index_folder, exist_ok=True)
        if not self.s3:
            os.makedirs(self.data, exist_ok=True)
        self._fs = None
        # uploads of published files, in order, on one thread: a write never waits for
        # them (nor holds the lake's writer lock meanwhile), and `settle` waits for them
        self._upload_thread: tuple[int, ThreadPoolExecutor] | None = None  # (pid, executor)
        self._queued: dict[str, _Upload] = {}  # name -> its newest upload not yet begun
        self._queue_lock = threading.Lock()

    @property
    def _uploads(self) -> ThreadPoolExecutor:
        """The upload thread of this process (a forked child does not inherit the thread)."""
        if self._upload_thread is None or self._upload_thread[0] != os.getpid():
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecduck-publish")
            self._upload_thread = (os.getpid(), executor)
        return self._upload_thread[1]

    def open_registry(self, durability: str) -> Registry:
        from vecduck.engine.shared_registry import SharedRegistry

        registry = SharedRegistry(self.conninfo)
        registry.set_durability(durability)
        return registry

    def attach(self, con: duckdb.DuckDBPyConnection, options: str = "") -> None:
        lakes.load_extensions(con, shared=True)
        if self.s3:
            con.execute(s3_secret_sql())
        extra = f", {options}" if options else ""
        con.execute(
            f"ATTACH '{lakes.escape('ducklake:postgres:' + self.conninfo)}' AS {lakes.LAKE}"
            f" (DATA_PATH '{lakes.escape(self.data)}', METADATA_SCHEMA 'ducklake'{extra})"
        )

    def describe(self) -> str:
        return f"{redacted(self.conninfo)} with data at {self.data}"

    def data_directories(self) -> list[str]:
        return [self.data]

    def reachable(self) -> str | None:
        from pyarrow import fs

        try:
            info = self.filesystem().get_file_info(self._object("").rstrip("/") or "/")
        except (OSError, ValueError) as exc:
            return f"{self.data} cannot be reached: {exc}"
        if self.s3:
            return None  # a prefix is no object: reaching the bucket is enough
        return None if info.type == fs.FileType.Directory else f"{self.data} is not a folder"

    def data_usage(self) -> tuple[int, int]:
        if not self.s3:
            return folder_usage(self.data)
        from pyarrow import fs

        files = size = 0
        for info in self.filesystem().get_file_info(fs.FileSelector(self._object(""), recursive=True)):
            if info.type == fs.FileType.File and not info.path.startswith(self._object(SNAPSHOT_PREFIX)):
                files += 1
                size += info.size or 0
        return files, size

    # -- derived files published beside the data -------------------------------------
    def filesystem(self) -> Any:
        """The data path's file system (pyarrow's S3 client, or the local one)."""
        if self._fs is None:
            from pyarrow import fs

            if self.s3:
                self._fs = fs.S3FileSystem(**s3_options())
            else:
                self._fs = fs.LocalFileSystem()
        return self._fs

    def _object(self, name: str) -> str:
        return (self.data[len("s3://") :] if self.s3 else self.data) + name

    def publish(self, path: str) -> None:
        """Upload `path` and then its marker (`path.json`) in the background: a reader
        takes the marker as the sign the file is whole, and checks the file against it
        anyway. Both are taken now (the marker's bytes, the file open), so a later save
        that replaces them changes nothing of this upload; an upload not yet begun when a
        newer one of the same file comes is dropped (only the newest matters)."""
        name = os.path.basename(path)
        try:
            with open(path + ".json", "rb") as marker_file:
                marker = marker_file.read()
        except FileNotFoundError:
            marker = None
        try:
            upload = _Upload(name, open(path, "rb"), marker)  # noqa: SIM115 (closed by the upload)
        except FileNotFoundError:
            return
        with self._queue_lock:
            superseded = self._queued.pop(name, None)
            self._queued[name] = upload
        if superseded is not None:
            superseded.source.close()
        self._uploads.submit(self._upload, name)

    def _upload(self, name: str) -> None:
        with self._queue_lock:
            upload = self._queued.pop(name, None)
        if upload is None:  # superseded: a newer upload of the file went instead
            return
        try:
            filesystem = self.filesystem()
            with upload.source as source:
                target = self._object(SNAPSHOT_PREFIX + name)
                with filesystem.open_output_stream(target) as sink:
                    shutil.copyfileobj(source, sink, 1 << 22)
            if upload.marker is not None:
                with filesystem.open_output_stream(target + ".json") as sink:
                    sink.write(upload.marker)
        except Exception as exc:  # publishing only warms other processes' starts: never a write's failure
            log.warning("publishing %s to %s failed (other processes will build it): %s", name, self.data, exc)

    def settle(self) -> None:
        """Wait until every upload queued so far has gone up (or failed)."""
        self._uploads.submit(lambda: None).result()

    def fetch(self, path: str, newer_than: int | None = None) -> bool:
        """Download the published `path` (marker first, then the file, each renamed into
        place) when its marker's write number is above `newer_than` (None: when there is
        no local copy); True when it came. The loader checks it against its marker."""
        if newer_than is None and os.path.exists(path) and os.path.exists(path + ".json"):
            return False
        name = os.path.basename(path)
        if newer_than is not None:
            seq = self.published_seq(name)
            if seq is None or seq <= newer_than:
                return False
        filesystem = self.filesystem()
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fetch-")
        os.close(fd)
        try:
            for suffix in (".json", ""):
                with (
                    filesystem.open_input_stream(self._object(SNAPSHOT_PREFIX + name + suffix)) as source,
                    open(tmp + suffix, "wb") as sink,
                ):
                    shutil.copyfileobj(source, sink, 1 << 22)
            os.replace(tmp, path)
            os.replace(tmp + ".json", path + ".json")
            return True
        except (OSError, FileNotFoundError):
            return False
        finally:
            for leftover in (tmp, tmp + ".json"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)

    def published_seq(self, name: str) -> int | None:
        """The write number the published file `name` reflects (from its marker), or None."""
        try:
            with self.filesystem().open_input_stream(self._object(SNAPSHOT_PREFIX + name + ".json")) as source:
                return int(json.loads(source.read())["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def unpublish(self, prefix: str) -> None:
        """Drop queued uploads of files named `prefix`..., then (after the uploads before
        it, on the upload thread) remove the published ones."""
        with self._queue_lock:
            dropped = [self._queued.pop(name) for name in list(self._queued) if name.startswith(prefix)]
        for upload in dropped:
            upload.source.close()
        self._uploads.submit(self._remove_published, prefix)

    def _remove_published(self, prefix: str) -> None:
        from pyarrow import fs

        filesystem = self.filesystem()
        with contextlib.suppress(OSError):
            for info in filesystem.get_file_info(fs.FileSelector(self._object(SNAPSHOT_PREFIX), allow_not_found=True)):
                if os.path.basename(info.path).startswith(prefix):
                    with contextlib.suppress(OSError):
                        filesystem.delete_file(info.path)


@dataclass
class _Upload:
    """A published file waiting to go up: the file, open, and its marker's bytes."""

    name: str
    source: BinaryIO
    marker: bytes | None


def location_for(path: str | os.PathLike[str], data_path: str | os.PathLike[str] | None = None) -> Location:
    """The location a `path` (and `data_path`) names: a PostgreSQL catalog makes a shared
    lake, anything else is a local folder."""
    text = os.fspath(path)
    if is_catalog_url(text):
        if data_path is None:
            raise InvalidArgumentError(
                "A shared lake needs a data path too: data_path='s3://bucket/prefix/' or a shared folder"
            )
        return SharedLake(text, os.fspath(data_path))
    if data_path is not None:
        raise InvalidArgumentError(
            "data_path is for a shared lake (path a PostgreSQL URL); a local folder keeps its data inside"
        )
    return LocalFolder(text)


def is_catalog_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://", "ducklake:postgres:"))


def postgres_conninfo(catalog: str) -> str:
    """A libpq `key=value` connection string for the catalog (what both psycopg and
    DuckDB's postgres extension take)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    text = catalog.removeprefix("ducklake:postgres:")
    try:
        return make_conninfo(**conninfo_to_dict(text))
    except Exception as exc:  # psycopg.ProgrammingError for a malformed string
        raise InvalidArgumentError(f"Not a PostgreSQL connection string: {redacted(text)}") from exc


def redacted(conninfo: str) -> str:
    """The connection string without its password (for messages and logs)."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(conninfo)
    except Exception:
        return "<catalog>"
    if "password" in parts:
        parts["password"] = "***"
    return make_conninfo(**parts)


_SECRETS = (
    re.compile(r"""(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s"']+)""", re.IGNORECASE),
    re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)"),
)


def scrub(text: str) -> str:
    """`text` (an error message, a log line) with any password in it replaced by ***."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(3) if m.lastindex == 3 else ""), text)
    return text


def normalise_data_path(data: str) -> str:
    """`s3://bucket/prefix/` or an absolute folder, always ending with a separator."""
    if data.startswith("s3://"):
        parsed = urlparse(data)
        if not parsed.netloc:
            raise InvalidArgumentError(f"An S3 data path names a bucket: s3://bucket/prefix/, got {data!r}")
        return data if data.endswith("/") else data + "/"
    if "://" in data:
        raise InvalidArgumentError(f"The data path is s3://bucket/prefix/ or a folder, got {data!r}")
    return os.path.join(os.path.abspath(data), "")


def s3_options() -> dict[str, object]:
    """pyarrow's S3 options from the standard AWS variables (AWS_ENDPOINT_URL for an
    S3-compatible server)."""
    options: dict[str, object] = {
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    }
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc or parsed.path
        options["scheme"] = parsed.scheme or "https"
        options["force_virtual_addressing"] = False
    return options


def s3_secret_sql() -> str:
    """DuckDB's S3 secret from the same variables (values escaped as SQL literals)."""
    options = s3_options()
    fields = {"TYPE": "s3", "REGION": str(options["region"])}
    if "access_key" in options:
        fields["KEY_ID"] = str(options["access_key"])
        fields["SECRET"] = str(options["secret_key"])
    if "session_token" in options:
        fields["SESSION_TOKEN"] = str(options["session_token"])
    if "endpoint_override" in options:
        fields["ENDPOINT"] = str(options["endpoint_override"])
        fields["URL_STYLE"] = "path"
        fields["USE_SSL"] = "true" if options["scheme"] == "https" else "false"
    body = ", ".join(
        f"{name} {value}" if value in ("true", "false") else f"{name} '{lakes.escape(value)}'"
        for name, value in fields.items()
    )
    return f"CREATE OR REPLACE SECRET vecduck_s3 ({body})"


def folder_usage(folder: str) -> tuple[int, int]:
    files = size = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            files += 1
            with contextlib.suppress(OSError):
                size += os.path.getsize(os.path.join(root, name))
    return files, size
