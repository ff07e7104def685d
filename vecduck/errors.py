"""One exception hierarchy, with chromadb's class names so `except` clauses port unchanged."""

from __future__ import annotations


class ChromaError(Exception):
    """Base of every error vecduck raises on purpose (chromadb's base class name)."""

    def code(self) -> int:
        """HTTP status the server answers with for this error."""
        return 500

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidDimensionException(ChromaError):
    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "InvalidDimension"


class InvalidArgumentError(ChromaError):
    def code(self) -> int:
        return 400


class IDAlreadyExistsError(ChromaError):
    def code(self) -> int:
        return 409

    @classmethod
    def name(cls) -> str:
        return "IDAlreadyExists"


class DuplicateIDError(ChromaError):
    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "DuplicateID"


class InvalidUUIDError(ChromaError):
    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "InvalidUUID"


class InvalidHTTPVersion(ChromaError):
    def code(self) -> int:
        return 505


class AuthorizationError(ChromaError):
    def code(self) -> int:
        return 401


class ChromaAuthError(ChromaError):
    def code(self) -> int:
        return 403

    @classmethod
    def name(cls) -> str:
        return "AuthError"


AuthError = ChromaAuthError


class NotFoundError(ChromaError):
    def code(self) -> int:
        return 404


class BatchSizeExceededError(ChromaError):
    def code(self) -> int:
        return 413


class VersionMismatchError(ChromaError):
    def code(self) -> int:
        return 500


class RateLimitError(ChromaError):
    def code(self) -> int:
        return 429


class QuotaError(ChromaError):
    def code(self) -> int:
        return 400


class InternalError(ChromaError):
    def code(self) -> int:
        return 500


class UniqueConstraintError(InternalError):
    """A collection name that is already taken (create, or rename onto it).

    chromadb's in-process client raises `InternalError` here; this subclass keeps such
    `except` clauses working while the server answers 409 like chromadb's server does.
    """

    def code(self) -> int:
        return 409

    @classmethod
    def name(cls) -> str:
        return "ChromaError"


class ServiceUnavailableError(ChromaError):
    """The shared lake's catalog (PostgreSQL) or object store cannot be reached right now.

    Retry the call: a write whose commit was cut off either landed whole or not at all,
    and adding, upserting or deleting the same ids again is safe. The server answers 503."""

    def code(self) -> int:
        return 503


class CorruptedIndexError(ChromaError):
    """An index sidecar that cannot be trusted; it is rebuilt from the table."""


class CorruptedDataError(InternalError):
    """A collection's data file (Parquet under `data/`) is missing or unreadable.

    The index can be rebuilt from the table, the table from nothing: restore the
    folder from a backup. Sent over HTTP as chromadb's `InternalError` (500).
    """

    @classmethod
    def name(cls) -> str:
        return "InternalError"


ERROR_TYPES: dict[str, type[ChromaError]] = {
    "InvalidDimension": InvalidDimensionException,
    "InvalidArgumentError": InvalidArgumentError,
    "IDAlreadyExists": IDAlreadyExistsError,
    "DuplicateID": DuplicateIDError,
    "InvalidUUID": InvalidUUIDError,
    "InvalidHTTPVersion": InvalidHTTPVersion,
    "AuthorizationError": AuthorizationError,
    "NotFoundError": NotFoundError,
    "BatchSizeExceededError": BatchSizeExceededError,
    "VersionMismatchError": VersionMismatchError,
    "RateLimitError": RateLimitError,
    "AuthError": ChromaAuthError,
    "UniqueConstraintError": UniqueConstraintError,
    "QuotaError": QuotaError,
    "InternalError": InternalError,
    "ServiceUnavailableError": ServiceUnavailableError,
    "ChromaError": ChromaError,
}
