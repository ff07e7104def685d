"""Who may touch which tenant: tokens and their grants (`vecduck run --auth-file FILE`).

The file is TOML, one `[[token]]` table per token:

    [[token]]
    token = "team-a-secret"
    tenants = { team_a = "read-write", shared = "read-only" }

    [[token]]
    token = "ops-secret"
    admin = true            # every tenant read-write, creating tenants, /reset

A request without a known token gets 401. A request that names a tenant (every route
under `/api/v2/tenants/{tenant}`) needs a grant on it: any grant for reads (get, query,
search, count, listing, fetching collections and databases), "read-write" for the rest
(writes, creating and deleting collections and databases, forks). Creating tenants and
`/reset` need `admin`. Refusals are 403 with no data. Server-wide routes (heartbeat,
version, pre-flight checks, health, identity) answer any known token. The single
`--auth-token` token is an admin token.
"""

from __future__ import annotations

import hmac
import tomllib
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

READ_WRITE = "read-write"
READ_ONLY = "read-only"
MODES = (READ_WRITE, READ_ONLY)
PREFIX = "/api/v2"
# POST routes that only read: a read-only grant may call them.
READ_POSTS = ("/get", "/query", "/search")


class AuthFileError(ValueError):
    """An auth file that cannot be used (the server refuses to start)."""


@dataclass
class Grant:
    """What one token may do."""

    label: str
    admin: bool = False
    tenants: dict[str, str] = field(default_factory=dict)  # tenant -> read-write | read-only

    def may(self, tenant: str, write: bool) -> bool:
        if self.admin:
            return True
        mode = self.tenants.get(tenant)
        return mode == READ_WRITE or (mode == READ_ONLY and not write)

    def visible_tenants(self) -> list[str]:
        return sorted(self.tenants)


def load_grants(path: str) -> dict[str, Grant]:
    """Token -> grant, from an auth file; AuthFileError says what is wrong."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuthFileError(f"cannot read auth file {path}: {exc}") from None
    tables = data.get("token")
    if not isinstance(tables, list) or not tables:
        raise AuthFileError(f"auth file {path} has no [[token]] tables")
    grants: dict[str, Grant] = {}
    for number, table in enumerate(tables, 1):
        where = f"auth file {path}, token #{number}"
        token = table.get("token") if isinstance(table, dict) else None
        if not isinstance(token, str) or len(token) < 8:
            raise AuthFileError(f"{where}: 'token' must be a string of at least 8 characters")
        if token in grants:
            raise AuthFileError(f"{where}: the same token appears twice")
        unknown = set(table) - {"token", "tenants", "admin", "label"}
        if unknown:
            raise AuthFileError(f"{where}: unknown keys {sorted(unknown)}")
        tenants = table.get("tenants", {})
        admin = table.get("admin", False)
        if not isinstance(tenants, dict) or not all(
            isinstance(name, str) and mode in MODES for name, mode in tenants.items()
        ):
            raise AuthFileError(f"{where}: 'tenants' maps tenant names to {READ_WRITE!r} or {READ_ONLY!r}")
        if not isinstance(admin, bool):
            raise AuthFileError(f"{where}: 'admin' must be true or false")
        label = str(table.get("label", f"token-{number}"))
        grants[token] = Grant(label=label, admin=admin, tenants=dict(tenants))
    return grants


def presented_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token a request carries: `Authorization: Bearer t` or `X-Chroma-Token: t`."""
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"x-chroma-token":
            return value.strip()
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
    return None


def find_grant(grants: dict[str, Grant], token: bytes | None) -> Grant | None:
    """The grant of a token, comparing every known token in constant time."""
    found = None
    for known, grant in grants.items():
        if token is not None and hmac.compare_digest(known.encode("utf-8"), token):
            found = grant
    return found


def needs(method: str, path: str) -> tuple[str | None, bool, bool]:
    """(tenant the request touches, whether it writes, whether it needs admin).

    Routes are matched by the same decoded path, so the tenant checked is the tenant served;
    a path the router does not serve still needs its tenant's grant (and then gets 404)."""
    rest = path[len(PREFIX) :] if path.startswith(PREFIX) else path
    # the path as the router sees it (decoded once by the server): never decode again, or a
    # name like "a%2562" would be checked as one tenant and served as another
    parts = [p for p in rest.split("/") if p]
    if parts[:1] == ["reset"]:
        return None, True, True
    if parts[:1] != ["tenants"]:
        return None, False, False  # heartbeat, version, pre-flight, health, identity
    if len(parts) == 1:  # POST /tenants creates one; nothing else is served there
        return None, True, method != "GET"
    write = method in ("PUT", "DELETE", "PATCH") or (
        method == "POST" and not any(path.endswith(suffix) for suffix in READ_POSTS)
    )
    return parts[1], write, False


class AccessControl:
    """ASGI middleware: 401 without a known token, 403 outside its grant, before any work."""

    def __init__(self, app: ASGIApp, grants: dict[str, Grant]) -> None:
        self.app = app
        self.grants = grants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        grant = find_grant(self.grants, presented_token(scope.get("headers", [])))
        if grant is None:
            await _refuse(scope, receive, send, 401, "Unauthorized: a valid token is required")
            return
        tenant, write, admin = needs(scope["method"], scope["path"])
        allowed = grant.admin if admin else tenant is None or grant.may(tenant, write)
        if not allowed:
            what = "this" if tenant is None else f"tenant [{tenant}]"
            kind = "write to" if write else "read"
            await _refuse(scope, receive, send, 403, f"Forbidden: this token may not {kind} {what}")
            return
        scope.setdefault("state", {})["grant"] = grant
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    from vecduck.server.app import error_response

    await error_response(status, "AuthorizationError", message)(scope, receive, send)


def admin_grants(token: str) -> dict[str, Grant]:
    """The single `--auth-token` as a grant: everything."""
    return {token: Grant(label="auth-token", admin=True)}


def identity_of(grant: Any, default_tenant: str, default_database: str) -> dict[str, Any]:
    """`GET /auth/identity` for a request's grant (None: no access control)."""
    if grant is None:
        return {"user_id": "", "tenant": default_tenant, "databases": [default_database]}
    if grant.admin:
        return {"user_id": grant.label, "tenant": default_tenant, "databases": ["*"]}
    tenants = grant.visible_tenants()
    return {"user_id": grant.label, "tenant": tenants[0] if len(tenants) == 1 else default_tenant, "databases": ["*"]}


__all__ = ["AccessControl", "AuthFileError", "Grant", "admin_grants", "identity_of", "load_grants", "needs"]
